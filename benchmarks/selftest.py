"""Diagnosis self-test: plant every catalog mistake in the reference network, on every activation
it applies to and on several architectures, and print which mistake was named at which layer.

    python benchmarks/selftest.py            # the full grid
    python benchmarks/selftest.py --small    # the grid the tests run
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

from backcheck.mistakes import CATALOG
from backcheck.errors import ConfigError
from backcheck.runner import Options, run_guarded
from backcheck.spec import parse_config

ACTIVATIONS = ("sigmoid", "tanh", "relu", "leaky_relu")
HIDDEN = {1: (6,), 2: (6, 5), 3: (7, 6, 5), 4: (6, 6, 5, 4)}
LOSSES = {"cross_entropy": ("softmax", 3), "binary_cross_entropy": ("sigmoid", 1), "mse": ("identity", 2)}


# With no L2 term, scaling the output delta scales every gradient by the same constant: from the
# gradient alone it cannot be told from a constant factor anywhere else.
EQUIVALENT = {"loss-derivative/scale": ("scale/constant",)}


def config_text(act: str, hidden: tuple, loss: str, l2: float) -> str:
    out_act, out_units = LOSSES[loss]
    layers = "".join(f"    - {{units: {u}, activation: {act}}}\n" for u in hidden)
    layers += f"    - {{units: {out_units}, activation: {out_act}}}\n"
    return f"network:\n  input: 4\n  layers:\n{layers}  loss: {loss}\n  l2: {l2}\ndata:\n  random: {{}}\n"


def cases(small: bool):
    acts = ("sigmoid", "relu") if small else ACTIVATIONS
    depths = (1, 2) if small else (1, 2, 3, 4)
    losses = ("cross_entropy",) if small else tuple(LOSSES)
    for entry in CATALOG.values():
        if not entry.injectable or entry.id == "step/stale-weights":
            continue  # stale weights is read off step() at two learning rates, not injected
        for act in acts:
            for depth in depths:
                for loss in losses:
                    l2 = 0.01 if entry.id == "regularization/missing" else 0.0
                    L = depth + 1
                    layers = [L] if entry.scope == "output" else [None] if entry.scope == "global" \
                        else range(1, L + 1)
                    for layer in layers:
                        yield entry.id, act, depth, loss, l2, layer


def applies(ident, act, depth, loss, l2, layer) -> bool:
    """Whether the mistake exists at that layer (of-output on relu, say, is harmless: no)."""
    from backcheck.mistakes import parse_injections

    config = parse_config(config_text(act, HIDDEN[depth], loss, l2), Path("selftest.yaml"))
    try:
        parse_injections((ident if layer is None else f"{ident}@{layer}",), config.network)
    except ConfigError:
        return False
    return True


def run_case(ident, act, depth, loss, l2, layer):
    """(expected, named): the planted finding and the set of findings backcheck named; None if it
    does not apply (e.g. of-output on relu, which is harmless)."""
    text = config_text(act, HIDDEN[depth], loss, l2)
    config = parse_config(text, Path("selftest.yaml"))
    spec = ident if layer is None else f"{ident}@{layer}"
    try:
        from backcheck.mistakes import parse_injections

        parse_injections((spec,), config.network)
    except ConfigError:
        return None
    result = run_guarded(config, Options(inject=(spec,)), "selftest.yaml")
    named = {(f.id, f.layer) for f in result.findings if f.severity == "error"}
    want_layer = None if CATALOG[ident].scope == "global" and ident != "regularization/missing" else layer
    if ident == "regularization/missing":
        want_layer = None
    return (ident, want_layer), named, result


def main(small: bool) -> int:
    rows, tally = [], Counter()
    for case in cases(small):
        out = run_case(*case)
        if out is None:
            continue
        expected, named, result = out
        equivalent = {(alt, None) for alt in EQUIVALENT.get(expected[0], ())}
        if expected in named:
            verdict = "named" if len(named) == 1 else "named+extra"
        elif equivalent & named:
            verdict = "equivalent"  # indistinguishable in principle: see docs/diagnosis.md
        elif result.ok:
            verdict = "invisible"  # the mistake does not change the gradient here
        else:
            verdict = "missed: " + ", ".join(sorted(f"{i}@{l}" for i, l in named))
        tally[(case[0], verdict.split(":")[0])] += 1
        rows.append((case, verdict))
    print(f"{'mistake':38} {'named':>6} {'+extra':>6} {'equiv':>6} {'invisible':>9} {'missed':>6}")
    for ident in dict.fromkeys(c[0] for c, _ in rows):
        print(f"{ident:38} {tally[(ident, 'named')]:6} {tally[(ident, 'named+extra')]:6} {tally[(ident, 'equivalent')]:6} "
              f"{tally[(ident, 'invisible')]:9} {tally[(ident, 'missed')]:6}")
    missed = [(c, v) for c, v in rows if v.startswith("missed")]
    for (ident, act, depth, loss, l2, layer), v in missed:
        print(f"  {ident}@{layer} {act} hidden={depth} {loss}: {v}")
    total = len(rows)
    named = sum(v.startswith("named") for _, v in rows)
    print(f"{named} of {total} planted mistakes named at the right layer; "
          f"{sum(v == 'equivalent' for _, v in rows)} named as an indistinguishable equivalent")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main("--small" in sys.argv))
