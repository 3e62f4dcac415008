"""Code under test that misbehaves gets its own answer: exit 3 with the file and line where
there is one, never a traceback of backcheck's, never exit 4, nothing left running. Every case
runs the way users run it: in the sandboxed process."""

import os
import textwrap
from pathlib import Path

import numpy as np
import pytest

from backcheck.runner import verify

from tests_helpers import marked_processes

BASE = '''import numpy as np


def init_params(seed=0):
    rng = np.random.default_rng(seed)
    return {"W1": rng.standard_normal((3, 4)) * 0.5, "b1": np.zeros(4),
            "W2": rng.standard_normal((4, 2)) * 0.5, "b2": np.zeros(2)}


def _forward(params, X):
    a1 = np.tanh(X @ params["W1"] + params["b1"])
    z = a1 @ params["W2"] + params["b2"]
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return a1, e / e.sum(axis=1, keepdims=True)


def real_loss(params, X, Y):
    return -np.sum(Y * np.log(_forward(params, X)[1])) / len(X)


def real_gradients(params, X, Y):
    a1, p = _forward(params, X)
    d2 = (p - Y) / len(X)
    d1 = d2 @ params["W2"].T * (1 - a1 ** 2)
    return {"W1": X.T @ d1, "b1": d1.sum(0), "W2": a1.T @ d2, "b2": d2.sum(0)}


'''


def write(tmp_path: Path, body: str, init: str = "init_params") -> Path:
    (tmp_path / "code.py").write_text(BASE + textwrap.dedent(body))
    (tmp_path / "code.yaml").write_text(
        "network:\n  input: 3\n  layers:\n    - {units: 4, activation: tanh}\n    - {units: 2, activation: softmax}\n"
        f"  loss: cross_entropy\ndata:\n  random: {{batch: 6}}\ncode:\n  file: code.py\n  init: {init}\n"
        "  params: [{W: W1, b: b1}, {W: W2, b: b2}]\n  loss: loss\n  gradients: gradients\ncheck: {timeout: 20}\n")
    return tmp_path / "code.yaml"


GRADS = "def gradients(params, X, Y):\n    return real_gradients(params, X, Y)\n"
LOSS = "def loss(params, X, Y):\n    return real_loss(params, X, Y)\n"

CASES = {
    "loss returns None": ("def loss(params, X, Y):\n    real_loss(params, X, Y)\n" + GRADS, "None"),
    "loss returns a string": ("def loss(params, X, Y):\n    return 'low'\n" + GRADS, "text"),
    "loss returns a numpy bool": ("def loss(params, X, Y):\n    return np.bool_(True)\n" + GRADS, "truth value"),
    "loss returns an object": ("class L:\n    pass\n\n\ndef loss(params, X, Y):\n    return L()\n" + GRADS, "object"),
    "__array__ raises": ("class L:\n    def __array__(self, *a, **k):\n        raise RuntimeError('no')\n\n\n"
                         "def loss(params, X, Y):\n    return L()\n" + GRADS, "cannot read"),
    "__float__ raises": ("class L(float):\n    def __float__(self):\n        raise RuntimeError('no')\n\n\n"
                         "def loss(params, X, Y):\n    return L(1.0)\n" + GRADS, "loss"),
    "ragged gradient": (LOSS + "def gradients(params, X, Y):\n    g = real_gradients(params, X, Y)\n"
                        "    g['W1'] = [[1.0, 2.0], [3.0]]\n    return g\n", "W1"),
    "a dict that raises on lookup": (LOSS + "class D(dict):\n    def __getitem__(self, k):\n"
                                     "        raise KeyError('locked')\n\n\n"
                                     "def gradients(params, X, Y):\n    return D(real_gradients(params, X, Y))\n",
                                     "locked"),
    "KeyboardInterrupt in the loss": ("def loss(params, X, Y):\n    raise KeyboardInterrupt\n" + GRADS,
                                      "KeyboardInterrupt"),
    "a BaseException of its own": ("class Stop(BaseException):\n    pass\n\n\ndef loss(params, X, Y):\n"
                                   "    raise Stop('stop')\n" + GRADS, "Stop"),
    "closes backcheck's pipes": ("import os\n\n\ndef loss(params, X, Y):\n    os.closerange(3, 1024)\n"
                                 "    return real_loss(params, X, Y)\n" + GRADS, "pipe"),
    "a complex loss": ("def loss(params, X, Y):\n    return real_loss(params, X, Y) + 1j\n" + GRADS, "complex"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_misbehaving_code_is_exit_3_with_a_message(tmp_path, case):
    body, says = CASES[case]
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3, j["error"]
    assert says in j["error"]["message"], j["error"]["message"]
    assert "Traceback" not in j["error"]["message"]


def test_code_that_kills_its_parent_reaches_only_the_sandbox(tmp_path):
    body = ("import os, signal\n\n\ndef loss(params, X, Y):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
            "    return real_loss(params, X, Y)\n" + GRADS)
    j = verify(write(tmp_path, body)).to_json()
    if os.geteuid() == 0:  # its own PID namespace: its parent has no number there, the kill does nothing
        assert j["exit_code"] == 0, j["error"]
    else:
        assert j["exit_code"] == 3 and "supervisor" in j["error"]["message"]


def test_a_nan_on_the_fifth_call_says_which_call(tmp_path):
    body = ("CALLS = [0]\n\n\ndef loss(params, X, Y):\n    CALLS[0] += 1\n"
            "    return float('nan') if CALLS[0] == 5 else real_loss(params, X, Y)\n" + GRADS)
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3 and j["error"]["kind"] == "nan"
    assert "starting parameters" not in j["error"]["message"]
    assert "the loss became nan when" in j["error"]["message"], j["error"]["message"]


def test_the_line_of_the_exception_is_named(tmp_path):
    body = "def loss(params, X, Y):\n    raise KeyboardInterrupt\n" + GRADS
    j = verify(write(tmp_path, body)).to_json()
    line = next(i for i, text in enumerate((tmp_path / "code.py").read_text().splitlines(), 1)
                if "raise KeyboardInterrupt" in text)
    assert j["error"]["where"] == f"code.py:{line}"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="Linux /proc")
@pytest.mark.parametrize("how", ["popen", "new_session", "fork_at_import"])
def test_nothing_the_code_starts_outlives_the_check(tmp_path, how):
    start = {"popen": "import subprocess\nsubprocess.Popen(['sleep', '60'])\n",
             "new_session": "import subprocess\nsubprocess.Popen(['sleep', '60'], start_new_session=True)\n",
             "fork_at_import": "import os, time\nif os.fork() == 0:\n    time.sleep(60)\n    os._exit(0)\n"}[how]
    import time

    before = set(marked_processes())
    j = verify(write(tmp_path, start + LOSS + GRADS)).to_json()
    assert j["exit_code"] == 0, j["error"]
    deadline = time.monotonic() + 2.0  # killed processes may take a moment to leave the process table
    while set(marked_processes()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert set(marked_processes()) - before == set()


def test_the_codes_own_objects_come_back_as_they_were(tmp_path):
    """In-process binding: int64 and read-only arrays are probed through float copies and put back."""
    from backcheck.binding import CodeBinding, load_code
    from backcheck.evaluator import LocalEvaluator
    from backcheck.runner import default_params
    from backcheck.spec import load_config

    body = ("W1 = np.arange(12, dtype=np.int64).reshape(3, 4)\nb1 = np.zeros(4)\nb1.flags.writeable = False\n"
            "W2 = np.ones((4, 2)) * 0.1\nb2 = np.zeros(2)\nPARAMS = {'W1': W1, 'b1': b1, 'W2': W2, 'b2': b2}\n\n\n"
            "def own_params():\n    return PARAMS\n\n\n" + LOSS + GRADS)
    config = load_config(write(tmp_path, body, init="own_params"))
    loaded = load_code(config.code)
    module = loaded.module
    keep = {k: (v, v.copy(), v.dtype, v.flags.writeable) for k, v in module.PARAMS.items()}
    ev = LocalEvaluator(CodeBinding(config, loaded, default_params(config)[1]))
    ev.attach(np.ones((6, 3)), np.eye(2)[[0, 1, 0, 1, 0, 1]], None)
    values = ev.values()
    ev.entries(ev.slots[0], np.arange(3), values[ev.slots[0]].reshape(-1)[:3] + 0.5)
    ev.set_values({s: v + 0.25 for s, v in values.items()})
    ev.set_values(values)
    ev.close()
    for k, (obj, copy, dtype, writeable) in keep.items():
        assert module.PARAMS[k] is obj and obj.dtype == dtype and obj.flags.writeable == writeable
        assert obj.tobytes() == copy.tobytes()


OBJECT = '''

class Net:
    def __init__(self):
        self.params = init_params(0)
        self.grads = {}
        self.calls = 0

    def loss(self, X, Y):
        self.calls += 1
        if self.calls == LOSS_NONE_AT:
            return None
        return real_loss(self.params, X, Y)

    def backward(self, X, Y):
        self.grads = real_gradients(self.params, X, Y)
'''


def test_object_code_whose_loss_before_backward_returns_none_is_exit_3(tmp_path):
    """The loss call backcheck makes before backward() (object code caches its forward pass there)
    gives a loss like any other: None there breaks the contract too."""
    config = write(tmp_path, "LOSS_NONE_AT = 2\n" + OBJECT)
    config.write_text(config.read_text().replace(
        "  init: init_params\n  params: [{W: W1, b: b1}, {W: W2, b: b2}]\n  loss: loss\n  gradients: gradients\n",
        "  model: Net\n  params: [{W: \"params['W1']\", b: \"params['b1']\"}, {W: \"params['W2']\", b: \"params['b2']\"}]\n"
        "  loss: loss\n  backward: backward\n"
        "  grads: [{W: \"grads['W1']\", b: \"grads['b1']\"}, {W: \"grads['W2']\", b: \"grads['b2']\"}]\n"))
    j = verify(config).to_json()
    assert j["exit_code"] == 3, j["error"]
    assert "None" in j["error"]["message"]


@pytest.mark.parametrize("call", [2, 3, 4])
def test_a_nan_on_an_early_call_is_exit_3(tmp_path, call):
    """Whichever call the NaN comes on (the repeat at the starting parameters included), it is the
    code's NaN, never a pass."""
    body = (f"CALLS = [0]\n\n\ndef loss(params, X, Y):\n    CALLS[0] += 1\n"
            f"    return float('nan') if CALLS[0] == {call} else real_loss(params, X, Y)\n" + GRADS)
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3 and j["error"]["kind"] == "nan", j["error"]


ENCODED = {  # how the file is written, and a line of it with text outside ASCII
    "PEP 263 latin-1": (b"# -*- coding: latin-1 -*-\n", "latin-1"),
    "PEP 263 cp1252": (b"# vim: set fileencoding=cp1252 :\n", "cp1252"),
    "a UTF-8 BOM": (b"\xef\xbb\xbf", "utf-8"),
}


@pytest.mark.parametrize("how", sorted(ENCODED))
def test_a_file_in_a_declared_encoding_is_read_as_python_reads_it(tmp_path, how):
    head, encoding = ENCODED[how]
    body = ("def loss(params, X, Y):\n    return real_loss(params, X, Y)\n\n\n"
            "def gradients(params, X, Y):\n    g = real_gradients(params, X, Y)\n"
            "    g['W1'] = g['W1'] * len('éè') * 0.75\n    return g\n")
    config = write(tmp_path, body)
    (tmp_path / "code.py").write_bytes(head + (BASE + body).encode(encoding))
    j = verify(config).to_json()
    assert j["exit_code"] == 1, j["error"]
    lines = [f["line"]["source"] for f in j["findings"] if f.get("line")]
    assert lines == ["g['W1'] = g['W1'] * len('éè') * 0.75"], j["findings"]


def test_a_file_that_is_not_utf8_and_says_nothing_is_exit_3_with_its_line(tmp_path):
    config = write(tmp_path, LOSS + GRADS)
    (tmp_path / "code.py").write_bytes((BASE + "# dérivée\n" + LOSS + GRADS).encode("latin-1"))
    j = verify(config).to_json()
    assert j["exit_code"] == 3, j["error"]
    line = BASE.count("\n") + 1
    assert j["error"]["where"] == f"code.py:{line}" and "coding" in j["error"]["message"], j["error"]


def test_the_codes_control_characters_and_huge_messages_stay_out_of_the_report(tmp_path):
    from click.testing import CliRunner

    from backcheck.cli import main

    body = ("def loss(params, X, Y):\n    raise ValueError('\\x1b[2J\\x00\\x07\\u202e\\ud800' + 'm' * 1_000_000)\n"
            + GRADS)
    config = write(tmp_path, body)
    j = verify(config).to_json()
    assert j["exit_code"] == 3 and len(j["error"]["message"]) < 3000
    assert not any(c in j["error"]["message"] for c in "\x1b\x00\x07\u202e\ud800"), j["error"]["message"][:200]
    assert "\\x1b[2J" in j["error"]["message"]
    r = CliRunner().invoke(main, ["verify", str(config), "--no-color"])
    assert r.exit_code == 3 and len(r.output) < 10_000
    assert not any(c in r.output for c in "\x1b\x00\x07\u202e")


@pytest.mark.parametrize("kill", ["os.kill(os.getpid(), signal.SIGKILL)", "os.killpg(os.getpgid(0), signal.SIGKILL)",
                                  "os.kill(0, signal.SIGTERM)"])
def test_code_that_kills_itself_is_exit_3(tmp_path, kill):
    """As root the code runs in a PID namespace of its own, but never as its first process, which the
    kernel would keep from these signals (the check went on and passed)."""
    body = f"import os, signal\n\n\ndef loss(params, X, Y):\n    {kill}\n    return real_loss(params, X, Y)\n" + GRADS
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3, j["error"]
    assert "killed by SIG" in j["error"]["message"], j["error"]["message"]


def test_an_error_raised_outside_any_file_is_placed_at_the_code_file(tmp_path):
    """A frame of <frozen importlib._bootstrap> or <string> is no file of the user's folder (it once
    resolved into the working directory and became the error's place)."""
    body = "x = " + " + ".join(["1.0"] * 6000) + "\n" + LOSS + GRADS  # too deep to compile
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3 and "RecursionError" in j["error"]["message"], j["error"]
    assert j["error"]["where"] == "code.py", j["error"]
    body = "exec(compile('raise ValueError(1)', '<string>', 'exec'))\n" + LOSS + GRADS
    j = verify(write(tmp_path, body)).to_json()
    assert j["exit_code"] == 3 and j["error"]["where"] == f"code.py:{BASE.count(chr(10)) + 1}", j["error"]
