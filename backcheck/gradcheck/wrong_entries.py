"""The search of a large wrong parameter for its wrong entries: rows and columns, then their crossings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backcheck import numgrad
from backcheck.gradcheck.entries import Entries, error_bounds, judge_entries
from backcheck.gradcheck.param import ParamCheck
from backcheck.gradcheck.point import Point
from backcheck.gradcheck.precision import Precision
from backcheck.gradcheck.thresholds import SEARCH_ENTRIES, SEARCH_SAMPLE


@dataclass
class Search:
    entries: Entries
    bad: np.ndarray  # (size,) the wrong entries found (or, when estimated, the candidates)
    blocks: int
    estimated: bool
    wrong: int


def search(point: Point, check: ParamCheck, precision: Precision, rng) -> Search:
    """Which entries of a wrong parameter are wrong, without probing every entry.

    One Gaussian probe per row and per column of the parameter (2 loss calls each, whatever
    their length) marks the rows and columns holding a wrong entry; their crossings are the
    candidates, probed one by one when there are at most SEARCH_ENTRIES of them, else sampled.
    A 1-d parameter is laid out as a grid of about sqrt(size) blocks for this.
    """
    slot = check.slot
    x, a = point.values[slot], np.asarray(point.grads[slot], dtype=np.float64)
    size = x.size
    if x.ndim >= 2 and min(x.shape[0], size // x.shape[0]) > 1:
        rows, cols = x.shape[0], size // x.shape[0]
    else:  # a vector (or a one-row matrix): a grid of about sqrt(size) blocks
        cols = int(np.ceil(np.sqrt(size)))
        rows = -(-size // cols)
    grid = np.arange(rows * cols).reshape(rows, cols)
    valid = grid < size
    blocks_r = [grid[r][valid[r]] for r in range(rows)]
    blocks_c = [grid[:, c][valid[:, c]] for c in range(cols)]
    kw = dict(f0=point.f0, noise_f=precision.noise_f)

    def off(blocks):
        dp = numgrad.probe_blocks(point.blocks(slot), x, a, blocks, precision.eps, rng, **kw)
        tol = error_bounds(dp.analytic, dp.numeric, dp.noise, 0.0, precision.tolerance)
        return np.abs(dp.analytic - dp.numeric) > tol

    bad_r, bad_c = off(blocks_r), off(blocks_c)
    cand_mask = bad_r[:, None] & bad_c[None, :] & valid
    if not cand_mask.any():  # a wrong entry seen by its row or its column only
        cand_mask = (bad_r[:, None] | bad_c[None, :]) & valid
    cand = grid[cand_mask]
    estimated = len(cand) > SEARCH_ENTRIES
    probe = np.sort(rng.choice(cand, SEARCH_SAMPLE, replace=False)) if estimated else cand
    ent = judge_entries(point, slot, probe, check.method, precision)
    disagree = ent.bad | (np.abs(ent.analytic - ent.numeric) >
                          error_bounds(ent.analytic, ent.numeric, ent.noise, 0.0, precision.tolerance)) & ~ent.pending
    bad = np.zeros(size, dtype=bool)
    if estimated:
        share = float(disagree.mean()) if len(disagree) else 0.0
        # Every wrong entry lies among the candidates; when nearly all sampled candidates are
        # wrong, the map is the candidates, else only the sampled wrong ones are marked.
        if share >= 0.9:
            bad[cand] = True
        else:
            bad[probe[disagree]] = True
        wrong = int(round(share * len(cand)))
    else:
        bad[probe[disagree]] = True
        wrong = int(disagree.sum())
    return Search(ent, bad, rows + cols, estimated, wrong)
