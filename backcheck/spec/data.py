"""data: random, csv or npz, and what the check uses of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backcheck.spec.reader import Section, shown_path

MAX_CSV_ROWS = 64
DATA_KEYS = ("random", "csv", "npz", "target", "rows")
MAX_BATCH = 10_000  # examples of a check: a few dozen show every mistake; each probe runs the loss on all


@dataclass(frozen=True)
class DataSpec:
    kind: str  # random | csv | npz
    batch: int | None = None  # random only; None means "pick one"
    path: Path | None = None
    target: str | None = None
    rows: int | None = None


def read_data(sec: Section) -> DataSpec:
    sources = [k for k in ("random", "csv", "npz") if sec.given(k)]  # `random:` alone is random data
    if len(sources) != 1:
        where = sources[1] if len(sources) > 1 else None
        msg = ("expected exactly one of random, csv, npz; got " + " and ".join(sources)) if sources \
            else "expected exactly one of random, csv, npz; got none"
        sec.reader.fail(sec.node_of(where) if where else sec.node, sec.keypath, msg)
    kind = sources[0]
    if kind != "csv":
        for key in ("target", "rows"):
            if sec.has(key) and not (key == "rows" and kind == "npz"):
                sec.fail(key, f"{key} belongs to csv data; this data is {kind}")
    if kind == "random":
        batch = None
        if sec.has("random"):
            rsec = Section(sec.reader, sec.located("random"), "data.random", ("batch",))
            batch = rsec.get("batch", int, minimum=1, maximum=MAX_BATCH, why=_BATCH_WHY)
        return DataSpec("random", batch=batch)
    path = sec.get(kind, str, required=True, what=f"the path of a {kind} file")
    if not path.strip():
        sec.fail(kind, f"expected the path of a {kind} file, got {path!r}")
    target = sec.get("target", str, required=True, what="the name of the class column") if kind == "csv" else None
    rows = sec.get("rows", int, minimum=1, maximum=MAX_BATCH, why=_BATCH_WHY)
    resolved = (sec.reader.path.parent / path)
    found = sec.on_disk(kind, resolved)
    if found is None:
        sec.fail(kind, f"no such file: {shown_path(resolved)}")
    if found == "folder":
        sec.fail(kind, f"expected a {kind} file, got the folder {shown_path(resolved)}")
    return DataSpec(kind, path=resolved.resolve(), target=target, rows=rows)


_BATCH_WHY = "backcheck's limit on the examples of a check"
