"""The stylesheet of the HTML report: system fonts only, the terminal's colours for ok, wrong and
inconclusive."""

CSS = """
:root { --ok: #1a7f37; --wrong: #cf222e; --warn: #9a6700; --dim: #57606a; --line: #d0d7de; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, Consolas, monospace;
  font-size: 0.92em; }
h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
h1 code { font-size: 20px; }
h1 .name { color: var(--dim); font-weight: 400; font-size: 16px; }
h2 { font-size: 17px; margin: 28px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 14px 0 6px; }
.facts { color: var(--dim); margin: 0; }
.dim { color: var(--dim); }
.verdict { font-weight: 700; font-size: 17px; padding: 12px 16px; border-radius: 6px; margin: 18px 0 0;
  border-left: 6px solid; }
.verdict.ok { color: var(--ok); background: #dafbe1; }
.verdict.wrong { color: var(--wrong); background: #ffebe9; }
.verdict.inconclusive { color: var(--warn); background: #fff8c5; }
table { border-collapse: collapse; background: #fff; }
table.layers { width: 100%; border: 1px solid var(--line); }
th, td { padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #eaeef2; font-weight: 600; font-size: 13px; }
tr.first td { border-top: 1px solid var(--line); }
tr.origin td:first-child { box-shadow: inset 4px 0 0 var(--wrong); }
tr.origin { background: #fff5f5; }
td.num { font-variant-numeric: tabular-nums; white-space: nowrap; }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12.5px; font-weight: 600;
  color: #fff; background: var(--dim); white-space: nowrap; }
.badge.ok { background: var(--ok); } .badge.wrong { background: var(--wrong); }
.badge.inconclusive { background: #bf8700; }
.origin-line, .pattern { color: var(--wrong); margin: 8px 0; }
.maps { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; margin-bottom: 18px; }
figure { margin: 0; }
figure.param { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 10px 14px;
  width: min-content; min-width: 300px; }
figure.param > p { margin: 4px 0; } figure.param > p.dim { font-size: 13px; }
figure.param figcaption { font-weight: 600; }
figure.param .pattern { font-size: 14px; margin: 2px 0 6px; }
svg text { font-family: system-ui, "DejaVu Sans", sans-serif; }
svg .tick { font-size: 11px; fill: #57606a; }
svg .axis { font-size: 12px; fill: #24292f; }
svg .mark { font-size: 12px; fill: #24292f; font-weight: 600; paint-order: stroke; stroke: #fff;
  stroke-width: 3px; stroke-linejoin: round; }
svg .mark.bad { fill: var(--wrong); }
svg.chart { max-width: 100%; height: auto; }
svg rect.worst-halo { fill: none; stroke: #fff; stroke-width: 4; }
svg rect.worst { fill: none; stroke: #000; stroke-width: 1.5; }
.finding { background: #fff; border: 1px solid var(--line); border-left: 5px solid var(--wrong); border-radius: 6px;
  padding: 4px 16px 8px; margin-bottom: 12px; }
.finding h3 { font-size: 16px; }
.num-badge { display: inline-block; min-width: 22px; text-align: center; border-radius: 11px; background: var(--wrong);
  color: #fff; font-size: 13px; }
code.id { background: #eaeef2; padding: 1px 5px; border-radius: 4px; }
.fix { margin: 4px 0; } .fix b { color: var(--ok); }
.evidence { margin: 4px 0; }
.line { margin: 6px 0; border: 1px solid var(--line); border-radius: 4px; overflow: hidden; }
.line .where { display: block; background: #eaeef2; padding: 2px 8px; font: 13px ui-monospace, monospace; }
.line pre { margin: 0; padding: 6px 8px; background: #fff; overflow-x: auto; }
ul.remarks { padding-left: 20px; } ul.remarks li { margin: 4px 0; }
li.warning::marker { color: var(--warn); } li.warning code.id { color: var(--warn); }
li.note { color: var(--dim); }
.train-line { font-size: 16px; }
.chart { background: #fff; border: 1px solid var(--line); border-radius: 6px; }
.search { display: flex; flex-wrap: wrap; gap: 18px; align-items: flex-start; }
.search figure { max-width: 560px; }
table.steps { border: 1px solid var(--line); font-size: 13.5px; }
table.steps td { padding: 2px 10px; }
"""
