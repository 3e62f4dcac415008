"""backcheck.sandbox against hostile code: whatever the evaluator does, the caller gets a status
and nothing is left running. The acts live in tests/sandbox_targets.py."""

import ast
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from backcheck import sandbox
from backcheck.sandbox import Limits, Sandbox, SandboxDied, SandboxTimeout

HERE = Path(__file__).resolve().parent
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
LIGHT = Limits(preimport=(), own_pids=False)  # most acts need no NumPy: the evaluator starts in a few ms;
# the system's pids, so that tests can watch what the code starts (own_pids has its own test)


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2:][:1] != b"Z"


def marked() -> list:
    """Live processes carrying a marker of this test process's sandboxes."""
    mark = f"{sandbox.MARKER}={sandbox._token()}.".encode()
    found = []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        if name.isdigit() and any(v.startswith(mark) for v in env.split(b"\0")) and alive(int(name)):
            found.append(int(name))
    return found


def wait_until(check, seconds: float = 5.0) -> bool:
    end = time.monotonic() + seconds
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(autouse=True)
def nothing_left(monkeypatch, tmp_path):
    monkeypatch.setenv("SANDBOX_TEST_DIR", str(tmp_path))
    monkeypatch.syspath_prepend(str(HERE))
    yield
    for sb in list(sandbox._live):
        sb.close()
    assert marked() == []


def started(entry="serve", limits=LIGHT, job=None, **kw) -> Sandbox:
    sb = Sandbox(f"sandbox_targets:{entry}", job, limits, **kw)
    sb.start()
    return sb


def ended(sb: Sandbox, request, timeout=10.0) -> SandboxDied:
    with pytest.raises(SandboxDied) as caught:
        sb.request(request, timeout)
    assert caught.value.status == sb.status
    return caught.value


# ---------------------------------------------------------------- messages


def test_echo_round_trip_keeps_arrays_exact_and_writable():
    message = {"x": np.arange(50_000.0), "f": np.asfortranarray(np.ones((3, 4), np.float32)),
               "view": np.arange(20)[::3], "scalar": np.float64(2.5), "rest": [1, "two", (3.0, None), {4}]}
    with started(limits=Limits(own_pids=False)) as sb:
        back = sb.request(("echo", message), 10)
    np.testing.assert_array_equal(back["x"], message["x"])
    assert back["f"].dtype == np.float32 and back["f"].flags.f_contiguous
    np.testing.assert_array_equal(back["view"], message["view"])
    assert back["scalar"] == 2.5 and back["rest"] == message["rest"]
    back["x"][0] = 1.0  # read into its own buffer, not a view of the frame


def test_the_job_reaches_entry():
    with started("job", job={"seed": 7}) as sb:
        assert sb.recv(10) == {"seed": 7}


def test_a_reply_after_10000_requests():
    with started() as sb:
        for i in range(10_000):
            assert sb.request(("echo", i), 10) == i
        assert sb.status is None
    assert sb.status == "was stopped by backcheck"


def test_a_caller_with_more_than_1024_files_open():
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip("this system allows fewer than 1200 open files")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        with started() as sb:
            assert min(sb._req, sb._rep, sb._ctl.fileno()) > 1024  # select() would refuse these
            assert sb.request(("echo", "high"), 10) == "high"
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_a_forged_pickle_does_not_run_in_the_caller(tmp_path):
    sb = started()
    died = ended(sb, ("forge", None))
    assert "refuses to read" in died.status and "system" in died.status
    assert not (tmp_path / "forged").exists()


def test_a_frame_claiming_100_gb_is_refused_unread():
    died = ended(started(), ("huge_frame", None))
    assert died.status == ("sent a message backcheck cannot read (a frame of 107374182400 bytes, over the limit "
                           "of 268435456)")


# ---------------------------------------------------------------- how it ends


def test_timeout_kills_the_code_and_what_it_started():
    sb = started()
    sleeper = sb.request(("popen", False), 10)
    with pytest.raises(SandboxTimeout) as caught:
        sb.request(("sleep", 100), 0.3)
    assert caught.value.status == "was killed at timeout (0.3 s)"
    assert caught.value.kind == "timeout"
    assert not alive(sb.pid) and not alive(sleeper)
    with pytest.raises(SandboxDied):  # and it stays dead
        sb.request(("echo", 1), 1)


@pytest.mark.parametrize("request_, status", [
    (("exit", 3), "ended with exit code 3 (SystemExit)"),
    (("exit", None), "ended with exit code 0 (SystemExit)"),
    (("raise", "SystemExit"), "ended with exit code 1 (SystemExit)"),
    (("os_exit", 4), "ended with exit code 4"),
    (("raise", "KeyboardInterrupt"), "raised KeyboardInterrupt: from the code"),
    (("raise", "GeneratorExit"), "raised GeneratorExit: from the code"),
    (("raise", "ValueError"), "raised ValueError: from the code"),
    (("segfault", None), "was killed by SIGSEGV (segmentation fault)"),
])
def test_how_the_code_ended_is_the_status(request_, status):
    sb = started()
    died = ended(sb, request_)
    assert died.status == status
    assert sb.entered and not alive(sb.pid)


def test_a_traceback_is_in_the_output_tail():
    died = ended(started(), ("raise", "ValueError"))
    assert "ValueError: from the code" in died.output_tail and "Traceback" in died.output_tail


def test_recursion_is_an_error_or_a_crash_never_a_hang():
    assert ended(started(), ("recurse", None)).status.startswith("raised RecursionError")
    deep = ended(started(), ("recurse", 10**6)).status
    assert deep.startswith("raised RecursionError") or "SIGSEGV" in deep


def test_backcheck_failing_to_start_is_told_apart():
    sb = Sandbox("no_such_module:serve", None, LIGHT)
    sb.start()
    died = ended(sb, ("echo", 1))
    assert died.status.startswith("failed to start: ModuleNotFoundError") and not sb.entered


def test_reading_stdin_gets_eof():
    with started() as sb:
        assert sb.request(("stdin", None), 10) == ["", "EOFError"] or \
            sb.request(("stdin", None), 10) == ("", "EOFError")


def test_50_mb_of_hidden_prints_do_not_block():
    with started() as sb:
        assert sb.request(("print", 50), 30) == "printed"
        assert sb.output_tail.endswith("x\nthe last line\n") and len(sb.output_tail) <= sandbox.TAIL_BYTES


def test_shown_output_is_forwarded_live_and_marked(capsys):
    seen = []

    def stderr():
        seen.append(capsys.readouterr().err)
        return "".join(seen)

    with started(limits=Limits(preimport=(), own_pids=False, show_output=True)) as sb:
        assert sb.request(("say", "hello from the code"), 10) == "said"
        # The evaluator now waits for the next request: the line must have come through already.
        assert wait_until(lambda: "│ hello from the code\n" in stderr())
        assert sb.request(("say", "two\nlines"), 10) == "said"
        assert wait_until(lambda: "│ two\n│ lines\n" in stderr())
        assert sb.request(("write", "epoch 1..."), 10) == "written"  # no newline: shown once it waits
        assert wait_until(lambda: stderr().endswith("│ epoch 1..."))
        assert sb.request(("say", " done"), 10) == "said"
        assert wait_until(lambda: stderr().endswith("│ epoch 1... done\n"))


def test_memory_bomb_under_the_limit():
    limits = Limits(memory_mb=500, own_pids=False)
    with started(limits=limits) as sb:
        assert sb.request(("alloc", True), 20) == "MemoryError"
    died = ended(started(limits=limits), ("alloc", False), 20)
    assert died.status.startswith("raised MemoryError: Unable to allocate")
    assert died.status.endswith("(its memory limit is 500 MB)")


# ---------------------------------------------------------------- what it starts


@pytest.mark.parametrize("act", [("popen", False), ("popen", True), ("daemon", None), ("fork_loop", None)])
def test_nothing_it_started_survives_close(act):
    sb = started()
    pid = sb.request(act, 10)
    assert alive(pid)
    if act[0] == "fork_loop":
        assert wait_until(lambda: len(marked()) > 20)
    sb.close()
    assert not alive(pid) and not alive(sb.pid) and marked() == []


def test_a_fork_at_import_is_killed_too():
    sb = started("fork_at_import")
    child = sb.recv(10)
    assert alive(child)
    assert sb.request(("echo", "still serving"), 10) == "still serving"
    sb.close()
    assert not alive(child)


def test_a_forked_copy_of_the_evaluator_cannot_answer():
    with started() as sb:
        child = sb.request(("fork_copy", None), 10)
        assert child > 0  # the evaluator's reply; its copy (which got 0) sent nothing
        assert sb.request(("echo", "next"), 10) == "next"


def test_code_that_kills_its_parent_kills_only_the_supervisor(tmp_path):
    sb = started()
    died = ended(sb, ("kill_parent", None))
    assert died.status == ("lost its supervisor, killed by SIGKILL: the code killed backcheck's supervisor "
                           "process")
    child = int((tmp_path / "child").read_text())
    assert not alive(child) and not alive(sb.pid)


def test_code_that_closes_its_pipes_gets_a_clear_status():
    died = ended(started(), ("close_pipes", None))
    assert died.status == "closed backcheck's pipe"


def test_sweep_kills_what_an_unwatched_sandbox_left():
    sb = started()
    sleeper = sb.request(("popen", True), 10)
    os.kill(sb._proc.pid, signal.SIGKILL)  # as if the code had
    sb._proc.wait()
    assert sandbox.sweep() >= 1
    assert not alive(sleeper)
    sb.close()
    assert sb.status.startswith("lost its supervisor, killed by SIGKILL")


# ---------------------------------------------------------------- the caller's side


def test_ctrl_c_in_the_caller_then_close_leaves_nothing():
    sb = started()
    sleeper = sb.request(("popen", False), 10)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))  # what Ctrl-C sends
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            sb.request(("sleep", 100), 30)
    finally:
        timer.join()
        sb.close()
    assert not alive(sleeper) and not alive(sb.pid)
    assert sb.status == "stopped by backcheck while a request was under way"


def test_sandboxes_opened_from_several_threads_at_once():
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        with started() as sb:
            sleeper = sb.request(("popen", i % 2 == 0), 10)
            return sb.request(("echo", i), 10), sleeper

    with ThreadPoolExecutor(4) as pool:  # as grade --jobs 4 does
        results = list(pool.map(one, range(16)))
    assert [r for r, _ in results] == list(range(16))
    assert not any(alive(pid) for _, pid in results)


def _caller(tmp_path, body: str) -> subprocess.Popen:
    """A separate caller process (the CLI, say) that prints the sleeping child's pid."""
    script = textwrap.dedent(f"""
        import os, sys, time
        sys.path.insert(0, {str(HERE)!r})
        from backcheck.sandbox import Limits, Sandbox, become_subreaper, sweep
        sb = Sandbox("sandbox_targets:serve", None, Limits(preimport=(), own_pids=False))
        sb.start()
    """) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "SANDBOX_TEST_DIR": str(tmp_path)})


def test_a_caller_that_exits_without_close_leaves_nothing(tmp_path):
    caller = _caller(tmp_path, """
        print(sb.request(("popen", True), 10), flush=True)
        raise KeyboardInterrupt
    """)
    sleeper = int(caller.stdout.readline())
    caller.wait(10)
    assert not alive(sleeper)


def test_a_caller_killed_outright_leaves_nothing(tmp_path):
    caller = _caller(tmp_path, """
        print(sb.request(("popen", True), 10), flush=True)
        time.sleep(100)
    """)
    sleeper = int(caller.stdout.readline())
    caller.kill()
    caller.wait(10)
    assert wait_until(lambda: not alive(sleeper))  # the supervisor saw its control socket close


def test_a_subreaper_caller_reaps_what_outlived_the_supervisor(tmp_path):
    caller = _caller(tmp_path, """
        become_subreaper()
        try:
            sb.request(("kill_parent", None), 10)
        except Exception as exc:
            status = exc.status
        sb.close()
        mine = []
        for name in os.listdir("/proc"):
            try:
                stat = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            if int(fields[1]) == os.getpid():
                mine.append((int(name), fields[0]))
        import json
        print(json.dumps({"status": status, "children": mine, "sweep": sweep()}))
    """)
    out, _ = caller.communicate(timeout=20)
    said = json.loads(out)
    assert said["status"].startswith("lost its supervisor")
    assert said["children"] == [] and said["sweep"] == 0  # no zombies, no leftovers
    assert not alive(int((tmp_path / "child").read_text()))


def test_the_working_directory_is_the_limits(tmp_path):
    (tmp_path / "data.txt").write_text("rows")
    with started(limits=Limits(preimport=(), own_pids=False, cwd=str(tmp_path))) as sb:
        assert sb.request(("cwd", "data.txt"), 10) == (str(tmp_path), "rows")


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="a mount namespace needs root")
@pytest.mark.parametrize("own_pids", [False, True])
def test_confined_code_writes_only_in_its_folder(tmp_path, own_pids):
    """As root, Limits.writable leaves every other file system read-only to the code, and only to it."""
    (tmp_path / "work").mkdir()
    inside, beside, far = tmp_path / "work" / "mine", tmp_path / "graders.csv", Path.cwd() / "overwritten-by-code"
    with started(limits=Limits(preimport=(), own_pids=own_pids, writable=str(tmp_path / "work"))) as sb:
        found = sb.request(("write_files", [str(inside), str(beside), str(far)]), 10)
        visible = sb.request(("visible_pids", None), 10)
    if own_pids:  # /proc is its namespace's: no grader to find, to read the argv of, or to signal
        assert os.getpid() not in visible and max(visible) < 100
    assert found == {str(inside): "ok", str(beside): "EROFS", str(far): "EROFS",
                     str(tmp_path / "work" / "tmp" / "scratch"): "ok"}  # TMPDIR is inside the folder
    assert inside.read_text() == "from the code" and not beside.exists() and not far.exists()
    beside.write_text("the caller still writes")  # the caller's view is unchanged


# ---------------------------------------------------------------- another user


@ROOT_ONLY
def test_as_nobody_the_code_cannot_write_or_signal(tmp_path):
    folder = tmp_path / "roots"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    limits = Limits(preimport=(), own_pids=False, user="nobody")
    sb = started(limits=limits)
    assert sb.notes == []
    found = sb.request(("who", (str(folder), os.getpid())), 10)
    assert found == {"uid": 65534, "write": "PermissionError", "kill supervisor": "PermissionError",
                     "signal grader": "PermissionError"}
    os.kill(sb._proc.pid, signal.SIGKILL)  # the parent-death signal survived the change of user
    assert wait_until(lambda: not alive(sb.pid))


@ROOT_ONLY
def test_auto_user_switches_only_when_nobody_can_read_python():
    sb = Sandbox("sandbox_targets:serve", None, Limits(user="auto", own_pids=False))
    readable = all(sandbox._readable_by(p, 65534, 65534) for p in sandbox._needed_paths(sb.limits))
    assert (sb.credentials == (65534, 65534)) == readable
    assert (sb.notes == []) == readable
    if not readable:
        assert "the code runs as root, not as nobody" in sb.notes[0]


def test_not_root_a_named_user_changes_nothing_and_says_so(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    sb = Sandbox("sandbox_targets:serve", None, Limits(user="nobody", own_pids=False))
    assert sb.credentials is None
    assert sb.notes == ["the code runs as this user, not as nobody: only root can switch users"]
    assert Sandbox("sandbox_targets:serve", None, Limits(user="auto", own_pids=False)).notes == []


def test_readable_by_follows_the_mode_bits(tmp_path):
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "a", 0o711)
    assert sandbox._readable_by(str(inner), 12345, 12345) == sandbox._readable_by(str(tmp_path), 12345, 12345)
    os.chmod(tmp_path / "a", 0o700)
    assert not sandbox._readable_by(str(inner), 12345, 12345)


def test_the_module_imports_no_numpy_and_nothing_of_backcheck_but_errors():
    tree = ast.parse((HERE.parent / "backcheck" / "sandbox.py").read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name for n in top if isinstance(n, ast.Import) for a in n.names} | \
        {n.module for n in top if isinstance(n, ast.ImportFrom)}
    assert "numpy" not in names
    assert {n for n in names if n.startswith("backcheck")} == {"backcheck.errors"}


@pytest.mark.skipif(os.geteuid() != 0 or not sys.platform.startswith("linux"), reason="a PID namespace needs root")
def test_in_its_own_pid_namespace_the_code_cannot_signal_the_caller():
    """The code is told the caller's pid and tries it: in its own PID namespace no such process exists."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        with started(limits=Limits(preimport=())) as sb:
            assert sb.request(("kill_pid", victim.pid), 10) == "ProcessLookupError"
            # not the namespace's first process, to which the kernel delivers only handled signals
            assert sb.request(("pid", None), 10) == 2
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
