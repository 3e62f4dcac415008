"""``--jobs N``: the entries of an exhaustive check evaluated by N sandboxed processes at once.

``PoolEvaluator`` is an ``Evaluator`` whose large ``entries`` requests are split into chunks over
its own evaluator and N - 1 workers, each a sandboxed process that imports the code once
(``runner.opening.open_sandboxed``) and serves the same requests. Every other request goes to its own
evaluator; the workers take over the current point (the data, then the parameter values) before
they get work, so every process evaluates at the same parameters.

Identical results whatever N: a worker takes over the parameter values bit for bit and must
reproduce the loss exactly before it gets work; each entry is evaluated by exactly the same
arithmetic wherever it runs; chunks are put back in order. A worker that cannot reproduce the loss
(nondeterministic code) is retired and its share done by the others, with a note.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from backcheck.errors import BackcheckError
from backcheck.evaluator import Evaluator

CHUNK_MIN = 32  # entries per message at least: a message costs about as much as a few loss calls
CHUNKS_PER_JOB = 8  # chunks per process and request, so a slow process does not hold up the rest


class Worker:
    """One worker process, importing the code from the moment it is made."""

    def __init__(self, opening):
        self.opening = opening
        self.ev = None
        self.ready: bool | None = None  # None: not yet handed the current point

    def handshake(self, values: dict, f0: float, data) -> bool:
        """Hand over the data and the parameters; True when the worker's loss there is bit for bit ours."""
        if self.ready is None:
            try:
                if self.ev is None:
                    self.ev = self.opening.ready()
                if data is not None:
                    self.ev.attach(*data)
                self.ev.set_values(values)
                self.ready = self.ev.loss() == f0
            except BackcheckError:
                self.ready = False
        return self.ready

    def close(self) -> None:
        (self.ev or self.opening).close()


class PoolEvaluator(Evaluator):
    """An evaluator plus N - 1 workers sharing its large ``entries`` requests."""

    def __init__(self, jobs: int, open_worker):
        self.workers = [Worker(open_worker()) for _ in range(max(0, jobs - 1))]
        self.jobs = len(self.workers) + 1
        self.local = None
        self.retired = 0
        self.used = False
        self._data = None

    def bind(self, local: Evaluator, data: tuple) -> "PoolEvaluator":
        """The main evaluator, which answers everything the workers do not, and the data (X, Y,
        canonical) it was given."""
        self.local, self._data = local, data
        self.slots, self.notes, self.warnings = local.slots, local.notes, local.warnings
        return self

    @property
    def loss_calls(self) -> int:
        return self.local.loss_calls + sum(w.ev.loss_calls for w in self.workers if w.ev is not None)

    @property
    def gradient_calls(self) -> int:
        return self.local.gradient_calls + sum(w.ev.gradient_calls for w in self.workers if w.ev is not None)

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

    def trace_backward(self, shapes, lr=1e-6):
        return self.local.trace_backward(shapes, lr)

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
                except BackcheckError as exc:
                    if compute is not local:
                        todo.put(i)  # a worker that failed: its chunk goes back, and this process meets it itself
                        return
                    failed[i] = exc
                    stop.set()
                    return
                except BaseException as exc:  # noqa: BLE001 - raised again below, in chunk order
                    failed[i] = exc
                    stop.set()
                    return

        def remote_compute(w):
            return lambda ix, vals: w.ev.entries(slot, ix, vals)

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
        local = lambda ix, vals: self.local.entries(slot, ix, vals)  # noqa: E731
        run(local)
        for t in threads:
            t.join()
        if failed:
            raise failed[min(failed)]  # the error a single process would have met first
        for i, (lo, hi) in enumerate(chunks):  # chunks whose worker died or retired after taking them
            if i not in done:
                done[i] = self.local.entries(slot, idx[lo:hi], values[lo:hi])
        return np.concatenate([done[i] for i in range(n_chunks)])
