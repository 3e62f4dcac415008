"""Frozen result records of a check, their pass/fail policy and their JSON form (contract section 3).

Rendering lives in ``render``; this module only holds data.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import IntEnum

from backcheck import __version__


class ExitCode(IntEnum):
    """Exit codes of every backcheck command (contract section 2)."""

    OK = 0  # every gradient checked agrees (warnings may be printed)
    WRONG = 1  # at least one gradient is wrong
    USAGE = 2  # usage or configuration error: nothing was checked
    CODE_FAILED = 3  # the code under test raised, timed out, returned NaN/inf or broke the contract
    INTERNAL = 4  # backcheck itself failed
    INCONCLUSIVE = 5  # nothing was found wrong, but some parameter could not be checked


OK, WRONG, INCONCLUSIVE = "ok", "wrong", "inconclusive"


MESSAGE_CHARS = 2000  # an error message or warning longer than this is cut (the code's own text can be huge)
SOURCE_CHARS = 300  # a line of the code quoted in a finding
_UNPRINTABLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
                          "\ud800-\udfff]")


def printable(text, limit: int = MESSAGE_CHARS):
    """``text`` safe to print, to a terminal, JSON or XML: control characters, bidirectional overrides
    and lone surrogates (from the code's messages, output and source) written as escapes, and at most
    ``limit`` characters. Anything not a string is returned as it is."""
    if not isinstance(text, str):
        return text
    text = _UNPRINTABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)
    if len(text) > limit:
        text = f"{text[:limit]}... ({len(text) - limit} more characters)"
    return text


def _clean(obj, names: tuple, limit: int = MESSAGE_CHARS) -> None:
    for name in names:
        object.__setattr__(obj, name, printable(getattr(obj, name), limit))


@dataclass(frozen=True)
class Worst:
    """The entry with the largest disagreement: where to look first."""

    index: tuple[int, ...]
    analytic: float
    numeric: float


@dataclass(frozen=True)
class ParamResult:
    """Analytic vs numeric gradient of one parameter array."""

    name: str  # role in the network: "W" or "b"
    code_name: str  # the code's own name or path, e.g. "W1" or "layers[0].weights"
    shape: tuple[int, ...]
    status: str  # ok | wrong | inconclusive
    rel_error: float  # ||a - n|| / (||a|| + ||n||), with a floor on the denominator
    max_abs_error: float
    checked: int  # entries probed one by one
    size: int
    eps: float
    tolerance: float
    worst: Worst | None = None
    directions: int = 0  # random-direction probes (parameters too large to probe every entry)
    kinks: int = 0  # entries whose probe crossed a kink and whose analytic value is a valid subgradient
    wrong_entries: int = 0
    pattern: str | None = None  # which entries are wrong, e.g. "every entry", "column 3"
    noise: float = 0.0  # estimated finite-difference error of ||n||
    method: str = ""  # how the numeric derivatives behind the verdict were measured: central | richardson | complex
    blocks: int = 0  # row and column probes of the search for wrong entries (sampled parameters found wrong)
    searched: int = 0  # entries that search probed one by one (included in checked)
    estimated: bool = False  # wrong_entries and pattern extrapolated from a sample of the search's candidates
    point: str = "start"  # where the verdict was measured: start | rescaled (see CheckResult notes)
    why: str = ""  # inconclusive: why it could not be decided

    @property
    def exhaustive(self) -> bool:
        return self.checked == self.size

    def to_json(self) -> dict:
        out = {
            "name": self.name,
            "code_name": self.code_name,
            "shape": list(self.shape),
            "status": self.status,
            "rel_error": _num(self.rel_error),
            "max_abs_error": _num(self.max_abs_error),
            "checked": self.checked,
            "size": self.size,
            "directions": self.directions,
            "kinks": self.kinks,
            "wrong_entries": self.wrong_entries,
            "pattern": self.pattern,
            "worst": None,
            "method": self.method or None,
            "numeric_error": _num(self.noise),
            "blocks": self.blocks,
            "searched": self.searched,
            "estimated": self.estimated,
            "point": self.point,
        }
        if self.why:
            out["why"] = self.why
        if self.worst is not None:
            out["worst"] = {
                "index": list(self.worst.index),
                "analytic": _num(self.worst.analytic),
                "numeric": _num(self.worst.numeric),
            }
        return out


@dataclass(frozen=True)
class LayerResult:
    index: int  # 1 at the input side
    label: str  # e.g. "dense 4->5 tanh"
    params: tuple[ParamResult, ...]

    @property
    def status(self) -> str:
        statuses = {p.status for p in self.params}
        if WRONG in statuses:
            return WRONG
        if INCONCLUSIVE in statuses:
            return INCONCLUSIVE
        return OK

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "label": self.label,
            "status": self.status,
            "params": [p.to_json() for p in self.params],
        }


@dataclass(frozen=True)
class Finding:
    """A named mistake (contract section 4) and what to do about it."""

    id: str
    layer: int | None
    severity: str  # error | warning | note
    title: str
    detail: str = ""
    fix: str = ""
    confidence: float = 1.0
    point: str | None = None  # where the evidence was measured, when not the code's starting parameters
    line: dict | None = None  # {"file", "line", "source"}: the first line of the code that departs

    def __post_init__(self):
        _clean(self, ("title", "detail", "fix", "point"))
        if self.line:
            object.__setattr__(self, "line", {k: printable(v, SOURCE_CHARS) for k, v in self.line.items()})

    def to_json(self) -> dict:
        out = {
            "id": self.id,
            "layer": self.layer,
            "severity": self.severity,
            "title": self.title,
            "detail": self.detail,
            "fix": self.fix,
            "confidence": _num(round(float(self.confidence), 3)),
        }
        if self.point:
            out["point"] = self.point
        if self.line:
            out["line"] = dict(self.line)
        return out


@dataclass(frozen=True)
class CheckWarning:
    id: str
    message: str

    def __post_init__(self):
        _clean(self, ("message",))

    def to_json(self) -> dict:
        return {"id": self.id, "message": self.message}


@dataclass(frozen=True)
class Method:
    name: str
    eps: float
    dtype: str
    mode: str = "default"  # default (large parameters sampled) | exhaustive (every entry)
    seed: int | None = None  # of the random directions and sampled entries
    jobs: int = 1  # processes that probed entries
    loss_calls: int = 0  # evaluations of the code's loss the check made
    gradient_calls: int = 0  # calls of its gradients (or steps)

    def to_json(self) -> dict:
        return {"name": self.name, "eps": _num(self.eps), "dtype": self.dtype, "mode": self.mode, "seed": self.seed,
                "jobs": self.jobs, "loss_calls": self.loss_calls, "gradient_calls": self.gradient_calls}


@dataclass(frozen=True)
class ErrorInfo:
    kind: str  # exception | timeout | nan | contract | config | internal
    message: str
    where: str | None = None

    def __post_init__(self):
        _clean(self, ("message", "where"))

    def to_json(self) -> dict:
        return {"kind": self.kind, "message": self.message, "where": self.where}

    @property
    def exit_code(self) -> ExitCode:
        if self.kind == "config":
            return ExitCode.USAGE
        if self.kind == "internal":
            return ExitCode.INTERNAL
        return ExitCode.CODE_FAILED


@dataclass(frozen=True)
class CheckResult:
    """Everything one ``verify`` found. ``exit_code`` is the single pass/fail policy."""

    config: str
    name: str
    method: Method | None = None
    layers: tuple[LayerResult, ...] = ()
    findings: tuple[Finding, ...] = ()
    warnings: tuple[CheckWarning, ...] = ()
    notes: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    extra: dict = field(default_factory=dict)  # command-specific sections, e.g. "train" of diagnose
    # Per parameter (by code_name): (analytic, numeric) arrays in the parameter's own shape, numeric NaN where
    # not probed, as the table row was measured. Not part of the JSON; for pictures (the HTML report's heat maps).
    entries: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def origin_layer(self) -> int | None:
        """The wrong layer closest to the loss; layers below it may be wrong only because of it."""
        if self.error is not None:
            return None
        wrong = [layer.index for layer in self.layers if layer.status == WRONG]
        wrong += [f.layer for f in self.findings if f.severity == "error" and f.layer is not None]
        return max(wrong) if wrong else None

    @property
    def exit_code(self) -> ExitCode:
        if self.error is not None:
            return self.error.exit_code
        if any(layer.status == WRONG for layer in self.layers):
            return ExitCode.WRONG
        if any(f.severity == "error" for f in self.findings):
            return ExitCode.WRONG
        if self.inconclusive:
            return ExitCode.INCONCLUSIVE
        return ExitCode.OK

    # -- shown in a terminal, a REPL or a notebook (the report of ``backcheck verify``)
    def report(self, width: int = 100, color: bool = False) -> str:
        """The text report, as the CLI prints it."""
        from backcheck import render

        return render.report_text(self, width, color)

    def show(self) -> None:
        """Print the coloured report."""
        from backcheck import render

        render.report(self, render.console())

    def __str__(self) -> str:
        return self.report()

    def __rich_console__(self, console, options):
        from backcheck import render

        yield render.renderable(self, options.max_width)

    def _repr_html_(self) -> str:
        import html

        return f"<pre style='font-family: monospace'>{html.escape(self.report(100))}</pre>"

    @property
    def inconclusive(self) -> list:
        """The parameters that could not be checked (nothing else decides the exit code then)."""
        return [p for layer in self.layers for p in layer.params if p.status == INCONCLUSIVE]

    @property
    def ok(self) -> bool:
        return self.exit_code == ExitCode.OK

    def to_json(self) -> dict:
        out = {
            "backcheck": __version__,
            "config": self.config,
            "name": self.name,
            "ok": self.ok,
            "exit_code": int(self.exit_code),
            "method": self.method.to_json() if self.method else None,
            "origin_layer": self.origin_layer,
            "layers": [layer.to_json() for layer in self.layers],
            "findings": [f.to_json() for f in self.findings],
            "warnings": [w.to_json() for w in self.warnings],
            "notes": list(self.notes),
            "error": self.error.to_json() if self.error else None,
        }
        out.update(_finite(self.extra))
        return out


def _num(x: float):
    """JSON has no NaN or inf: write them as null."""
    x = float(x)
    return x if math.isfinite(x) else None


def _finite(value):
    """``value`` (dicts, lists, numbers) with every NaN or inf float written as null, as _num does."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, float):
        return _num(value)
    return value
