"""Entry functions for tests/test_sandbox.py: a server of small hostile acts, run in the evaluator.

Each request is (act, argument); the reply is what the act returns. An act that raises lets the
exception out of the entry, as code under test would.
"""

import os
import signal
import subprocess
import sys
import time


def serve(channel, job):
    while True:
        request = channel.recv()
        if request is None:
            return
        act, arg = request
        channel.send(ACTS[act](channel if act == "huge_frame" else arg))


def fork_at_import(channel, job):
    import sandbox_forking  # noqa: F401 - forks a sleeping child when imported

    channel.send(sandbox_forking.CHILD)
    serve(channel, job)


def job(channel, job):
    channel.send(job)


def _segfault(_):
    import ctypes

    return ctypes.string_at(0)


def _recurse(limit):
    if limit:
        sys.setrecursionlimit(limit)

    def down(n):  # through map(), so that each level takes C stack too
        return list(map(down, [n + 1]))

    return down(0)


def _stdin(_):
    read = sys.stdin.read()
    try:
        input()
    except EOFError:
        return read, "EOFError"
    return read, "no EOFError"


def _print(megabytes):
    line = "x" * 1023 + "\n"
    sys.stdout.write(line * (megabytes * 1024))
    print("the last line")
    sys.stdout.flush()
    return "printed"


def _say(text):
    print(text)
    return "said"


def _write(text):
    sys.stdout.write(text)
    sys.stdout.flush()
    return "written"


def _alloc(catch):
    import numpy as np

    try:
        return float(np.ones(10**9).sum())  # 8 GB
    except MemoryError:
        if not catch:
            raise
        return "MemoryError"


def _popen(new_session):
    return subprocess.Popen(["sleep", "100"], start_new_session=new_session).pid


def _daemon(_):
    """The classic double fork: the grandchild is orphaned, in a session of its own."""
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        pid = os.fork()
        if pid == 0:
            time.sleep(100)
            os._exit(0)
        os.write(w, str(pid).encode())
        os._exit(0)
    os.close(w)
    return int(os.read(r, 100))


def _fork_loop(_):
    """A process that never stops forking: its children sleep, half of them in new sessions."""
    pid = os.fork()
    if pid == 0:
        n = 0
        while True:
            n += 1
            if os.fork() == 0:
                if n % 2:
                    os.setsid()
                time.sleep(100)
                os._exit(0)
            time.sleep(0.002)
    return pid


def _fork_copy(_):
    return os.fork()  # both copies reply: only the evaluator's reply may arrive


def _kill_parent(_):
    child = subprocess.Popen(["sleep", "100"]).pid
    with open(os.path.join(os.environ["SANDBOX_TEST_DIR"], "child"), "w") as f:
        f.write(str(child))
    os.kill(os.getppid(), signal.SIGKILL)
    time.sleep(100)


def _kill_pid(pid):
    """Signal a process by its number (the caller's, which the job gave away): the result, or the error."""
    try:
        os.kill(pid, signal.SIGKILL)
        return "killed"
    except OSError as exc:
        return type(exc).__name__


def _close_pipes(_):
    os.closerange(3, 1024)
    time.sleep(100)


def _cwd(name):
    with open(name) as f:
        return os.getcwd(), f.read()


def _who(job):
    """What the unprivileged user may not do: write in root's folder, signal its parents."""
    folder, grader = job
    found = {"uid": os.getuid()}
    for what, act in (("write", lambda: open(os.path.join(folder, "x"), "w")),
                      ("kill supervisor", lambda: os.kill(os.getppid(), signal.SIGKILL)),
                      ("signal grader", lambda: os.kill(grader, 0))):
        try:
            act()
            found[what] = "allowed"
        except PermissionError:
            found[what] = "PermissionError"
    return found


def _write_files(paths):
    """Try to create each file: what happened to each, by errno name ("ok" when it was written)."""
    import errno
    import tempfile

    found = {}
    for path in paths + [os.path.join(tempfile.gettempdir(), "scratch")]:
        try:
            with open(path, "w") as f:
                f.write("from the code")
            found[path] = "ok"
        except OSError as exc:
            found[path] = errno.errorcode[exc.errno]
    return found


class _System:
    def __reduce__(self):
        return (os.system, ("touch " + os.path.join(os.environ["SANDBOX_TEST_DIR"], "forged"),))


def _huge_frame(channel):
    """A frame header that claims 100 GB, written straight to the reply pipe."""
    import struct

    os.write(channel._w, struct.pack("<IQ", 0, 100 << 30))
    time.sleep(100)


def _raise(kind):
    raise {"KeyboardInterrupt": KeyboardInterrupt, "SystemExit": SystemExit, "ValueError": ValueError,
           "GeneratorExit": GeneratorExit}[kind]("from the code")


ACTS = {
    "echo": lambda x: x,
    "pid": lambda _: os.getpid(),
    "sleep": time.sleep,
    "exit": sys.exit,
    "os_exit": os._exit,
    "raise": _raise,
    "segfault": _segfault,
    "recurse": _recurse,
    "stdin": _stdin,
    "print": _print,
    "say": _say,
    "write": _write,
    "write_files": _write_files,
    "visible_pids": lambda _: sorted(int(n) for n in os.listdir("/proc") if n.isdigit()),
    "alloc": _alloc,
    "popen": _popen,
    "daemon": _daemon,
    "fork_loop": _fork_loop,
    "fork_copy": _fork_copy,
    "kill_parent": _kill_parent,
    "kill_pid": _kill_pid,
    "close_pipes": _close_pipes,
    "cwd": _cwd,
    "who": _who,
    "forge": lambda _: _System(),
    "huge_frame": _huge_frame,
}
