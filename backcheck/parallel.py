"""``--jobs N``: the entries of an exhaustive check evaluated by N processes at once.

``PoolEvaluator`` is an ``Evaluator`` whose large ``entries`` requests are split into chunks over
its own evaluator and N - 1 workers, each a process that loaded the code under test once and
serves the same requests (``evaluator.serve``). Every other request goes to its own evaluator;
those that move the point (``set_values``, ``attach``) go to the workers too, so every process
evaluates at the same parameters.

Identical results whatever N: a worker takes over the parameter values bit for bit and must
reproduce the loss exactly before it gets work; each entry is evaluated by exactly the same
arithmetic wherever it runs; chunks are put back in order. A worker that cannot reproduce the loss
(nondeterministic code) is retired and its share done here, with a note.
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

from backcheck.evaluator import Evaluator

WORKER = "from backcheck.runner import worker_main; worker_main()"
CHUNK_MIN = 32  # entries per message at least: a message costs about as much as a few loss calls
CHUNKS_PER_JOB = 8  # chunks per process and request, so a slow process does not hold up the rest


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
        self.lock = threading.Lock()

    def request(self, message):
        with self.lock:
            send(self.proc.stdin, message)
            return recv(self.proc.stdout)

    def handshake(self, values: dict, f0: float, data) -> bool:
        """Send the data and the parameters; True when the worker's loss there is bit for bit ours."""
        if self.ready is None:
            try:
                if data is not None:
                    self.request(("attach", data))
                self.request(("set_values", (values,)))
                kind, mine = self.request(("loss", ()))
                self.ready = kind == "ok" and mine == f0
            except (EOFError, OSError, pickle.UnpicklingError):
                self.ready = False
        return self.ready

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


class PoolEvaluator(Evaluator):
    """An evaluator plus N - 1 workers sharing its large ``entries`` requests."""

    def __init__(self, jobs: int, job, show_output: bool = False):
        self.workers = [Worker(job, show_output) for _ in range(max(0, jobs - 1))]
        self.jobs = len(self.workers) + 1
        self.local = None
        self.retired = 0
        self.used = False
        self._data = None

    def bind(self, local: Evaluator) -> "PoolEvaluator":
        """The evaluator of this process, which answers everything the workers do not."""
        self.local = local
        self.slots, self.notes, self.warnings = local.slots, local.notes, local.warnings
        return self

    def retire(self) -> None:
        """No workers after all (the check is too short for them to pay off)."""
        for w in self.workers:
            w.close()
        self.workers = []

    def close(self) -> None:
        self.retire()

    # -- forwarded
    def values(self):
        return self.local.values()

    def loss(self):
        return self.local.loss()

    def arrays(self, slot, arrays):
        return self.local.arrays(slot, arrays)

    def blocks(self, slot, idx_list, val_list):
        return self.local.blocks(slot, idx_list, val_list)

    def complex_losses(self, slot, idx, steps):
        return self.local.complex_losses(slot, idx, steps)

    def gradient(self):
        return self.local.gradient()

    def step_gradient(self, lr):
        return self.local.step_gradient(lr)

    @property
    def uses_step(self):
        return self.local.uses_step

    @property
    def loss_dtype(self):
        return self.local.loss_dtype

    # -- kept in step on every process
    def set_values(self, values) -> None:
        self.local.set_values(values)
        for w in self.workers:
            w.ready = None if w.ready else w.ready  # the next use hands the new point over

    def attach(self, X, Y, canonical) -> None:
        self.local.attach(X, Y, canonical)
        self._data = (X, Y, canonical)
        for w in self.workers:
            w.ready = None if w.ready else w.ready

    # -- shared
    def entries(self, slot, idx, values) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.intp)
        values = np.asarray(values)
        n_chunks = min(CHUNKS_PER_JOB * self.jobs, len(idx) // CHUNK_MIN)
        if not self.workers or n_chunks < 2:
            return self.local.entries(slot, idx, values)
        self.used = True
        bounds = np.linspace(0, len(idx), n_chunks + 1).astype(int)
        chunks = [(bounds[i], bounds[i + 1]) for i in range(n_chunks)]
        todo: queue.Queue = queue.Queue()
        for i in range(n_chunks):
            todo.put(i)
        done: dict = {}
        failed: dict = {}
        stop = threading.Event()
        point = self.local.values()
        f0 = self.local.loss()

        def run(compute) -> None:
            while not stop.is_set():
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                lo, hi = chunks[i]
                try:
                    done[i] = compute(idx[lo:hi], values[lo:hi])
                except (EOFError, OSError, pickle.UnpicklingError):  # a worker that died: its chunk goes back
                    todo.put(i)
                    return
                except BaseException as exc:  # noqa: BLE001 - raised again below, in chunk order
                    failed[i] = exc
                    stop.set()
                    return

        def remote_compute(w):
            def compute(ix, vals):
                kind, value = w.request(("entries", (slot, ix, vals)))
                if kind == "error":
                    raise value
                return value
            return compute

        threads = []
        for w in self.workers:
            if w.ready is False:
                continue

            def remote(w=w):
                if w.handshake(point, f0, self._data):
                    run(remote_compute(w))
                else:
                    self.retired += 1

            t = threading.Thread(target=remote, daemon=True)
            t.start()
            threads.append(t)
        run(lambda ix, vals: self.local.entries(slot, ix, vals))
        for t in threads:
            t.join()
        if failed:
            raise failed[min(failed)]  # the error a single process would have met first
        for i, (lo, hi) in enumerate(chunks):  # chunks whose worker died or retired after taking them
            if i not in done:
                done[i] = self.local.entries(slot, idx[lo:hi], values[lo:hi])
        return np.concatenate([done[i] for i in range(n_chunks)])


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


class StreamChannel:
    """The worker's side of its pipes, for ``evaluator.serve``."""

    def __init__(self, inbox, wire):
        self.inbox, self.wire = inbox, wire

    def recv(self):
        try:
            return recv(self.inbox)
        except EOFError:
            return None

    def send(self, message) -> None:
        send(self.wire, message)
