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
