"""Speed of backcheck's modes against a naive loop and torch.autograd.gradcheck, in one run.

Builds 784-H-10 tanh MLPs (batch 32, float64) of about 1k, 13k, 51k and 200k parameters as
correct student-style code in a temporary folder (plus a YAML for each), and times:

- backcheck default mode (library call in this process, the code in its sandboxed process as users
  run it; also the whole CLI process),
- backcheck --exhaustive with 1 and 2 jobs, and how much of that is the code's own loss calls,
- one loss call through backcheck's evaluator (a batched request to the sandboxed process: IPC,
  the binding, the in-place perturbation) against a bare call of the same loss,
- a naive per-entry central-difference loop over every entry,
- torch.autograd.gradcheck, exhaustive and fast_mode, when torch is importable
  (`pip install torch==2.13.0` for the run; backcheck itself never needs torch),

with one BLAS thread everywhere. Then a planted bug (the bias gradient of layer 1 taken before the
activation derivative) is checked by every method: did it catch the bug, and did it say where?

    python benchmarks/speed.py                      # everything; the slow methods skip 200k
    python benchmarks/speed.py --sizes 1k,13k       # a quick run
    python benchmarks/speed.py --full               # also the slow methods on 200k (minutes)
    python benchmarks/speed.py --overhead           # only a loss call through backcheck vs a bare one
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
             "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported, here and in every worker process

import argparse  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from backcheck.runner import Options, prepare, verify  # noqa: E402
from backcheck.spec import load_config  # noqa: E402

SIZES = {"1k": 1, "13k": 16, "51k": 64, "200k": 256}  # hidden width H of 784-H-10
BATCH = 32
SLOW = ("exhaustive, 1 job", "exhaustive, 2 jobs", "naive loop", "gradcheck exhaustive")

STUDENT = '''import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {{"W1": rng.standard_normal((784, {h})) * np.sqrt(1.0 / 784), "b1": np.zeros({h}),
            "W2": rng.standard_normal(({h}, 10)) * np.sqrt(1.0 / {h}), "b2": np.zeros(10)}}


def forward(params, X):
    a1 = np.tanh(X @ params["W1"] + params["b1"])
    z2 = a1 @ params["W2"] + params["b2"]
    e = np.exp(z2 - z2.max(axis=1, keepdims=True))
    return a1, e / e.sum(axis=1, keepdims=True)


def bare_loss(params, X, Y):
    _, p = forward(params, X)
    return -np.sum(Y * np.log(p)) / X.shape[0]


def loss(params, X, Y):
    return bare_loss(params, X, Y)


def gradients(params, X, Y):
    a1, p = forward(params, X)
    dz2 = (p - Y) / X.shape[0]
    da1 = dz2 @ params["W2"].T
    dz1 = da1 * (1 - a1 ** 2)
    return {{"W1": X.T @ dz1, "b1": {db1}, "W2": a1.T @ dz2, "b2": dz2.sum(axis=0)}}
'''

CONFIG = """network:
  input: 784
  layers:
    - {{units: {h}, activation: tanh}}
    - {{units: 10, activation: softmax}}
  loss: cross_entropy
data:
  random: {{batch: {batch}}}
code:
  file: {file}
  params: [{{W: W1, b: b1}}, {{W: W2, b: b2}}]
  init: init_params
  loss: loss
  gradients: gradients
"""


def write_program(folder: Path, name: str, h: int, bug: bool) -> Path:
    """A correct (or, with ``bug``, bias-before-activation) student MLP and its YAML."""
    db1 = "da1.sum(axis=0)" if bug else "dz1.sum(axis=0)"
    (folder / f"{name}.py").write_text(STUDENT.format(h=h, db1=db1))
    path = folder / f"{name}.yaml"
    path.write_text(CONFIG.format(h=h, batch=BATCH, file=f"{name}.py"))
    return path


# ---------------------------------------------------------------- the methods


class Outcome:
    def __init__(self, seconds: float, caught: bool | None = None, where: str = "", calls: int = 0):
        self.seconds, self.caught, self.where, self.calls = seconds, caught, where, calls


def run_backcheck(path: Path, options: Options) -> Outcome:
    start = time.perf_counter()
    result = verify(path, options)
    seconds = time.perf_counter() - start
    if result.error is not None:
        raise RuntimeError(result.error)
    wrong = [p for layer in result.layers for p in layer.params if p.status == "wrong"]
    where = "; ".join(f"{p.code_name}: {p.wrong_entries}/{p.size} entries ({p.pattern})" for p in wrong)
    return Outcome(seconds, not result.ok, where, result.method.loss_calls)


def run_sampled(path: Path) -> Outcome:
    """Default mode with no parameter probed entry by entry (what the threshold buys, in time)."""
    from backcheck import gradcheck

    saved, gradcheck.thresholds.MAX_EXHAUSTIVE = gradcheck.thresholds.MAX_EXHAUSTIVE, 0
    try:
        return run_backcheck(path, Options())
    finally:
        gradcheck.thresholds.MAX_EXHAUSTIVE = saved


def run_cli(path: Path) -> Outcome:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from backcheck.cli import main; main()", "verify", str(path),
                           "--format", "json"], capture_output=True)
    return Outcome(time.perf_counter() - start, proc.returncode == 1)


def load_student(path: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{path.stem}", path.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def data(rng: np.random.Generator):
    X = rng.standard_normal((BATCH, 784))
    return X, np.eye(10)[rng.integers(0, 10, BATCH)]


def run_naive(path: Path, eps: float = 1e-6, tolerance: float = 1e-6) -> Outcome:
    """What a student writes: every entry, central differences, relative error per parameter."""
    module = load_student(path)
    params = module.init_params(0)
    X, Y = data(np.random.default_rng(0))
    start = time.perf_counter()
    grads = module.gradients(params, X, Y)
    wrong = []
    for name, p in params.items():
        num = np.empty(p.size)
        flat = p.reshape(-1)
        for i in range(p.size):
            old = flat[i]
            flat[i] = old + eps
            fp = module.bare_loss(params, X, Y)
            flat[i] = old - eps
            fm = module.bare_loss(params, X, Y)
            flat[i] = old
            num[i] = (fp - fm) / (2 * eps)
        g = grads[name].reshape(-1)
        rel = np.linalg.norm(num - g) / max(np.linalg.norm(num) + np.linalg.norm(g), 1e-300)
        if rel > tolerance:
            bad = int(np.sum(np.abs(num - g) > tolerance * (np.abs(num) + np.abs(g)) + 1e-9))
            wrong.append(f"{name}: {bad}/{p.size} entries")
    return Outcome(time.perf_counter() - start, bool(wrong), "; ".join(wrong))


def run_gradcheck(path: Path, fast: bool) -> Outcome:
    import torch
    from torch.autograd import gradcheck
    from torch.autograd.gradcheck import GradcheckError

    torch.set_num_threads(1)
    module = load_student(path)
    names = ("W1", "b1", "W2", "b2")
    X, Y = data(np.random.default_rng(0))

    class StudentLoss(torch.autograd.Function):
        """The student's numpy loss and hand-written gradients as a torch op."""

        @staticmethod
        def forward(ctx, *tensors):
            ctx.save_for_backward(*tensors)
            params = {n: t.detach().numpy() for n, t in zip(names, tensors)}
            return torch.tensor(module.bare_loss(params, X, Y), dtype=torch.float64)

        @staticmethod
        def backward(ctx, g):
            params = {n: t.detach().numpy() for n, t in zip(names, ctx.saved_tensors)}
            grads = module.gradients(params, X, Y)
            return tuple(g * torch.from_numpy(np.ascontiguousarray(grads[n])) for n in names)

    inputs = tuple(torch.tensor(v, dtype=torch.float64, requires_grad=True)
                   for v in (module.init_params(0)[n] for n in names))
    start = time.perf_counter()
    try:
        gradcheck(StudentLoss.apply, inputs, eps=1e-6, fast_mode=fast)  # its default tolerances
        caught, where = False, ""
    except GradcheckError as exc:
        first = str(exc).splitlines()[0]
        k = int(first.rsplit("input", 1)[1].strip(" ,")) if "input" in first else -1
        caught = True
        where = f"{names[k] if k >= 0 else '?'} named; its full numerical and analytical Jacobians printed"
    return Outcome(time.perf_counter() - start, caught, where)


def bare_call_seconds(path: Path, n: int = 300, batch: int = 2048, rounds: int = 9) -> tuple[float, float, float]:
    """Seconds per call of the bare loss in this process and per loss of a batched probe request
    answered by backcheck's sandboxed evaluator (what every probe of a check costs), each the best
    of `rounds` rounds, and the median of the rounds' paired ratios. The two alternate round by
    round, so that a machine busy with other work slows both alike."""
    module = load_student(path)
    prep = prepare(load_config(path), Options())
    try:
        ev = prep.evaluator
        values = ev.values()
        params = {s.code_name: a for s, a in values.items()}
        X, Y = prep.X, prep.Y
        slot = ev.slots[0]
        idx = np.arange(batch) % values[slot].size
        vals = values[slot].reshape(-1)[idx] + 1e-6
        for _ in range(20):
            module.bare_loss(params, X, Y)
        ev.entries(slot, idx[:32], vals[:32])  # warm
        bares, throughs = [], []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(n):
                module.bare_loss(params, X, Y)
            bares.append((time.perf_counter() - start) / n)
            start = time.perf_counter()
            ev.entries(slot, idx, vals)
            throughs.append((time.perf_counter() - start) / batch)
        return min(bares), min(throughs), float(np.median(np.array(throughs) / np.array(bares)))
    finally:
        prep.evaluator.close()


def print_overhead(folder: Path, sizes: list) -> None:
    """Only the cost of one loss call through the evaluator against a bare call (--overhead)."""
    print("| network | params | bare call | through the evaluator | overhead (best vs best) | "
          "overhead (median of paired rounds) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in sizes:
        h = SIZES[size]
        bare, through, paired = bare_call_seconds(write_program(folder, f"mlp_{size}", h, False))
        print(f"| 784-{h}-10 | {784 * h + h + 10 * h + 10:,} | {bare * 1e6:.0f} us | {through * 1e6:.0f} us | "
              f"{through / bare - 1:+.0%} | {paired - 1:+.0%} |")


# ---------------------------------------------------------------- the run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(SIZES), help="comma-separated subset of " + ", ".join(SIZES))
    ap.add_argument("--full", action="store_true", help="run the slow methods on 200k too (minutes each)")
    ap.add_argument("--bug-size", default="51k", help="network that gets the planted bug ('' to skip)")
    ap.add_argument("--no-torch", action="store_true", help="skip torch.autograd.gradcheck")
    ap.add_argument("--overhead", action="store_true",
                    help="only one loss call through backcheck's evaluator against a bare call (seconds)")
    args = ap.parse_args()
    try:
        if args.no_torch:
            raise ImportError
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
    sizes = [s for s in args.sizes.split(",") if s]
    folder = Path(tempfile.mkdtemp(prefix="backcheck-speed-"))
    print(f"programs in {folder}; numpy {np.__version__}, one BLAS thread, {os.cpu_count()} cores, "
          f"torch {'yes' if have_torch else 'not installed'}\n")
    if args.overhead:
        print_overhead(folder, sizes)
        return
    # Warm up imports and caches once, so the first row is not charged for them.
    run_backcheck(write_program(folder, "warmup", 1, False), Options())

    rows = []
    for size in sizes:
        h = SIZES[size]
        path = write_program(folder, f"mlp_{size}", h, False)
        n_params = 784 * h + h + 10 * h + 10
        slow_ok = args.full or size != "200k"
        row = {"size": size, "params": n_params}
        row["default"] = min((run_backcheck(path, Options()) for _ in range(3)), key=lambda o: o.seconds)
        row["default, CLI"] = run_cli(path)
        row["all sampled"] = min((run_sampled(path) for _ in range(3)), key=lambda o: o.seconds)
        if slow_ok:
            row["exhaustive, 1 job"] = run_backcheck(path, Options(exhaustive=True))
            row["exhaustive, 2 jobs"] = run_backcheck(path, Options(exhaustive=True, jobs=2))
            row["naive loop"] = run_naive(path)
        if have_torch:
            if slow_ok:
                row["gradcheck exhaustive"] = run_gradcheck(path, fast=False)
            row["gradcheck fast"] = min((run_gradcheck(path, fast=True) for _ in range(3)), key=lambda o: o.seconds)
        row["bare"], row["through"], _ = bare_call_seconds(path)
        rows.append(row)
        print(f"  {size} done", file=sys.stderr)
    print_times(rows, have_torch)
    if args.bug_size:
        print_bug(folder, args.bug_size, have_torch)


def fmt(o) -> str:
    return "skipped" if o is None else f"{o.seconds:.2f}"


def ratio(a, b) -> str:
    return "-" if a is None or b is None else f"{a.seconds / b.seconds:.1f}x"


def print_times(rows: list, have_torch: bool) -> None:
    methods = ["default", "default, CLI", "all sampled", "exhaustive, 1 job", "exhaustive, 2 jobs", "naive loop"]
    if have_torch:
        methods += ["gradcheck exhaustive", "gradcheck fast"]
    print("Seconds (backcheck's library call, the code in its sandboxed process; CLI: the whole process; "
          "one BLAS thread):\n")
    print("| network | params | " + " | ".join(methods) + " |")
    print("|" + " --- |" * (len(methods) + 2))
    for r in rows:
        print(f"| 784-{SIZES[r['size']]}-10 | {r['params']:,} | " + " | ".join(fmt(r.get(m)) for m in methods) + " |")
    print("\nRatios and overhead:\n")
    head = ["gradcheck exhaustive / default", "default / gradcheck fast", "1 job / 2 jobs",
            "one loss call through the evaluator vs bare", "whole exhaustive check vs its loss calls",
            "loss calls: default / exhaustive"]
    print("| network | " + " | ".join(head) + " |")
    print("|" + " --- |" * (len(head) + 1))
    for r in rows:
        ex = r.get("exhaustive, 1 job")
        per_call = f"{r['through'] / r['bare'] - 1:+.0%} ({r['through'] * 1e6:.0f} us vs {r['bare'] * 1e6:.0f} us)"
        if ex is not None and ex.calls:
            whole = f"{ex.seconds / (ex.calls * r['bare']) - 1:+.0%}"
            calls = f"{r['default'].calls:,} / {ex.calls:,}"
        else:
            whole, calls = "-", f"{r['default'].calls:,} / -"
        print(f"| 784-{SIZES[r['size']]}-10 | {ratio(r.get('gradcheck exhaustive'), r['default'])} | "
              f"{ratio(r['default'], r.get('gradcheck fast'))} | "
              f"{ratio(ex, r.get('exhaustive, 2 jobs'))} | {per_call} | {whole} | {calls} |")
    if any(r["size"] == "200k" and "naive loop" not in r for r in rows):
        print("200k: " + ", ".join(SLOW) + " skipped (minutes each; --full runs them)")


def print_bug(folder: Path, size: str, have_torch: bool) -> None:
    path = write_program(folder, f"bug_{size}", SIZES[size], True)
    print(f"\nPlanted bug on 784-{SIZES[size]}-10: db1 = da1.sum(axis=0) (the bias gradient of layer 1 taken "
          "before the activation derivative)\n")
    runs = [("default", lambda: run_backcheck(path, Options())),
            ("exhaustive, 1 job", lambda: run_backcheck(path, Options(exhaustive=True))),
            ("exhaustive, 2 jobs", lambda: run_backcheck(path, Options(exhaustive=True, jobs=2))),
            ("naive loop", lambda: run_naive(path))]
    if have_torch:
        runs += [("gradcheck exhaustive", lambda: run_gradcheck(path, fast=False)),
                 ("gradcheck fast", lambda: run_gradcheck(path, fast=True))]
    print("| method | seconds | caught | where |")
    print("| --- | --- | --- | --- |")
    for name, run in runs:
        o = run()
        print(f"| {name} | {o.seconds:.2f} | {'yes' if o.caught else 'NO'} | {o.where or '-'} |")


if __name__ == "__main__":
    main()
