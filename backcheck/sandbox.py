"""The processes that run the code under test, and the pipe that talks to them.

Three processes: the caller (which never imports user code), a small **supervisor** started as
``python -c`` in a session of its own, and the **evaluator** it forks. The evaluator imports the
``preimport`` modules, takes the job, applies the ``Limits`` (memory, working directory,
unprivileged user) and calls ``entry(channel, job)``, which answers the caller's requests. The
supervisor is a child subreaper: every process the evaluator starts, double-forked daemons
included, stays under it. When the evaluator ends, or when the caller closes the control socket
(``close()``, a timeout, or the caller dying), it freezes and kills that whole tree, reaps it and
reports how the evaluator ended. Code that kills the supervisor itself is caught by a marker every
sandbox process carries in its environment (``BACKCHECK_SANDBOX``): ``close()`` and ``sweep()``
kill whatever still carries it.

Messages are pickles (protocol 5) framed by their lengths; a NumPy array's data travels as an
out-of-band buffer, written with one ``writev`` and read straight into place. What comes back from
the evaluator is read by an unpickler that only builds the classes of the modules the caller
accepts (``accept``), NumPy arrays and plain data: a forged pickle cannot run code in the caller.

Measured by ``benchmarks/sandbox_latency.py`` (medians of three runs; Linux VM, 2 cores, Python
3.11, NumPy 2.4): a round trip of a tiny message 0.02 ms; of a 400 KB float64 array, there and
back, 0.2 ms (about 3.5 GB/s); of 4 MB, 2-5 ms. Start to first reply 0.10-0.12 s, or 0.25-0.34 s
with NumPy preimported; ``close()`` 6-12 ms, of which the kernel's teardown of a killed NumPy
process is about 6 ms.

POSIX only; the whole tree is watched on Linux (``/proc``, ``prctl``). Elsewhere the supervisor
kills the evaluator's process group and what ``ps`` shows under itself.
"""

from __future__ import annotations

import atexit
import io
import itertools
import os
import pickle
import select
import signal
import struct
import sys
import time
from dataclasses import dataclass

from backcheck.errors import BackcheckError, InternalError

MARKER = "BACKCHECK_SANDBOX"  # environment variable that every sandbox process carries
TAIL_BYTES = 4096  # output kept for error messages
CLOSE_WAIT = 2.0  # seconds close() waits for the supervisor's report before killing it
PIPE_EOF_WAIT = 1.0  # after the evaluator's pipe closes: how long its end is waited for
MAX_REPLY = 1 << 28  # bytes: a longer reply is refused before it is read (256 MB)
PIPE_GONE = 75  # the evaluator's exit code when the code closed the evaluator's own pipe
_HEAD = struct.Struct("<IQ")  # out-of-band buffers, pickle bytes
_IOV_MAX = 512
_PR_SET_PDEATHSIG, _PR_SET_CHILD_SUBREAPER = 1, 36
_LINUX = sys.platform.startswith("linux")


@dataclass(frozen=True)
class Limits:
    memory_mb: int | None = None  # address-space limit (RLIMIT_AS) of the evaluator process
    user: str | None = None  # run the code as this user when we are root ("auto": nobody if it can
    # read the Python installation, else no change and a note); None: no change
    cwd: str | None = None  # working directory of the evaluator (scripts open data by relative path)
    show_output: bool = False  # the code's stdout/stderr forwarded live to our stderr, marked "│ "
    preimport: tuple = ("numpy",)  # modules imported before privileges are dropped
    own_pids: bool = True  # as root on Linux: the evaluator in a PID namespace of its own, where the
    # caller has no number (code cannot signal it); off, the evaluator sees the system's pids
    writable: str | None = None  # as root on Linux: the only folder the code may write (TMPDIR is made
    # inside it); every other file system is read-only to the code, whichever user it runs as
    hide: tuple = ()  # with ``writable``: folders the code finds empty (an empty read-only tmpfs over them)

class SandboxError(BackcheckError):
    """The evaluator did not answer. ``status`` says how it ended, in words fit for one line."""

    kind = "exception"

    def __init__(self, message: str, status: str, output_tail: str = ""):
        super().__init__(message)
        self.status, self.output_tail = status, output_tail

    def __reduce__(self):
        return (self.__class__, (self.message, self.status, self.output_tail))


class SandboxTimeout(SandboxError):
    """No reply in time; the evaluator and everything it started were killed."""

    kind = "timeout"


class SandboxDied(SandboxError):
    """The evaluator ended, stopped answering (its pipe reached EOF) or sent what cannot be read."""


# ---------------------------------------------------------------- frames (both sides)


def _frame(message) -> list:
    buffers: list = []
    data = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = _HEAD.pack(len(raws), len(data)) + struct.pack(f"<{len(raws)}Q", *(r.nbytes for r in raws))
    return [head, data, *raws]


def _write_all(fd: int, parts: list, wait=None) -> None:
    """Write every part; ``wait()`` blocks until a non-blocking ``fd`` can take more."""
    views = [memoryview(p) for p in parts if len(p)]
    while views:
        try:
            n = os.writev(fd, views[:_IOV_MAX])
        except BlockingIOError:
            wait()
            continue
        while n:
            if n >= len(views[0]):
                n -= len(views.pop(0))
            else:
                views[0], n = views[0][n:], 0


class _Reader:
    """Frames from ``fd``; array data is read straight into its own buffer."""

    def __init__(self, fd: int, wait=None, limit: int | None = None):
        self.fd, self.wait, self.limit, self.buf = fd, wait, limit, bytearray()

    def read(self) -> tuple[bytearray, list]:
        self._fill(_HEAD.size)
        nbuf, size = _HEAD.unpack_from(self.buf)
        start = _HEAD.size + 8 * nbuf
        if self.limit is not None and (nbuf > 1 << 16 or size > self.limit):
            raise pickle.UnpicklingError(f"a frame of {size} bytes, over the limit of {self.limit}")
        self._fill(start)
        lengths = struct.unpack_from(f"<{nbuf}Q", self.buf, _HEAD.size)
        if self.limit is not None and size + sum(lengths) > self.limit:
            raise pickle.UnpicklingError(f"a frame of {size + sum(lengths)} bytes, over the limit of {self.limit}")
        del self.buf[:start]
        return self._take(size), [self._take(n) for n in lengths]

    def _fill(self, n: int) -> None:
        while len(self.buf) < n:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                self.wait()
                continue
            if not data:
                raise EOFError
            self.buf += data

    def _take(self, n: int) -> bytearray:
        have = min(n, len(self.buf))
        out = bytearray(n)
        out[:have] = self.buf[:have]
        del self.buf[:have]
        view = memoryview(out)[have:]
        while view:
            try:
                got = os.readv(self.fd, [view])
            except BlockingIOError:
                self.wait()
                continue
            if not got:
                raise EOFError
            view = view[got:]
        return out


class _Untrusted(pickle.Unpickler):
    """Builds plain data, NumPy arrays and the classes of the ``accept`` modules, nothing else."""

    SAFE = {("builtins", n) for n in ("complex", "set", "frozenset", "bytearray", "slice", "range")} | {
        (m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")} | {
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"), ("numpy", "ndarray"),
        ("numpy", "dtype"), ("collections", "OrderedDict"), ("pathlib", "PurePosixPath"), ("pathlib", "PosixPath")}

    def __init__(self, file, buffers, accept: tuple):
        super().__init__(file, buffers=buffers)
        self.accept = accept

    def find_class(self, module, name):
        if (module, name) in self.SAFE:
            return super().find_class(module, name)
        if "." not in name and (module in self.accept or module == "builtins"):
            found = super().find_class(module, name)
            # A class defined there, not one it imported (numpy.memmap would write files).
            if isinstance(found, type) and found.__module__ == module and (
                    module != "builtins" or issubclass(found, BaseException)):
                return found
        raise pickle.UnpicklingError(f"it refers to {module}.{name}")


# ---------------------------------------------------------------- the evaluator's side


class Channel:
    """What ``entry(channel, job)`` gets: ``recv()`` a request (None at EOF), ``send(reply)``.

    A copy of the evaluator made by the code's own ``os.fork()`` reads EOF and sends nothing, so
    that only the evaluator answers."""

    def __init__(self, read_fd: int, write_fd: int):
        self._w, self._pid = write_fd, os.getpid()
        self._reader = _Reader(read_fd)

    def recv(self):
        if os.getpid() != self._pid:
            return None
        try:
            data, buffers = self._reader.read()
        except EOFError:
            return None
        except OSError as exc:
            raise ChannelGone(exc) from None
        return pickle.loads(data, buffers=buffers)

    def send(self, message) -> None:
        if os.getpid() == self._pid:
            try:
                _write_all(self._w, _frame(message))
            except OSError as exc:
                raise ChannelGone(exc) from None


class ChannelGone(Exception):
    """The evaluator's own end of the pipe is gone: the code closed file descriptors it did not open."""


# ---------------------------------------------------------------- the caller's side


class Sandbox:
    """One evaluator and its supervisor. ``entry`` is "package.module:function"; in the evaluator
    ``function(channel, job)`` is called and serves requests until it returns.

    ``accept``: modules whose classes a reply may contain (besides plain data and NumPy arrays).
    ``max_reply``: bytes a reply may take; a longer one is refused before the caller allocates it.
    ``output``: where shown output goes (default: ``sys.stderr`` at the time of writing).
    ``notes``: what the caller may want to show, e.g. why ``user="auto"`` changed nothing."""

    def __init__(self, entry: str, job, limits: Limits = Limits(), *,
                 accept: tuple = ("backcheck.errors", "backcheck.results", "backcheck.numgrad"),
                 max_reply: int = MAX_REPLY, output=None):
        if ":" not in entry:
            raise ValueError(f"entry must be 'package.module:function', got {entry!r}")
        self.entry, self.job, self.limits, self.accept, self.output = entry, job, limits, accept, output
        self.max_reply = max_reply
        self.notes: list[str] = []
        self.credentials = _resolve_user(limits, self.notes)  # (uid, gid) or None
        self.marker = f"{_token()}.{next(_serial)}"
        self.pid: int | None = None  # the evaluator's (in a PID namespace: its init's), once the supervisor said it
        self.entered = False  # the evaluator got as far as calling entry
        self._proc = None
        self._closed = False
        self._report: dict | None = None
        self._gone = False  # the supervisor closed the control socket
        self._why: str | None = None  # why we stopped it (timeout, a closed pipe...)
        self._status: str | None = None
        self._broken = False
        self._tail = bytearray()
        self._ctl_buf = b""

    # -------------------------------------------------- lifecycle

    def start(self) -> None:
        import json
        import socket
        import subprocess
        import threading

        if os.name != "posix":
            raise InternalError("backcheck's sandbox needs a POSIX system (Linux, macOS, BSD)")
        if self._proc is not None:
            raise RuntimeError("this sandbox was started already")
        self._ctl, ctl_child = socket.socketpair()
        req_r, self._req = os.pipe()
        self._rep, rep_w = os.pipe()
        self._out, out_w = os.pipe()
        for fd in (self._req, self._rep, self._out):
            _grow_pipe(fd)
        config = {"ctl": ctl_child.fileno(), "req": req_r, "rep": rep_w, "entry": self.entry,
                  "path": [os.path.abspath(p) if p else os.getcwd() for p in sys.path],
                  "memory_mb": self.limits.memory_mb, "credentials": self.credentials, "cwd": self.limits.cwd,
                  "show_output": self.limits.show_output, "preimport": list(self.limits.preimport),
                  "own_pids": self.limits.own_pids, "writable": self.limits.writable,
                  "hide": [os.path.abspath(p) for p in self.limits.hide]}
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _SUPERVISOR, json.dumps(config)], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=out_w, pass_fds=(ctl_child.fileno(), req_r, rep_w),
                start_new_session=True, env={**os.environ, MARKER: self.marker})
        except BaseException:
            for fd in (self._req, self._rep, self._out):
                os.close(fd)
            self._ctl.close()
            raise
        finally:
            for fd in (req_r, rep_w, out_w):
                os.close(fd)
            ctl_child.close()
        _live.add(self)
        _sessions.add(self._proc.pid)
        for fd in (self._req, self._rep, self._ctl.fileno()):
            os.set_blocking(fd, False)
        self._deadline: float | None = None
        self._reader = _Reader(self._rep, lambda: self._wait(self._rep, readable=True), self.max_reply)
        self._pump = threading.Thread(target=self._forward, name="sandbox-output", daemon=True)
        self._pump.start()
        self.send(self.job)

    def request(self, message, timeout: float | None):
        """Send, then wait for the reply. Raises SandboxTimeout or SandboxDied."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._send(message, deadline, timeout)
        return self._recv(deadline, timeout)

    def send(self, message, timeout: float | None = None) -> None:
        self._send(message, None if timeout is None else time.monotonic() + timeout, timeout)

    def recv(self, timeout: float | None):
        return self._recv(None if timeout is None else time.monotonic() + timeout, timeout)

    def _send(self, message, deadline, timeout) -> None:
        parts = _frame(message)
        self._guarded(lambda: _write_all(self._req, parts, lambda: self._wait(self._req, readable=False)),
                      deadline, timeout)

    def _recv(self, deadline, timeout):
        data, buffers = self._guarded(self._reader.read, deadline, timeout)
        try:
            return _Untrusted(io.BytesIO(data), buffers, self.accept).load()
        except Exception as exc:  # noqa: BLE001 - whatever the frame held, it is not a reply
            self._why = f"sent a message backcheck refuses to read ({exc})"
            raise self._died() from None

    def close(self) -> None:
        """Stop the evaluator and every process it started, and wait for them to be gone."""
        if self._proc is None or self._closed:
            return
        self._closed = True
        try:
            if self._report is None and not self._gone:
                try:
                    self._ctl.shutdown(1)  # SHUT_WR: the supervisor reads EOF; its report still comes back
                except OSError:
                    pass
            self._await_report(time.monotonic() + CLOSE_WAIT)
            try:
                self._proc.wait(CLOSE_WAIT)
            except Exception:  # noqa: BLE001 - a hung supervisor is killed with its session
                _signal_group(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        finally:
            if self._report is None and self.pid:  # the supervisor was lost: its evaluator dies on its own
                deadline = time.monotonic() + 1.0
                while _running(self.pid) and time.monotonic() < deadline:
                    time.sleep(0.001)
            if not (self._report or {}).get("complete"):  # else the supervisor killed the whole tree
                _kill_marked(lambda m: m == self.marker)
            _live.discard(self)
            for fd in (self._req, self._rep):
                _close_fd(fd)
            self._ctl.close()
            self._pump.join(1.0)
            if self._status is None:
                self._status = self._describe()

    def __enter__(self):
        if self._proc is None:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -------------------------------------------------- what is known

    @property
    def status(self) -> str | None:
        """How the evaluator ended, for a one-line message; None while it runs."""
        if self._status is None and (self._report is not None or self._gone):
            return self._describe()
        return self._status

    @property
    def output_tail(self) -> str:
        text = bytes(self._tail).decode("utf-8", errors="replace")
        return text.lstrip("\ufffd")

    # -------------------------------------------------- waiting

    def _guarded(self, io, deadline: float | None, timeout: float | None):
        """Run a read or write of the data pipes until ``deadline``, turning every way the
        evaluator can fail into SandboxTimeout or SandboxDied."""
        if self._proc is None:
            raise RuntimeError("start() the sandbox first")
        if self._broken or self._status is not None:
            raise self._died()
        self._deadline = deadline
        try:
            return io()
        except _Expired:
            self._why = f"was killed at timeout ({timeout:g} s)"
            self.close()
            raise SandboxTimeout(f"no reply within {timeout:g} s; the code was stopped", self.status,
                                 self.output_tail) from None
        except _Ended:
            raise self._died() from None
        except (EOFError, BrokenPipeError):
            # The evaluator's end of the pipe closed: it ended (its report follows) or closed it.
            self._await_report(time.monotonic() + PIPE_EOF_WAIT)
            if self._report is None and not self._gone:
                self._why = "closed backcheck's pipe"
            raise self._died() from None
        except pickle.UnpicklingError as exc:
            self._why = f"sent a message backcheck cannot read ({exc})"
            raise self._died() from None
        except BaseException:  # e.g. KeyboardInterrupt mid-frame: the pipe is out of step now
            self._broken = True
            self._why = "stopped by backcheck while a request was under way"
            raise

    def _died(self) -> SandboxDied:
        self.close()
        return SandboxDied(f"the process running the code {self.status}", self.status, self.output_tail)

    def _wait(self, fd: int, readable: bool) -> None:
        """Until ``fd`` is ready; raises _Ended when the supervisor reports or goes, _Expired at the deadline."""
        ctl = self._ctl.fileno()
        while True:
            remaining = None if self._deadline is None else self._deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise _Expired
            ready = _ready([ctl, fd] if readable else [ctl], [] if readable else [fd], remaining)
            if fd in ready:
                return
            if ctl in ready:
                self._read_ctl()
                if self._report is not None or self._gone:
                    raise _Ended

    def _await_report(self, deadline: float) -> None:
        while self._report is None and not self._gone:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not _ready([self._ctl.fileno()], [], remaining):
                return
            self._read_ctl()

    def _read_ctl(self) -> None:
        import json

        try:
            data = self._ctl.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._gone = True
            return
        self._ctl_buf += data
        *lines, self._ctl_buf = self._ctl_buf.split(b"\n")
        for line in lines:
            said = json.loads(line)
            self.pid = said.get("pid", self.pid)
            self.entered = self.entered or said.get("entered", False)
            if "report" in said:
                self._report = said["report"]

    # -------------------------------------------------- output

    def _forward(self) -> None:
        """Drain the code's stdout/stderr: keep the tail; with show_output, pass lines on, marked."""
        show, midline, pending = self.limits.show_output, False, b""
        while True:
            if show and pending and not _ready([self._out], [], 0.1):
                self._show(pending, midline)  # a partial line left waiting: show it now
                midline, pending = True, b""
                continue
            try:
                data = os.read(self._out, 1 << 16)
            except OSError:
                data = b""
            if not data:
                break
            self._tail += data
            del self._tail[:-TAIL_BYTES]
            if show:
                *lines, pending = (pending + data).split(b"\n")
                for line in lines:
                    self._show(line + b"\n", midline)
                    midline = False
        if show and pending:
            self._show(pending + b"\n", midline)
        os.close(self._out)

    def _show(self, data: bytes, midline: bool) -> None:
        stream = self.output or sys.stderr
        try:
            mark = "\x1b[2m│\x1b[0m " if stream.isatty() else "│ "
            stream.write(("" if midline else mark) + data.decode("utf-8", errors="replace"))
            stream.flush()
        except (OSError, ValueError):  # our stderr closed: the output is dropped
            pass

    # -------------------------------------------------- status

    def _describe(self) -> str | None:
        report = self._report
        if report is None:
            if not self._gone and self._why is None:
                return None
            code = self._proc.poll() if self._proc is not None else None
            if code is not None and code < 0:
                return (f"lost its supervisor, killed by {_signal_name(-code)}: the code killed backcheck's "
                        "supervisor process")
            if self._why:
                return self._why
            return f"lost its supervisor, which failed (exit code {code}); see the output"
        if report["reason"] == "closed" and self._why:
            return self._why
        notes = [n for n in report["notes"] if n]
        if report["reason"] == "closed":
            said = "was stopped by backcheck"
        elif report["signal"]:
            said = f"was killed by {_signal_name(report['signal'])}"
        elif notes:
            said = notes[-1]
        elif report["exit"] == PIPE_GONE:
            said = ("closed backcheck's pipe: the code closed file descriptors it did not open "
                    "(os.close or os.closerange?)")
        else:
            said = f"ended with exit code {report['exit']}"
        if self._why:  # e.g. it closed the pipe, then ended
            said = f"{self._why}, then {said}"
        # An address-space limit ends in MemoryError or a crash, never in SIGKILL (the code's own kill,
        # another process's, or the system's out-of-memory killer)
        lost = report["signal"] not in (None, 0, signal.SIGKILL) or any("MemoryError" in n for n in notes)
        if self.limits.memory_mb and lost and report["reason"] != "closed":
            said += f" (its memory limit is {self.limits.memory_mb} MB)"
        return said


def _ready(readable: list, writable: list, timeout: float | None) -> set:
    """The fds that are ready (an fd at EOF or with an error counts as ready). poll, not select:
    ``pass_fds`` keeps the caller's fd numbers, which may be above select's limit of 1024."""
    poller = select.poll()
    for fd in readable:
        poller.register(fd, select.POLLIN)
    for fd in writable:
        poller.register(fd, select.POLLOUT)
    wait = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return {fd for fd, _ in poller.poll(wait)}


class _Expired(Exception):
    pass


class _Ended(Exception):
    pass


def _signal_name(n: int) -> str:
    try:
        name = signal.Signals(n).name
    except ValueError:
        return f"signal {n}"
    what = signal.strsignal(n) or ""
    return f"{name} ({what.split(':')[0].lower()})" if what and name in ("SIGSEGV", "SIGBUS", "SIGFPE",
                                                                          "SIGILL", "SIGABRT") else name


# ---------------------------------------------------------------- who runs the code


def credentials(user: str | None, cwd: str | None = None) -> tuple:
    """((uid, gid) the code would run as, or None for no change; notes saying why not), for a caller
    that prepares files for that user (``grade`` hands each submission's copy to it)."""
    notes: list = []
    return _resolve_user(Limits(user=user, cwd=cwd), notes), notes


def _resolve_user(limits: Limits, notes: list):
    """(uid, gid) to drop to in the evaluator, or None; why not goes into ``notes``."""
    if limits.user is None:
        return None
    if os.name != "posix" or os.geteuid() != 0:
        if limits.user != "auto":
            notes.append(f"the code runs as this user, not as {limits.user}: only root can switch users")
        return None
    import pwd

    name = "nobody" if limits.user == "auto" else limits.user
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if limits.user == "auto":
            notes.append("the code runs as root: this system has no user 'nobody'")
            return None
        raise ValueError(f"no such user: {name!r}") from None
    if limits.user == "auto":
        blocked = [p for p in _needed_paths(limits) if not _readable_by(p, entry.pw_uid, entry.pw_gid)]
        if blocked:
            notes.append(f"the code runs as root, not as {name}: {name} cannot read {blocked[0]} (Python or the "
                         "code's folder), so the code could not import its modules; run in a container for "
                         "more isolation (docs/isolation.md)")
            return None
    return entry.pw_uid, entry.pw_gid


def _needed_paths(limits: Limits) -> list:
    """The folders the code's imports and relative paths read after the switch."""
    import importlib.util

    paths = [os.path.dirname(os.__file__), os.path.dirname(os.path.realpath(sys.executable)),
             os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    for name in limits.preimport:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            paths.append(os.path.dirname(spec.origin))
    if limits.cwd:
        paths.append(os.path.abspath(limits.cwd))
    return paths


def _readable_by(path: str, uid: int, gid: int) -> bool:
    """Whether ``uid`` can list ``path`` and pass through every folder above it (mode bits only)."""
    path = os.path.realpath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        folder = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(folder)
        except OSError:
            return False
        shift = 6 if st.st_uid == uid else 3 if st.st_gid == gid else 0
        need = 0o5 if i == len(parts) else 0o1
        if (st.st_mode >> shift) & need != need:
            return False
    return True


# ---------------------------------------------------------------- leftovers


_serial = itertools.count(1)
_live: set = set()  # started, not closed
_sessions: set = set()  # every supervisor's pid, which is its session id
_tokens: dict = {}


def _token() -> str:
    """This process's part of the marker (a forked copy of this process gets its own)."""
    pid = os.getpid()
    if pid not in _tokens:
        _tokens[pid] = f"{pid}-{os.urandom(4).hex()}"
    return _tokens[pid]


def sweep() -> int:
    """Kill leftover processes started by sandboxes of this process; returns how many.
    Those of a sandbox whose supervisor still runs are not leftovers: it watches them."""
    prefix = _token() + "."
    open_ = {s.marker for s in list(_live) if s._proc is not None and s._proc.poll() is None}
    return _kill_marked(lambda m: m.startswith(prefix) and m not in open_)


def become_subreaper() -> None:
    """Make orphans of our descendants come back to this process, so that ``sweep`` finds and reaps
    what the code started after killing its supervisor (Linux; a no-op elsewhere)."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def _kill_marked(match) -> int:
    """Freeze, then kill every process whose marker ``match``es; reap those that became our children."""
    if not _LINUX:
        return 0
    me, killed = os.getpid(), set()
    for _ in range(100):
        found = {pid for pid, marker in _markers() if match(marker) and pid != me} - killed
        if not found:
            break
        while found:  # freeze before killing: a stopped process cannot fork
            for pid in found:
                _signal(pid, signal.SIGSTOP)
            killed |= found
            found = {pid for pid, marker in _markers() if match(marker) and pid != me} - killed
        for pid in killed:
            _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 1.0  # a kill is delivered asynchronously: wait until it took
    while any(_running(pid) for pid in killed) and time.monotonic() < deadline:
        time.sleep(0.001)
    _reap_orphans(killed)  # now that they are dead, their orphans have come back to us
    return len(killed)


def _running(pid: int) -> bool:
    return _table_row(pid)[3] not in ("Z", "X")


def _markers():
    """(pid, marker) of every process that carries one. A process in the middle of an execve has no
    environment for a moment: those with none are read again for a few milliseconds."""
    unclear = _pids()
    for attempt in range(4):
        if not unclear:
            return
        if attempt:
            time.sleep(0.002)
        again = []
        for pid in unclear:
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    env = f.read()
            except OSError:
                continue
            at = env.find(MARKER.encode() + b"=")
            if at >= 0 and (at == 0 or env[at - 1] == 0):
                yield pid, env[at + len(MARKER) + 1:].split(b"\0", 1)[0].decode()
            elif not env and _running(pid) and _table_row(pid)[0] not in (0, 2):  # not a kernel thread
                again.append(pid)
        unclear = again


def _table_row(pid: int) -> tuple:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return (0, 0, 0, "X")
    fields = stat[stat.rfind(b")") + 2:].split()
    return int(fields[1]), int(fields[2]), int(fields[3]), fields[0].decode()


def _reap_orphans(killed: set) -> None:
    """Reap our children that were sandbox processes (we are a subreaper): the ones just killed and
    zombies in a sandbox's session. Never a supervisor, whose Popen reaps it."""
    me, deadline = os.getpid(), time.monotonic() + 1.0
    supervisors = {s._proc.pid for s in list(_live) if s._proc is not None}  # other threads add to _live
    for pid, (ppid, _, sid, state) in _table().items():
        if ppid != me or pid in supervisors or not (pid in killed or state == "Z" and sid in _sessions):
            continue
        while time.monotonic() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.001)


def _close_fd(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


def _grow_pipe(fd: int) -> None:
    """1 MB pipes: a 400 KB array goes through in one write (Linux; elsewhere the default)."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (OSError, ImportError):
        pass


def _prctl(option: int, value: int) -> bool:
    if not _LINUX:
        return False
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except OSError:
        pass


def _signal_group(pgid: int, sig) -> None:
    try:
        os.killpg(pgid, sig)
    except OSError:
        pass


# ---------------------------------------------------------------- the process table


def _pids() -> list:
    return [int(n) for n in os.listdir("/proc") if n.isdigit()]


def _table() -> dict:
    """{pid: (ppid, pgid, sid, state)} of every process we can see."""
    table = {}
    if not _LINUX:
        import subprocess

        out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid=,sess=,stat="], capture_output=True, text=True)
        for line in out.stdout.splitlines():
            f = line.split()
            if len(f) >= 5:
                table[int(f[0])] = (int(f[1]), int(f[2]), int(f[3]), f[4][0])
        return table
    for pid in _pids():
        row = _table_row(pid)
        if row[3] != "X":
            table[pid] = row
    return table


def _descendants(root: int) -> set:
    """Every process below ``root``: from each thread's ``children`` file where the kernel has
    them (reads only the tree), else from the whole table."""
    if os.path.exists(f"/proc/{root}/task/{root}/children"):
        found, todo = set(), [root]
        while todo:
            pid = todo.pop()
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                        kids = [int(k) for k in f.read().split()]
                except OSError:
                    continue
                todo.extend(k for k in kids if k not in found)
                found.update(kids)
        return found
    children: dict = {}
    for pid, (ppid, *_) in _table().items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


# ---------------------------------------------------------------- the supervisor


_SUPERVISOR = ("import sys, json; c = json.loads(sys.argv[1]); sys.path[:] = c['path']; "
               "from backcheck.sandbox import _supervise; _supervise(c)")


def _supervise(config: dict) -> None:
    """Fork the evaluator, wait for it to end or for the caller to close the control socket, then
    kill and reap everything under us and report how the evaluator ended."""
    ctl = config["ctl"]
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    note_r, note_w = os.pipe()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    stop = []
    signal.signal(signal.SIGCHLD, lambda *_: None)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(1))
    status_r = status_w = None
    if config.get("own_pids") and _new_pid_namespace():
        status_r, status_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        for fd in (ctl, note_r, wake_r, wake_w, status_r):
            if fd is not None:
                os.close(fd)
        if status_w is not None:
            _init(config, note_w, status_w)  # never returns
        _evaluate(config, note_w)  # never returns
    for fd in (note_w, config["req"], config["rep"], status_w):
        if fd is not None:
            os.close(fd)
    _say(ctl, {"pid": pid})
    notes, status, reason = _Heard(), None, "ended"
    while status is None:
        r = _ready([ctl, wake_r, note_r] if notes.open else [ctl, wake_r], [], None)
        if note_r in r:
            notes.take(note_r)
        if ctl in r and not _ctl_open(ctl) or stop:
            reason = "closed"
            _signal_group(pid, signal.SIGKILL)
            _signal(pid, signal.SIGKILL)
        if wake_r in r or reason == "closed":
            _drain(wake_r)
            status = _reap(pid, block=reason == "closed")
    while notes.open and _ready([note_r], [], 0):
        notes.take(note_r)
    complete = _kill_tree(pid)
    if status_r is not None:  # the namespace's init passes the evaluator's own wait status on
        status = _evaluator_status(status_r, status)
    code, sig = (None, os.WTERMSIG(status)) if os.WIFSIGNALED(status) else (os.WEXITSTATUS(status), None)
    _say(ctl, {"entered": notes.entered, "report": {"reason": reason, "exit": code, "signal": sig,
                                                    "notes": notes.last,
                                                    "complete": complete}})
    os._exit(0)


def _init(config: dict, note_w: int, status_w: int) -> None:
    """PID 1 of the evaluator's namespace. The kernel delivers to a namespace's first process only
    the signals it handles, so the code must not be that process (its ``os.kill`` of itself or of
    its group would do nothing, and the check would go on as if it had not been sent): this small
    init forks the evaluator, reaps every orphan of the namespace, and writes the evaluator's wait
    status to the supervisor before it ends, which ends everything left in the namespace."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)  # with the supervisor
    try:
        evaluator = os.fork()
    except OSError:
        os._exit(71)
    if evaluator == 0:
        os.close(status_w)
        _evaluate(config, note_w)  # never returns
    for fd in (note_w, config["req"], config["rep"]):
        _close_fd(fd)
    status = None
    while status is None:
        try:
            pid, got = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == evaluator:
            status = got
    if status is not None:
        try:
            os.write(status_w, struct.pack("<i", status))
        except OSError:
            pass
    os._exit(0)


def _evaluator_status(status_r: int, init_status: int) -> int:
    """The evaluator's wait status, as its init wrote it; the init's own when it wrote none (it was
    killed: the sandbox was closed)."""
    try:
        data = os.read(status_r, 4) if _ready([status_r], [], 0) else b""
    except OSError:
        data = b""
    os.close(status_r)
    return struct.unpack("<i", data)[0] if len(data) == 4 else init_status


def _say(ctl: int, what: dict) -> None:
    import json

    try:
        os.write(ctl, json.dumps(what).encode() + b"\n")
    except OSError:  # the caller is gone: nobody to tell
        pass


def _ctl_open(ctl: int) -> bool:
    try:
        return bool(os.read(ctl, 4096))
    except OSError:
        return False


class _Heard:
    """The evaluator's notes: whether it called entry, and its last few lines (bounded: the code
    can write to this pipe too)."""

    def __init__(self):
        self.open, self.entered, self.last, self.partial = True, False, [], b""

    def take(self, fd: int) -> None:
        data = os.read(fd, 4096)
        if not data:
            self.open = False
            return
        *done, self.partial = (self.partial + data).split(b"\n")
        self.partial = self.partial[-4096:]
        for line in done:
            text = line.decode(errors="replace").strip()[:300]
            if text == "ready":
                self.entered = True
            elif text:
                self.last = (self.last + [text])[-5:]


def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(evaluator: int, block: bool):
    """Reap what has ended; the evaluator's wait status once it has, else None."""
    found = None
    while found is None:
        try:
            pid, status = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return 0
        if pid == 0:
            return None
        if pid == evaluator:
            found = status
    return found


def _kill_tree(evaluator: int) -> bool:
    """Kill everything below us, a fork loop included, and reap it; False if some process would
    not die in time. As a subreaper, we are the parent of every orphan of the tree: no children
    left means no descendants left."""
    me, deadline = os.getpid(), time.monotonic() + 5.0
    while time.monotonic() < deadline:
        _signal_group(evaluator, signal.SIGKILL)  # one kernel walk over the evaluator's group
        frozen: set = set()
        while True:  # then freeze whatever left the group (new sessions, new groups) before killing it
            new = _descendants(me) - frozen if _LINUX else set()
            if not new:
                break
            for pid in new:
                _signal(pid, signal.SIGSTOP)
            frozen |= new
        for pid in frozen:
            _signal(pid, signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return True
        time.sleep(0.0005)
    return False


# ---------------------------------------------------------------- the evaluator


def _evaluate(config: dict, note_w: int) -> None:
    """The forked evaluator: set up, take the job, drop what must be dropped, call entry."""
    supervisor = os.getppid()
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    note = _Notes(note_w)
    try:
        os.setpgid(0, 0)  # our own group: the supervisor kills it in one call
        _die_with(supervisor)
        import fcntl

        high = {name: fcntl.fcntl(config[name], fcntl.F_DUPFD_CLOEXEC, 100) for name in ("req", "rep")}
        note.fd = fcntl.fcntl(note_w, fcntl.F_DUPFD_CLOEXEC, 100)
        for fd in (config["req"], config["rep"], note_w):
            os.close(fd)
        os.dup2(2, 1)  # fd 0 is /dev/null, fd 2 the output pipe
        if config["show_output"]:
            sys.stdout.reconfigure(line_buffering=True)
        import importlib
        import traceback  # noqa: F401 - imported while the installation is readable

        for name in config["preimport"]:
            try:
                importlib.import_module(name)
            except ImportError as exc:
                print(f"backcheck: could not preimport {name}: {exc}", file=sys.stderr)
        module, _, function = config["entry"].partition(":")
        entry = getattr(importlib.import_module(module), function)
        channel = Channel(high["req"], high["rep"])
        job = channel.recv()
        if config.get("writable"):
            _confine(config["writable"], config["credentials"], config.get("hide", ()))
        if config["cwd"]:
            os.chdir(config["cwd"])
        if config["memory_mb"]:
            _limit_memory(config["memory_mb"])
        if config["credentials"]:
            uid, gid = config["credentials"]
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            _die_with(supervisor)  # a change of user clears the parent-death signal
    except BaseException as exc:  # noqa: BLE001 - backcheck's side failed: say so and go
        note.write(f"failed to start: {type(exc).__name__}: {exc}")
        _print_exception()
        _exit(70)
    note.write("ready")
    code = 0
    try:
        entry(channel, job)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
        note.write(f"ended with exit code {code} (SystemExit)")
    except ChannelGone:
        code = PIPE_GONE  # its notes may have gone with the pipe: the exit code says it
    except BaseException as exc:  # noqa: BLE001 - KeyboardInterrupt and friends too
        note.write(f"raised {type(exc).__name__}: {exc}" if str(exc) else f"raised {type(exc).__name__}")
        _print_exception()
        code = 1
    if os.getpid() != channel._pid:  # a copy made by the code's os.fork(): end quietly
        os._exit(0)
    _exit(code)


class _Notes:
    """One-line notes to the supervisor, which puts the last one in the status."""

    def __init__(self, fd: int):
        self.fd = fd

    def write(self, text: str) -> None:
        try:
            os.write(self.fd, text.replace("\n", " ")[:300].encode(errors="replace") + b"\n")
        except OSError:
            pass


def _new_pid_namespace() -> bool:
    """Put our next child (the namespace's init, which forks the evaluator) in a PID namespace of its
    own, where no process outside it has a number: code that walks up its parents to kill the caller
    finds nothing to signal, and when the init ends the kernel ends everything inside. Linux, and root only (CAP_SYS_ADMIN);
    elsewhere nothing changes and the parent-death signal still stops the evaluator with us."""
    if not _LINUX or os.geteuid() != 0:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.unshare(0x20000000) == 0  # CLONE_NEWPID
    except (OSError, AttributeError):
        return False


CONFINED = "BACKCHECK_CONFINED"  # set in a confined evaluator's environment: its error messages say why a write failed
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = \
    1, 2, 4, 8, 32, 4096, 16384, 1 << 18


def _confine(folder: str, owner=None, hide=()) -> bool:
    """Make every file system read-only to this process and its children except ``folder``, in a
    mount namespace of its own (the caller's view does not change), with TMPDIR a fresh folder
    inside it, each ``hide`` folder empty (a read-only tmpfs over it: grade's submissions, which the
    code must not read) and /proc showing only this PID namespace. Linux and root only
    (CAP_SYS_ADMIN); where the kernel refuses, nothing changes and a line on stderr says so."""
    if not _LINUX or os.geteuid() != 0:
        return False
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]

    def mount(source, target, kind, flags) -> bool:
        return libc.mount(source and os.fsencode(source), os.fsencode(target), kind and kind.encode(), flags,
                          None) == 0

    folder = os.path.realpath(folder)
    if libc.unshare(0x00020000) != 0 or not mount(None, "/", None, _MS_REC | _MS_PRIVATE) \
            or not mount(folder, folder, None, _MS_BIND | _MS_REC):  # CLONE_NEWNS; the folder its own mount
        print("backcheck: the kernel refused a mount namespace: the code's writes are not confined", file=sys.stderr)
        return False
    import re

    with open("/proc/self/mountinfo", "rb") as f:  # field 5 is the mount point, with \040 for a space
        points = [os.fsdecode(re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m.group(1), 8)]), line.split()[4]))
                  for line in f]
    inside = folder.rstrip("/") + "/"
    refused = [p for p in points if p != folder and not p.startswith(inside)
               and not mount(None, p, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY)]
    if "/" in refused:
        print("backcheck: the root file system could not be made read-only: the code's writes are not confined",
              file=sys.stderr)
        return False
    mount("proc", "/proc", "proc", _MS_RDONLY | _MS_NOSUID | _MS_NODEV | _MS_NOEXEC)  # this namespace's
    for path in hide:
        if os.path.isdir(path) and not inside.startswith(os.path.realpath(path).rstrip("/") + "/"):
            mount("tmpfs", path, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV)
    tmp = os.path.join(folder, "tmp")
    os.makedirs(tmp, exist_ok=True)
    if owner:
        os.chown(tmp, *owner)
    os.environ.update({"TMPDIR": tmp, CONFINED: folder})
    import tempfile

    tempfile.tempdir = None
    return True


def _die_with(supervisor: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != supervisor:  # it died before the signal was armed
        os._exit(1)


def _limit_memory(mb: int) -> None:
    try:
        import resource

        limit = mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, ValueError, OSError):
        print("backcheck: this system does not limit a process's memory", file=sys.stderr)


def _print_exception() -> None:
    try:
        import traceback

        traceback.print_exc()
    except BaseException:  # noqa: BLE001 - e.g. stderr closed by the code
        pass


def _exit(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001
            pass
    os._exit(code & 0xFF)


@atexit.register
def _close_all_at_exit() -> None:
    for sandbox in list(_live):
        try:
            sandbox.close()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass
