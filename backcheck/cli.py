"""The command line: parse options, call one library function, render, return the exit code."""

from __future__ import annotations

import os
import sys

import click

from backcheck import __version__
from backcheck.results import ExitCode


class _Commands(click.Group):
    """backcheck's commands. A usage error on a command line that asks for ``--format json`` is
    answered with the contract's JSON object as well (exit 2), so that a script can always parse stdout."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        if not standalone_mode or not _wants_json(args):
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            value = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as exc:
            _usage_json(exc)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(value if isinstance(value, int) else 0)  # --help and --version return 0 here


def _wants_json(args: list[str]) -> bool:
    return "--format=json" in args or any(a == "--format" and b == "json" for a, b in zip(args, args[1:]))


def _usage_json(exc: click.UsageError) -> None:
    from backcheck import render
    from backcheck.results import CheckResult, ErrorInfo

    usage = exc.ctx.get_usage().replace("Usage: ", "") if exc.ctx is not None else "backcheck [OPTIONS] COMMAND"
    message = f"{exc.format_message()} Usage: {usage}; --help says more"
    click.echo(render.to_json(CheckResult(config=None, name=None, error=ErrorInfo("config", message))))
    sys.exit(int(ExitCode.USAGE))


_HTML_HELP = ("Also write the report as one self-contained HTML file (a heat map of every wrong parameter's "
              "entries), whole or not at all; a symlink or device there is never replaced.")


@click.group(cls=_Commands, name="backcheck")
@click.version_option(__version__, prog_name="backcheck")
def main() -> None:
    """Find the bug in hand-written NumPy backpropagation."""


_FORMATS = ["text", "json", "lines", "github"]
_FORMATS_HELP = ("lines: one 'file:line: id: message' line per finding (editors, CI problem matchers); "
                 "github: GitHub workflow commands (::error file=...,line=...::message) that annotate the files.")


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help="text: the coloured report; json: one JSON object on stdout (its keys: docs/contract.md, "
                   "section 3, in backcheck's repository); " + _FORMATS_HELP)
@click.option("--no-color", is_flag=True, help="Plain text without colour (NO_COLOR does the same).")
@click.option("--inject", "inject", multiple=True, metavar="ID[@LAYER]",
              help="Plant a catalog mistake in backcheck's reference network (configs without code:).")
@click.option("--show-output", is_flag=True, help="Let the checked code's prints through to stderr.")
@click.option("--exhaustive", is_flag=True,
              help="Probe every entry of every parameter (default: parameters over 2048 entries are sampled "
                   "and searched entry by entry only when wrong).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes probing entries at once with --exhaustive; each loads the code once.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False),
              help="Also write JUnit XML: a testcase per layer, as backcheck grade writes them.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE", help=_HTML_HELP)
def verify(config: str, fmt: str, no_color: bool, inject: tuple, show_output: bool, exhaustive: bool,
           jobs: int, junit_path, html_path) -> None:
    """Check the gradients of the code CONFIG points at, layer by layer, and name the mistake."""
    from backcheck.runner import Options, verify as run

    _html_writable(config, html_path, fmt, no_color)
    options = Options(inject=tuple(inject), show_output=show_output, exhaustive=exhaustive, jobs=jobs)
    with _progress(fmt, no_color, show_output) as progress:
        if junit_path is None:
            result = run(config, options, progress=progress)
        else:
            from backcheck.grade import verify_junit

            result = verify_junit(config, options, junit_path, progress=progress)
    _emit(result, fmt, no_color, html_path)


def _progress(fmt: str, no_color: bool, show_output: bool, err=None):
    """The progress display on a terminal's stderr (``err``, the console that prints there); none for
    the machine formats, for the code's own output, or off a terminal (a log or a pipe gets only the
    report)."""
    from contextlib import nullcontext

    from backcheck import render

    err = err or render.console(no_color, stderr=True)
    if fmt != "text" or show_output or not err.is_terminal:
        return nullcontext(None)
    return render.Progress(err)


def _html_writable(config: str, html_path, fmt: str, no_color: bool) -> None:
    """An --html path that is a symlink, a folder, a device or in a folder we cannot write is a usage
    error before anything runs (exit 2)."""
    if html_path is None:
        return
    from backcheck import html
    from backcheck.errors import ConfigError
    from backcheck.results import CheckResult, ErrorInfo

    try:
        html.writable(html_path)
    except ConfigError as exc:
        _emit(CheckResult(config=config, name=None, error=ErrorInfo("config", exc.message)), fmt, no_color)


def _emit(result, fmt: str, no_color: bool, html_path=None) -> None:
    """Write the --html file, print a check's result as JSON or as the report, and exit with its code;
    an HTML file that could not be written is said on stderr after the report: exit 2 (4 for a bug
    in drawing it)."""
    from backcheck import render
    from backcheck.errors import ConfigError

    failure = None
    if html_path is not None:
        from backcheck import html

        try:
            html.write(result, html_path)
        except (ConfigError, OSError) as exc:
            failure = ExitCode.USAGE, f"error: --html: {html_path} was not written: {exc}"
        except Exception:  # noqa: BLE001 - a bug in drawing the page: the report still comes, then exit 4
            import traceback

            failure = ExitCode.INTERNAL, ("error (backcheck failed): the --html page could not be drawn; this is a "
                                          "bug in backcheck, please report it with this message:\n"
                                          + traceback.format_exc())
    if fmt == "json":
        click.echo(render.to_json(result))
    elif fmt in ("lines", "github"):
        from backcheck import ci

        text = ci.to_lines(result) if fmt == "lines" else ci.to_github(result, os.environ.get("GITHUB_WORKSPACE"))
        if text:
            click.echo(text)
    else:
        render.report(result, render.console(no_color, stderr=result.error is not None))
    if failure is not None:
        click.echo(failure[1], err=True)
        sys.exit(int(failure[0]))
    sys.exit(int(result.exit_code))


@main.command()
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), default="text", show_default=True,
              help="text: the report and the training summary; json: one JSON object with a train section; "
                   + _FORMATS_HELP)
@click.option("--no-color", is_flag=True, help="Plain text without colour (NO_COLOR does the same).")
@click.option("--show-output", is_flag=True, help="Let the checked code's prints through to stderr.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False), metavar="FILE",
              help=_HTML_HELP + " With the loss curve and the line search.")
def diagnose(config: str, fmt: str, no_color: bool, show_output: bool, html_path) -> None:
    """Why does my loss rise? Check the gradients, then train with them and explain what happens."""
    from backcheck.runner import Options, diagnose_config_path

    _html_writable(config, html_path, fmt, no_color)
    with _progress(fmt, no_color, show_output) as progress:
        result = diagnose_config_path(config, Options(show_output=show_output), progress=progress)
    _emit(result, fmt, no_color, html_path)


@main.command()
@click.argument("submissions", type=click.Path(file_okay=False))
@click.option("--config", "config", required=True, type=click.Path(dir_okay=False),
              help="The assignment's YAML; its code.file is read in each submission's folder.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every submission's JSON object.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False), help="Write JUnit XML (a test per layer).")
@click.option("--gradescope", "gradescope_path", type=click.Path(dir_okay=False),
              help="Write Gradescope results.json (a test per layer); {submission} in the path for several.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one CSV row per submission.")
@click.option("--html", "html_dir", type=click.Path(file_okay=False), metavar="DIR",
              help="Write each submission's HTML report to DIR/SUBMISSION.html.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Submissions checked at once, each in its own process.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds per submission (default: the config's check.timeout).")
@click.option("--memory", "memory_mb", type=click.IntRange(min=64), default=4096, show_default=True,
              help="Memory limit per submission in MB.")
@click.option("--strict", is_flag=True, help="Exit 1 when a submission is not entirely right.")
@click.option("--no-color", is_flag=True, help="Plain text without colour.")
def grade(submissions: str, config: str, json_path, junit_path, gradescope_path, csv_path, html_dir, jobs: int,
          timeout, memory_mb: int, strict: bool, no_color: bool) -> None:
    """Check every submission in SUBMISSIONS (one sub-folder each) against one assignment config."""
    from backcheck import render
    from backcheck.errors import ConfigError
    from backcheck.grade import GradeOptions, grade as run, write_outputs

    err = render.console(no_color, stderr=True)
    outputs = {"json": json_path, "junit": junit_path, "gradescope": gradescope_path, "csv": csv_path,
               "html": None if html_dir is None else os.path.join(html_dir, "{submission}.html")}
    try:
        with _progress("text", no_color, False, err) as bar:
            def progress(s, done, total):
                if s is not None:
                    err.print(f"[{done}/{total}] {s.name}: {s.status}", highlight=False)
                if bar is not None:
                    bar("grade", done, total)

            result = run(config, submissions, GradeOptions(jobs=jobs, timeout=timeout, memory_mb=memory_mb),
                         progress=progress, outputs=outputs)
        write_outputs(result, json_path, junit_path, gradescope_path, csv_path)
        if html_dir is not None:
            from backcheck import html

            for s in result.submissions:
                html.write(s.result, os.path.join(html_dir, f"{s.name}.html"))
    except KeyboardInterrupt:  # nothing was written: the outputs come after every submission
        err.print("interrupted: no output was written", highlight=False)
        sys.exit(130)
    except ConfigError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(int(ExitCode.USAGE))
    except Exception:  # noqa: BLE001 - a bug in backcheck: say so, with the traceback, exit 4
        import traceback

        err.print("error (backcheck failed): this is a bug in backcheck, please report it with this message:\n"
                  + traceback.format_exc(), highlight=False, soft_wrap=True, markup=False)
        sys.exit(int(ExitCode.INTERNAL))
    render.grade_summary(result, render.console(no_color))
    sys.exit(int(result.exit_code(strict)))


@main.command()
@click.option("--no-color", is_flag=True, help="Plain text without colour.")
def bugs(no_color: bool) -> None:
    """List the catalog of known mistakes: finding id, what it looks like, the right formula."""
    from backcheck import render

    render.catalog(render.console(no_color))
    sys.exit(int(ExitCode.OK))
