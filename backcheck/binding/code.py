"""The user's code bound as the config's code: section says: functions, an object, or a chain of
layer objects, called per batch or per example."""

from __future__ import annotations

import inspect

import numpy as np

from backcheck.binding.base import Binding
from backcheck.binding.calls import (DTYPES, Scope, describe, expr_text, assign, evaluate, lookup,
                                     resolve)
from backcheck.binding.loading import Loaded
from backcheck.binding.params import Slot
from backcheck.errors import ConfigError, UserCodeError
from backcheck.spec import WILDCARD, Call, Config, Sequence, parse_expr, parse_path


class CodeBinding(Binding):
    """The user's code as the config's code: section binds it: functions, an object, or a chain
    of layer objects; called per batch or per example."""

    def __init__(self, config: Config, loaded: Loaded, default_params: dict | None):
        super().__init__(config, loaded.module)
        code = self.code
        self.file_name = code.file.name  # for messages; read on every call
        self.notes += loaded.notes
        self.warnings = list(loaded.warnings)
        self.slots = [Slot(k + 1, role, entry[role], entry.get("orient") if role == "W" else None)
                      for k, entry in enumerate(code.params) for role in ("W", "b") if role in entry]
        net = config.network
        hidden = list(net.widths[1:-1])
        self.scope = Scope(module=self.module, sizes=list(net.widths), n_input=net.input,
                           n_output=net.widths[-1], hidden=hidden, seed=config.check.seed, **DTYPES)
        self.chain = code.chain
        self.owner = None  # the object whose methods bare call names are (object style)
        if code.model is not None:
            self.model = self._invoke(code.model, (), self.scope, module_level=True)
            self.scope["model"] = self.owner = self.model
        for name, item in code.objects:
            self.scope[name] = self._invoke(item, (), self.scope, module_level=True) if isinstance(item, Call) \
                else evaluate(item, self.scope, self.file_name)
        if self.chain is not None:
            self._build_chain()
        if code.init is not None:
            init_args = () if code.init.args is not None else self._init_args(code.init)
            params = self._invoke(code.init, init_args, self.scope, module_level=True)
            self.scope["params"] = params
        elif code.model is None and self.chain is None:
            self.scope["params"] = self._created_params(default_params)
        self.live = {}
        self.originals = {}  # slot -> the code's own object, where backcheck put a float copy in its place
        for s in self.slots:
            arr = self._resolve_param(s, "binding")
            if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.floating) \
                    or not arr.flags.writeable:
                self.originals[s] = arr
                arr = np.array(arr, dtype=arr.dtype if isinstance(arr, np.ndarray) and
                               np.issubdtype(arr.dtype, np.floating) else np.float64)
                self._assign(s, arr)
            self.live[s] = arr
        self.initial = {s: a.copy() for s, a in self.live.items()}
        self.fixed_lr = self._fixed_lr()
        self.copy_inputs = False  # becomes True once the code writes into X or Y
        self.canonical = None  # (X, Y) in backcheck's layout, for loss: spec
        if code.spec_loss:
            self.notes.append("loss: spec: the numeric gradient runs through network: at the code's parameters "
                              "(the code has no loss function of its own)")
        if code.per_example != "batch":
            self.notes.append(f"per_example: the code is called once per example"
                              f"{' (1-D arrays)' if code.per_example == 'vector' else ''}; its gradients are "
                              "averaged over the batch")
        if self.fixed_lr:
            self.notes.append(f"the step's learning rate is the code's own {self.fixed_lr:g}: gradients are read "
                              "at that rate only")

    # -- set-up helpers
    def _init_args(self, call) -> tuple:
        fn = self._callable(call, module_level=True, scope=self.scope)
        try:
            sig = inspect.signature(fn)
        except (TypeError, ValueError):
            return ()
        required = [p for p in sig.parameters.values()
                    if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        takes_any = any(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
                        for p in sig.parameters.values())
        return ("$seed",) if required or (takes_any and len(sig.parameters) == 1) else ()

    def _created_params(self, default_params) -> dict:
        """Parameters backcheck creates for function-style code without init: a dict by name.
        Parameters at other places (``$module.weights['W1']``: the code's own globals) are the code's."""
        out = {}
        for s in self.slots:
            root, parts = self._root_and_parts(s.code_name)
            if root not in (None, "params"):
                continue
            if len(parts) != 1 or not isinstance(parts[0], str):
                raise ConfigError(f"without init:, backcheck creates the parameters as a dict and each entry of "
                                  f"code.params must be a plain name; got {s.code_name!r}",
                                  self.config.where("code.params"))
            out[parts[0]] = default_params[s]
        return out

    def _build_chain(self) -> None:
        layers = self.chain.layers
        if isinstance(layers, tuple):
            objects = [self._invoke(item, (), self.scope, module_level=True) if isinstance(item, Call)
                       else evaluate(item, self.scope, self.code.file.name) for item in layers]
        elif isinstance(layers, Call):
            objects = self._invoke(layers, (), self.scope, module_level=True)
        else:
            objects = evaluate(layers, self.scope, self.code.file.name)
        try:
            objects = list(objects)
        except TypeError:
            raise UserCodeError(f"code.chain.layers gave {type(objects).__name__}; expected a list of layer "
                                "objects", self.code.file.name, kind="contract") from None
        self.scope["layers"] = objects
        head = self.chain.head
        if head is not None:
            self.scope["head"] = self._invoke(head, (), self.scope, module_level=True) \
                if isinstance(head, Call) else evaluate(head, self.scope, self.code.file.name)

    def _root_and_parts(self, text: str):
        try:
            return parse_expr(text) if text.startswith("$") else (None, parse_path(text))
        except ValueError as exc:  # already checked when the config was read
            raise ConfigError(str(exc), self.config.where("code.params")) from None

    def _default_root(self, what: str, scope: Scope):
        if self.chain is not None:
            return scope["layers"]
        if what == "grad" and self.code.model is None and "__gradients__" in scope:
            return scope["__gradients__"]
        if what == "param" and self.code.init is not None:
            return scope["params"]
        return scope["model"] if self.code.model is not None else scope["params"]

    def _locate(self, text: str, what: str, scope: Scope):
        root, parts = self._root_and_parts(text)
        base = self._default_root(what, scope) if root is None else scope[root] if root in scope else None
        if root is not None and root not in scope:
            raise UserCodeError(f"{text}: ${root} has no value here", self.code.file.name, kind="contract")
        return base, parts

    def _resolve_param(self, s: Slot, after: str):
        base, parts = self._locate(s.code_name, "param", self.scope)
        try:
            return resolve(base, parts)
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise UserCodeError(f"after {after}, the parameter path {s.code_name} does not resolve "
                                f"({describe(exc)})", self.code.file.name, kind="contract") from None

    def _assign(self, s: Slot, arr) -> None:
        base, parts = self._locate(s.code_name, "param", self.scope)
        if not parts:
            raise ConfigError(f"{s.code_name} names a whole value, not a place backcheck can put an array",
                              self.config.where("code.params"))
        assign(base, parts, arr)

    def _fixed_lr(self):
        call = self.chain.backward if self.chain is not None else self.code.step
        return call.lr if call is not None and isinstance(call.lr, float) else None

    # -- calling
    def _callable(self, call: Call, module_level: bool, scope: Scope, owner=None):
        if call.name.startswith("$"):
            fn = evaluate(call.name, scope, self.code.file.name)
        else:
            target = owner if owner is not None else None if module_level else self.owner
            if target is None:
                fn = lookup(self.module, call.name, self.config, call.key)
            elif not callable(getattr(target, call.name, None)):
                raise ConfigError(f"the {type(target).__name__} object has no method '{call.name}'",
                                  self.config.where(call.key))
            else:
                fn = getattr(target, call.name)
        if not callable(fn):
            raise ConfigError(f"{call.name} is a {type(fn).__name__}, not something to call",
                              self.config.where(call.key))
        return fn

    def _invoke(self, call, defaults: tuple, scope: Scope, *, module_level=False, owner=None):
        """Call it with its arguments evaluated in ``scope``; bind its `returns` names into scope.
        A Sequence makes its calls in order (the key's default arguments go to the last)."""
        if isinstance(call, Sequence):
            for c in call.calls[:-1]:
                self._invoke(c, (), scope, module_level=module_level, owner=owner)
            return self._invoke(call.calls[-1], defaults, scope, module_level=module_level, owner=owner)
        where = self.file_name
        fn = self._callable(call, module_level, scope, owner)
        arg_exprs = call.args if call.args is not None else defaults
        args = [evaluate(a, scope, where) for a in arg_exprs]
        kwargs = {k: evaluate(v, scope, where) for k, v in call.kwargs} if call.kwargs else {}
        if isinstance(call.lr, tuple):
            for text in call.lr:
                base, parts = self._locate(text, "lr", scope)
                try:
                    _existing(base, parts)  # a typo must not create a new attribute the code never reads
                    assign(base, parts, scope["lr"])
                except (AttributeError, KeyError, IndexError, TypeError) as exc:
                    raise UserCodeError(f"cannot write the learning rate at {text}: the path does not exist "
                                        f"({describe(exc)}); code.step's lr: must name the code's own learning "
                                        "rate", where, kind="contract") from None

        def what() -> str:
            shown = ", ".join([expr_text(a) for a in arg_exprs] + [f"{k}={expr_text(v)}" for k, v in call.kwargs])
            return f"{call.name}({shown})"

        value = self.call(fn, *args, what=what, **kwargs)
        if call.result is not None:
            value = evaluate(call.result, scope, where)
        if call.returns:
            if call.returns[0].startswith("*"):
                scope[call.returns[0][1:]] = value
            else:
                try:
                    items = list(value)
                except TypeError:
                    items = None
                if items is None or len(items) != len(call.returns):
                    got = f"{len(items)} values" if items is not None else type(value).__name__
                    raise UserCodeError(f"{what()} returned {got}; {call.key}.returns names "
                                        f"{len(call.returns)}", where, kind="contract")
                for n, v in zip(call.returns, items):
                    if n != "_":
                        scope[n] = v
        return value

    # -- the data, per batch or per example
    def _fresh(self):
        """The batch for one call. First read-only views of the data (no copy on the hot path); once
        the code turns out to change its inputs in place, buffers refilled from the data before every
        call, so no call can change the data of the next."""
        if not self.copy_inputs:
            if getattr(self, "_readonly", None) is None or self._readonly[0].base is not self.X:
                views = (self.X.view(), self.Y.view())
                for v in views:
                    v.flags.writeable = False
                self._readonly = views
            return self._readonly
        if getattr(self, "_buffers", None) is None or self._buffers[0].shape != self.X.shape:
            self._buffers = (self.X.copy(), self.Y.copy())
        X, Y = self._buffers
        np.copyto(X, self.X)
        np.copyto(Y, self.Y)
        return X, Y

    def _examples(self):
        """(x, y) per call: the whole batch, or one example at a time."""
        mode, X, Y = self.code.per_example, self.X, self.Y
        if mode == "batch":
            yield self._fresh()
            return
        columns = self.code.layout == "columns"
        n = X.shape[1] if columns else X.shape[0]
        for i in range(n):
            one = slice(i, i + 1) if mode == "example" else i
            x = X[:, one] if columns else X[one]
            if Y.ndim == 1:
                y = Y[one]
            else:
                y = Y[:, one] if columns else Y[one]
            yield x.copy(), (y.copy() if isinstance(y, np.ndarray) else y)

    def _scope(self, x, y, **more) -> Scope:
        X, Y = (x, y) if self.code.per_example == "batch" else self._fresh()
        return self.scope.child(X=X, Y=Y, x=x, y=y, batch=self.X.shape[-1 if self.code.layout == "columns" else 0],
                                **more)

    def _defaults(self, key: str) -> tuple:
        """Contract v1's arguments of each call; one example ($x, $y) per call under per_example."""
        cache = self.__dict__.setdefault("_default_args", {})
        if key not in cache:
            cache[key] = self._default_args_of(key)
        return cache[key]

    def _default_args_of(self, key: str) -> tuple:
        obj = self.code.model is not None
        x, y = ("$X", "$Y") if self.code.per_example == "batch" else ("$x", "$y")
        return {"loss": (x, y) if obj else ("$params", x, y),
                "gradients": ("$params", x, y),
                "backward": (x, y),
                "step": (x, y, "$lr") if obj else ("$params", x, y, "$lr"),
                "forward": (x,) if obj else (x, "$params")}[key]

    # -- the loss
    def raw_loss(self):
        if self.code.spec_loss:
            return self.spec_loss()
        return self._writable_retry(self._raw_loss)

    def _raw_loss(self):
        values = [self._loss_once(x, y) for x, y in self._examples()]
        return values[0] if len(values) == 1 else sum(values) / len(values)

    def _writable_retry(self, run):
        """``run()``; if the code wrote into its read-only inputs, again with copies from then on."""
        try:
            return run()
        except UserCodeError as exc:
            if self.copy_inputs or "read-only" not in exc.message:
                raise
            self.copy_inputs = True
            return run()

    def loss(self, finite: bool = True) -> float:
        return self.loss_value(self.raw_loss(), self._loss_what, finite)

    def _loss_what(self) -> str:
        return f"{self.code.chain.loss if self.chain else self.code.loss or self._producer()}()"

    def _loss_once(self, x, y):
        scope = self._scope(x, y)
        if self.chain is not None:
            scope["output"] = self._chain_forward(scope)
            value = self._invoke(self.chain.loss, (), scope)
            return scope["loss"] if "loss" in self.chain.loss.names else value
        if self.code.forward is not None:
            self._invoke(self.code.forward, self._defaults("forward"), scope)
        call = self.code.loss
        if call is None:  # the loss comes from the gradient call's returns
            producer = self._producer()
            self._invoke(producer, self._defaults(self._producer_key()), scope)
            return scope["loss"]
        value = self._invoke(call, self._defaults("loss"), scope)
        return scope["loss"] if "loss" in call.names else value

    def _producer(self):
        return self.code.gradients or self.code.backward or self.code.step or self.code.loss

    def _producer_key(self) -> str:
        code = self.code
        return "gradients" if code.gradients else "backward" if code.backward else \
            "step" if code.step else "loss"

    def analytic(self) -> dict[Slot, np.ndarray]:
        return self._writable_retry(self._analytic)

    def _analytic(self) -> dict[Slot, np.ndarray]:
        return self._over_examples(lambda x, y, before: self._grads_once(x, y))

    def _over_examples(self, one) -> dict[Slot, np.ndarray]:
        """``one(x, y, before)`` for every call's data, each from the same starting parameters (restored
        in between and afterwards), averaged as the code's gradient."""
        before = self.snapshot()
        total, n = None, 0
        try:
            for x, y in self._examples():
                g = one(x, y, before)
                self._rebind()
                self.restore(before)
                total = g if total is None else {s: total[s] + g[s] for s in g}
                n += 1
        finally:
            self._rebind()
            self.restore(before)
        return self._average(total, n)

    def _average(self, total: dict, n: int) -> dict:
        if self.code.gradient_of == "sum":
            n = self.X.shape[-1 if self.code.layout == "columns" else 0]
            if not any(x.startswith("gradient_of: sum") for x in self.notes):
                self.notes.append(f"gradient_of: sum: the code's gradients were divided by the batch size {n} "
                                  "before the comparison (they are of the summed loss on purpose)")
        return {s: g / n for s, g in total.items()} if n > 1 else total

    def _grads_once(self, x, y) -> dict:
        scope = self._scope(x, y)
        if self.chain is not None:
            self._chain_backward(scope)
            return self._read_grads(scope, f"{self.chain.backward}()")
        code = self.code
        if code.forward is not None:
            self._invoke(code.forward, self._defaults("forward"), scope)
        producer_key = self._producer_key()
        if code.model is not None and code.loss is not None and producer_key != "loss":
            # object code caches its forward pass; what this call returns is a loss like any other
            cached = self._invoke(code.loss, self._defaults("loss"), scope)
            self.loss_value(scope["loss"] if "loss" in code.loss.names else cached, self._loss_what)
        value = self._invoke(self._producer(), self._defaults(producer_key), scope)
        scope["__gradients__"] = value
        return self._read_grads(scope, f"{self._producer()}()")

    def _read_grads(self, scope: Scope, what: str) -> dict:
        table = self.code.grads
        if not table:  # contract v1: gradients() returns a dict keyed by the parameter names
            return self._grads_by_name(scope["__gradients__"], what)
        out = {}
        for s in self.slots:
            text = table[s.layer - 1][s.role]
            base, parts = self._locate(text, "grad", scope)
            try:
                value = resolve(base, parts)
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise UserCodeError(f"after {what}, the gradient path {text} does not resolve ({describe(exc)})",
                                    self.code.file.name, kind="contract") from None
            out[s] = self._array(value, s, what)
        return out

    def _grads_by_name(self, grads, what: str) -> dict:
        if not isinstance(grads, dict):
            raise UserCodeError(f"{what} returned {type(grads).__name__}; expected a dict keyed by the "
                                f"parameter names ({', '.join(s.code_name for s in self.slots)})",
                                self.code.file.name, kind="contract")
        keys = {s: self._grad_key(s, grads) for s in self.slots}
        missing = [s.code_name for s, k in keys.items() if k is None]
        if missing:
            raise UserCodeError(f"{what} returned no gradient for {', '.join(missing)}; it returned "
                                f"{', '.join(map(str, grads)) or 'an empty dict'}", self.code.file.name,
                                kind="contract")
        extra = sorted(str(k) for k in grads if k not in set(keys.values()))
        if extra and not any(n.startswith("extra gradient keys") for n in self.notes):
            self.notes.append(f"extra gradient keys ignored: {', '.join(extra)}")
        return {s: self._array(grads[k], s, what) for s, k in keys.items()}

    @staticmethod
    def _grad_key(s: Slot, grads: dict):
        """The key of a parameter's gradient: its code name, or the last name of its path
        ($module.W1 and params['W1'] are both "W1")."""
        if s.code_name in grads:
            return s.code_name
        try:
            parts = parse_expr(s.code_name)[1] if s.code_name.startswith("$") else parse_path(s.code_name)
        except ValueError:
            return None
        last = parts[-1] if parts else None
        return last if isinstance(last, str) and last in grads else None

    # -- steps
    @property
    def uses_step(self) -> bool:
        return self.code.uses_step

    @property
    def step_name(self) -> str:
        """The call a step's gradients are read from, for messages."""
        return f"{self.chain.backward}" if self.chain is not None else f"{self.code.step}"

    def step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        return self._writable_retry(lambda: self._step_gradient(lr))

    def _step_gradient(self, lr: float) -> dict[Slot, np.ndarray]:
        lr = self.fixed_lr or lr

        def one(x, y, before):
            after = self._step_once(x, y, lr)
            return {s: (before[s].astype(np.float64) - after[s]) / lr for s in self.slots}

        out = self._over_examples(one)
        self._not_plain_sgd(out)
        return out

    def _step_once(self, x, y, lr) -> dict:
        scope = self._scope(x, y, lr=lr)
        if self.chain is not None:
            self._chain_backward(scope)
            what = f"{self.chain.backward}()"
        else:
            if self.code.forward is not None:
                self._invoke(self.code.forward, self._defaults("forward"), scope)
            value = self._invoke(self.code.step, self._defaults("step"), scope)
            what = f"{self.code.step}()"
            if self.code.model is None and isinstance(value, dict):
                scope = scope.child(params=value)  # a step that returns new parameters
        out = {}
        for s in self.slots:
            base, parts = self._locate(s.code_name, "param", scope)
            try:
                value = resolve(base, parts)
            except (AttributeError, KeyError, IndexError, TypeError) as exc:
                raise UserCodeError(f"{what} left no parameter at {s.code_name} ({describe(exc)})",
                                    self.code.file.name, kind="contract") from None
            out[s] = self._array(value, s, what).astype(np.float64)
        return out

    def _not_plain_sgd(self, grads: dict) -> None:
        """Adam, RMSprop and sign-SGD move every entry by the same amount on their first step."""
        for s, g in grads.items():
            mag = np.abs(g).reshape(-1)
            if mag.size >= 8 and mag.max() > 0 and np.ptp(mag) <= 1e-3 * mag.max():
                raise UserCodeError(
                    f"{self._producer() if not self.chain else self.chain.backward}() is not plain SGD: every "
                    f"entry of {s.code_name} moved by the same amount ({mag.max():.3g} x lr), as Adam, RMSprop "
                    "or sign-SGD do; backcheck reads gradients from plain SGD steps only (w -= lr * grad). "
                    "Bind the gradients instead, or switch the optimizer to plain SGD for the check",
                    self.code.file.name, kind="contract")

    # -- the chain
    def _chain_forward(self, scope: Scope):
        a = scope["x"]
        for j, layer in enumerate(scope["layers"]):
            a = self._invoke(self.chain.forward, ("$input",), scope.child(self=layer, input=a), owner=layer)
            if a is None:
                raise UserCodeError(f"{type(layer).__name__}.{self.chain.forward}() (layer object {j}) returned "
                                    "None: if it stores its output, say where with result: $self.output",
                                    self.code.file.name, kind="contract")
        return a

    def _chain_backward(self, scope: Scope) -> None:
        scope["output"] = self._chain_forward(scope)
        if self.chain.loss is not None:
            self._invoke(self.chain.loss, (), scope)
        g = self._invoke(self.chain.loss_grad, (), scope)
        for j, layer in reversed(list(enumerate(scope["layers"]))):
            g = self._invoke(self.chain.backward, ("$grad",), scope.child(self=layer, grad=g), owner=layer)
            if g is None and j > 0:
                raise UserCodeError(f"{type(layer).__name__}.{self.chain.backward}() (layer object {j}) returned "
                                    "None: if it stores the gradient for its input, say where with result: "
                                    "$self.dinputs", self.code.file.name, kind="contract")

    # -- the live arrays
    def arrays(self) -> dict[Slot, np.ndarray]:
        return dict(self.live)

    def swap(self, slot: Slot, arr: np.ndarray) -> np.ndarray:
        old, self.live[slot] = self.live[slot], arr
        self._assign(slot, arr)
        return old

    def close(self) -> None:
        """Leave the code's objects as they were: its own arrays (an int64 array stays that object, a
        read-only array stays read-only) back at their places, with their values bit for bit."""
        for s, arr in self.live.items():
            np.copyto(arr, self.initial[s])
        for s, original in self.originals.items():
            try:
                self._assign(s, original)
            except (UserCodeError, ConfigError, AttributeError, KeyError, IndexError, TypeError):
                pass

    def _rebind(self) -> None:
        """Code may rebind its arrays: put backcheck's live arrays back at their paths."""
        for s, arr in self.live.items():
            try:
                current = self._resolve_param(s, "a call")
            except UserCodeError:
                current = None
            if current is not arr:
                self._assign(s, arr)


def _existing(root, parts) -> None:
    """Raise (AttributeError, KeyError, ...) unless the path resolves, for every element at a [*]."""
    if WILDCARD in parts:
        i = parts.index(WILDCARD)
        for item in resolve(root, parts[:i]):
            _existing(item, parts[i + 1:])
        return
    resolve(root, parts)
