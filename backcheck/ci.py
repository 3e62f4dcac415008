"""What CI systems and autograders read: a check as one test per layer, and JUnit XML. Plain
strings; rich stays in ``render``.

A layer is a test that passes when all of its gradients agree and no finding blames it, by the same
rule in ``backcheck grade`` (scores, Gradescope) and ``verify --junit``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

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
                lines.append(f"  at {f.line.get('file')}:{f.line.get('line')}: {f.line.get('source', '')}".rstrip())
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
