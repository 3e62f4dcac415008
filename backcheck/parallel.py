"""``--jobs N``: the entries of an exhaustive check probed by N processes at once.

The process running the check is one of the N; the other N - 1 are fresh interpreters
(``python -c``), each loading the code under test once and then probing whatever chunks of
entries it is sent. Why fresh interpreters and not ``multiprocessing``: ``fork`` would copy a
process that has imported the user's code and started BLAS threads (unsafe), and ``spawn`` /
``forkserver`` re-import the parent's ``__main__``, which is the user's own script when
``verify`` is called from one without an ``if __name__ == "__main__":`` guard; a ``-c`` child
imports nothing but backcheck, speaks the same length-prefixed pickles on a private pipe as the
check's own child process, can have its prints silenced at the file-descriptor level, and dies
with its parent (``PR_SET_PDEATHSIG`` on Linux, a watchdog elsewhere), so ``check.timeout``
still holds: when the check's process is stopped, its workers stop too.

Identical results whatever N: every worker installs the parent's parameter values bit for bit and
must reproduce the parent's loss exactly before it gets work; each entry is probed by exactly the
same arithmetic wherever it runs; chunks are put back in order. A worker that cannot reproduce
the loss (nondeterministic code) is retired and its share done here, with a note.
"""

from __future__ import annotations

import os
import pickle
import queue
import struct
import subprocess
import sys
import threading

import numpy as np

from backcheck import numgrad
from backcheck.errors import BackcheckError, InternalError
from backcheck.measure import measure_for

WORKER = "from backcheck.runner import worker_main; worker_main()"
CHUNK_MIN = 32  # entries per message at least: a message costs about as much as a few loss calls
CHUNKS_PER_JOB = 8  # chunks per process and parameter, so a slow process does not hold up the rest


def send(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def recv(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


class Worker:
    """One worker process, started at once so that it loads the code while the check goes on."""

    def __init__(self, job, show_output: bool):
        self.proc = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=None if show_output else subprocess.DEVNULL)
        send(self.proc.stdin, ("job", job, os.getpid()))
        self.ready: bool | None = None

    def handshake(self, values: tuple) -> bool:
        """Send the parameters; True when the worker's loss there is bit for bit ours."""
        if self.ready is None:
            try:
                send(self.proc.stdin, ("values",) + values)
                kind, value = recv(self.proc.stdout)
                self.ready = kind == "ready" and bool(value)
            except (EOFError, OSError, pickle.UnpicklingError):
                self.ready = False
        return self.ready

    def probe(self, slot_key: str, indices: np.ndarray, method: str, eps: float):
        send(self.proc.stdin, ("probe", slot_key, indices, method, eps))
        kind, value = recv(self.proc.stdout)
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        if self.ready is None:  # never used, maybe still loading the code: no need to wait for it
            self.proc.kill()
            self.proc.wait()
            return
        try:
            send(self.proc.stdin, ("stop",))
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(2)


class Pool:
    """N - 1 workers plus this process."""

    def __init__(self, jobs: int, job, show_output: bool = False):
        self.workers = [Worker(job, show_output) for _ in range(max(0, jobs - 1))]
        self.values: tuple = ()
        self.retired = 0

    def start(self, binding, f0: float, loss_dtype: np.dtype) -> None:
        """The parameter values every worker must take over (sent with its first task)."""
        self.values = ({s.key: np.array(a) for s, a in binding.arrays().items()}, f0, np.dtype(loss_dtype).str)

    def close(self) -> None:
        for w in self.workers:
            w.close()
        self.workers = []

    @property
    def jobs(self) -> int:
        return len(self.workers) + 1


class PoolMeasure:
    """A measure whose large requests are split into chunks over the pool's processes."""

    def __init__(self, pool: Pool, local):
        self.pool, self.local = pool, local

    def entries(self, slot, x, indices, method: str, eps: float) -> numgrad.EntryProbes:
        indices = np.asarray(indices, dtype=np.intp)
        n_chunks = min(CHUNKS_PER_JOB * self.pool.jobs, len(indices) // CHUNK_MIN)
        if not self.pool.workers or n_chunks < 2:
            return self.local.entries(slot, x, indices, method, eps)
        chunks = np.array_split(indices, n_chunks)
        todo: queue.Queue = queue.Queue()
        for i in range(len(chunks)):
            todo.put(i)
        done: dict = {}
        failed: dict = {}
        stop = threading.Event()

        def run(compute) -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    done[i] = compute(chunks[i])
                except (EOFError, OSError, pickle.UnpicklingError):  # a worker that died: its chunk goes back
                    todo.put(i)
                    return
                except BaseException as exc:  # noqa: BLE001 - raised again below, in chunk order
                    failed[i] = exc
                    stop.set()
                    return

        threads = []
        for w in self.pool.workers:
            if w.ready is False:
                continue

            def remote(w=w):
                if w.handshake(self.pool.values):
                    run(lambda c: w.probe(slot.key, c, method, eps))
                else:
                    self.pool.retired += 1

            t = threading.Thread(target=remote, daemon=True)
            t.start()
            threads.append(t)
        run(lambda c: self.local.entries(slot, x, c, method, eps))
        for t in threads:
            t.join()
        if failed:
            raise failed[min(failed)]  # the error a single process would have met first
        # Chunks whose worker died or retired after taking them: done here.
        for i in range(len(chunks)):
            if i not in done:
                done[i] = self.local.entries(slot, x, chunks[i], method, eps)
        return _concat([done[i] for i in range(len(chunks))])


def _concat(parts: list) -> numgrad.EntryProbes:
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
    return numgrad.EntryProbes(cat("indices"), cat("central"), cat("plus"), cat("minus"), cat("noise"),
                               parts[0].f0, sum(p.calls for p in parts))


# ---------------------------------------------------------------- the worker side


def die_with_parent(parent: int) -> None:
    """Stop when the process that started us stops (it may be killed at check.timeout)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass

    def watch() -> None:
        import time

        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    if os.getppid() != parent:
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


def serve(binding, inbox, wire) -> None:
    """Answer the parent's messages until it says stop: take over its parameter values, prove the
    loss is reproduced, then probe the chunks it sends."""
    slots = {s.key: s for s in binding.slots}
    measure = None
    while True:
        try:
            message = recv(inbox)
        except EOFError:
            return
        kind = message[0]
        if kind == "stop":
            return
        try:
            if kind == "values":
                _, values, f0, loss_dtype = message
                arrays = binding.arrays()
                for key, value in values.items():
                    np.copyto(arrays[slots[key]], value)
                mine = binding.loss()
                measure = measure_for(binding, f0, np.dtype(loss_dtype))
                send(wire, ("ready", mine == f0))
            elif kind == "probe":
                _, key, indices, method, eps = message
                s = slots[key]
                send(wire, ("done", measure.entries(s, binding.arrays()[s], indices, method, eps)))
        except (BackcheckError, numgrad.NotComplex) as exc:
            send(wire, ("error", exc))
        except Exception as exc:  # noqa: BLE001 - a bug in backcheck, reported by the parent
            import traceback

            send(wire, ("error", InternalError(f"a --jobs worker failed: {exc}\n{traceback.format_exc()}")))
