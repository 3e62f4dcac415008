"""`backcheck grade`: one assignment config, many submissions, one verdict each (contract section 6).

Every submission's code runs in a fresh copy of its folder, in its own sandboxed process with the
config's time limit and a memory limit (and, when grading as root, as an unprivileged user); the
judging runs here. What one submission does (crash, hang, exhaust memory, write elsewhere, start
processes) is its own result and the batch goes on. Scores are per layer: a layer scores when all
of its gradients agree and no finding blames it. The output paths are checked before the first
submission runs; the writers (JSON, JUnit XML, Gradescope, CSV) write a whole regular file or none,
with the user's umask, and never replace a symlink or a device.

A layer as a test and JUnit XML come from ``backcheck.ci``, shared with ``backcheck verify --junit``
and the pytest plugin: a layer passes, scores and is green in CI by the same rule everywhere.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from backcheck import __version__
from backcheck.ci import LayerTest, junit_xml, layer_tests
from backcheck.errors import ConfigError, UserCodeError
from backcheck.results import CheckResult, ExitCode
from backcheck.runner import Options, failed, verify, verify_config
from backcheck.spec import Config, load_config


@dataclass(frozen=True)
class GradeOptions:
    jobs: int = 1  # submissions checked at once, each in its own process
    timeout: float | None = None  # seconds per submission; None: the config's check.timeout
    memory_mb: int | None = 4096  # address-space limit of each submission's process; None: none
    points_per_layer: float = 1.0
    user: str | None = "auto"  # grading as root: the code runs as this user ("auto": nobody, when it can)


@dataclass(frozen=True)
class Submission:
    name: str
    folder: Path
    result: CheckResult
    tests: tuple[LayerTest, ...]

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    @property
    def status(self) -> str:
        """ok | wrong | the error kind (config, exception, timeout, nan, contract, internal)."""
        if self.result.error is not None:
            return self.result.error.kind
        return "ok" if self.result.exit_code == ExitCode.OK else "wrong"

    def to_json(self) -> dict:
        """The submission's contract-section-3 object, with its name and score added."""
        return {"submission": self.name, "score": self.score, "max_score": self.max_score,
                **self.result.to_json()}


@dataclass(frozen=True)
class Grade:
    config: str
    submissions: tuple[Submission, ...]

    def exit_code(self, strict: bool) -> ExitCode:
        """0 when every submission was processed, whatever it scored; 1 with ``strict`` and a failure."""
        if strict and any(s.status != "ok" for s in self.submissions):
            return ExitCode.WRONG
        return ExitCode.OK


# ---------------------------------------------------------------- grading


def grade(config_path: str | Path, submissions_dir: str | Path, options: GradeOptions = GradeOptions(),
          progress=None, outputs: dict | None = None) -> Grade:
    """Check every submission against the assignment config. Raises ConfigError (exit 2) for a bad
    config, submissions folder or output path (``outputs``: {"json": path, ...}, checked before the
    first submission runs); a submission's own problems are its result. ``progress(submission,
    done, total)`` hears of each one finished (first with None, 0: about to start)."""
    config_path, submissions_dir = Path(config_path), Path(submissions_dir)
    base = load_config(config_path, require_code=False)
    if base.code is None:
        raise ConfigError("backcheck grade needs a code: section (code.file is read in each submission's "
                          "folder)", str(config_path))
    if not submissions_dir.is_dir():
        raise ConfigError("no such folder: expected the submissions, one sub-folder each", str(submissions_dir))
    folders = find_submissions(submissions_dir, base.code.file_given)
    if not folders:
        raise ConfigError(f"no submissions: no sub-folders and no {base.code.file_given} here", str(submissions_dir))
    _not_one_level_up(folders, base.code.file_given, submissions_dir)
    check_outputs(outputs or {}, len(folders))
    progress = progress or (lambda sub, done, total: None)
    progress(None, 0, len(folders))  # about to start: nothing is done yet
    done = []
    # As root, the code sees the submissions folder empty (it runs in its copy) and writes nowhere but
    # in its own work folder (Options.writable), whoever it runs as.
    protect = {"hide": (str(submissions_dir.resolve()),)}
    with tempfile.TemporaryDirectory(prefix="backcheck-grade-") as work:
        os.chmod(work, 0o711)  # another user may traverse it to its own copy, not list the others

        def one(item) -> Submission:
            i, folder = item
            sub = _grade_one(config_path, folder, submissions_dir, options, base.network, Path(work) / str(i),
                             protect)
            done.append(sub)
            progress(sub, len(done), len(folders))
            return sub

        with ThreadPoolExecutor(max_workers=max(1, options.jobs)) as pool:
            submissions = tuple(pool.map(one, enumerate(folders)))  # the code runs in sandboxes: threads suffice
    return Grade(str(config_path), submissions)


def _not_one_level_up(folders: list, code_file: str, root: Path) -> None:
    """A folder of classes given for a folder of submissions: no sub-folder has the code file, but
    the sub-folders of one do. Said before anything runs, rather than a zero for every "submission"."""
    if any((f / code_file).exists() for f in folders):
        return
    deeper = [f for f in folders if f.is_dir() and not f.is_symlink()
              and any((g / code_file).is_file() for g in f.iterdir() if g.is_dir() and not g.is_symlink())]
    if deeper:
        raise ConfigError(f"no sub-folder here has {code_file}, but the sub-folders of {deeper[0].name} do: "
                          f"grade {deeper[0]} (a submissions folder holds one sub-folder per submission)", str(root))


def find_submissions(root: Path, code_file: str) -> list[Path]:
    """Every visible sub-folder of ``root``; or ``root`` itself when the code file sits directly in
    it (Gradescope's /autograder/submission)."""
    if (root / code_file).is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _grade_one(config_path: Path, folder: Path, root: Path, options: GradeOptions, net, work: Path,
               protect: dict | None = None) -> Submission:
    from backcheck import sandbox

    name = folder.name if folder != root else root.resolve().name
    shown = f"{config_path} [{name}]"
    copy = work / "submission"
    try:
        # A fresh copy: what the code writes stays there; links are copied as links, never followed.
        shutil.copytree(folder, copy, symlinks=True)
    except (OSError, shutil.Error) as exc:
        result = failed(shown, config_path, UserCodeError(f"the submission folder cannot be copied: {exc}",
                                                          str(folder)), name)
        return Submission(name, folder, result, layer_tests(result, net, options.points_per_layer))
    who, _ = sandbox.credentials(options.user)
    if who is not None:
        _hand_over(work, copy, *who)
    try:
        config = load_config(config_path, code_base=copy)
    except ConfigError as exc:  # a missing code file is the submission's
        result = failed(shown, config_path, exc, name)
    else:  # noqa: SIM108
        result = verify_config(_limited(config, options),
                               Options(memory_mb=options.memory_mb, user=options.user, cwd=str(copy),
                                       writable=str(work), **(protect or {})), shown)
    result = _in_folder(result, copy, folder)
    return Submission(name, folder, result, layer_tests(result, net, options.points_per_layer))


def _in_folder(result: CheckResult, copy: Path, folder: Path) -> CheckResult:
    """Messages name the submission's own folder, not the copy its code ran in."""
    if result.error is None:
        return result
    fix = lambda text: text.replace(str(copy.resolve()), str(folder)).replace(str(copy), str(folder)) \
        if text else text  # noqa: E731
    return replace(result, error=replace(result.error, message=fix(result.error.message), where=fix(result.error.where)))


def _hand_over(work: Path, copy: Path, uid: int, gid: int) -> None:
    """The copy belongs to the user the code runs as: it may write there, and nowhere else of ours."""
    os.chown(work, uid, gid)
    for folder, dirs, files in os.walk(copy):
        for item in [folder] + [os.path.join(folder, f) for f in dirs + files]:
            os.lchown(item, uid, gid)


def check_outputs(outputs: dict, submissions: int) -> None:
    """Every output path can be written as a regular file, before any submission runs (ConfigError)."""
    for flag, path in outputs.items():
        if path is None:
            continue
        text = str(path)
        if flag == "gradescope" and "{submission}" not in text and submissions != 1:
            raise ConfigError(f"--gradescope writes one results.json per submission: with {submissions} "
                              "submissions put {submission} in the path (e.g. out/{submission}.json)", text)
        _writable(Path(text.replace("{submission}", "submission")), f"--{flag}")


def _writable(path: Path, flag: str) -> None:
    if path.is_symlink() or (path.exists() and not path.is_file()):
        kind = "a symlink" if path.is_symlink() else "a folder" if path.is_dir() else "a device or other special file"
        raise ConfigError(f"{flag}: {path} is {kind}; backcheck writes only regular files and never replaces "
                          "anything else", str(path))
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag}: cannot write in {parent}", str(path))


def _limited(config: Config, options: GradeOptions) -> Config:
    if options.timeout is None:
        return config
    return replace(config, check=replace(config.check, timeout=options.timeout))


# ---------------------------------------------------------------- writers


def write_outputs(g: Grade, json_path=None, junit_path=None, gradescope_path=None, csv_path=None) -> None:
    """Write every requested file, each completely or not at all."""
    for path, make in ((json_path, to_json), (junit_path, to_junit), (gradescope_path, None), (csv_path, to_csv)):
        if path is None:
            continue
        if make is None:
            _write_gradescope(g, str(path))
        else:
            _atomic_write(Path(path), make(g))


def to_json(g: Grade) -> str:
    return json.dumps({"backcheck": __version__, "config": g.config,
                       "submissions": [s.to_json() for s in g.submissions]}, indent=2, allow_nan=False) + "\n"


def to_csv(g: Grade) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["submission", "score", "max_score", "status", "exit_code", "origin_layer", "findings", "error"])
    for s in g.submissions:
        r = s.result
        w.writerow([s.name, f"{s.score:g}", f"{s.max_score:g}", s.status, int(r.exit_code),
                    r.origin_layer if r.origin_layer is not None else "",
                    " ".join(f"{f.id}@{f.layer}" if f.layer else f.id for f in r.findings),
                    f"{r.error.message} ({r.error.where})" if r.error else ""])
    return out.getvalue()


def to_junit(g: Grade) -> str:
    """JUnit XML: a testsuite per submission, a testcase per layer (CI systems show these natively)."""
    return junit_xml([(s.name, s.tests, s.result.error) for s in g.submissions])


def verify_junit(config_path, options: Options, junit_path, progress=None) -> CheckResult:
    """``backcheck verify CONFIG --junit FILE``: the check, and FILE as JUnit XML with a testcase per
    layer (written whatever the verdict, even for a config error). A FILE that cannot be written is a
    config error (exit 2) before anything runs."""
    try:
        check_outputs({"junit": junit_path}, 1)
    except ConfigError as exc:
        return failed(str(config_path), config_path, exc)
    result = verify(config_path, options, progress=progress)
    tests = layer_tests(result, _network(config_path))
    try:
        _atomic_write(Path(junit_path), junit_xml([(result.name, tests, result.error)]))
    except (OSError, ConfigError) as exc:
        reason = exc.message if isinstance(exc, ConfigError) else str(exc)
        return failed(str(config_path), config_path, ConfigError(f"--junit: cannot write the file: {reason}",
                                                                 str(junit_path)))
    return result


def _network(config_path):
    """The network the config says (it names the layers), or None when the file cannot be read."""
    try:
        return load_config(Path(config_path), require_code=False).network
    except ConfigError:
        return None


def to_gradescope(s: Submission) -> str:
    """Gradescope's results.json for one submission: one test per layer."""
    r = s.result
    summary = ("all gradients agree" if s.status == "ok" else
               f"wrong gradients; the error starts at layer {r.origin_layer}" if s.status == "wrong" else
               f"not checked ({s.status} error): {r.error.message}")
    return json.dumps({
        "score": s.score,
        "output": f"backcheck {__version__}: {summary}",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{"name": t.name, "score": t.score, "max_score": t.max_score,
                   "status": "passed" if t.passed else "failed", "output": t.output, "visibility": "visible"}
                  for t in s.tests],
    }, indent=2, allow_nan=False) + "\n"


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _write_gradescope(g: Grade, pattern: str) -> None:
    """One results.json per submission: the path may hold {submission}; without it, one submission only."""
    if "{submission}" not in pattern and len(g.submissions) != 1:
        raise ConfigError(f"--gradescope writes one results.json per submission: with {len(g.submissions)} "
                          "submissions put {submission} in the path (e.g. out/{submission}.json)", pattern)
    for s in g.submissions:
        _atomic_write(Path(pattern.replace("{submission}", s.name)), to_gradescope(s))


def _atomic_write(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file. The
    file gets the permissions the user's umask gives; a symlink or special file is never replaced."""
    _writable(path, "output")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
