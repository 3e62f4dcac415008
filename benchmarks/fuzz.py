"""Hostile-input fuzzing: run the backcheck command line on many mutated inputs and count what must
never happen. Every run is its own process with a time limit, so a hang is counted, not waited for.

    python benchmarks/fuzz.py                          # every section, 1000 runs each
    python benchmarks/fuzz.py configs --runs 5000 --seed 7 --jobs 4 --timeout 120
    python benchmarks/fuzz.py code --runs 300 --jobs 2
    python benchmarks/fuzz.py submissions --runs 150 --jobs 2

It prints, per section, the runs, their exit codes, and the counts that must all be 0:
tracebacks (Python traceback text on stdout or stderr), exit-4s (backcheck failed itself), wrong
exit codes (outside the contract's 0, 1, 2, 3, 5, or a JSON object whose exit_code differs from the
process's, or not the code the input calls for), not-json (with --format json, stdout is not exactly
one strictly valid JSON object) and hangs (the run outlived --timeout). The first cases of each kind
are written out to reproduce.

Sections are registered with @section(name, problems): a function ``(chooser, workdir) -> Case`` that
makes one run's inputs in ``workdir`` (a scratch copy of configs/ and samples/), and the counts it adds.

- "configs" mutates the YAML files of configs/ and samples/ (``tests/test_fuzz_configs.py`` draws the
  same mutations with hypothesis).
- "code" writes a module that is right apart from one hostile act of benchmarks/hostile.py (bad
  values, exits and signals, closed fds, processes, in-place writes, huge output, encodings, control
  characters...), placed at import, in the loss, in the gradients or on the Nth call, bound by a
  config in one of configs/' styles; about 30% also carry a real gradient bug. It adds: leftover
  (a process carrying the run's token, ``FUZZ_RUN``, alive after the command), false-ok (exit 0 with
  a planted bug) and leak (the text report carries control characters or is huge).
- "submissions" grades a class of good, wrong and hostile submissions (the acts above and acts
  against the grader: patching backcheck, killing the grader, writing outside the folder, reading
  classmates) with --json, --junit and --csv. It adds: leftover, grade-incomplete, outputs-broken
  (not whole valid files), good-not-full, bad-full (a wrong or cheating submission with full marks)
  and outside-changed (a file outside the copies changed, or a new one appeared).

``tests/test_fuzz_code.py`` draws the last two from the same generators with hypothesis.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ALLOWED_EXITS = {0, 1, 2, 3, 5}  # contract section 2; 4 is backcheck's own failure
TRACEBACK = "Traceback (most recent call last)"
MAX_CHECK_TIMEOUT = 10  # seconds: the longest valid check.timeout a mutation writes (a hang is the code's, then)


# ---------------------------------------------------------------- choosing


class RandomChooser:
    """The choices of a mutation, from a seeded random.Random (the tests draw them with hypothesis)."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def pick(self, options):
        return options[self.rng.randrange(len(options))]

    def integer(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)


# ---------------------------------------------------------------- the cases


@dataclass
class Case:
    """One run: the command line after `backcheck`, and what the mutation did (for the report).

    ``expect``: the exit codes the contract allows for this input (None: any of them); ``bug``: the
    code carries a real gradient bug, so exit 0 is a false OK; ``after(code, out, err)``: the
    section's own checks once the run is over, a list of problems."""

    args: list[str]
    what: str
    json: bool = False
    files: dict = field(default_factory=dict)  # path -> bytes, written before the run
    expect: set | None = None
    bug: bool = False
    after: object = None
    token: str = field(default_factory=lambda: f"fuzz-{os.getpid()}-{next(_tokens)}-{os.urandom(3).hex()}")
    clean_text: bool = False  # the text report must be free of control characters and bounded
    keep_files: bool = False  # the files stay after the run (after() reads them), cleaned by the section


_tokens = itertools.count()


SECTIONS: dict = {}
COMMON = ("traceback", "exit-4", "wrong-exit", "not-json", "hang")
PROBLEMS: dict = {}  # section -> the counts it prints (all must be 0)


def section(name: str, problems: tuple = ()):
    def register(fn):
        SECTIONS[name] = fn
        PROBLEMS[name] = COMMON + tuple(problems)
        return fn
    return register


def seed_configs(root: Path) -> list[Path]:
    """Every config under configs/ and samples/ (the expected-verdict tables are not configs, nor are
    the files this module writes)."""
    found = sorted((root / "configs").glob("*.yaml")) + sorted((root / "samples").rglob("*.yaml"))
    return [p for p in found if p.name != "expected.yaml" and not p.name.startswith("_fuzz")]


HOSTILE = [None, True, False, "", "x" * 10_000, "rleu", "relu", "identity", -1, 0, 1, 3, 10**30, -(10**30), 2**32,
           2**63, 1.5, 1e300, -1e300, 1e-300, float("inf"), float("-inf"), float("nan"), [], {}, [1, 2],
           {"a": 1}, [None], "a\0b.py", "\x07", "/", ".", "..", "nope.py", "net.txt", "data", "$undefined",
           "$X[", "$", "{k}", "W{k}", "params['W1", "é", "2001-12-14", "1e-6", ".inf", "yes", "~"]
TIMEOUTS = [None, 0, -1, float("inf"), float("nan"), 1e300, 86_401, "60", 0.001, 1, MAX_CHECK_TIMEOUT]
TAGS = ["!foo ", "!!python/name:os.system ", "!!python/object/apply:os.system ", "!!float ", "!!int ", "!!set ",
        "!!binary ", "!!timestamp ", "!!bool ", "!!str ", "!!omap ", "!!map ", "!!seq ", "!<tag:x> ", "! "]
GARBAGE = [b"\x00", b"\x07", b"\x1b", b"\x7f", b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\t", b"\r", b"{", b"[", b"]",
           b"&a ", b"*a", b"*nope", b"---\n", b"...\n", b"%YAML 1.1\n", b": ", b"- ", b"? ", b"|", b">", b"'", b'"',
           b"#", b"\xe2\x80\xa8", b"\xef\xbb\xbf", b"<<: ", b"!", b"@", b"`", b"\n  ", b"\n\t"]
BOMB = ("a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n")


def _paths(value, prefix=()):
    """Every (path, value) below ``value``: keys of mappings and indices of lists."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for k, v in items:
        yield prefix + (k,), v
        yield from _paths(v, prefix + (k,))


def _at(tree, path):
    for k in path[:-1]:
        tree = tree[k]
    return tree


def mutate_tree(tree, choose) -> str:
    """One change to the config's data: a key dropped, nulled, renamed, or given a hostile value."""
    paths = [p for p, _ in _paths(tree)]
    if not paths:
        return "nothing to change"
    path = choose.pick(paths)
    parent, key = _at(tree, path), path[-1]
    how = choose.pick(["drop", "null", "value", "value", "value", "typo", "empty"])
    if how == "drop":
        del parent[key]
    elif how == "null":
        parent[key] = None
    elif how == "typo" and isinstance(key, str) and key:
        parent[key[:-1] or "x"] = parent.pop(key)
    elif how == "empty":
        parent[key] = choose.pick([[], {}, ""])
    else:
        options = TIMEOUTS if key == "timeout" else HOSTILE
        parent[key] = copy.deepcopy(choose.pick(options))  # a later mutation may change it in place
        how = f"value {parent[key]!r:.40}"
    return f"{how} at {'.'.join(map(str, path))}"


def _value_offsets(text: bytes) -> list[int]:
    """Offsets just after ': ' and '- ' (where a value starts), or [0]."""
    found = [i + 2 for i in range(len(text) - 1) if text[i:i + 2] in (b": ", b"- ")]
    return found or [0]


def mutate_text(text: bytes, choose, code: bytes) -> tuple[bytes, str]:
    """One change to the file's bytes: a tag, garbage, a cut, an alias bomb, deep nesting, a second
    document, another encoding, or another file altogether."""
    how = choose.pick(["tag", "garbage", "garbage", "truncate", "bomb", "deep", "recursive", "document",
                       "crlf", "bom", "utf16", "whole"])
    if how == "tag":
        at = choose.pick(_value_offsets(text))
        tag = choose.pick(TAGS)
        return text[:at] + tag.encode() + text[at:], f"tag {tag.strip()} at byte {at}"
    if how == "garbage":
        at = choose.integer(0, len(text))
        junk = choose.pick(GARBAGE)
        return text[:at] + junk + text[at:], f"bytes {junk!r} at byte {at}"
    if how == "truncate":
        at = choose.integer(0, len(text))
        return text[:at], f"cut at byte {at}"
    if how == "bomb":
        return BOMB.encode() + text, "alias bomb before the config"
    if how in ("deep", "recursive"):
        at = choose.pick(_value_offsets(text))
        n = choose.pick([40, 1000, 10_000])
        inner = (b"[" * n + b"]" * n) if how == "deep" else b"&r [*r]"
        rest = text[at:].split(b"\n", 1)
        return text[:at] + inner + (b"\n" + rest[1] if len(rest) > 1 else b""), f"{how} value at byte {at}"
    if how == "document":
        return text + b"\n---\n" + text, "a second document"
    if how == "crlf":
        return text.replace(b"\n", b"\r\n"), "CRLF line ends"
    if how == "bom":
        return b"\xef\xbb\xbf" + text, "a UTF-8 byte order mark"
    if how == "utf16":
        return text.decode("utf-8", errors="replace").encode("utf-16"), "UTF-16"
    whole = choose.pick([b"", b"---\n", b"# nothing but a comment\n", b"~\n", b"[]\n", b"42\n", code])
    return whole, f"the whole file replaced by {whole[:20]!r}"


def mutate_config(seed: Path, choose) -> tuple[bytes, str]:
    """The seed config with one to three mutations of its data and of its text."""
    text = seed.read_bytes()
    done = []
    tree = yaml.safe_load(text)
    if isinstance(tree, dict) and choose.pick([True, True, False]):
        for _ in range(choose.integer(1, 3)):
            done.append(mutate_tree(tree, choose))
        text = yaml.safe_dump(tree, sort_keys=False, allow_unicode=True, width=100_000).encode()
    if not done or choose.pick([False, False, True]):
        code_files = sorted(seed.parent.glob("*.py"))
        code = code_files[0].read_bytes() if code_files else b""
        text, what = mutate_text(text, choose, code)
        done.append(what)
    return text, "; ".join(done)


_serial = itertools.count()  # names the mutated files apart


@section("configs")
def config_case(choose, workdir: Path) -> Case:
    """A mutated config from configs/ or samples/, checked with verify, diagnose or grade, sometimes
    with a bad option as well."""
    seed = choose.pick(seed_configs(workdir))
    text, what = mutate_config(seed, choose)
    target = seed.with_name(f"_fuzz_{os.getpid()}_{next(_serial)}.yaml")
    if seed.parent.name == "submissions":
        return Case(["grade", str(seed.parent / "class"), "--config", str(target), "--timeout", "3"],
                    f"grade {seed.name}: {what}", files={target: text})
    command = "diagnose" if b"train:" in seed.read_bytes() and choose.pick([True, False]) else "verify"
    as_json = choose.pick([True, True, False])
    extra = choose.pick([[]] * 6 + [["--no-color"], ["--jobs", "0"], ["--format", "xml"], ["--bogus"],
                                    ["--inject", ""], ["--inject", "scale/sign@x"],
                                    ["--inject", "activation-derivative/of-output@99"]])
    args = [command, str(target)] + (["--format", "json"] if as_json else []) + extra
    return Case(args, f"{command} {seed.relative_to(workdir)}: {what} {' '.join(extra)}".strip(), json=as_json,
                files={target: text})


# ---------------------------------------------------------------- hostile code

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile  # noqa: E402

CODE_TIMEOUT = 4  # check.timeout of the hostile-code configs (sleeping past it is one of the acts)
CODE_NET = {"input": 3, "hidden": 4, "output": 2, "batch": 6}


def code_config(mod: hostile.Module, file: str, hidden: str, net: dict = CODE_NET, train: bool = False) -> bytes:
    """The YAML binding a hostile module, in the calling style it was written for."""
    tree = {"network": {"input": net["input"],
                        "layers": [{"units": net["hidden"], "activation": hidden},
                                   {"units": net["output"], "activation": "softmax"}],
                        "loss": "cross_entropy"},
            "data": {"random": {"batch": net["batch"]}},
            "code": {"file": file, "layout": "rows", "targets": "onehot", **mod.code},
            "check": {"timeout": CODE_TIMEOUT}}
    if train:
        tree["train"] = {"lr": 0.1, "steps": 5}
    return yaml.safe_dump(tree, sort_keys=False).encode()


def hostile_files(choose, folder: Path, acts=None) -> tuple[hostile.Module, dict, Path]:
    """A hostile module and its config in ``folder``: (module, files to write, config path)."""
    hidden = choose.pick(sorted(hostile.HIDDEN))
    mod = hostile.module(choose, hidden=hidden, acts=acts)
    sizes = (CODE_NET["input"], CODE_NET["hidden"], CODE_NET["output"])
    config = folder / "net.yaml"
    return mod, {folder / "net.py": hostile.sized(mod.source, sizes), config: code_config(mod, "net.py", hidden)}, \
        config


@section("code", ("leftover", "false-ok", "leak"))
def code_case(choose, workdir: Path, acts=None) -> Case:
    """A module that is right apart from one hostile act (benchmarks/hostile.py; one of ``acts``
    when given), checked with verify (or diagnose), as JSON or as the text report."""
    folder = workdir / f"_fuzz_code_{os.getpid()}_{next(_serial)}"
    mod, files, config = hostile_files(choose, folder, acts)
    command = choose.pick(["verify", "verify", "verify", "diagnose"])
    as_json = choose.pick([True, False])
    if command == "diagnose":
        files[config] = files[config] + yaml.safe_dump({"train": {"lr": 0.1, "steps": 5}}).encode()
    args = [command, str(config)] + (["--format", "json"] if as_json else ["--no-color"])
    # diagnose adds findings of its own (a slow start, saturation...): its exit codes are any of
    # the contract's, but never 0 with a planted bug, and never 0 for code that must fail.
    expect = mod.expect if command == "verify" else ({3} if mod.expect == {3} else None)
    return Case(args, f"{command}: {mod.what}", json=as_json, files=files, expect=expect, bug=bool(mod.bug),
                clean_text=True)


# ---------------------------------------------------------------- hostile submissions

CLASS_NET = {"input": 4, "hidden": 6, "output": 3, "batch": 8}  # samples/submissions/assignment.yaml's
GRADE_TIMEOUT = 4  # --timeout of each submission
GOOD_STUDENTS, HOSTILE_STUDENTS = 2, 3  # at most, per class


def class_files(choose, folder: Path, acts=None) -> tuple[dict, dict]:
    """A class of good, wrong and hostile submissions in ``folder``/class, its assignment and a file
    beside them that nothing may touch. (files, {student: Module})."""
    hidden = "sigmoid"
    students: dict = {}
    for i in range(choose.integer(1, GOOD_STUDENTS)):
        students[f"good{i}"] = hostile.module(choose, hidden, "template", acts=[hostile.GOOD], bug=False,
                                              tag="FRIEND")
    students["wrong0"] = hostile.module(choose, hidden, "template", acts=[hostile.GOOD], bug=True)
    for i in range(choose.integer(1, HOSTILE_STUDENTS)):
        act = choose.pick(acts or hostile.GRADER_ACTS + hostile.GRADER_ACTS + hostile.ACTS)
        cheat = act.name in ("patch backcheck from inside", "read other submissions")
        students[f"hostile{i}"] = hostile.module(choose, hidden, "template", acts=[act],
                                                 bug=True if cheat else None)
    sizes = (CLASS_NET["input"], CLASS_NET["hidden"], CLASS_NET["output"])
    files = {folder / "class" / name / "mlp.py": hostile.sized(m.source, sizes) for name, m in students.items()}
    files[folder / "assignment.yaml"] = code_config(students["good0"], "mlp.py", hidden, CLASS_NET)
    files[folder / "untouchable.txt"] = b"nothing may write here\n"
    return files, students


@section("submissions", ("leftover", "grade-incomplete", "outputs-broken", "good-not-full", "bad-full",
                         "outside-changed"))
def submissions_case(choose, workdir: Path, acts=None) -> Case:
    """A class of a few submissions, good, wrong and hostile (the acts of the "code" section and
    acts against the grader: patching backcheck, killing the grader, writing outside the folder,
    reading other submissions), graded with every output file."""
    folder = workdir / f"_fuzz_class_{os.getpid()}_{next(_serial)}"
    files, students = class_files(choose, folder, acts)
    out = {k: folder / "out" / f"grades.{k}" for k in ("json", "xml", "csv")}
    args = ["grade", str(folder / "class"), "--config", str(folder / "assignment.yaml"), "--jobs", "2",
            "--timeout", str(GRADE_TIMEOUT), "--no-color", "--json", str(out["json"]), "--junit", str(out["xml"]),
            "--csv", str(out["csv"])]
    what = "grade: " + "; ".join(f"{n}: {m.what}" for n, m in students.items())
    case = Case(args, what, files=files, expect={0}, keep_files=True)
    case.after = lambda code, stdout, stderr: judge_grade(code, folder, files, out, students)
    return case


def judge_grade(code, folder: Path, files: dict, out: dict, students: dict) -> list[str]:
    """A grade run's own problems: it did not complete, its outputs are not whole valid files, a
    good submission lost points, a wrong or cheating one got them all, or files outside the
    submissions' copies changed."""
    import csv
    import io
    import xml.etree.ElementTree as ET

    problems = []
    try:
        if code != 0:
            problems.append("grade-incomplete")
        try:
            data = strict_json(out["json"].read_text())
            ET.parse(out["xml"])
            rows = list(csv.DictReader(io.StringIO(out["csv"].read_text())))
            scores = {s["submission"]: (s["score"], s["max_score"]) for s in data["submissions"]}
            if set(scores) != set(students) or {r["submission"] for r in rows} != set(students):
                raise ValueError("not every submission is in the outputs")
        except (OSError, ValueError, KeyError, TypeError, ET.ParseError):
            problems.append("outputs-broken" if code == 0 else "grade-incomplete")
            scores = {}
        for name, mod in students.items():
            if name not in scores:
                continue
            score, top = scores[name]
            if mod.expect == {0} and score != top:
                problems.append("good-not-full")
            if (mod.bug or mod.expect == {3}) and score == top:
                problems.append("bad-full")
        changed = [p for p, data in files.items() if not p.exists() or p.read_bytes() != data]
        known = set(files) | set(out.values())
        new = [p for p in folder.rglob("*") if p.is_file() and p not in known]
        if changed or new:
            problems.append("outside-changed")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return sorted(set(problems))


# ---------------------------------------------------------------- judging


def strict_json(text: str):
    """The one JSON object of ``text``; ValueError for anything else (NaN and Infinity included)."""
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    value = json.loads(text, parse_constant=refuse)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def judge(code: int | None, stdout: str, stderr: str, as_json: bool, case: Case | None = None) -> list[str]:
    """What went wrong with one run: [] or some of traceback, exit-4, wrong-exit, not-json, hang,
    false-ok (exit 0 for code with a planted gradient bug) and leak (the text report carries control
    characters or runs past LEAK_BYTES)."""
    if code is None:
        return ["hang"]
    problems = []
    if case is not None:
        if case.bug and code == 0:
            problems.append("false-ok")
        elif case.expect is not None and code not in case.expect and code != 4:
            problems.append("wrong-exit")
        if case.clean_text and not case.json and leaks(stdout):
            problems.append("leak")
    if TRACEBACK in stdout or TRACEBACK in stderr:
        problems.append("traceback")
    if code == 4:
        problems.append("exit-4")
    elif code not in ALLOWED_EXITS:
        problems.append("wrong-exit")
    if as_json:
        try:
            reported = strict_json(stdout).get("exit_code")
        except ValueError:
            problems.append("not-json")
        else:
            if reported != code and "wrong-exit" not in problems:
                problems.append("wrong-exit")
    return problems


LEAK_BYTES = 200_000  # a text report longer than this has let the code's text through unbounded
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def leaks(text: str) -> bool:
    """Whether a text report (printed with --no-color) carries control characters or is huge."""
    return len(text) > LEAK_BYTES or bool(_CONTROL.search(text))


def leftovers(token: str) -> list:
    """Live processes whose environment carries ``token`` (zombies are dead: not counted)."""
    found = []
    needle = f"FUZZ_RUN={token}".encode()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            env = Path(f"/proc/{name}/environ").read_bytes()
            if needle in env:
                state = Path(f"/proc/{name}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
                if state not in (b"Z", b"X"):
                    found.append(int(name))
        except (OSError, IndexError):
            continue
    return found


def _settle_leftovers(token: str, wait: float = 2.0) -> list:
    """The run's processes still alive ``wait`` seconds after it ended (killed ones take a moment
    to leave); whatever is left is counted, then killed so that runs do not pile up."""
    deadline = time.monotonic() + wait
    found = leftovers(token)
    while found and time.monotonic() < deadline:
        time.sleep(0.05)
        found = leftovers(token)
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return found


def run(case: Case, timeout: float) -> tuple[int | None, str, str]:
    """Run one case's command line in its own process group; (None, ...) when it outlived ``timeout``."""
    for path, data in case.files.items():
        Path(path).write_bytes(data)
    env = {**os.environ, "FUZZ_RUN": case.token}
    proc = subprocess.Popen([sys.executable, "-c", "from backcheck.cli import main; main()", *case.args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the group this run started: backcheck and its own children
        out, err = proc.communicate()
        code = None
    finally:
        if not case.keep_files:
            for path in case.files:
                Path(path).unlink(missing_ok=True)
    return code, out.decode(errors="surrogateescape"), err.decode(errors="replace")


def check(case: Case, timeout: float) -> tuple[int | None, str, str, list]:
    """Run one case and judge it: its problems, leftover processes and the section's own checks
    included."""
    for path in case.files:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    code, out, err = run(case, timeout)
    problems = judge(code, out, err, case.json, case)
    if os.path.isdir("/proc") and _settle_leftovers(case.token):
        problems.append("leftover")
    if case.after is not None:
        problems += case.after(code, out, err)
    return code, out, err, problems


# ---------------------------------------------------------------- the driver


def scratch_copy(into: Path) -> Path:
    """configs/ and samples/ copied into ``into``, so that mutated files sit beside their seeds."""
    for name in ("configs", "samples"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    return into


def fuzz(name: str, runs: int, seed: int, jobs: int, timeout: float, keep: Path) -> Counter:
    make = SECTIONS[name]
    counts: Counter = Counter()
    exits: Counter = Counter()
    with tempfile.TemporaryDirectory(prefix="backcheck-fuzz-") as tmp:
        workdir = scratch_copy(Path(tmp))
        rng = random.Random(seed)
        cases = [make(RandomChooser(random.Random(rng.random())), workdir) for _ in range(runs)]
        started = time.monotonic()

        def one(case):
            return (case, *check(case, timeout))

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for n, (case, code, out, err, problems) in enumerate(pool.map(one, cases), 1):
                exits[code if code is not None else "hang"] += 1
                for p in problems:
                    counts[p] += 1
                    if counts[p] <= 5:
                        _keep(keep, name, p, counts[p], case, code, out, err)
                if n % 100 == 0:
                    print(f"  {name}: {n}/{runs} runs, {time.monotonic() - started:.0f} s", file=sys.stderr)
    print(f"{name}: {runs} runs in {time.monotonic() - started:.0f} s; exit codes "
          + ", ".join(f"{k}: {v}" for k, v in sorted(exits.items(), key=lambda kv: str(kv[0]))))
    for p in PROBLEMS[name]:
        print(f"  {p:<22} {counts[p]}")
    for p in sorted(set(counts) - set(PROBLEMS[name])):
        print(f"  {p:<22} {counts[p]}")
    return counts


def _keep(keep: Path, name: str, problem: str, n: int, case: Case, code, out: str, err: str) -> None:
    """Write a failing case out to reproduce: its files and what it printed."""
    folder = keep / f"{name}-{problem}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    base = Path(os.path.commonpath([str(Path(p).parent) for p in case.files])) if case.files else folder
    for path, data in case.files.items():
        target = folder / Path(path).relative_to(base)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (folder / "run.txt").write_text(f"backcheck {' '.join(case.args)}\n{case.what}\nexit {code}\n"
                                    f"--- stdout\n{out[-5000:]}\n--- stderr\n{err[-5000:]}\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sections", nargs="*", default=list(SECTIONS), help=f"of {', '.join(SECTIONS)}")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds a run may take before it is a hang")
    parser.add_argument("--keep", type=Path, default=Path(tempfile.gettempdir()) / "backcheck-fuzz-failures")
    args = parser.parse_args(argv)
    total = Counter()
    for name in args.sections:
        total += fuzz(name, args.runs, args.seed, args.jobs, args.timeout, args.keep)
    if total:
        print(f"failing cases written to {args.keep}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
