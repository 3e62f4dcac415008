"""Helpers shared by tests."""

import os
from pathlib import Path


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
