"""data: random, csv or npz, and what the check uses of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backcheck.spec.reader import Section, plain, shown_path

MAX_CSV_ROWS = 64
DATA_KEYS = ("random", "csv", "npz", "target", "rows", "drop")
MAX_BATCH = 10_000  # examples of a check: a few dozen show every mistake; each probe runs the loss on all


@dataclass(frozen=True)
class DataSpec:
    kind: str  # random | csv | npz | code (the code's own data: a place binding)
    batch: int | None = None  # random only; None means "pick one"
    path: Path | None = None
    target: str | None = None
    rows: int | None = None
    drop: tuple = ()  # csv: columns that are neither features nor the target (a saved index)


def read_data(sec: Section) -> DataSpec:
    sources = [k for k in ("random", "csv", "npz") if sec.given(k)]  # `random:` alone is random data
    if len(sources) != 1:
        where = sources[1] if len(sources) > 1 else None
        msg = ("expected exactly one of random, csv, npz; got " + " and ".join(sources)) if sources \
            else "expected exactly one of random, csv, npz; got none"
        sec.reader.fail(sec.node_of(where) if where else sec.node, sec.keypath, msg)
    kind = sources[0]
    if kind != "csv":
        for key in ("target", "rows", "drop"):
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
    drop = ()
    if sec.has("drop"):
        raw = plain(sec.located("drop"))
        raw = [raw] if isinstance(raw, (str, dict)) else raw
        # [Unnamed: 0] unquoted is YAML for a list holding {Unnamed: 0}: the column pandas names "Unnamed: 0"
        raw = [f"{k}: {v}" if isinstance(c, dict) and len(c) == 1 else c for c in raw for k, v in
               ((c.items() if isinstance(c, dict) and len(c) == 1 else [(None, None)]))] if isinstance(raw, list) else raw
        if not isinstance(raw, list) or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in raw):
            sec.fail("drop", 'expected a column name or a list of names, such as ["Unnamed: 0"]')
        drop = tuple(str(c) for c in raw)
    resolved = (sec.reader.path.parent / path)
    found = sec.on_disk(kind, resolved)
    if found is None:
        sec.fail(kind, f"no such file: {shown_path(resolved)}")
    if found == "folder":
        sec.fail(kind, f"expected a {kind} file, got the folder {shown_path(resolved)}")
    return DataSpec(kind, path=resolved.resolve(), target=target, rows=rows, drop=drop)


_BATCH_WHY = "backcheck's limit on the examples of a check"
