"""Helpers shared by tests."""

import os
from pathlib import Path


def marked_processes() -> list:
    """Processes that still carry a sandbox's marker (none may outlive a command)."""
    out = []
    if not os.path.isdir("/proc"):
        return out
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if b"BACKCHECK_SANDBOX=" in Path(f"/proc/{pid}/environ").read_bytes():
                    out.append(int(pid))
            except OSError:
                pass
    return out
