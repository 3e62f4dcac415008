"""Drawing results: the rich text report and the JSON object. The only module importing rich."""

from __future__ import annotations

import json
import os

from rich.console import Console
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from backcheck.mistakes import CATALOG
from backcheck.results import CheckResult

_STYLE = {"ok": "green", "wrong": "bold red", "inconclusive": "yellow"}


def console(no_color: bool = False, stderr: bool = False) -> Console:
    """A console that honours --no-color and NO_COLOR, and prints plain text when not on a terminal."""
    return Console(stderr=stderr, no_color=no_color or "NO_COLOR" in os.environ, highlight=False)


def to_json(result: CheckResult) -> str:
    """Strict JSON: a NaN or inf that reached the result is a bug here, not an ``Infinity`` on stdout."""
    return json.dumps(result.to_json(), indent=2, allow_nan=False)


def report(result: CheckResult, console: Console) -> None:
    """The per-layer report: table, diagnosis, warnings, verdict."""
    if result.error is not None:
        _error(result, console)
        return
    m = result.method
    mode = "" if m.mode == "default" else f", {m.mode}" + (f", {m.jobs} jobs" if m.jobs > 1 else "")
    command = "diagnose" if "train" in result.extra else "verify"
    console.print(f"[bold]backcheck {command}[/bold] {result.config}  ({m.name} differences, "
                  f"eps {m.eps:g}, {m.dtype}{mode})")
    table = Table(show_header=True, header_style="bold", expand=False, pad_edge=False)
    for name, justify in (("layer", "left"), ("param", "left"), ("shape", "left"), ("rel err", "right"),
                          ("worst [i] analytic/numeric", "left"), ("status", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    origin = result.origin_layer
    for layer in result.layers:
        label = f"{layer.index} {layer.label.replace('dense ', '')}"
        if layer.index == origin:
            label = "▶" + label
        for i, p in enumerate(layer.params):
            name = p.name if p.code_name in (p.name, f"{p.name}{layer.index}") else f"{p.name} ({p.code_name})"
            worst = ""
            if p.worst is not None:
                idx = ",".join(map(str, p.worst.index))
                worst = f"[{idx}] {p.worst.analytic:.3g}/{p.worst.numeric:.3g}"
            probes = "" if p.exhaustive else f" ({p.checked}/{p.size}+{p.directions}d)"
            table.add_row(label if i == 0 else "", name, "x".join(map(str, p.shape)),
                          f"{p.rel_error:.1e}", worst, Text(p.status + probes, style=_STYLE.get(p.status, "")))
        table.add_section()
    console.print(table)
    for layer in result.layers:
        for p in layer.params:
            if p.pattern:
                how = "estimated, " if p.estimated else ""
                console.print(Text(f"{p.code_name}: {p.wrong_entries} of {p.size} entries wrong ({how}{p.checked} "
                                   f"probed): {p.pattern}", style="red"))
    if origin is not None:
        console.print(Text(f"▶ origin: layer {origin}, the wrong layer closest to the loss; layers below it "
                           "may be wrong only because of it", style="red"))
    errors = [f for f in result.findings if f.severity == "error"]
    if errors:
        body = Text()
        for n, f in enumerate(errors, 1):
            body.append(f"{n}. [{f.id}] ", style="bold red")
            body.append(f.title + "\n", style="bold")
            if f.fix:
                body.append("   fix: ", style="green")
                body.append(f.fix + "\n")
            if f.detail:
                body.append(f"   {f.detail} (confidence {f.confidence:.2f})\n", style="dim")
        body.rstrip()
        console.print(Panel(body, title="Diagnosis", title_align="left", border_style="red"))
    for f in result.findings:
        if f.severity != "error":
            console.print(Text.assemble(("warning ", "yellow"), (f"[{f.id}] ", "yellow"), f.title,
                                        (f" (fix: {f.fix})" if f.fix else "", "dim")))
    for w in result.warnings:
        console.print(Text.assemble(("warning ", "yellow"), (f"[{w.id}] ", "yellow"), w.message))
    for note in result.notes:
        console.print(Text(f"note: {note}", style="dim"))
    training(result, console)
    console.print(_verdict(result))


def _verdict(result: CheckResult) -> Text:
    n_wrong = sum(p.status == "wrong" for layer in result.layers for p in layer.params)
    total = sum(len(layer.params) for layer in result.layers)
    if result.ok:
        extra = f", {len(result.warnings)} warning(s)" if result.warnings else ""
        return Text(f"OK: all {total} gradients agree with finite differences{extra}.", style="bold green")
    origin = result.origin_layer
    first = next((f for f in result.findings if f.severity == "error"), None)
    if n_wrong == 0 and origin is None and first is not None:
        return Text(f"NOT OK: all {total} gradients agree with finite differences, but {first.id}: {first.title}.",
                    style="bold red")
    named = f" Most likely: {first.id}." if first and first.id != "unknown" else ""
    return Text(f"WRONG: {n_wrong} of {total} gradients disagree; the error starts at layer {origin}.{named}",
                style="bold red")


def _error(result: CheckResult, console: Console) -> None:
    e = result.error
    title = {"config": "configuration error", "internal": "backcheck failed"}.get(e.kind, f"code under test: {e.kind}")
    where = f"{e.where}: " if e.where else ""
    console.print(Text.assemble((f"error ({title}): ", "bold red"), where, e.message))
    for f in result.findings:
        console.print(Text(f"[{f.id}] {f.title}", style="red"))


def catalog(console: Console) -> None:
    """`backcheck bugs`: every finding id, what it looks like, the right formula."""
    for entry in CATALOG.values():
        body = Text()
        if entry.looks_like:
            body.append("looks like: ", style="bold")
            body.append(entry.looks_like + "\n")
        if entry.right:
            body.append("right:      ", style="bold green")
            body.append(entry.right + "\n")
        body.append(f"scope: {entry.scope}" + ("" if entry.injectable else "  (not injectable)"), style="dim")
        console.print(Panel(body, title=f"[bold]{entry.id}[/bold]: {entry.title}", title_align="left"))


def grade_summary(g, console: Console) -> None:
    """The summary of ``backcheck grade``: one row per submission, then the totals."""
    table = Table(title=f"backcheck grade  {g.config}", title_justify="left")
    for col, kw in (("submission", {}), ("score", {"justify": "right"}), ("status", {}),
                    ("origin", {"justify": "right"}), ("first finding / error", {"overflow": "fold"})):
        table.add_column(col, **kw)
    style = {"ok": "green", "wrong": "red"}
    for s in g.submissions:
        r = s.result
        what = (r.error.message.split("; ")[0] if r.error else
                next((f"{f.id}@{f.layer}" if f.layer else f.id for f in r.findings), ""))
        table.add_row(s.name, f"{s.score:g}/{s.max_score:g}", Text(s.status, style=style.get(s.status, "yellow")),
                      str(r.origin_layer) if r.origin_layer is not None else "", what)
    console.print(table)
    counts = {}
    for s in g.submissions:
        counts[s.status] = counts.get(s.status, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(s.score for s in g.submissions)
    most = sum(s.max_score for s in g.submissions)
    console.print(f"{len(g.submissions)} submissions: {parts}; {total:g} of {most:g} layer points", soft_wrap=True)


_SPARK = "▁▂▃▄▅▆▇█"


def training(result: CheckResult, console: Console) -> None:
    """The training summary of ``backcheck diagnose``: the loss curve in one line and its trend."""
    train = result.extra.get("train")
    if not train:
        return
    losses = [v for v in train["losses"] if v == v and abs(v) != float("inf")]
    if not losses:
        console.print(f"training: lr {train['lr']:g}: no finite loss (trend {train['trend']})")
        return
    picks = [losses[int(i * (len(losses) - 1) / 39)] for i in range(min(40, len(losses)))]
    lo, hi = min(picks), max(picks)
    spark = "".join(_SPARK[int((v - lo) / (hi - lo) * (len(_SPARK) - 1)) if hi > lo else 0] for v in picks)
    colour = {"falling": "green", "flat": "yellow"}.get(train["trend"], "red")
    console.print(Text.assemble(
        f"training: lr {train['lr']:g}, {len(train['losses'])} of {train['steps']} steps  ", spark,
        f"  loss {losses[0]:.4g} -> min {min(losses):.4g} -> {losses[-1]:.4g}  ",
        (train["trend"].upper(), f"bold {colour}")))
