"""Helpers shared by tests."""

import os
from pathlib import Path

from hypothesis import strategies as st


# Every process this test run starts inherits this, so that another run's sandboxes on the same
# machine (a second checkout's tests, a fuzzing run) are never counted as this run's leftovers.
RUN = "BACKCHECK_TEST_RUN"
os.environ.setdefault(RUN, f"{os.getpid()}-{os.urandom(4).hex()}")


def marked_processes() -> list:
    """Processes of this test run that still carry a sandbox's marker (none may outlive a command)."""
    out = []
    if not os.path.isdir("/proc"):
        return out
    ours = f"{RUN}={os.environ[RUN]}".encode()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                if ours in env and any(v.startswith(b"BACKCHECK_SANDBOX=") for v in env):
                    out.append(int(pid))
            except OSError:
                pass
    return out


class DrawChooser:
    """benchmarks/fuzz.py's choices drawn from hypothesis (``data``: ``st.data()``), so that a failing
    case shrinks to a small one; fuzz's own runs draw them from a seeded random.Random."""

    def __init__(self, data):
        self.data = data

    def pick(self, options):
        return self.data.draw(st.sampled_from(list(options)))

    def integer(self, lo: int, hi: int) -> int:
        return self.data.draw(st.integers(lo, hi))
