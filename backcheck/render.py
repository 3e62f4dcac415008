"""Drawing results: the rich text report and the JSON object. The only module importing rich."""

from __future__ import annotations

import json
import math
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


def report_text(result: CheckResult, width: int = 100, color: bool = False) -> str:
    """The report as text (with ANSI colours when ``color``), for a REPL, a test or an assertion message."""
    import io

    out = io.StringIO()
    report(result, Console(file=out, width=width, force_terminal=color, no_color=not color, highlight=False,
                           color_system="standard" if color else None))
    return out.getvalue()


def renderable(result: CheckResult, width: int) -> Text:
    """The coloured report as one rich renderable (how a CheckResult shows itself to rich and Jupyter)."""
    return Text.from_ansi(report_text(result, width, color=True))


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
            if p.point != "start":
                probes += f", {p.point}"
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
            if f.line:
                body.append("   line: ", style="cyan")
                body.append(f"{f.line['where']}: ", style="bold")
                body.append(f.line["source"] + "\n")
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
    """The last line: what the table and the findings say together."""
    n_wrong = sum(p.status == "wrong" for layer in result.layers for p in layer.params)
    total = sum(len(layer.params) for layer in result.layers)
    n_warn = len(result.warnings) + sum(f.severity == "warning" for f in result.findings)
    warned = f", {n_warn} warning{'s' if n_warn != 1 else ''}" if n_warn else ""
    if result.ok:
        return Text(f"OK: all {total} gradients agree with finite differences{warned}.", style="bold green")
    errors = [f for f in result.findings if f.severity == "error"]
    named = _named(errors)
    if result.exit_code == 5:
        undecided = result.inconclusive
        why = undecided[0].why or "it could not be resolved"
        return Text(f"INCONCLUSIVE: nothing was found wrong, but {_names([p.code_name for p in undecided])} could not "
                    f"be checked: {why}. {_what_to_change(why)}", style="bold yellow")
    origin = result.origin_layer
    if n_wrong == 0:
        return Text(f"NOT OK: all {total} gradients agree with finite differences, but {named}.", style="bold red")
    most = f" Most likely: {named}." if named and errors[0].id != "unknown" else \
        (f" Found: {named}." if named else "")
    return Text(f"WRONG: {n_wrong} of {total} gradients disagree; the error starts at layer {origin}.{most}",
                style="bold red")


def _named(findings) -> str:
    """Every error finding, briefly: each id once, with its layers ("of-upstream at layers 3, 2, 1")."""
    layers: dict = {}
    for f in findings:
        layers.setdefault(f.id, [])
        if f.layer is not None and f.layer not in layers[f.id]:
            layers[f.id].append(f.layer)
    parts = []
    for ident, ks in layers.items():
        where = "" if not ks else f" at layer {ks[0]}" if len(ks) == 1 else f" at layers {', '.join(map(str, ks))}"
        parts.append(ident + where)
    return "; ".join(parts)


def _names(names: list) -> str:
    return ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def _what_to_change(why: str) -> str:
    if "kink" in why:
        return ("Use data and initial parameters without exact zeros (nonzero biases, no all-zero input rows), or "
                "check a float64 copy of the code.")
    if "noise" in why:
        return ("Make the loss deterministic and exact for the check: compute in float64 (remove casts to float32 or "
                "float16), seed or switch off randomness such as dropout; check.eps sets the step if you know a "
                "better one.")
    return "See the notes above."


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
LOG_SCALE = 10.0  # a curve whose largest value is at least this many times its smallest is drawn on a log scale
SPARK_WIDTH = (16, 40)  # the sparkline's narrowest and widest, in characters


def sparkline(values, width: int = 40) -> tuple[str, bool]:
    """A curve in one line of at most ``width`` block characters, and whether its scale is logarithmic.

    Up to ``width`` values get a character each. More are cut into width // 2 consecutive buckets,
    each drawn as its lowest and its highest value in the order they came, so that a spike shows
    however long the run. The scale is logarithmic when no value is negative and the largest is at
    least LOG_SCALE times the smallest above 0 (a spike would flatten the rest on a linear scale);
    zeros then get the lowest level to themselves."""
    values = [float(v) for v in values]
    if not values:
        return "", False
    n = len(values)
    if n > width:
        k = max(1, width // 2)
        drawn = []
        for i in range(k):
            bucket = values[i * n // k:(i + 1) * n // k]
            lo, hi = bucket.index(min(bucket)), bucket.index(max(bucket))
            drawn += [bucket[min(lo, hi)], bucket[max(lo, hi)]]
    else:
        drawn = values
    lo, hi = min(values), max(values)
    positive = [v for v in values if v > 0]
    if lo >= 0 and positive and hi >= LOG_SCALE * min(positive):
        lo, hi, bottom = math.log(min(positive)), math.log(hi), int(lo == 0)
        return "".join(_SPARK[0] if v == 0 else _SPARK[bottom + round((math.log(v) - lo) / (hi - lo) *
                                                                      (len(_SPARK) - 1 - bottom))]
                       for v in drawn), True
    if hi - lo <= 1e-12 * max(abs(hi), abs(lo)):
        return _SPARK[3] * len(drawn), False  # flat: no scale to draw on
    return "".join(_SPARK[round((v - lo) / (hi - lo) * (len(_SPARK) - 1))] for v in drawn), False


def short(v: float) -> str:
    """A loss in at most 3 significant digits, for a report line: 0.289, 12.3, 431, 1.5e-05 as 1.5e-5;
    never -0."""
    if v == 0:
        return "0"
    text = f"{v:.3g}"
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def training(result: CheckResult, console: Console) -> None:
    """The training summary of ``backcheck diagnose`` in one line: lr and steps, the first loss, the
    curve, the last loss, the scale and the lowest and highest loss when they lie beyond both ends,
    and the trend."""
    train = result.extra.get("train")
    if not train:
        return
    losses = [v for v in train["losses"] if v == v and abs(v) != float("inf")]
    trend = train["trend"].upper()
    style = "bold " + {"FALLING": "green", "FLAT": "yellow"}.get(trend, "red")
    done = len(train["losses"])
    total = f" of {train['steps']}" if done != train["steps"] else ""
    if not losses:
        console.print(Text.assemble(f"training: lr {train['lr']:g}, {done}{total} steps: no finite loss  ",
                                    (trend, style)))
        return
    first, last = short(losses[0]), short(losses[-1])
    ends = (losses[0], losses[-1])
    extremes = [f"{name} {short(v)}" for name, v, beyond in (("min", min(losses), min(losses) < min(ends)),
                                                             ("max", max(losses), max(losses) > max(ends)))
                if beyond and short(v) not in (first, last)]
    scale = ["log scale"] if sparkline(losses, SPARK_WIDTH[1])[1] else []
    # One line: the curve takes the room the words leave. Below SPARK_WIDTH[0] the max, then the
    # min give way, below half of it the planned number of steps; the scale is always said.
    narrow = SPARK_WIDTH[0]
    for kept, of, need in ((extremes, total, narrow), (extremes[:1], total, narrow), ([], total, narrow // 2),
                           ([], "", 0)):
        head = f"training: lr {train['lr']:g}, {done}{of} steps  {first} "
        tail = f" {last}" + (f" ({', '.join(scale + kept)})" if scale + kept else "") + "  "
        room = console.width - len(head) - len(tail) - len(trend)
        if room >= need:
            break
    spark, _ = sparkline(losses, max(narrow // 2, min(SPARK_WIDTH[1], room)))
    console.print(Text.assemble(head, spark, tail, (trend, style)))
