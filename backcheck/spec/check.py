"""check: (how gradients are compared) and train: (how diagnose trains)."""

from __future__ import annotations

from dataclasses import dataclass

from backcheck.spec.data import MAX_BATCH
from backcheck.spec.reader import Section

METHODS = ("central", "complex", "richardson")
CHECK_KEYS = ("method", "eps", "tolerance", "seed", "timeout")
TRAIN_KEYS = ("lr", "steps", "batch")
MAX_SEED = 2**32 - 1  # numpy's legacy seeding, which the code's own init may use, takes 32 bits
MIN_TIMEOUT = 0.1  # seconds: less than starting the code takes
MAX_TIMEOUT = 86_400  # seconds: a day
MAX_STEPS = 1_000_000_000  # training stops at its share of check.timeout anyway


@dataclass(frozen=True)
class CheckSpec:
    method: str = "central"
    eps: float | None = None  # None: 1e-6 for float64 code, chosen for float32 code
    tolerance: float | None = None  # None: 1e-6 for float64 code, chosen for float32 code
    seed: int = 0
    timeout: float = 60.0


@dataclass(frozen=True)
class TrainSpec:
    lr: float = 0.1
    steps: int = 200
    batch: int | None = None


def read_check(sec: Section) -> CheckSpec:
    return CheckSpec(
        method=sec.get("method", str, default="central", choices=METHODS),
        eps=sec.get("eps", float, positive=True, below=1, why="eps is the finite-difference step, such as 1e-6"),
        tolerance=sec.get("tolerance", float, positive=True, below=1,
                          why="a relative error is at most 1: a tolerance of 1 or more passes every gradient"),
        seed=sec.get("seed", int, default=0, minimum=0, maximum=MAX_SEED),
        timeout=sec.get("timeout", float, default=60.0, minimum=MIN_TIMEOUT, maximum=MAX_TIMEOUT,
                        why="seconds: at most a day"),
    )


def read_train(sec: Section) -> TrainSpec:
    return TrainSpec(
        lr=sec.get("lr", float, default=0.1, positive=True),
        steps=sec.get("steps", int, default=200, minimum=1, maximum=MAX_STEPS),
        batch=sec.get("batch", int, minimum=1, maximum=MAX_BATCH, why="backcheck's limit on the examples of a step"),
    )
