"""The regime matrix: plant each known mistake in student-style programs of every numerical regime
(float64, float32, float16, patched numpy, ReLU kinks, saturated units, clipped and stabilised
losses, SGD steps, per-example code, model objects), run `backcheck verify CONFIG --format json`
on each as a user would, and count per regime what backcheck got wrong.

    python benchmarks/regimes.py                          # the full matrix, table on stdout
    python benchmarks/regimes.py --small --verbose        # the grid tests/test_regimes.py runs
    python benchmarks/regimes.py --regimes float16,kinks --mistakes correct,scale/sign
    python benchmarks/regimes.py --jobs 2 --keep /tmp/regimes --json /tmp/regimes.json

Columns (one program is one CLI run):
  false passes   wrong code, exit 0 (a mistake smaller than the regime's RESOLUTION is counted
                 under "below resolution" instead: its float64 size is known, see regime_programs)
  false alarms   correct code, exit 1
  inconclusive   exit 5, or exit 1 with a parameter whose status is inconclusive
  inconc. OK     exit 0 with a parameter whose status is inconclusive (a defect: ok hides it)
  misnamed       a catalog mistake found wrong but named by another id or at another layer
                 (the equivalences of benchmarks/selftest.py's EQUIVALENT are accepted)
  errors         exit 2, 3 or 4 (or no JSON, or a timeout): every program here is checkable
  seconds        the CLI runs' own times, summed over the regime's programs (the wall time of the
                 whole run, with --jobs processes at once, is printed under the table)
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread per CLI process: --jobs N uses N cores

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from regime_programs import GLOBAL, MUTANTS, REGIMES, Program, applies, write  # noqa: E402
from selftest import EQUIVALENT  # noqa: E402

from backcheck.mistakes import CATALOG  # noqa: E402

# The smallest relative gradient error (float64 size) a regime is expected to resolve; a planted
# mistake below it that passes is "below resolution", not a false pass. These are the resolutions
# backcheck states (docs/trust.md): an ok means "agrees to within the regime's resolution" at worst.
RESOLUTION = {
    "float64": 1e-4, "float32-arrays": 1e-2, "float32-in-float64": 1e-2, "float16": 5e-2,
    "numpy-patched": 1e-2, "kinks": 1e-4, "saturated": 1e-4, "clipped": 1e-4, "stabilised": 1e-4,
    "step": 1e-4, "per-example": 1e-4, "object": 1e-4,
}

# Catalog mistakes the generator writes. loss-derivative/scale needs an mse loss, which no regime
# uses; shape/mismatch and unknown are not mistakes one can plant.
WRITTEN = (
    "activation-derivative/of-output", "activation-derivative/of-upstream", "activation-derivative/missing",
    "activation-derivative/wrong-layer", "activation-derivative/formula", "bias-gradient/before-activation",
    "weight-gradient/transposed", "scale/batch-sum", "scale/sign", "scale/constant",
    "loss-derivative/softmax-twice", "regularization/missing", "step/stale-weights",
)
MUTANT_LAYERS = {"mutant/dw-entry": (1, 3), "mutant/db-entry": (2, 3), "mutant/unit-derivative": (1, 2)}
# The small grid: per regime a correct program (both losses where there are two), one catalog
# mistake that meets the regime's numerics where they differ from float64, and the stale step
# where a step exists.
SMALL = {
    "float64": ("activation-derivative/of-output", 2),
    "float32-arrays": ("scale/batch-sum", None),
    "float32-in-float64": ("bias-gradient/before-activation", 1),
    "float16": ("activation-derivative/missing", 2),
    "numpy-patched": ("activation-derivative/formula", 1),  # 0.01 * randn: tiny gradients deep down
    "kinks": ("bias-gradient/before-activation", 1),  # dA and dZ differ only where a unit is off
    "saturated": ("activation-derivative/of-output", 1),  # f'(a) and f'(z) far apart in the tails
    "clipped": ("activation-derivative/of-output", 3),  # the sigmoid output, some past the clip
    "stabilised": ("loss-derivative/softmax-twice", 3),  # the output delta, some p near 1e-7
    "step": ("activation-derivative/formula", 1),
    "per-example": ("scale/sign", None),
    "object": ("regularization/missing", None),
}
GOOD = ("ok", "named", "caught", "below resolution")
TIMEOUT = 300  # seconds per CLI run; backcheck's own check.timeout (60 s) should come first


@dataclass
class Outcome:
    regime: str
    program: str  # file stem under the regime's folder
    mistake: str
    layer: int | None
    act: str
    loss: str
    size: float | None  # float64 ||g_wrong - g_right|| / ||g_right||, largest over the parameters
    size_param: str | None
    design: dict
    config: str
    exit_code: int | None = None
    verdict: str = ""
    findings: list = field(default_factory=list)  # "id@layer"
    inconclusive_params: list = field(default_factory=list)  # "layer.param"
    message: str = ""  # the error, else the first warning
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    @property
    def inconclusive(self) -> bool:
        return self.exit_code == 5 or (self.exit_code == 1 and bool(self.inconclusive_params))

    @property
    def inconclusive_under_ok(self) -> bool:
        return self.exit_code == 0 and bool(self.inconclusive_params)

    @property
    def label(self) -> str:
        return self.mistake + (f"@{self.layer}" if self.layer else "")


# ---------------------------------------------------------------- the grid

def _pick(options: list, counter: list):
    """The next of ``options`` in turn (activations and losses cycle over a regime's programs)."""
    counter[0] += 1
    return options[(counter[0] - 1) % len(options)]


def grid(regimes=None, mistakes=None, small: bool = False) -> list[Program]:
    """Every program of the matrix (or of the small grid), in a stable order."""
    out = []
    for name in regimes or REGIMES:
        r, turn, loss_turn = REGIMES[name], [0], [0]
        progs = [Program(r, "correct", None, a, loss) for a in r.acts for loss in r.losses]
        progs.append(Program(r, "correct", None, _pick(r.acts, turn), r.losses[0], l2=True))
        if r.style == "object":
            progs.append(Program(r, "correct", None, _pick(r.acts, turn), r.losses[0], bind_step=True))
        planted = [(m, layer) for m in WRITTEN for layer in _layers(m)] + \
                  [(m, layer) for m in MUTANTS for layer in MUTANT_LAYERS[m]]
        if small:  # the correct program's activation turns with the regime
            act = r.acts[list(REGIMES).index(name) % len(r.acts)]
            progs = [Program(r, "correct", None, act, loss) for loss in r.losses]
            planted = [SMALL[name]] + ([("step/stale-weights", 2)] if r.style in ("step", "object") else [])
        for m, layer in planted:
            acts = [a for a in r.acts if applies(r, m, layer, a)]
            if not acts:
                continue
            progs.append(Program(r, m, layer, _pick(acts, turn), _pick(r.losses, loss_turn),
                                 l2=m == "regularization/missing",
                                 bind_step=m == "step/stale-weights" and r.style == "object"))
        out += [p for p in progs if _selected(p.mistake, mistakes)]
    return out


def _layers(mistake: str) -> tuple:
    scope = CATALOG[mistake].scope
    return (None,) if mistake in GLOBAL or scope == "global" else (3,) if scope == "output" else (1, 2, 3)


def _selected(mistake: str, wanted) -> bool:
    return not wanted or any(mistake == w or mistake.startswith(w.rstrip("/") + "/") for w in wanted)


# ---------------------------------------------------------------- running and judging

def _cli() -> str:
    here = shutil.which("backcheck", path=str(Path(sys.executable).parent))
    found = here or shutil.which("backcheck")
    if not found:
        raise SystemExit("the backcheck command is not installed in this environment (pip install -e .)")
    return found


def run_cli(config: Path) -> tuple[int | None, dict | None, str, float]:
    """(exit code, the JSON report, stderr, seconds) of `backcheck verify CONFIG --format json`."""
    start = time.perf_counter()
    try:
        done = subprocess.run([_cli(), "verify", str(config), "--format", "json"], capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=config.parent)
    except subprocess.TimeoutExpired:
        return None, None, f"no answer within {TIMEOUT} s", time.perf_counter() - start
    seconds = time.perf_counter() - start
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        report = None
    return done.returncode, report, done.stderr, seconds


def judge(o: Outcome, p: Program, code: int | None, report: dict | None, stderr: str) -> None:
    """Fill in what backcheck said and the verdict (one of GOOD or a failure column)."""
    o.exit_code = code
    if report is not None:
        o.findings = [f"{f['id']}@{f['layer']}" if f.get("layer") else f["id"] for f in report.get("findings", [])]
        o.inconclusive_params = [f"{layer['index']}.{q['name']}" for layer in report.get("layers", [])
                                 for q in layer.get("params", []) if q.get("status") == "inconclusive"]
        o.warnings = [w["id"] for w in report.get("warnings", [])]
        err = report.get("error") or {}
        first = report.get("warnings") or [{}]
        o.message = err.get("message") or first[0].get("message", "")
    if code not in (0, 1, 5) or report is None:
        o.verdict = "error"
        o.message = o.message or (stderr.strip().splitlines() or ["no output"])[-1]
        return
    if code == 5:
        o.verdict = "inconclusive"
    elif not p.wrong:
        o.verdict = "ok" if code == 0 else "false alarm"
    elif code == 0:
        small = o.size is not None and o.size < RESOLUTION[p.regime.name]
        o.verdict = "below resolution" if small else "false pass"
    elif p.mistake in MUTANTS:
        o.verdict = "caught"
    else:
        o.verdict = "named" if _named(p, report) else "misnamed"


def _named(p: Program, report: dict) -> bool:
    found = {(f["id"], f.get("layer")) for f in report.get("findings", [])}
    ids = {p.mistake, *EQUIVALENT.get(p.mistake, ())}
    if p.layer is None or CATALOG[p.mistake].scope == "global":
        return any(i in ids for i, _ in found)
    return (p.mistake, p.layer) in found or any(i in EQUIVALENT.get(p.mistake, ()) for i, _ in found)


def run(programs: list[Program], root: Path, jobs: int = 1) -> list[Outcome]:
    """Write every program under ``root/REGIME/`` and check each with the CLI, ``jobs`` at a time."""
    outcomes = []
    for p in programs:
        folder = root / p.regime.name
        facts = write(p, folder)
        outcomes.append(Outcome(p.regime.name, p.name, p.mistake, p.layer, p.act, p.loss, facts["size"],
                                facts["size_param"], facts["design"], str(folder / f"{p.name}.yaml")))

    def check(pair):
        p, o = pair
        code, report, stderr, o.seconds = run_cli(Path(o.config))
        judge(o, p, code, report, stderr)
        return o

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(check, zip(programs, outcomes)))


# ---------------------------------------------------------------- the report

COLUMNS = ("programs", "false passes", "false alarms", "inconclusive", "inconclusive under OK", "misnamed",
           "errors", "below resolution", "seconds")


def summary(outcomes: list[Outcome]) -> dict:
    """{regime: {column: value}}, in the order of REGIMES."""
    rows = {}
    for name in dict.fromkeys(o.regime for o in outcomes):
        mine = [o for o in outcomes if o.regime == name]
        rows[name] = {
            "resolution": RESOLUTION[name], "programs": len(mine),
            "false passes": sum(o.verdict == "false pass" for o in mine),
            "false alarms": sum(o.verdict == "false alarm" for o in mine),
            "inconclusive": sum(o.inconclusive for o in mine),
            "inconclusive under OK": sum(o.inconclusive_under_ok for o in mine),
            "misnamed": sum(o.verdict == "misnamed" for o in mine),
            "errors": sum(o.verdict == "error" for o in mine),
            "below resolution": sum(o.verdict == "below resolution" for o in mine),
            "seconds": round(sum(o.seconds for o in mine), 1),
        }
    return rows


def table(rows: dict) -> str:
    head = "| regime | resolution | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['resolution']:g} | " + " | ".join(f"{row[c]:g}" for c in COLUMNS) + " |")
    total = {c: sum(r[c] for r in rows.values()) for c in COLUMNS}
    lines.append("| **all** | | " + " | ".join(f"{round(total[c], 1):g}" for c in COLUMNS) + " |")
    return "\n".join(lines)


def misjudged(outcomes: list[Outcome]) -> list[Outcome]:
    """The programs backcheck did not classify correctly."""
    return [o for o in outcomes if o.verdict not in GOOD or o.inconclusive_under_ok]


def listing(o: Outcome, root: Path | None = None) -> str:
    """One line: regime, mistake, exit code, verdict, findings, warnings, the first message, file."""
    size = "" if o.size is None else f" size {o.size:.2g} ({o.size_param})"
    what = o.verdict + (" + inconclusive under OK" if o.inconclusive_under_ok else "")
    found = ", ".join(o.findings) or "no findings"
    where = Path(o.config).relative_to(root) if root else Path(o.config)
    return (f"{o.regime:18} {o.label:36} {o.act:7} exit {o.exit_code}  {what}{size}  [{found}]  "
            f"warnings [{', '.join(o.warnings)}]  {where}  | {o.message}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--regimes", help="comma-separated regime names (default: all)")
    ap.add_argument("--mistakes", help="comma-separated mistake ids or prefixes, 'correct', 'mutant/...'")
    ap.add_argument("--small", action="store_true", help="the small grid of tests/test_regimes.py")
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="CLI processes at once")
    ap.add_argument("--keep", type=Path, help="write the programs into this folder (kept) instead of a temp dir")
    ap.add_argument("--json", type=Path, help="write every program's outcome to this file")
    ap.add_argument("--verbose", action="store_true", help="one line per program not classified correctly")
    args = ap.parse_args(argv)
    regimes = args.regimes.split(",") if args.regimes else None
    unknown = [r for r in regimes or () if r not in REGIMES]
    if unknown:
        ap.error(f"unknown regime {', '.join(unknown)}; the regimes are {', '.join(REGIMES)}")
    programs = grid(regimes, args.mistakes.split(",") if args.mistakes else None, args.small)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="regimes-") as tmp:
        root = args.keep.resolve() if args.keep else Path(tmp)
        outcomes = run(programs, root, args.jobs)
        wall = time.perf_counter() - start
        rows = summary(outcomes)
        print(table(rows))
        print(f"\n{len(outcomes)} programs in {wall:.0f} s with {args.jobs} job(s); "
              f"not planted: loss-derivative/scale (mse only; no regime uses mse)")
        if args.verbose:
            bad = misjudged(outcomes)
            print(f"\n{len(bad)} program(s) not classified correctly:")
            for o in bad:
                print(listing(o, root))
        if args.json:
            args.json.write_text(json.dumps({"resolution": RESOLUTION, "wall_seconds": round(wall, 1),
                                             "programs_dir": str(root) if args.keep else None, "regimes": rows,
                                             "programs": [asdict(o) for o in outcomes]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
