"""The command line: parse options, call one library function, render, return the exit code."""

from __future__ import annotations

import sys

import click

from backcheck import __version__
from backcheck.results import ExitCode


@click.group()
@click.version_option(__version__, prog_name="backcheck")
def main() -> None:
    """Find the bug in hand-written NumPy backpropagation."""


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: the coloured report; json: one JSON object on stdout (contract section 3).")
@click.option("--no-color", is_flag=True, help="Plain text without colour (NO_COLOR does the same).")
@click.option("--inject", "inject", multiple=True, metavar="ID[@LAYER]",
              help="Plant a catalog mistake in backcheck's reference network (configs without code:).")
@click.option("--show-output", is_flag=True, help="Let the checked code's prints through to stderr.")
@click.option("--exhaustive", is_flag=True,
              help="Probe every entry of every parameter (default: parameters over 2048 entries are sampled "
                   "and searched entry by entry only when wrong).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes probing entries at once with --exhaustive; each loads the code once.")
def verify(config: str, fmt: str, no_color: bool, inject: tuple, show_output: bool, exhaustive: bool,
           jobs: int) -> None:
    """Check the gradients of the code CONFIG points at, layer by layer, and name the mistake."""
    from backcheck import render
    from backcheck.runner import Options, verify as run

    result = run(config, Options(inject=tuple(inject), show_output=show_output, exhaustive=exhaustive, jobs=jobs))
    if fmt == "json":
        click.echo(render.to_json(result))
    else:
        render.report(result, render.console(no_color, stderr=result.error is not None))
    sys.exit(int(result.exit_code))


@main.command()
@click.option("--no-color", is_flag=True, help="Plain text without colour.")
def bugs(no_color: bool) -> None:
    """List the catalog of known mistakes: finding id, what it looks like, the right formula."""
    from backcheck import render

    render.catalog(render.console(no_color))
    sys.exit(int(ExitCode.OK))
