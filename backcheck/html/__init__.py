"""The report as one self-contained HTML file (``--html FILE``): inline CSS and SVG, no scripts, no
fonts or anything else fetched when it is viewed.

It shows what the text report shows (the header, the verdict in the text report's own words, the
per-layer table, the diagnosis, warnings and notes), and what a terminal cannot: a heat map of
each wrong parameter's error per entry (``heatmap``) and, for ``diagnose``, the loss at every step
and the line search's losses (``charts``). Every number on the page comes from the result.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from backcheck.html.style import CSS
from backcheck.results import CheckResult

_STATUS = {"ok": "ok", "wrong": "wrong", "inconclusive": "inconclusive"}
_TREND = {"falling": "ok", "flat": "inconclusive"}  # every other trend is bad news


def page(result: CheckResult) -> str:
    """The whole HTML document of ``result``."""
    command = "diagnose" if "train" in result.extra else "verify"
    body = [_header(result, command), _verdict(result)]
    if result.error is None:
        body += [_table(result), _diagnosis(result), _heat_maps(result), _training(result), _remarks(result)]
    else:
        body += [_diagnosis(result), _remarks(result)]
    title = f"backcheck {command} {result.config or ''}"
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
            + "\n".join(part for part in body if part) + "\n</main>\n</body>\n</html>\n")


def writable(path) -> None:
    """Raise ConfigError when ``path`` is a symlink, a folder or a device, or its folder is not
    writable: checked before anything runs."""
    from backcheck.grade import _writable

    _writable(Path(path), "--html")


def write(result: CheckResult, path) -> None:
    """Write ``page(result)`` to ``path`` whole or not at all (a temporary file renamed into place,
    with the user's umask); a symlink or a device is never replaced."""
    from backcheck.grade import _atomic_write

    text = page(result)
    writable(path)
    _atomic_write(Path(path), text)


# ---------------------------------------------------------------- sections


def _header(result: CheckResult, command: str) -> str:
    m = result.method
    facts = []
    if m is not None:
        facts += [f"{m.name} differences", f"eps {m.eps:g}", m.dtype]
        mode = m.mode + (f", {m.jobs} jobs" if m.jobs > 1 else "")
        facts.append(f"{mode} mode" + (f", seed {m.seed}" if m.seed is not None else ""))
        facts.append(f"{m.loss_calls} loss calls, {m.gradient_calls} gradient calls")
    points = {p.point for layer in result.layers for p in layer.params}
    if points:
        where = "measured at the code's starting parameters"
        if points - {"start"}:
            where += " and at a rescaled point (the rows that say so, see the notes)"
        facts.append(where)
    name = f' <span class="name">{escape(result.name)}</span>' if result.name else ""
    return (f'<header><h1>backcheck {command} <code>{escape(str(result.config))}</code>{name}</h1>'
            f'<p class="facts">{" · ".join(escape(f) for f in facts)}</p></header>')


def _verdict(result: CheckResult) -> str:
    """The text report's last line, in its own words and colour (an error: its error line)."""
    from backcheck import render

    text = render.verdict(result)
    style = str(text.style or "")
    kind = "ok" if "green" in style else "inconclusive" if "yellow" in style else "wrong"
    return f'<p class="verdict {kind}">{escape(text.plain)}</p>'


def _table(result: CheckResult) -> str:
    origin = result.origin_layer
    rows = []
    for layer in result.layers:
        for i, p in enumerate(layer.params):
            first = i == 0
            cls = ["origin"] if layer.index == origin else []
            if first:
                cls.append("first")
            label = ""
            if first:
                mark = '<span class="badge wrong" title="origin: the wrong layer closest to the loss">▶ origin</span> ' \
                    if layer.index == origin else ""
                label = f'{mark}{layer.index} <span class="dim">{escape(layer.label)}</span>'
            name = escape(p.name) + (f' <code>{escape(p.code_name)}</code>' if p.code_name != p.name else "")
            worst = ""
            if p.worst is not None:
                idx = ",".join(map(str, p.worst.index))
                worst = (f'<code>[{idx}]</code> {p.worst.analytic:.3g} <span class="dim">/</span> '
                         f'{p.worst.numeric:.3g}')
            probes = f"all {p.checked}" if p.exhaustive else f"{p.checked} of {p.size}"
            if p.directions:
                probes += f" + {p.directions} directions"
            if p.point != "start":
                probes += f", {p.point}"
            status = f'<span class="badge {_STATUS.get(p.status, "")}">{escape(p.status)}</span>'
            if p.why:
                status += f' <span class="dim">{escape(p.why)}</span>'
            rows.append(f'<tr class="{" ".join(cls)}"><td>{label}</td><td>{name}</td>'
                        f'<td>{"×".join(map(str, p.shape))}</td><td>{status}</td><td class="num">{p.rel_error:.1e}</td>'
                        f'<td class="num">{worst}</td><td class="num">{probes}</td></tr>')
    origin_line = "" if origin is None else (
        f'<p class="origin-line">▶ origin: layer {origin}, the wrong layer closest to the loss; layers below it '
        "may be wrong only because of it</p>")
    return ('<section><h2>Layers</h2><table class="layers"><thead><tr><th>layer</th><th>param</th><th>shape</th>'
            '<th>status</th><th>rel err</th><th>worst [i] analytic / numeric</th><th>entries probed</th></tr>'
            f'</thead><tbody>{"".join(rows)}</tbody></table>{origin_line}</section>')


def _heat_maps(result: CheckResult) -> str:
    from backcheck.html import heatmap

    hint = heatmap.stored_transposed(result.layers)
    rows = []
    for layer in result.layers:  # one row of figures per layer: its W, then its b
        figures = []
        rows.append(figures)
        for p in layer.params:
            if p.status != "wrong":
                continue
            title = (f'layer {layer.index} {escape(p.name)} <code>{escape(p.code_name)}</code> '
                     f'<span class="dim">{"×".join(map(str, p.shape))}, rel err {p.rel_error:.1e}</span>')
            pattern = ""
            if p.pattern:
                how = "estimated, " if p.estimated else ""
                pattern = (f'<p class="pattern">{p.wrong_entries} of {p.size} entries wrong ({how}{p.checked} '
                           f'probed): {escape(p.pattern)}</p>')
            if p.code_name not in result.entries:
                figures.append(f'<figure class="param"><figcaption>{title}</figcaption>{pattern}'
                               '<p class="dim">no entries were kept for this parameter</p></figure>')
                continue
            analytic, numeric = result.entries[p.code_name]
            svg, caption = heatmap.svg(p, layer.label, layer.index, analytic, numeric, hint,
                                       key=f"{layer.index}-{len(figures)}")
            note = f'<p class="dim">{escape(caption)}</p>' if caption else ""
            figures.append(f'<figure class="param" data-param="{escape(p.code_name)}"><figcaption>{title}'
                           f'</figcaption>{pattern}{svg}{note}</figure>')
    maps = "".join(f'<div class="maps">{"".join(figures)}</div>' for figures in rows if figures)
    if not maps:
        return ""
    return ('<section><h2>Where the gradients are wrong</h2><p class="dim">The relative error of every entry, '
            '|analytic − numeric| / (|analytic| + |numeric|), on a log colour scale: blue agrees to the tolerance, '
            'yellow to dark red does not. W is drawn as (inputs, units) however the code stores it: a row is one '
            'input, a column one unit of the layer. Hover over a cell for its numbers.</p>'
            f'{maps}</section>')


def _diagnosis(result: CheckResult) -> str:
    errors = [f for f in result.findings if f.severity == "error"]
    if not errors:
        return ""
    cards = []
    for n, f in enumerate(errors, 1):
        parts = [f'<h3><span class="num-badge">{n}</span> <code class="id">{escape(f.id)}</code> {escape(f.title)}'
                 "</h3>"]
        if f.fix:
            parts.append(f'<p class="fix"><b>fix:</b> {escape(f.fix)}</p>')
        if f.line:
            where = escape(str(f.line.get("where") or f'{f.line.get("file", "")}:{f.line.get("line", "")}'))
            parts.append(f'<div class="line"><span class="where">{where}</span>'
                         f'<pre><code>{escape(str(f.line.get("source", "")))}</code></pre></div>')
        evidence = [f.detail] if f.detail else []
        meta = [f"confidence {f.confidence:.2f}"] + ([f"layer {f.layer}"] if f.layer is not None else []) + \
            ([f"measured at the {f.point} point"] if f.point else [])
        parts.append(f'<p class="evidence">{escape(" ".join(evidence))} <span class="dim">({", ".join(meta)})'
                     "</span></p>")
        cards.append(f'<div class="finding">{"".join(parts)}</div>')
    return f'<section><h2>Diagnosis</h2>{"".join(cards)}</section>'


def _remarks(result: CheckResult) -> str:
    items = []
    for f in result.findings:
        if f.severity != "error":
            fix = f' <span class="dim">(fix: {escape(f.fix)})</span>' if f.fix else ""
            detail = f'<br><span class="dim">{escape(f.detail)}</span>' if f.detail else ""
            items.append(f'<li class="warning"><code class="id">{escape(f.id)}</code> {escape(f.title)}{fix}{detail}'
                         "</li>")
    for w in result.warnings:
        items.append(f'<li class="warning"><code class="id">{escape(w.id)}</code> {escape(w.message)}</li>')
    notes = [f'<li class="note">{escape(n)}</li>' for n in result.notes]
    out = []
    if items:
        out.append(f'<section><h2>Warnings</h2><ul class="remarks">{"".join(items)}</ul></section>')
    if notes:
        out.append(f'<section><h2>Notes</h2><ul class="remarks">{"".join(notes)}</ul></section>')
    return "".join(out)


def _training(result: CheckResult) -> str:
    from backcheck.html import charts
    from backcheck.render import short

    train = result.extra.get("train")
    if not train:
        return ""
    losses = [v for v in train["losses"] if v is not None and v == v and abs(v) != float("inf")]
    done = len(train["losses"])
    of = f" of {train['steps']}" if done != train["steps"] else ""
    trend = train["trend"]
    head = (f'<p class="train-line">lr {train["lr"]:g}, {done}{of} steps'
            + (f": {short(losses[0])} → {short(losses[-1])}" if losses else ": no finite loss")
            + f' <span class="badge {_TREND.get(trend, "wrong")}">{escape(trend.upper())}</span></p>')
    parts = [head]
    broke = any(f.id == "train/nonfinite" for f in result.findings)
    if losses:
        parts.append(f'<figure>{charts.loss_curve(losses, broke)}<figcaption class="dim">The loss on all of the '
                     "data before every step (the dashed line is the first loss); hover over a point for its value."
                     "</figcaption></figure>")
    if broke:
        parts.append('<p class="pattern">then the loss or a gradient was no longer finite (train/nonfinite): '
                     "training stopped</p>")
    for search in train.get("line_search", []):
        if not search.get("steps") or search.get("loss") is None:
            continue
        start = "from the starting parameters" if search.get("from") == "start" else \
            f"from the parameters of the lowest loss (after {search.get('after_steps')} steps)"
        rows = "".join(
            f'<tr><td class="num">{s:.3g}</td><td class="num">{"not finite" if v is None else _apart(v, search["loss"])}'
            "</td>"
            f'<td>{_change(v, search["loss"])}</td></tr>'
            for s, v in zip(search["steps"], search["losses"]))
        parts.append(f'<h3>Line search {escape(start)}</h3><div class="search"><figure>'
                     f'{charts.line_search(search, train["lr"])}<figcaption class="dim">The loss after one step of '
                     f'each size along -gradient, {escape(start)}: green lowers the loss, red raises it.</figcaption>'
                     '</figure><table class="steps"><thead><tr><th>step</th><th>loss after it</th><th></th></tr>'
                     f'</thead><tbody>{rows}</tbody></table></div>')
    return f'<section><h2>Training</h2>{"".join(parts)}</section>'


def _apart(v: float, before: float) -> str:
    """``v`` in 6 significant digits (as the findings quote losses), or in as many more as it takes to
    differ from ``before`` when it does."""
    for digits in range(6, 18):
        if v == before or f"{v:.{digits}g}" != f"{before:.{digits}g}":
            return f"{v:.{digits}g}"
    return repr(v)


def _change(v, before: float) -> str:
    if v is None or v >= before:
        return '<span class="badge wrong">raises</span>' if v is None or v > before else \
            '<span class="badge inconclusive">same</span>'
    return '<span class="badge ok">lowers</span>'
