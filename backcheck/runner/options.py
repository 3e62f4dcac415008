"""What a caller asks of a check (``Options``) and the shares of its time."""

from __future__ import annotations

from dataclasses import dataclass

TRAIN_SHARE = 0.6  # diagnose: the check and the training stop by this share of check.timeout; the rest is
# left for the line search and the reports, so that a long train.steps ends in a shorter run, not a timeout
POOL_MIN_SECONDS = 1.0  # --jobs: below this much serial probing, a worker's start-up costs more than it saves


@dataclass(frozen=True)
class Options:
    inject: tuple[str, ...] = ()  # catalog mistakes to plant in the reference ("id@layer")
    show_output: bool = False  # let the user's prints through to stderr
    exhaustive: bool = False  # probe every entry of every parameter (default: large ones are sampled)
    jobs: int = 1  # processes probing entries at once (--exhaustive); each loads the code once
    memory_mb: int | None = None  # address-space limit of the process running the code (grade)
    user: str | None = None  # run the code as this user when backcheck runs as root ("auto": nobody, if it can)
    cwd: str | None = None  # the code's working directory (default: its own folder)
    writable: str | None = None  # as root on Linux: the only folder the code may write (grade: its copy's)
    hide: tuple[str, ...] = ()  # as root on Linux: folders the code sees empty (grade: the submissions)
    command: str = "verify"  # verify | diagnose (the check, then training with the code's gradients)
