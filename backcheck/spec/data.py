"""data: random, csv or npz, and what the check uses of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backcheck.spec.reader import Section

MAX_CSV_ROWS = 64
DATA_KEYS = ("random", "csv", "npz", "target", "rows")


@dataclass(frozen=True)
class DataSpec:
    kind: str  # random | csv | npz
    batch: int | None = None  # random only; None means "pick one"
    path: Path | None = None
    target: str | None = None
    rows: int | None = None


def read_data(sec: Section) -> DataSpec:
    sources = [k for k in ("random", "csv", "npz") if sec.has(k)]
    if len(sources) != 1:
        where = sources[1] if len(sources) > 1 else None
        msg = ("expected exactly one of random, csv, npz; got " + " and ".join(sources)) if sources \
            else "expected exactly one of random, csv, npz; got none"
        sec.reader.fail(sec.located(where).node if where else sec.node, sec.keypath, msg)
    kind = sources[0]
    if kind != "csv":
        for key in ("target", "rows"):
            if sec.has(key) and not (key == "rows" and kind == "npz"):
                sec.fail(key, f"{key} belongs to csv data; this data is {kind}")
    if kind == "random":
        loc = sec.located("random")
        batch = None
        if loc.value is not None:
            rsec = Section(sec.reader, loc, "data.random", ("batch",))
            batch = rsec.get("batch", int, minimum=1)
        return DataSpec("random", batch=batch)
    path = sec.get(kind, str)
    if path is None:
        sec.fail(kind, f"expected the path of a {kind} file")
    if kind == "csv":
        target = sec.get("target", str)
        if target is None:
            sec.require("target")
    else:
        target = None
    rows = sec.get("rows", int, minimum=1)
    resolved = (sec.reader.path.parent / path)
    if not resolved.is_file():
        sec.fail(kind, f"no such file: {resolved}")
    return DataSpec(kind, path=resolved.resolve(), target=target, rows=rows)
