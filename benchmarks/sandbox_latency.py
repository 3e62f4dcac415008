"""What backcheck.sandbox costs: starting an evaluator, a round trip, closing it.

A round trip is ``request(message)`` answered by an evaluator that sends the message back: a
tiny tuple, and float64 arrays of 400 KB and 4 MB (their data travels out of band, written with one
writev and read straight into the new array). Medians over many trips; start and close over a
few sandboxes, with and without NumPy imported in the evaluator.

    python benchmarks/sandbox_latency.py
    python benchmarks/sandbox_latency.py --trips 5000
"""

from __future__ import annotations

import argparse
import statistics
import time

from backcheck.sandbox import Limits, Sandbox


def echo(channel, job):
    """The evaluator's side: send back whatever comes."""
    while True:
        message = channel.recv()
        if message is None:
            return
        channel.send(message)


def _median_ms(samples) -> float:
    return 1000 * statistics.median(samples)


def round_trips(sb: Sandbox, message, n: int) -> list:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        sb.request(message, 30)
        times.append(time.perf_counter() - t)
    return times


def starts(limits: Limits, n: int) -> tuple[list, list]:
    opened, closed = [], []
    for _ in range(n):
        t = time.perf_counter()
        sb = Sandbox("sandbox_latency:echo", None, limits)
        sb.start()
        sb.request("hello", 60)
        opened.append(time.perf_counter() - t)
        t = time.perf_counter()
        sb.close()
        closed.append(time.perf_counter() - t)
    return opened, closed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=2000, help="round trips per message size")
    parser.add_argument("--starts", type=int, default=10, help="sandboxes started and closed")
    args = parser.parse_args()
    import numpy as np  # here, not at the top: the evaluators import this module, and must not import NumPy

    rows = []
    opened, closed = starts(Limits(), args.starts)
    rows.append(("start to first reply, NumPy preimported", _median_ms(opened)))
    opened_bare, _ = starts(Limits(preimport=()), args.starts)
    rows.append(("start to first reply, nothing preimported", _median_ms(opened_bare)))
    rows.append(("close()", _median_ms(closed)))
    with Sandbox("sandbox_latency:echo", None, Limits()) as sb:
        sb.request("warm", 60)
        rows.append(("round trip, tiny message", _median_ms(round_trips(sb, ("probe", 1, 2.0), args.trips))))
        for label, n in (("400 KB", 50_000), ("4 MB", 500_000)):
            x = np.random.default_rng(0).standard_normal(n)
            trips = max(20, args.trips // (10 if n > 100_000 else 4))
            ms = _median_ms(round_trips(sb, ("values", x), trips))
            rows.append((f"round trip, {label} float64 array", ms))
            rows.append((f"  = {2 * x.nbytes / ms / 1e6:.2f} GB/s both ways", None))
    width = max(len(label) for label, _ in rows)
    print(f"{'what':<{width}}  median ms")
    for label, ms in rows:
        print(f"{label:<{width}}  {'' if ms is None else f'{ms:9.3f}'}")


if __name__ == "__main__":
    main()
