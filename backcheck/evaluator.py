"""Evaluating the code under test on request: losses at planned parameter values, gradients, steps.

The judge (``gradcheck``, ``runner``) never calls the code under test itself: it asks an
``Evaluator``, in batches. A probe of k entries is one request, answered by 2k loss calls where
the code lives. ``LocalEvaluator`` answers from a binding in this process (backcheck's reference
network, whose entries are all evaluated in one stacked pass; the code under test inside the
sandboxed process that imported it; the Python API's callables); ``serve`` answers the same
requests over a channel, and ``RemoteEvaluator`` is the judge's proxy for that.

Every request leaves the parameters as they were, except ``set_values``, which moves the point
at which everything is evaluated. Losses of batch requests come back as float64 arrays that may
hold NaN or inf: the judge, which knows what each value was for, says what went wrong.
"""

from __future__ import annotations

import numpy as np

from backcheck.errors import BackcheckError, InternalError, UserCodeError

F64 = np.dtype(np.float64)


class Evaluator:
    """What the judge may ask. ``slots`` are the parameters; arrays are in the code's own shapes
    and dtypes; ``values()`` is a copy of the current point."""

    slots: list
    notes: list
    warnings: list  # (id, message)
    loss_calls = 0  # evaluations of the code's loss so far (each value of a batch request is one)
    gradient_calls = 0  # calls of the code's gradients or step

    def values(self) -> dict:
        raise NotImplementedError

    def set_values(self, values: dict) -> None:
        raise NotImplementedError

    def attach(self, X, Y, canonical) -> None:
        raise NotImplementedError

    def loss(self) -> float:
        raise NotImplementedError

    def entries(self, slot, idx, values) -> np.ndarray:
        """The loss with ``slot``'s entry ``idx[j]`` (flat) set to ``values[j]`` alone, for each j."""
        raise NotImplementedError

    def arrays(self, slot, arrays: list) -> np.ndarray:
        """The loss with ``slot``'s array replaced by each of ``arrays``."""
        raise NotImplementedError

    def blocks(self, slot, idx_list: list, val_list: list) -> np.ndarray:
        """The loss with the entries ``idx_list[j]`` of ``slot`` set to ``val_list[j]``, for each j."""
        raise NotImplementedError

    def complex_losses(self, slot, idx, steps) -> list:
        """The loss exactly as the code returns it with entry idx[j] moved by 1j * steps[j]."""
        raise NotImplementedError

    def gradient(self) -> dict:
        raise NotImplementedError

    def step_gradient(self, lr: float) -> dict:
        raise NotImplementedError

    @property
    def uses_step(self) -> bool:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LocalEvaluator(Evaluator):
    """Requests answered in this process by a binding (its live arrays are perturbed in place)."""

    def __init__(self, binding):
        self.binding = binding
        self.slots = list(binding.slots)
        self.notes = binding.notes
        self.warnings = binding.warnings
        self._reference = getattr(binding, "perturbed", None)  # backcheck's network: stacked evaluation
        self.fixed_lr = getattr(binding, "fixed_lr", None)
        code_X = getattr(binding, "code_X", None)  # binding by place: the code's own data
        self.code_data = None if code_X is None else (code_X, binding.code_Y)
        self.step_name = getattr(binding, "step_name", "step")
        self._live = binding.arrays()

    def _same_arrays(self) -> None:
        """The code must not replace its parameter arrays while its loss is evaluated: probes would then
        move arrays the code no longer reads."""
        now = self.binding.arrays()
        for s, a in self._live.items():
            if now[s] is not a:
                raise UserCodeError(f"the code replaced the array {s.code_name} while its loss was evaluated",
                                    self.binding.code.file.name if self.binding.code else None, kind="contract")

    # -- the point
    def values(self) -> dict:
        return {s: a.copy() for s, a in self.binding.arrays().items()}

    def set_values(self, values: dict) -> None:
        arrays = self.binding.arrays()
        for s, v in values.items():
            np.copyto(arrays[s], v, casting="unsafe")

    def attach(self, X, Y, canonical) -> None:
        self.binding.attach(X, Y, canonical=canonical)

    @property
    def uses_step(self) -> bool:
        return self.binding.uses_step

    @property
    def loss_dtype(self):
        return self.binding.loss_dtype

    # -- losses
    def loss(self) -> float:
        self.loss_calls += 1
        try:
            return self.binding.loss()
        except UserCodeError as exc:
            if exc.kind != "nan":
                raise
            raise UserCodeError(f"{exc.message} (call {self.loss_calls} of the loss)", exc.where,
                                kind="nan") from None

    def _loss(self) -> float:
        self.loss_calls += 1
        return self.binding.loss(finite=False)

    def entries(self, slot, idx, values) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.intp)
        x = self.binding.arrays()[slot]
        if self._reference is not None:
            self.loss_calls += len(idx)
            steps = np.asarray(values, dtype=F64) - x.reshape(-1)[idx].astype(F64)
            return np.real(self._reference(slot, idx, steps)).astype(F64)
        flat = x.reshape(-1) if x.flags.c_contiguous else x.flat
        out = np.empty(len(idx))
        loss = self._loss
        for j, (i, v) in enumerate(zip(idx.tolist(), np.asarray(values).tolist())):
            orig = flat[i]
            try:
                flat[i] = v
                out[j] = loss()
            finally:
                flat[i] = orig
        self._same_arrays()
        return out

    def arrays(self, slot, arrays: list) -> np.ndarray:
        x = self.binding.arrays()[slot]
        saved = x.copy()
        out = np.empty(len(arrays))
        try:
            for j, a in enumerate(arrays):
                np.copyto(x, a)
                out[j] = self._loss()
        finally:
            np.copyto(x, saved)
        return out

    def blocks(self, slot, idx_list: list, val_list: list) -> np.ndarray:
        x = self.binding.arrays()[slot]
        flat = x.reshape(-1) if x.flags.c_contiguous else x.flat
        out = np.empty(len(idx_list))
        for j, (idx, vals) in enumerate(zip(idx_list, val_list)):
            orig = np.array(flat[idx])
            try:
                flat[idx] = vals
                out[j] = self._loss()
            finally:
                flat[idx] = orig
        return out

    def complex_losses(self, slot, idx, steps) -> list:
        idx = np.asarray(idx, dtype=np.intp)
        if self._reference is not None:
            self.loss_calls += len(idx)
            return list(self._reference(slot, idx, 1j * np.asarray(steps, dtype=F64)))
        import warnings

        try:  # numpy >= 1.25
            from numpy.exceptions import ComplexWarning
        except ImportError:  # pragma: no cover - older numpy
            ComplexWarning = np.ComplexWarning
        x = self.binding.arrays()[slot]
        xc = x.astype(np.complex128)  # one complex copy per request, swapped in as the code's live array
        old = self.binding.swap(slot, xc)
        flat = xc.reshape(-1)
        out = []
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ComplexWarning)  # a cast to float is detected, not printed
                for i, h in zip(idx.tolist(), np.asarray(steps, dtype=F64).tolist()):
                    orig = flat[i]
                    try:
                        flat[i] = orig + 1j * h
                        self.loss_calls += 1
                        out.append(_plain_number(self.binding.raw_loss()))
                    finally:
                        flat[i] = orig
        finally:
            self.binding.swap(slot, old)
        return out

    # -- gradients
    def gradient(self) -> dict:
        self.gradient_calls += 1
        return dict(self.binding.analytic())

    def step_gradient(self, lr: float) -> dict:
        self.gradient_calls += 1
        return dict(self.binding.step_gradient(lr))

    def trace_backward(self, shapes, lr: float = 1e-6) -> list:
        """One gradient of the code (a step's at ``lr``), recorded line by line (binding.trace): what
        each statement of the code's files assigned, for the line pointer. [] for backcheck's own network."""
        from pathlib import Path

        from backcheck.binding.program import program_of
        from backcheck.binding.trace import record

        code = getattr(self.binding, "code", None)
        if code is None:
            return []

        def where_of(filename: str, line: int):
            program = program_of(filename)
            if program is None:
                return f"{Path(filename).name}:{line}", None
            cell = program.cell_of(line)
            return program.where(line), (cell.number, line - cell.first + 1) if cell is not None else None

        run = (lambda: self.binding.step_gradient(lr)) if self.uses_step else self.binding.analytic
        return record(run, code.file.parent, where_of, {tuple(s) for s in shapes})

    def close(self) -> None:
        close = getattr(self.binding, "close", None)
        if close is not None:
            close()


def _plain_number(value):
    """A complex-step loss as something that pickles and compares: a Python complex or float, or a
    description of what came back."""
    try:
        arr = np.asarray(value)
        if arr.size == 1 and np.issubdtype(arr.dtype, np.number):
            v = arr.reshape(-1)[0]
            return complex(v) if np.iscomplexobj(arr) else float(v)
    except Exception:  # noqa: BLE001 - whatever the code returned; described below
        pass
    return f"<{type(value).__name__}>"


# ---------------------------------------------------------------- over a channel

# The methods a remote judge may call, and whether the reply is a value.
REQUESTS = ("values", "set_values", "attach", "loss", "entries", "arrays", "blocks", "complex_losses",
            "gradient", "step_gradient", "trace_backward")


def serve(channel, evaluator: LocalEvaluator, check=None) -> None:
    """Answer requests ``(name, args)`` from ``channel`` until it closes or says stop. A reply is
    ``("ok", value)`` or ``("error", BackcheckError)``; ``check()`` runs after every request (e.g.
    that the code did not replace its arrays)."""
    while True:
        message = channel.recv()
        if message is None or message[0] == "stop":
            return
        name, args = message
        try:
            if name not in REQUESTS:
                raise InternalError(f"unknown request {name!r}")
            value = getattr(evaluator, name)(*args)
            if check is not None:
                check()
            reply = ("ok", value)
        except BackcheckError as exc:
            reply = ("error", exc)
        except BaseException as exc:  # noqa: BLE001 - the code's (raised in its files) or backcheck's
            reply = ("error", _blame(exc, evaluator, name))
        channel.send(reply)


def _blame(exc: BaseException, evaluator, request: str) -> BackcheckError:
    """An exception that escaped a request: the code's when it was raised in the code's files (a
    property, a dict subclass, an __eq__ of its own), else a bug in backcheck."""
    import traceback
    from pathlib import Path

    from backcheck.binding.calls import describe, user_where

    code = getattr(getattr(evaluator, "binding", None), "code", None)
    if code is not None:
        folder = code.file.parent.resolve()
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            try:
                inside = folder in Path(frame.filename).resolve().parents
            except OSError:
                inside = False
            if inside:
                return UserCodeError(f"the code raised {describe(exc)} while backcheck read its objects "
                                     f"({_REQUEST_WORDS.get(request, request)})", user_where(exc, code.file))
    if isinstance(exc, KeyboardInterrupt):
        return UserCodeError(f"the code raised KeyboardInterrupt ({_REQUEST_WORDS.get(request, request)})")
    return InternalError(f"the evaluator failed: {describe(exc)}\n{traceback.format_exc()}")


_REQUEST_WORDS = {"loss": "its loss", "entries": "loss calls of the probes", "arrays": "loss calls along directions",
                  "blocks": "loss calls of the search", "complex_losses": "complex-step loss calls",
                  "gradient": "its gradients", "step_gradient": "its step", "set_values": "setting the parameters",
                  "attach": "setting the data", "values": "reading the parameters"}


class RemoteEvaluator(Evaluator):
    """The judge's proxy for an evaluator in another process. ``request(message)`` sends one
    request and returns the reply (the transport enforces the time limit). The current values
    are mirrored here, so ``values()`` costs no round trip."""

    def __init__(self, request, description: dict):
        self._request = request
        self.slots = description["slots"]
        self.notes = description["notes"]
        self.warnings = description["warnings"]
        self._values = description["values"]
        self._uses_step = description["uses_step"]
        self.loss_dtype = np.dtype(description["loss_dtype"])
        self.fixed_lr = description["fixed_lr"]
        self.step_name = description["step_name"]
        self.code_data = description.get("code_data")
        self.requests = 0

    def _call(self, name: str, *args):
        self.requests += 1
        kind, value = self._request((name, args))
        if kind == "error":
            raise value
        return value

    def values(self) -> dict:
        return {s: a.copy() for s, a in self._values.items()}

    def set_values(self, values: dict) -> None:
        self._call("set_values", values)
        for s, v in values.items():
            np.copyto(self._values[s], v, casting="unsafe")

    def attach(self, X, Y, canonical) -> None:
        self._call("attach", X, Y, canonical)

    @property
    def uses_step(self) -> bool:
        return self._uses_step

    def loss(self) -> float:
        self.loss_calls += 1
        return self._call("loss")

    def entries(self, slot, idx, values) -> np.ndarray:
        self.loss_calls += len(idx)
        return self._call("entries", slot, idx, values)

    def arrays(self, slot, arrays: list) -> np.ndarray:
        self.loss_calls += len(arrays)
        return self._call("arrays", slot, arrays)

    def blocks(self, slot, idx_list: list, val_list: list) -> np.ndarray:
        self.loss_calls += len(idx_list)
        return self._call("blocks", slot, idx_list, val_list)

    def complex_losses(self, slot, idx, steps) -> list:
        self.loss_calls += len(idx)
        return self._call("complex_losses", slot, idx, steps)

    def gradient(self) -> dict:
        self.gradient_calls += 1
        return self._call("gradient")

    def step_gradient(self, lr: float) -> dict:
        self.gradient_calls += 1
        return self._call("step_gradient", lr)

    def trace_backward(self, shapes, lr: float = 1e-6) -> list:
        self.gradient_calls += 1
        return self._call("trace_backward", shapes, lr)


def describe(evaluator: LocalEvaluator) -> dict:
    """What a remote judge needs to know of a bound code before it asks anything."""
    return {"slots": evaluator.slots, "notes": list(evaluator.notes), "warnings": list(evaluator.warnings),
            "values": evaluator.values(), "uses_step": evaluator.uses_step,
            "loss_dtype": np.dtype(evaluator.loss_dtype).str, "fixed_lr": evaluator.fixed_lr,
            "step_name": evaluator.step_name, "code_data": evaluator.code_data}


def nonfinite_message(what: str, value: float) -> UserCodeError:
    return UserCodeError(f"{what} gave the loss {value}: it is not finite there", kind="nan")


# ---------------------------------------------------------------- the sandboxed process


def serve_code(channel, job) -> None:
    """The entry of the process that runs the code under test (``sandbox.Sandbox``): import and
    bind it on the first request ("open"), reply with its description, then answer requests."""
    from backcheck.binding import calls, open_code

    config, defaults = job
    calls.Caller.interrupts_are_code = True  # no terminal reaches this process: an interrupt is the code's
    message = channel.recv()
    if message is None:
        return
    try:
        evaluator = LocalEvaluator(open_code(config, defaults))
    except BackcheckError as exc:
        channel.send(("error", exc))
        return
    except KeyboardInterrupt:
        channel.send(("error", UserCodeError("importing the file raised KeyboardInterrupt", config.code.file.name)))
        return
    channel.send(("ok", describe(evaluator)))
    serve(channel, evaluator)
