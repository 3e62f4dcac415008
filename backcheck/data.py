"""The inputs and targets of a check: seeded random data, a CSV table or an npz file.

Data is held in the canonical layout (X is (N, in), targets (N, outputs)) and turned into the
code's own layout and target form by ``for_code``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from backcheck.errors import ConfigError
from backcheck.spec import MAX_CSV_ROWS, Config, NetworkSpec

DEFAULT_BATCH = 8


@dataclass(frozen=True)
class Dataset:
    X: np.ndarray  # (N, in) float64
    Y: np.ndarray  # (N, outputs) float64: one-hot classes, 0/1, or regression values
    labels: np.ndarray | None  # (N,) int class indices, for classification losses
    notes: tuple[str, ...] = ()
    warnings: tuple[tuple[str, str], ...] = ()  # (id, message)

    @property
    def batch(self) -> int:
        return len(self.X)

    def for_code(self, layout: str, targets: str) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y) as the code expects them: rows or columns layout, one-hot or integer labels."""
        X = self.X if layout == "rows" else np.ascontiguousarray(self.X.T)
        if targets == "labels" and self.labels is not None:
            return X, self.labels.copy()
        Y = self.Y if layout == "rows" else np.ascontiguousarray(self.Y.T)
        return X, Y.copy()


def choose_batch(net: NetworkSpec, requested: int | None) -> tuple[int, list[tuple[str, str]]]:
    """The batch size: 8 unless that equals 1, the input size or a width (a bug confusing the
    batch with a width would then be invisible). An explicit batch is kept, with a warning."""
    taken = set(net.widths) | {1}
    if requested is not None:
        if requested in taken:
            return requested, [("data/batch-equals-width",
                                f"the batch size {requested} equals a layer width or the input size: "
                                "a mistake that confuses the batch with a width cannot be seen")]
        return requested, []
    n = DEFAULT_BATCH
    for candidate in [DEFAULT_BATCH + d for d in (0, 1, -1, 2, -2, 3, 4, 5, 6, 7)] + list(range(16, 1000)):
        if candidate not in taken and candidate > 1:
            n = candidate
            break
    return n, []


def make_data(config: Config, rng: np.random.Generator, batch: int | None = None) -> Dataset:
    """Build the check's data. ``batch`` overrides the batch/rows (a bias stored per example
    fixes it)."""
    spec, net = config.data, config.network
    if spec.kind == "random":
        return _random(net, rng, batch if batch is not None else spec.batch)
    if spec.kind == "csv":
        X, raw_y, where = _read_csv(spec.path, spec.target, net, spec.drop)
    else:
        X, raw_y, where = _read_npz(spec.path)
    if X.shape[1] != net.input:
        raise ConfigError(f"the data has {X.shape[1]} feature columns; network.input is {net.input}", where)
    want = batch if batch is not None else spec.rows
    notes = []
    if want is None and len(X) > MAX_CSV_ROWS:
        want = MAX_CSV_ROWS
    if want is not None and want < len(X):
        pick = np.sort(rng.choice(len(X), size=want, replace=False))
        notes.append(f"checked on {want} of the {len(X)} rows of {spec.path.name} (seeded sample)")
        X, raw_y = X[pick], raw_y[pick]
    elif want is not None and want > len(X):
        raise ConfigError(f"{want} rows asked for; {spec.path.name} has {len(X)}", where)
    Y, labels = _targets(net, raw_y, where)
    return Dataset(X, Y, labels, tuple(notes))


def _random(net: NetworkSpec, rng: np.random.Generator, requested: int | None) -> Dataset:
    n, warnings = choose_batch(net, requested)
    X = rng.standard_normal((n, net.input))
    out = net.layers[-1].units
    labels = None
    if net.loss == "cross_entropy":
        labels = rng.integers(0, out, size=n)
        Y = np.eye(out)[labels]
    elif net.loss == "binary_cross_entropy":
        labels = rng.integers(0, 2, size=n)
        if out == 1:
            Y = labels[:, None].astype(float)
        else:
            Y = rng.integers(0, 2, size=(n, out)).astype(float)
            labels = None
    else:
        Y = rng.standard_normal((n, out))
    return Dataset(X, Y, labels, (f"random data: batch {n}, X ~ N(0, 1)",), tuple(warnings))


def _read_csv(path, target: str, net: NetworkSpec, drop: tuple = ()):
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise ConfigError(f"cannot read the CSV file: {exc}", str(path)) from None
    rows = [r for r in rows if r and any(cell.strip() for cell in r)]
    if len(rows) < 2:
        raise ConfigError("expected a header line and at least one row", str(path))
    header = [h.strip() for h in rows[0]]
    if target not in header:
        raise ConfigError(f"no column named '{target}'; the columns are {', '.join(header)}", f"{path}:1")
    t = header.index(target)
    unknown = [c for c in drop if c not in header]
    if unknown:
        raise ConfigError(f"data.drop: no column named '{unknown[0]}'; the columns are {', '.join(header)}",
                          f"{path}:1")
    skip = {header.index(c) for c in drop} | {t}
    features, ys = [], []
    for line_no, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ConfigError(f"expected {len(header)} cells, got {len(row)}", f"{path}:{line_no}")
        try:
            features.append([float(c) for i, c in enumerate(row) if i not in skip])
        except ValueError:
            bad, col = next((c, header[i]) for i, c in enumerate(row) if i not in skip and not _is_float(c))
            raise ConfigError(f"feature columns must be numbers; got '{bad}' in column '{col}' (a column to leave "
                              "out? data.drop: [name])", f"{path}:{line_no}") from None
        ys.append(row[t].strip())
    return np.array(features, dtype=np.float64), np.array(ys, dtype=object), str(path)


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z or "y" not in z:
                raise ConfigError(f"expected arrays named X and y; the file has {', '.join(z.files)}", str(path))
            X, y = np.asarray(z["X"], dtype=np.float64), np.asarray(z["y"])
    except ConfigError:
        raise
    except Exception as exc:  # np.load raises several types for a broken file
        raise ConfigError(f"cannot read the npz file: {exc}", str(path)) from None
    if X.ndim != 2 or len(y) != len(X):
        raise ConfigError(f"expected X of shape (N, features) and y with N rows; got {X.shape} and {y.shape}",
                          str(path))
    return X, y, str(path)


def _targets(net: NetworkSpec, raw, where: str):
    """Canonical targets (N, outputs) and class indices from a column of labels or an array."""
    out = net.layers[-1].units
    if net.loss == "mse":
        Y = np.asarray(raw, dtype=np.float64)
        Y = Y.reshape(len(Y), -1)
        if Y.shape[1] != out:
            raise ConfigError(f"the targets have {Y.shape[1]} columns; the output layer has {out} units", where)
        return Y, None
    raw = np.asarray(raw)
    if raw.ndim == 2 and raw.shape[1] > 1:  # already one-hot
        labels = raw.argmax(axis=1)
        classes = raw.shape[1]
    else:
        values = raw.reshape(-1)
        try:
            values = values.astype(np.float64)
            numeric = True
        except (TypeError, ValueError):
            numeric = False
        if numeric and np.all(values == np.round(values)) and values.min() >= 0:
            labels = values.astype(int)
            classes = max(int(labels.max()) + 1, 2)
        else:
            names = sorted(set(str(v) for v in values))
            labels = np.array([names.index(str(v)) for v in values])
            classes = len(names)
    if net.loss == "binary_cross_entropy" and out == 1:
        if classes > 2:
            raise ConfigError(f"binary_cross_entropy needs 2 classes; the targets have {classes}", where)
        return labels[:, None].astype(np.float64), labels
    if classes > out:
        raise ConfigError(f"the targets have {classes} classes; the output layer has {out} units", where)
    return np.eye(out)[labels], labels


def from_code(net: NetworkSpec, X, Y, layout: str, targets: str, where: str) -> Dataset:
    """The code's own data (binding by place) in the canonical layout: X (N, in), targets (N, out)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ConfigError(f"the code's inputs have shape {X.shape}; expected a matrix of examples", where)
    X = X if layout == "rows" else X.T
    if X.shape[1] != net.input:
        raise ConfigError(f"the code's inputs have {X.shape[1]} features (in {layout} layout); network.input is "
                          f"{net.input}: is layout: right?", where)
    raw = np.asarray(Y)
    if targets == "labels" or raw.ndim == 1:
        labels = raw.reshape(-1)
        out = net.layers[-1].units
        if net.loss == "binary_cross_entropy" and out == 1:
            Yc = labels.reshape(-1, 1).astype(np.float64)
        else:
            Yc = np.eye(max(out, int(labels.max()) + 1))[labels.astype(int)][:, :out]
        return Dataset(X, Yc, labels.astype(int), (f"the code's own data: {len(X)} examples",))
    Yc = np.asarray(raw if layout == "rows" else raw.T, dtype=np.float64)
    labels = Yc.argmax(axis=1) if Yc.shape[1] > 1 else None
    return Dataset(X, Yc, labels, (f"the code's own data: {len(X)} examples",))
