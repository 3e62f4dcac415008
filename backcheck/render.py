"""Drawing results: the rich text report and the JSON object. The only module importing rich."""

from __future__ import annotations

import io
import json
import math
import os
import re
import time

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
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
    """The per-layer report: table, diagnosis, warnings, verdict, laid out for the console's width."""
    if result.error is not None:
        _error(result, console)
        return
    width = console.width
    m = result.method
    mode = "" if m.mode == "default" else f", {m.mode}" + (f", {m.jobs} jobs" if m.jobs > 1 else "")
    command = "diagnose" if "train" in result.extra else "verify"
    head = Text.assemble((f"backcheck {command}", "bold"), f" {result.config}")
    how = f"({m.name} differences, eps {m.eps:g}, {m.dtype}{mode})"
    if head.cell_len + 2 + cell_len(how) <= width:
        _lines(console, [head + Text("  " + how)])
    else:  # the method on a line of its own rather than broken inside it
        _lines(console, _flow(head, width, 2) + _flow(Text("  " + how), width, 3))
    table, legend = layer_table(result, width)
    console.print(table)
    _lines(console, legend)
    whole = []  # parameters probed entry by entry and wrong in every entry: one line for them all
    for layer in result.layers:
        for p in layer.params:
            if p.pattern and p.pattern == "every entry" and not p.estimated and p.wrong_entries == p.checked == p.size:
                whole.append(p.code_name)
            elif p.pattern:
                how_ = "estimated, " if p.estimated else ""
                _lines(console, _flow(Text(f"{p.code_name}: {p.wrong_entries} of {p.size} entries wrong ({how_}"
                                           f"{p.checked} probed): {p.pattern}", style="red"), width, 2))
    if whole:
        _lines(console, _flow(Text(f"every entry wrong, each probed: {', '.join(whole)}", style="red"), width, 2))
    origin = result.origin_layer
    if origin is not None:
        _lines(console, _flow(Text(f"▶ origin: layer {origin}, the wrong layer closest to the loss; layers below "
                                   "it may be wrong only because of it", style="red"), width, 2))
    errors = [f for f in result.findings if f.severity == "error"]
    if errors:
        console.print(Panel(Text("\n").join(_diagnosis(errors, width - 4)), title="Diagnosis", title_align="left",
                            border_style="red"))
    for f in result.findings:
        if f.severity != "error":
            _lines(console, _flow(Text.assemble(("warning ", "yellow"), (f"[{f.id}] ", "yellow"), f.title,
                                                (f" (fix: {f.fix})" if f.fix else "", "dim")), width, 8))
    for w in result.warnings:
        _lines(console, _flow(Text.assemble(("warning ", "yellow"), (f"[{w.id}] ", "yellow"), w.message), width, 8))
    for note in result.notes:
        _lines(console, _flow(Text(f"note: {note}", style="dim"), width, 6))
    training(result, console)
    verdict = _verdict(result)
    _lines(console, _flow(verdict, width, _label_width(verdict.plain, width), clauses=True))


# ---------------------------------------------------------------- the layer table

# The table's layouts, roomiest first; the first whose natural width fits the console is drawn.
# names: the code's own names in the table ("W (layers[0].weights)") or under it in a legend;
# split: a layer's label over its two rows ("1 6->5" above "sigmoid"); box: the heavy-headed box,
# or an open one (no vertical lines) that saves a column per gap.
_OPEN = box.Box("    \n    \n ━━ \n    \n ── \n ── \n    \n    \n")
_LAYOUTS = (
    dict(names="inline", split=False, box=box.HEAVY_HEAD),
    dict(names="legend", split=False, box=box.HEAVY_HEAD),
    dict(names="legend", split=True, box=box.HEAVY_HEAD),
    dict(names="legend", split=True, box=_OPEN),
)
_HEADERS = (("layer", "left"), ("param", "left"), ("shape", "left"), ("rel err", "right"), ("worst", "left"),
            ("analytic/numeric", "left"), ("status", "left"))


def layer_table(result: CheckResult, width: int) -> tuple[Table, list[Text]]:
    """The per-layer table in the roomiest layout that fits ``width`` columns, and the legend lines
    that go under it (the code's names, when the table has no room for them). A number, an index
    or a code name is never broken; only the status wraps, at a space, when nothing else fits."""
    for layout in _LAYOUTS:
        table, legend = _layer_table(result, width, **layout)
        if Measurement.get(_MEASURE, _MEASURE.options, table).maximum <= width:
            return table, legend
    return table, legend  # narrower than any layout: the status (and the label) wrap at spaces


_MEASURE = Console(width=10_000, file=io.StringIO(), no_color=True)


def _layer_table(result: CheckResult, width: int, names: str, split: bool, box) -> tuple[Table, list]:
    table = Table(show_header=True, header_style="bold", expand=False, pad_edge=False, box=box,
                  show_edge=box is not _OPEN, padding=(0, 1) if box is not _OPEN else (0, 1, 0, 0))
    for name, justify in _HEADERS:
        table.add_column(name, justify=justify, no_wrap=name not in ("layer", "status"))
    origin = result.origin_layer
    legend = []
    for layer in result.layers:
        label = ("▶" if layer.index == origin else "") + f"{layer.index} {layer.label.replace('dense ', '')}"
        labels = [label]
        if split and " " in label[label.index(" ") + 1:]:
            labels = label.rsplit(" ", 1)
        renamed = []
        rows = []
        for p in layer.params:
            shown = p.name
            if p.code_name not in (p.name, f"{p.name}{layer.index}"):
                if names == "inline":
                    shown = f"{p.name} ({p.code_name})"
                else:
                    renamed.append(f"{p.name} = {p.code_name}")
            index = values = ""
            if p.worst is not None:
                index = "[" + ",".join(map(str, p.worst.index)) + "]"
                values = f"{p.worst.analytic:.3g}/{p.worst.numeric:.3g}"
            probes = "" if p.exhaustive else f" ({p.checked}/{p.size}+{p.directions}d)"
            if p.point != "start":
                probes += f", {p.point}"
            rows.append([shown, "x".join(map(str, p.shape)), f"{p.rel_error:.1e}", index, values,
                         Text(p.status + probes, style=_STYLE.get(p.status, ""))])
        while len(rows) < len(labels):
            rows.append([""] * 5 + [Text("")])
        for i, row in enumerate(rows):
            table.add_row(labels[i] if i < len(labels) else "", *row)
        table.add_section()
        if renamed:
            legend.append(f"layer {layer.index}: {', '.join(renamed)}")
    if cell_len("; ".join(legend)) <= width:
        legend = ["; ".join(legend)] if legend else []
    return table, [line for entry in legend for line in _flow(Text(entry, style="dim"), width, 2)]


def _same_mistake(errors) -> list[tuple]:
    """The findings as (finding, the layers it is found at), one entry for a mistake found at several
    layers in the same words, the same line and the same fix (a Dense class's backward, run per layer),
    in the order of their first layer."""
    groups: dict = {}
    for f in errors:
        rest = f.title
        prefix = f"layer {f.layer} "
        if f.layer is not None and rest.startswith(prefix):
            rest = rest[len(prefix):]
        else:
            rest = None  # a title that does not start with its layer is shown as it is
        key = (f.id, rest, (f.line or {}).get("where"), f.fix) if rest is not None else (id(f),)
        groups.setdefault(key, []).append(f)
    return [(fs[0], [f.layer for f in fs]) for fs in groups.values()]


def _diagnosis(errors, width: int) -> list[Text]:
    """The lines of the Diagnosis panel: each finding numbered, its title, fix and evidence indented
    under the number, the fix's continuation under its first word. A mistake found at several layers
    the same way is one entry ("layers 3, 2, 1 (sigmoid): ..."), with the evidence of the first."""
    lines = []
    for n, (f, layers) in enumerate(_same_mistake(errors), 1):
        number = f"{n}. "
        hang = " " * len(number)
        title = f.title
        if len(layers) > 1:
            title = f"layers {', '.join(map(str, layers))} " + f.title[len(f"layer {f.layer} "):]
        lines += _flow(Text.assemble((f"{number}[{f.id}] ", "bold red"), (title, "bold")), width, len(number))
        if f.line:  # the code on the same line when it fits, else whole on a line of its own under it
            source = str(f.line.get("source", ""))
            one = Text.assemble(hang, ("line: ", "cyan"), (f"{f.line['where']}: ", "bold"), source)
            if one.cell_len <= width or not source:
                lines.append(one)
            else:
                lines += _flow(Text.assemble(hang, ("line: ", "cyan"), (f"{f.line['where']}:", "bold")), width,
                               len(number) + 6)
                lines += _flow(Text(" " * (len(number) + 6) + source), width, len(number) + 8)
        if f.fix:
            lines += _flow(Text.assemble(hang, ("fix: ", "green"), f.fix), width, len(number) + 5)
        if f.detail:
            lines += _flow(Text(f"{hang}{f.detail} (confidence {f.confidence:.2f})", style="dim"), width,
                           len(number))
        if len(layers) > 1:
            others = ", ".join(map(str, layers[1:]))
            lines += _flow(Text(f"{hang}likewise at layer{'s' if len(layers) > 2 else ''} {others} (each layer's "
                                "numbers: --format json)", style="dim"), width, len(number))
    return lines


# ---------------------------------------------------------------- lines of text

_WORD = re.compile(r"\S+ *")
_CLAUSE_ENDS = ";:"


def _flow(text: Text, width: int, indent: int = 0, clauses: bool = False) -> list[Text]:
    """``text`` (one paragraph) in lines of at most ``width`` cells, continuation lines indented by
    ``indent``. Lines break only at spaces, so a number or a code name stays whole; a word longer
    than a line is cut after a '/' where it can be (a path), else where the line ends. With
    ``clauses`` a short clause (up to a word ending in ';' or ':', at most 3/4 of a line: an item
    of a list such as "scale/sign at layer 3;") starts a line rather than being split, once the
    line is half full; longer ones are prose and just flow."""
    plain = text.plain
    width = max(width, indent + 8)
    words = [(m.start(), m.start() + len(m.group().rstrip(" ")), m.end()) for m in _WORD.finditer(plain)]
    starts = []  # offsets where a continuation line begins
    empty = col = len(plain) - len(plain.lstrip(" "))  # a line's width before its first word
    room = width
    for k, (a, b, after) in enumerate(words):
        fits = col + cell_len(plain[a:b]) <= room
        if fits and clauses and 2 * col >= room and plain[words[k - 1][1] - 1] in _CLAUSE_ENDS:
            end = next((w[1] for w in words[k:] if plain[w[1] - 1] in _CLAUSE_ENDS), words[-1][1])
            clause = cell_len(plain[a:end])
            fits = col + clause <= room or 4 * clause > 3 * (width - indent)
        if not fits and col > empty:
            starts.append(a)
            empty = col = 0
            room = width - indent
        while cell_len(plain[a:b]) > room - col:  # longer than a whole line: cut it
            piece = plain[a:a + room - col]
            cut = a + (piece.rfind("/") + 1 if "/" in piece[:-1] else len(piece))
            starts.append(cut)
            a, empty, col, room = cut, 0, 0, width - indent
        col += cell_len(plain[a:after])
    out = []
    for i, line in enumerate(text.divide(starts)):
        line.rstrip()
        out.append(Text(" " * indent) + line if i else line)
    return out


def _label_width(plain: str, width: int) -> int:
    """How far a line's continuation is indented: under the text after its label ("WRONG: ", "OK: ")."""
    label = plain.find(": ")
    return label + 2 if 0 < label <= 14 and label + 2 <= width // 3 else 2


def _lines(console: Console, lines: list) -> None:
    """Lines already laid out for the console's width: printed as they are."""
    for line in lines:
        console.print(line, overflow="ignore", crop=False, no_wrap=True)


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
        said = f": {why}" if len(undecided) == 1 else f"; {undecided[0].code_name}: {why}, and likewise the others"
        return Text(f"INCONCLUSIVE: nothing was found wrong, but {_names([p.code_name for p in undecided])} could not "
                    f"be checked{said}. {_what_to_change(why)}", style="bold yellow")
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


def error_line(result: CheckResult) -> Text:
    """An error result's first line, unwrapped: ``error (KIND): WHERE: first paragraph``."""
    e = result.error
    title = {"config": "configuration error", "internal": "backcheck failed"}.get(e.kind, f"code under test: {e.kind}")
    where = f"{e.where}: " if e.where else ""
    return Text.assemble((f"error ({title}): ", "bold red"), where, e.message.partition("\n")[0])


def verdict(result: CheckResult) -> Text:
    """The report's last line, unwrapped, in its colour (for an error: its error line)."""
    return error_line(result) if result.error is not None else _verdict(result)


def _error(result: CheckResult, console: Console) -> None:
    """The error line (its first paragraph flowed, what follows it, a YAML example or a traceback,
    as it is), then the findings that came with it."""
    rest = result.error.message.partition("\n")[2]
    _lines(console, _flow(error_line(result), console.width, 2))
    if rest:
        console.print(Text(rest), overflow="fold")
    for f in result.findings:
        _lines(console, _flow(Text(f"[{f.id}] {f.title}", style="red"), console.width, 2))


def catalog(console: Console) -> None:
    """`backcheck bugs`: every finding id, what it looks like, the right formula. The id is the
    panel's title; the title, too long for a border, is the panel's first line."""
    inner = console.width - 4
    for entry in CATALOG.values():
        lines = _flow(Text(entry.title, style="bold"), inner, 0)
        for label, text, style in (("looks like: ", entry.looks_like, "bold"), ("right:      ", entry.right,
                                                                               "bold green")):
            if text:
                lines += _flow(Text.assemble((label, style), text), inner, len(label))
        lines.append(Text(f"scope: {entry.scope}" + ("" if entry.injectable else "  (not injectable)"), style="dim"))
        console.print(Panel(Text("\n").join(lines), title=f"[bold]{entry.id}[/bold]", title_align="left"))


def grade_summary(g, console: Console) -> None:
    """The summary of ``backcheck grade``: one row per submission, then the totals. The last column
    takes the room the others leave; its messages break at spaces (a path after a '/')."""
    style = {"ok": "green", "wrong": "red"}
    rows = []
    for s in g.submissions:
        r = s.result
        what = (r.error.message.split("; ")[0] if r.error else
                next((f"{f.id}@{f.layer}" if f.layer else f.id for f in r.findings), ""))
        rows.append((s.name, f"{s.score:g}/{s.max_score:g}", Text(s.status, style=style.get(s.status, "yellow")),
                     str(r.origin_layer) if r.origin_layer is not None else "", what))
    heads = ("submission", "score", "status", "origin", "first finding / error")
    fixed = [max([len(h)] + [cell_len(str(row[i])) for row in rows]) for i, h in enumerate(heads[:4])]
    room = console.width - sum(fixed) - 3 * len(heads) - 1  # borders and a space either side of each cell
    longest = max([len(heads[4])] + [len(row[4]) for row in rows])
    last = max(min(room, longest), len(heads[4]))
    _lines(console, [Text.assemble(("backcheck grade", "bold"), f" --config {g.config}")])
    table = Table()
    for col, kw in zip(heads, ({}, {"justify": "right"}, {}, {"justify": "right"}, {"width": last})):
        table.add_column(col, no_wrap=True, **kw)
    for row in rows:
        table.add_row(*row[:4], Text("\n").join(_flow(Text(row[4]), last, 0)))
    console.print(table)
    counts = {}
    for s in g.submissions:
        counts[s.status] = counts.get(s.status, 0) + 1
    parts = ", ".join(f"{n} {k}" for k, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    total = sum(s.score for s in g.submissions)
    most = sum(s.max_score for s in g.submissions)
    n = len(g.submissions)
    footer = f"{n} submission{'s' if n != 1 else ''}: {parts}; {total:g} of {most:g} layer points"
    _lines(console, _flow(Text(footer), console.width, _label_width(footer, console.width), clauses=True))


# ---------------------------------------------------------------- progress

LONG_CHECK = 3.0  # seconds: probing estimated to take longer is announced before it starts


class Progress:
    """What a long command is doing, drawn on a terminal's stderr below what it prints and gone when
    it ends: a spinner while the code is imported and first called, entries probed (k of n, with
    the time left), training steps, submissions graded. Called as ``progress(phase, done, total,
    **detail)`` (runner.verify's callback); a probe's ``loss_calls`` and ``call_seconds`` give the
    time left before the first parameter is done, and an estimate said up front when it is long."""

    _WORDS = {"import": "importing the code", "check": "first calls: loss, gradients, noise", "probe": "probing",
              "train": "training", "grade": "grading"}
    _UNITS = {"probe": "entries", "train": "steps", "grade": "submissions"}

    def __init__(self, console: Console):
        from rich.progress import BarColumn, Progress as Live, SpinnerColumn, TextColumn

        self.console = console
        self._live = Live(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=24),
                          TextColumn("{task.fields[count]}"), _time_left_column(), console=console, transient=True,
                          redirect_stdout=False, redirect_stderr=False)
        self._task = self._live.add_task("", total=None, count="", estimate=None, at=0.0)
        self._phase, self._since = None, time.monotonic()

    def __enter__(self) -> "Progress":
        self._live.start()
        return self

    def __exit__(self, *exc) -> None:
        self._live.stop()

    def __call__(self, phase: str, done: int, total: int | None, **detail) -> None:
        key = (phase, detail.get("point"))
        count = f"{done:,} of {total:,} {self._UNITS.get(phase, '')}" if total else ""
        if key != self._phase:
            self._phase = key
            words = self._WORDS.get(phase, phase)
            if detail.get("point") not in (None, "start"):
                words += f" at the {detail['point']} point"
            estimate = None
            if detail.get("loss_calls") and detail.get("call_seconds"):
                estimate = detail["loss_calls"] * detail["call_seconds"]
                if estimate > LONG_CHECK:
                    self.console.print(f"{words} {total:,} entries: {detail['loss_calls']:,} loss calls at "
                                       f"{_duration(detail['call_seconds'])} each, about {_duration(estimate)}",
                                       highlight=False)
            self._since = time.monotonic()
            self._live.reset(self._task, total=total, completed=done, description=words, count=count,
                             estimate=estimate, at=0.0)
        else:
            self._live.update(self._task, total=total, completed=done, count=count, at=time.monotonic() - self._since)


def _time_left(task) -> str:
    """The phase's projected length less the time it has run: projected from the pace at the last
    update (updates come per parameter, so not from the clock since), before any from the estimate
    (loss calls x time per call)."""
    if not task.total or task.completed >= task.total:
        return ""
    if task.completed:
        whole = task.fields["at"] * task.total / task.completed
    elif task.fields.get("estimate"):
        whole = task.fields["estimate"]
    else:
        return ""
    left = whole - (task.elapsed or 0.0)
    return f"about {_duration(left)} left" if left >= 1 else ""


def _duration(seconds: float) -> str:
    """1.2 ms, 0.4 s, 12 s, 3 min, 1.5 h."""
    if seconds < 0.1:
        return f"{seconds * 1e3:.2g} ms"
    if seconds < 10:
        return f"{seconds:.1g} s" if seconds < 1 else f"{seconds:.0f} s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _time_left_column():
    from rich.progress import ProgressColumn  # here: only a terminal's progress needs rich.progress

    class TimeLeft(ProgressColumn):
        def render(self, task):
            return Text(_time_left(task), style="dim")
    return TimeLeft()


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
