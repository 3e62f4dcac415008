"""Hostile user code for benchmarks/fuzz.py (sections "code" and "submissions") and
tests/test_fuzz_code.py: a small module that is right apart from one hostile act, placed at import,
in the loss, in the gradients or on the loss's Nth call, sometimes with a real gradient bug too.

A ``Module`` says what backcheck must answer: ``expect`` is the set of exit codes the contract
allows for it ("error" acts are exit 3; "harmless" ones 0, or 1 with the bug; "any" is any contract
code), and a module with ``bug`` must never be exit 0 (a false OK).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

ERROR, HARMLESS, ANY = "error", "harmless", "any"
PLACES = ["import", "loss", "gradients", "nth"]
ONCE = ("import", "gradients", "nth")  # an act that is slow to repeat on every loss call
AS_ROOT = os.geteuid() == 0


@dataclass(frozen=True)
class Act:
    """One hostile act. ``stmt``: statements run at the place; ``value``: an expression the loss
    returns (or a gradient becomes) instead; ``defs``: module-level definitions it needs;
    ``source``: how the file's bytes are written (encodings); ``places``: where it may go."""

    group: str
    name: str
    outcome: str
    stmt: str = ""
    value: str = ""
    defs: str = ""
    places: tuple = tuple(PLACES)
    source: str = "utf-8"
    after: bool = False  # the statement runs after the value is computed (in-place writes)
    init: str = ""  # statements on the dict ``p`` of parameters before init returns it
    line: str = ""  # replaces the comment on the hidden layer's gradient line


_BAD_ARRAY = "class _BadArray:\n    def __array__(self, *a, **k):\n        raise RuntimeError('no array here')\n"
_BAD_FLOAT = "class _BadFloat(float):\n    def __float__(self):\n        raise RuntimeError('no float here')\n"
_BAD_DICT = ("class _Locked(dict):\n    def __getitem__(self, key):\n        raise KeyError('locked: ' + str(key))\n"
             "    def get(self, key, default=None):\n        raise KeyError('locked')\n")
_STOP = "class _Stop(BaseException):\n    pass\n"
_DEEP = "def _deep(n):\n    return _deep(n + 1) + 1\n"
_DAEMON = ("def _daemon():\n    pid = os.fork()\n    if pid == 0:\n        os.setsid()\n        if os.fork() == 0:\n"
           "            time.sleep(30)\n            os._exit(0)\n        os._exit(0)\n    os.waitpid(pid, 0)\n")
_FORK = "def _forked():\n    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n"

ACTS = [
    # values the code hands back
    Act("values", "__array__ raises", ERROR, value="_BadArray()", defs=_BAD_ARRAY, places=("loss", "gradients", "nth")),
    Act("values", "__float__ raises", ERROR, value="_BadFloat(1.0)", defs=_BAD_FLOAT, places=("loss", "nth")),
    Act("values", "ragged list", ERROR, value="[[1.0, 2.0], [3.0]]", places=("loss", "gradients", "nth")),
    Act("values", "a dict that raises on lookup", ERROR, value="_Locked", defs=_BAD_DICT, places=("gradients",)),
    Act("values", "loss None", ERROR, value="None", places=("loss", "nth")),
    Act("values", "loss str", ERROR, value="'0.5'", places=("loss", "nth")),
    Act("values", "loss np.bool_", ERROR, value="np.bool_(True)", places=("loss", "nth")),
    Act("values", "loss object", ERROR, value="object()", places=("loss", "nth")),
    Act("values", "gradient None", ERROR, value="None", places=("gradients",)),
    Act("values", "NaN", ERROR, value="float('nan')", places=("loss", "nth")),
    Act("values", "inf gradient", ERROR, value="np.full_like(_g['W1'], np.inf)", places=("gradients",)),
    # exceptions and exits
    Act("exits", "KeyboardInterrupt", ERROR, stmt="raise KeyboardInterrupt"),
    Act("exits", "SystemExit(0)", ERROR, stmt="raise SystemExit(0)"),
    Act("exits", "sys.exit('message')", ERROR, stmt="sys.exit('bye')"),
    Act("exits", "a BaseException", ERROR, stmt="raise _Stop('stop')", defs=_STOP),
    Act("exits", "os._exit(0)", ERROR, stmt="os._exit(0)"),
    Act("exits", "os._exit(3)", ERROR, stmt="os._exit(3)"),
    Act("exits", "recursion", ERROR, stmt="_deep(0)", defs=_DEEP),
    Act("exits", "deep C recursion", ERROR, stmt="sys.setrecursionlimit(10**7)\n_deep(0)", defs=_DEEP),
    Act("exits", "sleep past the timeout", ERROR, stmt="time.sleep(60)"),
    # file descriptors
    Act("fds", "close fds 0-2", HARMLESS, stmt="os.close(0)\nos.close(1)\nos.close(2)", places=("import", "nth")),
    Act("fds", "close 0-2 then print", ANY, stmt="os.closerange(0, 3)\nprint('after')", places=("import", "loss")),
    Act("fds", "close every other fd", ERROR, stmt="os.closerange(3, 65536)"),
    Act("fds", "close fds 3-99", ANY, stmt="os.closerange(3, 100)"),
    # signals
    Act("signals", "kill self", ERROR, stmt="os.kill(os.getpid(), signal.SIGKILL)"),
    Act("signals", "SIGTERM self", ERROR, stmt="os.kill(os.getpid(), signal.SIGTERM)"),
    Act("signals", "kill process group", ERROR, stmt="os.killpg(os.getpgid(0), signal.SIGKILL)"),
    Act("signals", "kill(0)", ERROR, stmt="os.kill(0, signal.SIGKILL)"),
    Act("signals", "kill parent", HARMLESS if AS_ROOT else ERROR, stmt="os.kill(os.getppid(), signal.SIGKILL)"),
    Act("signals", "SIGSTOP self", ERROR, stmt="os.kill(os.getpid(), signal.SIGSTOP)"),
    # processes
    Act("processes", "Popen", HARMLESS, stmt="subprocess.Popen(['sleep', '30'])", places=ONCE),
    Act("processes", "Popen new session", HARMLESS, stmt="subprocess.Popen(['sleep', '30'], start_new_session=True)",
        places=ONCE),
    Act("processes", "fork", HARMLESS, stmt="_forked()", defs=_FORK, places=ONCE),
    Act("processes", "bare fork at import", HARMLESS, stmt="os.fork()", places=("import",)),
    Act("processes", "double-fork daemon", HARMLESS, stmt="_daemon()", defs=_DAEMON, places=ONCE),
    # arrays
    Act("arrays", "write into X", HARMLESS, stmt="X[...] = 7.0", after=True, places=("loss", "gradients")),
    Act("arrays", "write into Y", HARMLESS, stmt="Y[...] = 0", after=True, places=("loss", "gradients")),
    Act("arrays", "write into params", ANY, stmt="params['W1'][...] = 0.0", after=True, places=("loss", "gradients")),
    Act("arrays", "int64 params", HARMLESS, init="p['W1'] = np.rint(p['W1'] * 3).astype(np.int64)", places=("import",)),
    Act("arrays", "read-only params", HARMLESS, init="p['b1'].flags.writeable = False\np['W2'].flags.writeable = False",
        places=("import",)),
    # output
    Act("output", "huge print", HARMLESS, stmt="print('x' * 3_000_000)", places=("import",)),
    Act("output", "many lines", HARMLESS, stmt="for _i in range(20000):\n    print('line', _i)", places=("import",)),
    Act("output", "binary junk on stdout", HARMLESS, stmt="sys.stdout.buffer.write(bytes(range(256)) * 100)\n"
                                                         "sys.stdout.flush()", places=("import", "loss")),
    # source text
    Act("source", "PEP 263 latin-1", HARMLESS, source="latin-1", line="# dérivée de tanh, ½·(1 − a²)",
        places=("import",)),
    Act("source", "PEP 263 cp1252", HARMLESS, source="cp1252", line="# “dérivée” – €", places=("import",)),
    Act("source", "a BOM", HARMLESS, source="bom", line="# dérivée, 導関数", places=("import",)),
    Act("source", "Latin-1 bytes, no coding line", ERROR, source="latin-1-undeclared", line="# dérivée",
        places=("import",)),
    Act("source", "UTF-16", ERROR, source="utf-16", places=("import",)),
    Act("source", "control characters in the code", HARMLESS, line="# \x1b[2J\x1b[31mred\x07\x08\x0c\x7f",
        places=("import",)),
    Act("source", "a huge line", HARMLESS, line="+ 0.0 * sum([" + ", ".join(["1.0"] * 6000) + "])", places=("import",)),
    Act("source", "unprintable message", ERROR, stmt="raise ValueError('\\x1b[2J\\x00\\x07\\u202ebad\\ud800 ' * 50)"),
    Act("source", "huge message", ERROR, stmt="raise ValueError('m' * 1_000_000)"),
    Act("source", "non-ASCII names", HARMLESS, stmt="größe = 1\nλ = größe", places=("import", "loss", "gradients")),
]

GROUPS = sorted({a.group for a in ACTS})

BUGS = {  # a real gradient bug, on one of the four gradients
    "W1 scaled": ("dW1 = X.T @ d1", "dW1 = 1.5 * (X.T @ d1)"),
    "b2 sign": ("db2 = d2.sum(0)", "db2 = -d2.sum(0)"),
    "derivative of output": ("d1 = d2 @ params['W2'].T * DACT", "d1 = d2 @ params['W2'].T * DACT_WRONG"),
    "W2 transposed scale": ("dW2 = a1.T @ d2", "dW2 = a1.T @ d2 * 2.0"),
}

HIDDEN = {"tanh": ("np.tanh", "(1 - a1 ** 2)", "(1 - np.tanh(a1) ** 2)"),
          "sigmoid": ("_sigmoid", "a1 * (1 - a1)", "_sigmoid(a1) * (1 - _sigmoid(a1))")}


@dataclass
class Module:
    """A module's bytes, its config's ``code:`` keys and what backcheck must answer."""

    source: bytes
    code: dict
    act: Act
    place: str
    bug: str | None
    style: str
    expect: set = field(default_factory=set)
    what: str = ""


def _indent(text: str, by: int) -> str:
    return "\n".join(" " * by + line if line else line for line in text.split("\n"))  # not splitlines: \x0c


def _place(act: Act, place: str, n: int, where: str) -> str:
    """The statements of ``act`` at ``where`` ("import", "loss" or "gradients"), or ""."""
    if where == "import":
        return act.stmt if place == "import" and act.stmt else ""
    if place == "nth" and where == "loss":
        body = act.stmt or f"return {act.value}"
        return f"if _CALLS[0] == {n}:\n" + _indent(body, 4)
    if place != where:
        return ""
    if act.stmt:
        return act.stmt
    if where == "loss":
        return f"return {act.value}"
    return ""


def module(choose, hidden: str = "tanh", style: str | None = None, bug_rate: float = 0.3,
           acts=None, bug: bool | None = None, tag: str = "") -> Module:
    """A module of the network ``n_in -> hidden -> n_out softmax`` (the caller's sizes live in the
    config), right apart from one hostile act and, in about ``bug_rate`` of the draws, a gradient bug."""
    act = choose.pick(acts or ACTS)
    place = choose.pick(list(act.places))
    n = choose.integer(2, 6)
    style = style or choose.pick(["functions", "functions", "template", "object"])
    if bug is None:
        bug = choose.integer(0, 99) < bug_rate * 100
    bug = choose.pick(sorted(BUGS)) if bug else None
    fn, dact, dact_wrong = HIDDEN[hidden]
    obj = style == "object"
    p = "self.params" if obj else "params"

    top = _indent(_place(act, place, n, "import"), 0)
    loss_stmt = _place(act, place, n, "loss")
    grad_stmt = _place(act, place, n, "gradients")
    loss_before = "" if act.after else loss_stmt
    loss_after = loss_stmt if act.after else ""
    grad_before = "" if act.after else grad_stmt
    grad_after = grad_stmt if act.after else ""
    grad_value = ""
    if act.value and place == "gradients":
        grad_before = ""
        grad_value = "_Locked(_g)" if act.value == "_Locked" else None
        if grad_value is None:
            grad_after = f"_g['W1'] = {act.value}"
    line_comment = act.line or "# the hidden layer"
    lines = {
        "d1": f"d1 = d2 @ params['W2'].T * {dact} {line_comment}",
        "dW1": "dW1 = X.T @ d1", "db1": "db1 = d1.sum(0)", "dW2": "dW2 = a1.T @ d2", "db2": "db2 = d2.sum(0)",
    }
    if bug:
        old, new = BUGS[bug]
        new = new.replace("DACT_WRONG", dact_wrong)
        old = old.replace("DACT", dact)
        for k, v in lines.items():
            if v.startswith(old):
                lines[k] = new + v[len(old):]

    loss_body = ("_CALLS[0] += 1\n" + (loss_before + "\n" if loss_before else "")
                 + "_, P = _forward(params, X)\nvalue = -np.sum(Y * np.log(P)) / len(X)\n"
                 + (loss_after + "\n" if loss_after else "") + "return value")
    grad_body = ((grad_before + "\n" if grad_before else "")
                 + "a1, P = _forward(params, X)\nd2 = (P - Y) / len(X)\n" + "\n".join(lines.values()) + "\n"
                 + "_g = {'W1': dW1, 'b1': db1, 'W2': dW2, 'b2': db2}\n"
                 + (grad_after + "\n" if grad_after else "")
                 + f"return {grad_value or '_g'}")
    init_body = ("rng = np.random.default_rng(seed)\n"
                 "p = {'W1': rng.standard_normal((N_IN, N_HID)) * 0.5, 'b1': rng.standard_normal(N_HID) * 0.1,\n"
                 "     'W2': rng.standard_normal((N_HID, N_OUT)) * 0.5, 'b2': rng.standard_normal(N_OUT) * 0.1}\n"
                 + (act.init + "\n" if act.init else "") + "return p")
    head = ""
    if act.source == "latin-1":
        head = "# -*- coding: latin-1 -*-\n"
    elif act.source == "cp1252":
        head = "# vim: set fileencoding=cp1252 :\n"
    text = (head + f'"""A two-layer network, right apart from one hostile act. {tag}"""\n'
            "import os\nimport signal\nimport subprocess\nimport sys\nimport time\n\nimport numpy as np\n\n"
            "N_IN, N_HID, N_OUT = SIZES\n_CALLS = [0]\n\n\n"
            "def _sigmoid(z):\n    return 1.0 / (1.0 + np.exp(-z))\n\n\n"
            + (act.defs + "\n\n" if act.defs else "")
            + (_DAEMON + "\n\n" if "_daemon()" in act.stmt and _DAEMON not in act.defs else "")
            + f"def init_params(seed=0):\n{_indent(init_body, 4)}\n\n\n"
            + f"def _forward(params, X):\n    a1 = {fn}(X @ params['W1'] + params['b1'])\n"
            "    z = a1 @ params['W2'] + params['b2']\n    e = np.exp(z - z.max(axis=1, keepdims=True))\n"
            "    return a1, e / e.sum(axis=1, keepdims=True)\n\n\n")
    if obj:
        text += ("class Net:\n    def __init__(self):\n        self.params = init_params(0)\n        self.grads = {}\n\n"
                 f"    def loss(self, X, Y):\n        params = {p}\n{_indent(loss_body, 8)}\n\n"
                 f"    def backward(self, X, Y):\n        params = {p}\n"
                 f"{_indent(grad_body.replace('return ', 'self.grads = ', 1) if grad_body.count('return ') == 1 else grad_body, 8)}\n")
    else:
        text += (f"def loss(params, X, Y):\n{_indent(loss_body, 4)}\n\n\n"
                 f"def gradients(params, X, Y):\n{_indent(grad_body, 4)}\n")
    if top:
        text += "\n\n" + top + "\n"
    source = _encode(text, act.source)
    code = _binding(style)
    expect = _expect(act, bug, style)
    what = f"{act.group}/{act.name} at {place}" + (f" (call {n})" if place == "nth" else "") + \
        f", {style}" + (f", bug {bug}" if bug else "")
    return Module(source, code, act, place, bug, style, expect, what)


def _encode(text: str, how: str) -> bytes:
    if how == "latin-1":
        return text.encode("latin-1", errors="replace")
    if how == "cp1252":
        return text.encode("cp1252", errors="replace")
    if how == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if how == "latin-1-undeclared":
        return text.encode("latin-1", errors="replace")
    if how == "utf-16":
        return text.encode("utf-16")
    return text.encode("utf-8", errors="surrogateescape")


def _binding(style: str) -> dict:
    if style == "object":
        return {"model": "Net", "params": [{"W": "params['W1']", "b": "params['b1']"},
                                           {"W": "params['W2']", "b": "params['b2']"}],
                "loss": "loss", "backward": "backward",
                "grads": [{"W": "grads['W1']", "b": "grads['b1']"}, {"W": "grads['W2']", "b": "grads['b2']"}]}
    params = {"W": "W{k}", "b": "b{k}"} if style == "template" else [{"W": "W1", "b": "b1"}, {"W": "W2", "b": "b2"}]
    return {"init": "init_params", "params": params, "loss": "loss", "gradients": "gradients"}


def _expect(act: Act, bug: str | None, style: str = "functions") -> set:
    if style == "object" and act.after and act.group == "arrays":
        # backward(X, Y) is called with the arrays its loss(X, Y) just overwrote, as in the code's own
        # training loop: its gradients are then of other data, and may be found wrong
        return _expect(Act(act.group, act.name, ANY), bug)
    if act.outcome == ERROR:
        return {3}
    if act.outcome == HARMLESS:
        return {1} if bug else {0}
    return {1, 2, 3, 5} if bug else {0, 1, 2, 3, 5}


def sized(source: bytes, sizes: tuple) -> bytes:
    """The module with the network's sizes filled in."""
    return source.replace(b"SIZES", repr(tuple(sizes)).encode())


# ---------------------------------------------------------------- acts against the grader

GOOD = Act("none", "a correct submission", HARMLESS, places=("import",))

_PATCH = '''def _patch_backcheck():
    """Wrap or replace whatever of backcheck this process can import, and fake its modules."""
    import importlib
    import types
    names = ["backcheck", "backcheck.gradcheck", "backcheck.results", "backcheck.grade", "backcheck.runner",
             "backcheck.evaluator", "backcheck.sandbox", "backcheck.render", "backcheck.mismatch", "backcheck.numgrad"]
    for name in names:
        try:
            mod = importlib.import_module(name)
        except BaseException:
            continue
        for attr in list(vars(mod)):
            value = getattr(mod, attr, None)
            try:
                if isinstance(value, types.FunctionType):
                    setattr(mod, attr, lambda *a, **k: None)
                elif attr == "ExitCode":
                    value.WRONG = value.OK
            except BaseException:
                pass
    try:
        import backcheck.results as res
        res.CheckResult.exit_code = property(lambda self: res.ExitCode.OK)
        res.ParamResult.status = "ok"
    except BaseException:
        pass
    for name in names:
        fake = types.ModuleType(name)
        fake.__getattr__ = lambda attr: (lambda *a, **k: {"ok": True, "score": 100})
        sys.modules[name] = fake
'''

_GRADERS = '''def _graders():
    """(pid, argv) of every visible process that runs backcheck grade on a fuzz class."""
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                argv = open(f"/proc/{name}/cmdline", "rb").read().split(b"\\0")
            except OSError:
                continue
            # only the fuzz's own classes: this code runs as root on a machine others work on
            if b"grade" in argv and any(b"_fuzz_class_" in a for a in argv) and int(name) != os.getpid():
                out.append((int(name), [a.decode(errors="replace") for a in argv]))
    return out
'''

_KILL_GRADER = _GRADERS + '''

def _kill_grader():
    """Every parent up the chain, and every process running grade, with every signal that kills."""
    for sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        pid = os.getppid()
        while pid > 1:
            try:
                os.kill(pid, sig)
                pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                break
        for pid, _ in _graders():
            try:
                os.kill(pid, sig)
            except OSError:
                pass
'''

_WRITE_OUTSIDE = _GRADERS + '''

def _write_outside():
    """Overwrite classmates' files and the grader's outputs: beside the folder the code runs in,
    and at every path a grading process was given."""
    targets = []
    for up in ("..", os.path.join("..", "..")):
        try:
            for name in os.listdir(up):
                folder = os.path.join(up, name)
                targets.append(os.path.join(folder, "mlp.py") if os.path.isdir(folder) else folder)
        except OSError:
            pass
        targets.append(os.path.join(up, "grades.csv"))
    for _, argv in _graders():
        for arg in argv:
            if os.path.isabs(arg):
                if os.path.isdir(arg):
                    try:
                        targets += [os.path.join(arg, n, "mlp.py") for n in os.listdir(arg)]
                    except OSError:
                        pass
                else:
                    targets.append(arg)
    for target in targets:
        try:
            with open(target, "w") as f:
                f.write("OVERWRITTEN\\n")
        except OSError:
            pass
'''

_READ_OTHERS = _GRADERS + '''

def _classmates_gradients():
    """The gradients() of a classmate whose file this code can read, else None."""
    places = [os.path.join("..", n) for n in _listdir("..")]
    for _, argv in _graders():
        for arg in argv:
            if os.path.isabs(arg) and os.path.isdir(arg):
                places += [os.path.join(arg, n) for n in _listdir(arg)]
    for place in places:
        path = os.path.join(place, "mlp.py")
        try:
            source = open(path).read()
        except OSError:
            continue
        if "FRIEND" not in source:
            continue
        scope = {"__name__": "friend"}
        try:
            exec(compile(source, path, "exec"), scope)
        except BaseException:
            continue
        return scope.get("gradients")
    return None


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []
'''

GRADER_ACTS = [
    Act("grader", "patch backcheck from inside", HARMLESS, stmt="_patch_backcheck()", defs=_PATCH,
        places=("import", "loss", "gradients")),
    Act("grader", "kill the grader", ANY, stmt="_kill_grader()", defs=_KILL_GRADER, places=("import", "loss")),
    Act("grader", "write outside its folder", HARMLESS, stmt="_write_outside()", defs=_WRITE_OUTSIDE,
        places=("import", "loss")),
    Act("grader", "read other submissions", HARMLESS, defs=_READ_OTHERS, places=("gradients",),
        stmt="_friend = _classmates_gradients()\nif _friend is not None:\n    return _friend(params, X, Y)"),
]
