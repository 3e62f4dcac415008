"""check: (how gradients are compared) and train: (how diagnose trains)."""

from __future__ import annotations

from dataclasses import dataclass

from backcheck.spec.reader import Section

METHODS = ("central", "complex", "richardson")
CHECK_KEYS = ("method", "eps", "tolerance", "seed", "timeout")
TRAIN_KEYS = ("lr", "steps", "batch")


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
        eps=sec.get("eps", float, positive=True),
        tolerance=sec.get("tolerance", float, positive=True),
        seed=sec.get("seed", int, default=0),
        timeout=sec.get("timeout", float, default=60.0, positive=True),
    )


def read_train(sec: Section) -> TrainSpec:
    return TrainSpec(
        lr=sec.get("lr", float, default=0.1, positive=True),
        steps=sec.get("steps", int, default=200, minimum=1),
        batch=sec.get("batch", int, minimum=1),
    )
