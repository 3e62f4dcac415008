"""What CI systems and autograders read: a check as one test per layer, JUnit XML, compiler-style
lines for editors and problem matchers, and GitHub workflow commands. Plain strings; rich stays in
``render``.

A layer is a test that passes when all of its gradients agree and no finding blames it, by the same
rule in ``backcheck grade`` (scores, Gradescope), ``verify --junit`` and the pytest plugin. Lines and
workflow commands place each finding at the line of the code it blames (``Finding.line``) when it has
one, else at the config's ``code:`` key; an error at its ``where``.
"""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from backcheck.errors import BackcheckError
from backcheck.results import INCONCLUSIVE, OK, WRONG, CheckResult

# ---------------------------------------------------------------- a layer as a test


@dataclass(frozen=True)
class LayerTest:
    """One layer of one check as a test: passed when its gradients are right and no finding blames it."""

    name: str  # "layer 1: dense 4->5 tanh"; "config" when the config cannot say which layers there are
    passed: bool
    score: float
    max_score: float
    output: str  # what a student reads: the layer's parameters, the mistake named, its fix and line
    status: str = OK  # ok | wrong | inconclusive | the error kind when nothing was checked


def layer_tests(result: CheckResult, net=None, points: float = 1.0) -> tuple[LayerTest, ...]:
    """One test per layer of ``net`` (the config's NetworkSpec; None: the result's own layers). A layer
    passes when every one of its gradients agrees and no error finding blames it (a finding without a
    layer, such as ``scale/batch-sum``, blames every layer). A result with an error fails every layer
    with its message; without a network to name the layers, that is one test named "config"."""
    labels = [(k, net.label(k)) for k in range(1, len(net.layers) + 1)] if net is not None else \
        [(layer.index, layer.label) for layer in result.layers]
    if result.error is not None:
        e = result.error
        output = f"not checked: {e.kind} error: {e.message}" + (f" ({e.where})" if e.where else "")
        names = [f"layer {k}: {label}" for k, label in labels] or ["config"]
        return tuple(LayerTest(name, False, 0.0, points, output, e.kind) for name in names)
    by_index = {layer.index: layer for layer in result.layers}
    tests = []
    for k, label in labels:
        layer = by_index.get(k)
        blamed = [f for f in result.findings if f.severity == "error" and f.layer in (k, None)]
        passed = layer is not None and all(p.status == OK for p in layer.params) and not blamed
        undecided = not blamed and layer is not None and layer.status == INCONCLUSIVE
        status = OK if passed else INCONCLUSIVE if undecided else WRONG
        lines = []
        for p in layer.params if layer else ():
            why = f" ({p.why})" if p.status == INCONCLUSIVE and p.why else ""
            lines.append(f"{p.name} ({p.code_name}): {p.status}, relative error {p.rel_error:.1e}{why}")
        for f in blamed:
            lines.append(f"[{f.id}] {f.title}\n  fix: {f.fix}")
            if f.line:
                where = f.line.get("where") or f"{f.line.get('file')}:{f.line.get('line')}"
                lines.append(f"  at {where}: {f.line.get('source', '')}".rstrip())
        tests.append(LayerTest(f"layer {k}: {label}", passed, points if passed else 0.0, points, "\n".join(lines),
                               status))
    return tuple(tests)


def junit_xml(suites) -> str:
    """JUnit XML of ``suites``, each (name, LayerTests, ErrorInfo or None): a testsuite each, a
    testcase per test. Wrong and inconclusive layers are ``failure``s (type wrong-gradient or
    inconclusive); the layers of a check that could not run are ``error``s of the error's kind."""
    root = ET.Element("testsuites", name="backcheck")
    totals = {"tests": 0, "failures": 0, "errors": 0}
    for name, tests, error in suites:
        suite = ET.SubElement(root, "testsuite", name=name, tests=str(len(tests)),
                              failures=str(0 if error else sum(not t.passed for t in tests)),
                              errors=str(len(tests) if error else 0))
        for t in tests:
            case = ET.SubElement(suite, "testcase", classname=name, name=t.name)
            if t.passed:
                continue
            kind = error.kind if error else "inconclusive" if t.status == INCONCLUSIVE else "wrong-gradient"
            first = t.output.splitlines()[0] if t.output else kind
            node = ET.SubElement(case, "error" if error else "failure", message=first, type=kind)
            node.text = t.output
        for key in totals:
            totals[key] += int(suite.get(key))
    for key, value in totals.items():
        root.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ---------------------------------------------------------------- where each finding points


@dataclass(frozen=True)
class Annotation:
    """One finding (or error, or parameter that could not be checked) placed at a file and line."""

    file: str
    line: int
    severity: str  # error | warning | notice
    id: str  # the finding's id; an error's kind; "inconclusive"
    message: str
    fix: str = ""
    detail: str = ""
    col: int | None = None


def annotations(result: CheckResult, base: str | None = None) -> list[Annotation]:
    """Every error, finding, warning and undecided parameter of ``result``, placed. Paths are shown
    relative to ``base`` (default: the current folder); the code's paths are read relative to the
    config's folder, as code.file is."""
    config = result.config or ""
    here = (_shown(config, base), _code_line(config))
    out = []
    if result.error is not None:
        e = result.error
        file, line, col = _where(e.where, config, as_given=e.kind == "config") or (config, here[1], None)
        out.append(Annotation(_shown(file, base), line, "error", e.kind, e.message, col=col))
    for f in result.findings:
        severity = {"error": "error", "warning": "warning"}.get(f.severity, "notice")
        file, line = here
        title = f.title
        if f.line and f.line.get("cell") is not None:  # a notebook's cell has no line of a file: the code: key
            title = f"{f.line.get('where')}: {title}"
        elif f.line and f.line.get("file") and str(f.line.get("line", "")).isdigit():
            file, line = _shown(_code_path(str(f.line["file"]), config), base), int(f.line["line"])
        out.append(Annotation(file, line, severity, f.id, title, f.fix, f.detail))
    out += [Annotation(*here, "warning", w.id, w.message) for w in result.warnings]
    if result.error is not None:
        return out
    named = any(f.severity == "error" for f in result.findings)
    for layer in result.layers:
        for p in layer.params:
            if p.status == INCONCLUSIVE:
                out.append(Annotation(*here, "error", INCONCLUSIVE, f"layer {layer.index} {p.code_name}: could not "
                                      f"be checked: {p.why or 'it could not be resolved'}"))
            elif p.status == WRONG and not named:  # exit 1 never goes unsaid, even without a named mistake
                out.append(Annotation(*here, "error", WRONG, f"layer {layer.index} {p.code_name}: the gradient "
                                      f"disagrees with finite differences (relative error {p.rel_error:.1e})"))
    return out


def to_lines(result: CheckResult, base: str | None = None) -> str:
    """``--format lines``: one ``file:line: id: message`` line each (``file:line: warning: id: message``
    for warnings, ``note:`` for notes), as compilers print them; empty when there is nothing to say."""
    out = []
    for a in annotations(result, base):
        label = {"error": "", "warning": "warning: ", "notice": "note: "}[a.severity]
        text = a.message + (f"; fix: {a.fix}" if a.fix else "")
        out.append(f"{a.file}:{a.line}: {label}{a.id}: {_one_line(text)}")
    return "\n".join(out)


def to_github(result: CheckResult, base: str | None = None) -> str:
    """``--format github``: a GitHub workflow command per annotation (``::error file=...,line=...,
    title=...::message``), escaped as GitHub's toolkit does; ``base`` should be the repository's root
    (GITHUB_WORKSPACE) for the annotations to land on the files of a pull request."""
    out = []
    for a in annotations(result, base):
        props = [f"file={escape_property(a.file)}", f"line={a.line}"] + ([f"col={a.col}"] if a.col else []) + \
            [f"title={escape_property('backcheck: ' + a.id)}"]
        body = "\n".join(part for part in (a.message, a.fix and f"fix: {a.fix}", a.detail) if part)
        out.append(f"::{a.severity} {','.join(props)}::{escape_data(body)}")
    return "\n".join(out)


def escape_data(text: str) -> str:
    """A workflow command's message: % first, then CR and LF (actions/toolkit ``escapeData``)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as data, and ``:`` and ``,`` too (``escapeProperty``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _where(where: str | None, config: str, as_given: bool):
    """(file, line, col) of an error's ``where`` ("file.py:LINE" or "model.yaml:LINE:COL"); None
    without a line. A config error's path is as given; the code's are relative to the config's folder."""
    match = re.fullmatch(r"(.+?):(\d+)(?::(\d+))?", where or "")
    if match is None:
        return None
    file, line, col = match.group(1), int(match.group(2)), match.group(3)
    return (file if as_given else _code_path(file, config)), line, int(col) if col else None


def _code_path(file: str, config: str) -> str:
    """A path the code reported, relative to the config's folder (as code.file is) unless it is only
    found relative to the current folder."""
    if os.path.isabs(file):
        return file
    beside = os.path.join(os.path.dirname(config), file)
    return file if not os.path.exists(beside) and os.path.exists(file) else beside


def _shown(path: str, base: str | None) -> str:
    """``path`` relative to ``base`` (default: the current folder), for editors and GitHub."""
    try:
        return os.path.relpath(os.path.abspath(path), os.path.abspath(base or os.curdir))
    except ValueError:  # another drive (Windows)
        return os.path.abspath(path)


def _code_line(config: str) -> int:
    """The line of the config's top-level ``code:`` key (1 without one, or when it cannot be read)."""
    from backcheck.spec.reader import Reader, read_text

    try:
        path = Path(config)
        root = Reader(path).document(read_text(path)).node
    except (BackcheckError, OSError):
        return 1
    for item in root.value if isinstance(root.value, list) else ():
        if isinstance(item, tuple) and getattr(item[0], "value", None) == "code":
            return item[0].start_mark.line + 1
    return 1
