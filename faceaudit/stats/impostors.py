"""Impostor statistics in bounded memory: impostor pairs are scored and reduced block by block.

A model's impostor comparisons grow with the square of the number of seeds (78 million per model at
2,000 seeds), so they are never held as one table. A :class:`ImpostorSource` yields them in blocks
(every pair of one *seed pair* inside one block, so per-seed-pair sums close within a block), and
:func:`reduce_impostors` passes over the blocks four times, keeping only what the statistics need:

1. counts of impostor comparisons and FTE pairs per (group, condition) cell, and the dyadic terms of
   the trial counts (per-seed totals and the cell-by-cell Gram matrix of per-seed-pair counts);
   the per-set Mann-Whitney counts (AUC) against the in-memory genuine scores;
2. a fine histogram of the impostor scores per group (common edges), and the report's coarse
   score histogram;
3. the exact values inside the histogram bins that some query brackets (below);
4. at each global threshold: false-match counts per cell, their per-seed totals and Gram matrices
   (dyadic-robust FMR intervals and paired FMR contrasts, :mod:`faceaudit.stats.dyadic`), and the
   seed-bootstrap quadratic forms (``sum W[a] W[b]`` over false-matching pairs).

Exact thresholds by two passes (histogram, then refine inside the bracketing bin). The threshold at
a target FMR is defined on the sorted impostor scores (:mod:`faceaudit.stats.thresholds`). With the
bin counts, ``#{impostor >= e_k}`` is known exactly at every bin edge ``e_k``, so the bin holding the
critical impostor value is known after pass 2; pass 3 collects the distinct values (with counts) of
that bin and the next non-empty one, which determines the threshold exactly. EER, TAR at FAR, the
per-group diagnostic thresholds and the thinned DET curve are found the same way; every result is
the number the in-memory functions of :mod:`faceaudit.stats.thresholds` return on all the scores
(tests/test_stats_streaming.py compares them, and every results table, with the in-memory analysis).

Memory: per block, the block's pairs (``block_pairs``, default 1e6) and a seed-pair x cell count
matrix; overall, ``O(S x cells)`` per-seed totals, ``cells^2`` Gram matrices, ``B x cells`` bootstrap
sums and the collected bins. None of it grows with the number of impostor comparisons.

All counts are integers held in float64 (exact below 2**53), so point estimates and bootstrap sums
equal the in-memory ones bit for bit; the dyadic variances are the same algebra summed in another
order (equal to ~1e-12).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np
import pandas as pd

from faceaudit.stats import thresholds as T
from faceaudit.stats.bootstrap import pair_quadform
from faceaudit.stats.dyadic import logit_interval, small_sample_factor

__all__ = ["FINE_BINS", "BLOCK_PAIRS", "KEEP_WHOLE", "DET_MAX_POINTS", "ImpostorBlock", "ImpostorSource",
           "ArraySource", "EmbeddingSource", "bin_index", "ScoreDistribution", "ImpostorStats",
           "reduce_impostors", "dyadic_terms", "DyadicTerms", "fmr_ci_streamed", "fmr_contrast_streamed",
           "threshold_free_streamed", "group_threshold_streamed", "roc_table_streamed", "embedding_source"]

#: bins of the exact-threshold histogram (per group, common edges)
FINE_BINS = 1 << 16
#: impostor pairs per block
BLOCK_PAIRS = 1_000_000
#: a group set with at most this many impostor scores is collected whole
KEEP_WHOLE = 200_000
DET_MAX_POINTS = 300


# ---------------------------------------------------------------------------------------------
# sources


@dataclass
class ImpostorBlock:
    """Impostor comparisons of a set of seed pairs (indices into the run's layout).

    Parameters
    ----------
    seed_a, seed_b : numpy.ndarray
        Seed indices of the two faces.
    cell : numpy.ndarray
        Base cell ``group * C + condition``.
    score : numpy.ndarray
        Similarity, NaN where not ``ok``.
    ok : numpy.ndarray
        Both faces enrolled.

    Examples
    --------
    >>> blk = ImpostorBlock(np.array([0, 0]), np.array([1, 2]), np.array([0, 0]), np.array([0.1, np.nan]),
    ...                     np.array([True, False]))
    >>> int(blk.ok.sum()), float(np.nanmax(blk.score))
    (1, 0.1)
    """

    seed_a: np.ndarray
    seed_b: np.ndarray
    cell: np.ndarray  # group * C + condition
    score: np.ndarray  # NaN where not ok
    ok: np.ndarray  # bool: both faces enrolled


class ImpostorSource:
    """Yields the impostor comparisons of one model in blocks; re-iterable (the reducer passes 4 times).

    Contract: ``blocks()`` yields ``(lo_start, lo_stop, block)`` where the block holds every comparison
    whose smaller seed index is in ``[lo_start, lo_stop)`` (so all comparisons of one unordered seed
    pair are in one block), ranges consecutive; every call yields the same blocks (deterministic).

    Parameters
    ----------
    n_seeds : int
        Seeds of the run (attribute of a subclass).
    n_cells : int
        Base cells ``G * C`` (attribute of a subclass).

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp = md.layout, md.impostor
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C,
    ...                   block_pairs=50)
    >>> isinstance(src, ImpostorSource), [(lo, hi) for lo, hi, _ in src.blocks()]
    (True, [(0, 1), (1, 2), (2, 3), (3, 5), (5, 8)])
    """

    n_seeds: int
    n_cells: int

    def blocks(self) -> Iterator[tuple[int, int, ImpostorBlock]]:  # (lo_start, lo_stop, block)
        raise NotImplementedError

    def trial_quadform(self, W: np.ndarray, cell: int) -> np.ndarray:
        """Bootstrap sums of a cell's comparisons when they are not every pair of its enrolled seeds."""
        raise NotImplementedError


class ArraySource(ImpostorSource):
    """Impostor comparisons already in memory (a run's pairs + scores tables): blocks by seed range.

    Parameters
    ----------
    seed_a, seed_b : array_like
        Seed indices of each pair's faces.
    cell : array_like
        Base cell ``group * C + condition`` of each pair.
    score : array_like
        Similarity, NaN where not ``ok``.
    ok : array_like
        Both faces enrolled.
    n_seeds, n_cells : int
        Seeds of the run; base cells ``G * C``.
    block_pairs : int
        About the most pairs in a block (a block never splits one smaller seed's pairs).

    Examples
    --------
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp = md.layout, md.impostor
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C,
    ...                   block_pairs=50)
    >>> sum(len(blk.score) for _, _, blk in src.blocks()) == len(imp)  # every pair, once
    True
    """

    def __init__(self, seed_a, seed_b, cell, score, ok, n_seeds: int, n_cells: int, block_pairs: int = BLOCK_PAIRS):
        self.seed_a, self.seed_b = np.asarray(seed_a, np.int64), np.asarray(seed_b, np.int64)
        self.cell, self.score, self.ok = np.asarray(cell, np.int64), np.asarray(score, float), np.asarray(ok, bool)
        self.n_seeds, self.n_cells, self.block_pairs = n_seeds, n_cells, block_pairs
        lo = np.minimum(self.seed_a, self.seed_b)
        self._order = np.argsort(lo, kind="stable")
        self._bounds = np.searchsorted(lo[self._order], np.arange(n_seeds + 1))

    def blocks(self):
        s0 = 0
        while s0 < self.n_seeds:
            s1 = s0 + 1
            while s1 < self.n_seeds and self._bounds[s1 + 1] - self._bounds[s0] <= self.block_pairs:
                s1 += 1
            idx = self._order[self._bounds[s0]:self._bounds[s1]]
            if len(idx):
                yield s0, s1, ImpostorBlock(self.seed_a[idx], self.seed_b[idx], self.cell[idx], self.score[idx], self.ok[idx])
            s0 = s1

    def trial_quadform(self, W, cell):
        m = (self.cell == cell) & self.ok
        return pair_quadform(W, self.seed_a[m], self.seed_b[m], np.ones(int(m.sum())), self.n_seeds)


class EmbeddingSource(ImpostorSource):
    """Matched impostors generated from the faces and scored from the embeddings, never materialised.

    The design of :func:`faceaudit.pairs.impostor_pairs` without a cap: every pair of distinct seeds
    within one (group, condition) cell. ``cell_seeds[k]`` are the seed indices present in cell ``k``
    (sorted) and ``cell_rows[k]`` the matching rows of ``emb``/``face_ok``. ``similarity``: ``"cosine"``
    (one matrix product per block) or a row-wise callable ``f(a, b)`` (a model's ``similarity``).

    Parameters
    ----------
    cell_seeds : list of numpy.ndarray
        Per base cell: the sorted seed indices present.
    cell_rows : list of numpy.ndarray
        Per base cell: the matching rows of ``emb`` and ``face_ok``.
    emb : numpy.ndarray
        ``(faces, dim)`` embeddings.
    face_ok : numpy.ndarray
        Per face: enrolled.
    n_seeds : int
        Seeds of the run.
    similarity : "cosine" or callable
        How two embeddings are scored.
    block_pairs : int
        About the most pairs in a block.

    Examples
    --------
    >>> from faceaudit.stats.data import make_layout
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> faces = simulate_run_tables(SimSpec(n_seeds=5, groups=("skin=light",), edits={"yaw": (1.0,)}),
    ...                             np.random.default_rng(0))["faces"]
    >>> vectors = np.random.default_rng(1).normal(size=(len(faces), 4))
    >>> emb = pd.DataFrame({"face_id": faces["face_id"], "status": "ok", "embedding": list(vectors)})
    >>> src = embedding_source(faces, emb, make_layout(faces, ["skin=light"]))
    >>> isinstance(src, EmbeddingSource), src.n_pairs()  # C(5, 2) pairs in each of 2 conditions
    (True, 20)
    >>> blk = next(iter(src.blocks()))[2]
    >>> bool(np.all(np.abs(blk.score) <= 1.0 + 1e-12))  # cosine similarities
    True
    """

    def __init__(self, cell_seeds: list[np.ndarray], cell_rows: list[np.ndarray], emb: np.ndarray, face_ok: np.ndarray,
                 n_seeds: int, similarity: str | Callable = "cosine", block_pairs: int = BLOCK_PAIRS):
        self.cell_seeds = [np.asarray(s, np.int64) for s in cell_seeds]
        self.cell_rows = [np.asarray(r, np.int64) for r in cell_rows]
        self.n_seeds, self.n_cells = n_seeds, len(cell_seeds)
        self.face_ok = np.asarray(face_ok, bool)
        self.similarity, self.block_pairs = similarity, block_pairs
        if similarity == "cosine":
            emb = np.asarray(emb, dtype=np.float64)
            norm = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.where(norm > 0, norm, 1.0)
        else:  # the rows score_pairs hands the model (float32): the same scores bit for bit
            emb = np.asarray(emb, dtype=np.float32)
        self.emb = emb
        # pairs whose smaller seed is seed s: sum over cells of the seeds after s in the cell
        per_seed = np.zeros(n_seeds, dtype=np.int64)
        for s in self.cell_seeds:
            np.add.at(per_seed, s, len(s) - 1 - np.arange(len(s)))
        self._cum = np.concatenate([[0], np.cumsum(per_seed)])

    def n_pairs(self) -> int:
        return int(self._cum[-1])

    def _score(self, rows_a: np.ndarray, rows_b: np.ndarray) -> np.ndarray:
        if self.similarity == "cosine":
            raise AssertionError("cosine blocks are scored by matrix products")
        out = np.empty(len(rows_a))
        for i in range(0, len(rows_a), 100_000):
            out[i:i + 100_000] = self.similarity(self.emb[rows_a[i:i + 100_000]], self.emb[rows_b[i:i + 100_000]])
        return out

    def blocks(self):
        s0 = 0
        S = self.n_seeds
        while s0 < S:
            s1 = int(np.searchsorted(self._cum, self._cum[s0] + self.block_pairs, side="right")) - 1
            s1 = min(max(s1, s0 + 1), S)
            parts = []
            for k, (seeds, rows) in enumerate(zip(self.cell_seeds, self.cell_rows)):
                i0, i1 = np.searchsorted(seeds, [s0, s1])
                if i0 >= i1:
                    continue
                m = len(seeds)
                ia, ib = np.nonzero(np.arange(m)[None, :] > np.arange(i0, i1)[:, None])
                ia = ia + i0
                if len(ia) == 0:
                    continue
                ra, rb = rows[ia], rows[ib]
                ok = self.face_ok[ra] & self.face_ok[rb]
                if self.similarity == "cosine":
                    sc = (self.emb[rows[i0:i1]] @ self.emb[rows].T)[ia - i0, ib]
                else:  # a model's row-wise similarity, only where both faces enrolled
                    sc = np.full(len(ia), np.nan)
                    sc[ok] = self._score(ra[ok], rb[ok])
                parts.append((seeds[ia], seeds[ib], np.full(len(ia), k, np.int64), np.where(ok, sc, np.nan), ok))
            if parts:
                cat = [np.concatenate(p) for p in zip(*parts)]
                bad = cat[4] & ~np.isfinite(cat[3])
                if bad.any():
                    from faceaudit.core.errors import BadInput

                    raise BadInput(f"similarity is NaN/inf for an impostor pair of seeds {cat[0][bad][0]}, {cat[1][bad][0]}")
                yield s0, s1, ImpostorBlock(*cat)
            s0 = s1

    def trial_quadform(self, W, cell):  # every pair of the cell's seeds is generated
        raise AssertionError("a complete design never needs the general trial quadform")


# ---------------------------------------------------------------------------------------------
# exact queries on a histogram + collected bins


def bin_index(edges: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Bin ``k`` with ``edges[k] <= x < edges[k+1]`` (the last bin is closed), exactly against ``edges``.

    Parameters
    ----------
    edges : numpy.ndarray
        Equally spaced bin edges, ascending.
    x : array_like
        Values; those outside the edges go to the first or last bin.

    Returns
    -------
    numpy.ndarray
        int64 bin indices.

    Examples
    --------
    >>> bin_index(np.linspace(0.0, 1.0, 5), [0.0, 0.25, 0.49, 1.0, 7.0]).tolist()
    [0, 1, 1, 3, 3]
    """
    nb = len(edges) - 1
    x = np.asarray(x, dtype=float)
    w = (edges[-1] - edges[0]) / nb
    k = np.clip(np.floor((x - edges[0]) / w), 0, nb - 1).astype(np.int64)
    for _ in range(2):  # the division can be one ulp off; settle against the stored edges
        k = np.where((k > 0) & (x < edges[k]), k - 1, k)
        k = np.where((k < nb - 1) & (x >= edges[np.minimum(k + 1, nb)]), k + 1, k)
    return k


class ScoreDistribution:
    """The impostor scores of one group set: fine histogram, then the exact values of needed bins.

    Parameters
    ----------
    edges : numpy.ndarray
        Bin edges (:func:`bin_index`).
    hist : numpy.ndarray
        Scores per bin.
    lo, hi : float
        The exact smallest and largest score.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> d = st.dists[-1]  # all groups
    >>> d.n, d.count_ge(0.2) == int((imp.score >= 0.2).sum()), d.eer(gen_by_set[-1]) == T.eer(gen.score, imp.score)
    (168, True, True)
    """

    def __init__(self, edges: np.ndarray, hist: np.ndarray, lo: float, hi: float):
        self.edges, self.hist = edges, hist.astype(np.int64)
        self.lo, self.hi = lo, hi  # exact smallest and largest score
        self.n = int(self.hist.sum())
        self.suffix = np.concatenate([np.cumsum(self.hist[::-1])[::-1], [0]])  # suffix[k] = #{score >= edges[k]}
        self.nonempty = np.flatnonzero(self.hist)
        self.need = np.zeros(len(hist), dtype=bool)
        self.vals = np.zeros(0)
        self.cnts = np.zeros(0, dtype=np.int64)
        self.vbin = np.zeros(0, dtype=np.int64)
        self._cum = np.zeros(1, dtype=np.int64)

    # planning ------------------------------------------------------------------------------
    def need_all(self) -> None:
        self.need[self.nonempty] = True

    def _next_nonempty(self, k: int) -> int | None:
        i = np.searchsorted(self.nonempty, k, side="left")
        return int(self.nonempty[i]) if i < len(self.nonempty) else None

    def _prev_nonempty(self, k: int) -> int | None:
        i = np.searchsorted(self.nonempty, k, side="left") - 1
        return int(self.nonempty[i]) if i >= 0 else None

    def _critical_bin(self, level: float) -> int | None:
        """Bin of the largest impostor score ``c`` with ``#{>= c}/n > level`` (None: no such score)."""
        ks = self.nonempty
        fail = ks[self.suffix[ks] / self.n > level]
        return int(fail.max()) if len(fail) else None

    def plan_first_t(self, level: float) -> None:
        k = self._critical_bin(level)
        if k is None:
            return
        self.need[k] = True
        nxt = self._next_nonempty(k + 1)
        if nxt is not None:
            self.need[nxt] = True

    def plan_count(self, t: float) -> None:
        if self.lo < t <= self.hi:
            self.need[int(bin_index(self.edges, t))] = True

    def eer_bins(self, gen: np.ndarray) -> tuple[int, int | None, int | None]:
        nb = len(self.hist)
        fmr = self.suffix[:nb] / max(self.n, 1)
        fnmr = np.searchsorted(gen, self.edges[:nb], side="left") / max(len(gen), 1)
        below = np.flatnonzero(fmr - fnmr <= 0)
        k0 = int(below[0]) if len(below) else nb
        p = self._prev_nonempty(k0 - 1) if k0 >= 2 else None
        q = self._next_nonempty(k0) if k0 < nb else None
        return k0, p, q

    def plan_eer(self, gen: np.ndarray) -> None:
        k0, p, q = self.eer_bins(gen)
        for k in (k0 - 1, p, q):
            if k is not None and k >= 0:
                self.need[k] = True

    # collection ----------------------------------------------------------------------------
    def finish(self, values: list[np.ndarray]) -> None:
        v = np.concatenate(values) if values else np.zeros(0)
        self.vals, cnts = np.unique(v, return_counts=True)
        self.cnts = cnts.astype(np.int64)
        self.vbin = bin_index(self.edges, self.vals) if len(self.vals) else np.zeros(0, dtype=np.int64)
        self._cum = np.concatenate([[0], np.cumsum(self.cnts)])
        got = np.bincount(self.vbin, weights=self.cnts, minlength=len(self.hist)).astype(np.int64)
        if not np.array_equal(got[self.need], self.hist[self.need]):
            raise RuntimeError("collected impostor scores disagree with the histogram (source not deterministic?)")

    def _bin_values(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        i0, i1 = np.searchsorted(self.vbin, [k, k + 1])
        return self.vals[i0:i1], self.cnts[i0:i1]

    # exact queries -------------------------------------------------------------------------
    def count_ge(self, t: float) -> int:
        if t > self.hi:
            return 0
        if t <= self.lo:
            return self.n
        k = int(bin_index(self.edges, t))
        if self.hist[k] == 0:
            return int(self.suffix[k + 1])
        if not self.need[k]:
            raise RuntimeError(f"bin {k} was not collected")
        i0 = np.searchsorted(self.vals, t, side="left")
        i1 = np.searchsorted(self.vbin, k, side="right")
        return int(self.suffix[k + 1] + (self._cum[i1] - self._cum[i0] if i1 > i0 else 0))

    def first_t(self, level: float, cand: np.ndarray) -> float:
        """Smallest value ``t`` of (impostor scores U ``cand``) with ``#{impostor >= t}/n <= level``; ``inf`` if none.

        ``threshold_at_fmr(impostor, level, candidates=cand)``, and the first point at or below ``level``
        of the error curve (DET thinning).
        """
        k = self._critical_bin(level)
        if k is None:  # every value qualifies: the smallest of the union
            return float(min(self.lo, cand[0])) if len(cand) else float(self.lo)
        v, c = self._bin_values(k)
        cnt_ge = self.suffix[k + 1] + np.cumsum(c[::-1])[::-1]
        crit = float(v[cnt_ge / self.n > level].max())
        nxt_imp = v[v > crit]
        if len(nxt_imp):
            above = float(nxt_imp[0])
        else:
            nk = self._next_nonempty(k + 1)
            above = float(self._bin_values(nk)[0][0]) if nk is not None else float("inf")
        j = np.searchsorted(cand, crit, side="right")
        if j < len(cand):
            above = min(above, float(cand[j]))
        return above

    def eer(self, gen: np.ndarray) -> tuple[float, float]:
        """``T.eer(gen, impostor)`` exactly (FVC2000 convention; see thresholds.py)."""
        nb = len(self.hist)
        k0, p, q = self.eer_bins(gen)
        start = self.edges[p] if p is not None else -np.inf
        if q is not None and q < nb - 1:
            end, with_inf = self.edges[q + 1], False
        else:
            end, with_inf = np.inf, True
        bins_lo = p if p is not None else 0
        bins_hi = q if q is not None else nb - 1
        sel = (self.vbin >= bins_lo) & (self.vbin <= bins_hi) & (self.vals >= start) & (self.vals < end)
        g = gen[(gen >= start) & (gen < end)]
        thr = np.unique(np.concatenate([self.vals[sel], g]))
        if with_inf:
            thr = np.append(thr, np.inf)
        fmr = np.array([self.count_ge(t) for t in thr]) / max(self.n, 1)
        fnmr = np.searchsorted(gen, thr, side="left") / max(len(gen), 1)
        diff = fmr - fnmr
        t2 = int(np.flatnonzero(diff <= 0)[0])
        first_global = t2 == 0 and start == -np.inf
        t1 = t2 - 1 if (diff[t2] != 0 and not first_global) else t2
        i = t1 if fmr[t1] + fnmr[t1] <= fmr[t2] + fnmr[t2] else t2
        return float((fmr[i] + fnmr[i]) / 2), float(thr[i])

    def all_collected(self) -> bool:
        return bool(self.need[self.nonempty].all())

    def plan_det(self, gen: np.ndarray, max_points: int = DET_MAX_POINTS) -> None:
        if len(self.nonempty) < max_points:  # possibly few distinct values: decide on all of them
            self.need_all()
            return
        half = max_points // 2
        for level in np.logspace(0, np.log10(1.0 / max(self.n, 1)), half):
            self.plan_first_t(level)
        for t in self._fnmr_grid_thresholds(gen, half):
            self.plan_count(t)

    @staticmethod
    def _fnmr_grid_thresholds(gen: np.ndarray, half: int) -> list[float]:
        ng = max(len(gen), 1)
        steps = np.arange(len(gen) + 1) / ng  # FNMR at the union values: #{genuine < t} / ng
        out = []
        for level in np.logspace(np.log10(1.0 / ng), 0, half):
            m = int(np.searchsorted(steps, level, side="right")) - 1
            out.append(float("inf") if m >= len(gen) else float(gen[max(m, 0)]))
        return out

    def det_points(self, gen: np.ndarray, max_points: int = DET_MAX_POINTS):
        """``T.det_points(gen, impostor, max_points)`` exactly."""
        if self.all_collected():
            union = np.unique(np.concatenate([self.vals, gen]))
            if len(union) + 1 <= max_points:  # the whole error curve (T.error_curve)
                thr = np.append(union, np.inf)
                fmr = np.array([self.count_ge(t) for t in thr]) / max(self.n, 1)
                return thr, fmr, np.searchsorted(gen, thr, side="left") / max(len(gen), 1)
        half = max_points // 2
        ts = [float(min(self.lo, gen[0])) if len(gen) else float(self.lo), float("inf")]
        ts += [self.first_t(level, gen) for level in np.logspace(0, np.log10(1.0 / max(self.n, 1)), half)]
        ts += self._fnmr_grid_thresholds(gen, half)
        thr = np.unique(np.array(ts))
        fmr = np.array([self.count_ge(t) for t in thr]) / max(self.n, 1)
        fnmr = np.searchsorted(gen, thr, side="left") / max(len(gen), 1)
        return thr, fmr, fnmr


# ---------------------------------------------------------------------------------------------
# the reduction


@dataclass
class _HitStats:
    """False matches at one global threshold."""

    count: np.ndarray  # (K,) per base cell
    per_seed: np.ndarray  # (S, K) false matches each seed takes part in
    gram_hh: np.ndarray  # (K, K) sum over seed pairs of hits(k) * hits(k')
    gram_hn: np.ndarray  # (K, K) sum over seed pairs of hits(k) * comparisons(k')
    boot: np.ndarray  # (B, K) sum over false matches of W[:, a] * W[:, b]
    #: (seed_a, seed_b, cell) blocks of the false-matching pairs themselves (few: the FMR sign test)
    pairs: list = field(default_factory=list)

    def pair_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.pairs:
            e = np.zeros(0, dtype=np.int64)
            return e, e, e
        return tuple(np.concatenate([p[i] for p in self.pairs]).astype(np.int64) for i in range(3))


@dataclass
class ImpostorStats:
    """What :func:`reduce_impostors` keeps of a model's impostor comparisons (module docstring).

    Parameters
    ----------
    S, G, C : int
        Seeds, groups and edit conditions.
    n_ok, n_fte : numpy.ndarray
        Per base cell: comparisons made, and impostor pairs with a face that failed to enrol.
    per_seed_ok : numpy.ndarray
        ``(S, K)`` comparisons each seed takes part in.
    gram_nn : numpy.ndarray
        ``(K, K)`` Gram matrix of the per-seed-pair comparison counts.
    trial_boot : numpy.ndarray
        ``(B, K)`` bootstrap sums of the comparisons.
    dists : list of ScoreDistribution
        Per group, then all groups.
    auc : list of float
        Per group, then all groups.
    hist_counts, hist_edges : numpy.ndarray or None
        The report's coarse score histogram.
    thresholds : dict of float to float
        Global threshold per target FMR.
    hits : dict
        False-match statistics per target FMR.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> st.K, int(st.n_ok.sum()), st.aggregation().shape  # base cells -> (group + all) x (condition + all)
    (6, 168, (6, 12))
    """

    S: int
    G: int
    C: int
    n_ok: np.ndarray  # (K,) comparisons made per base cell
    n_fte: np.ndarray  # (K,) impostor pairs with an FTE face
    per_seed_ok: np.ndarray  # (S, K)
    gram_nn: np.ndarray  # (K, K)
    trial_boot: np.ndarray  # (B, K)
    dists: list[ScoreDistribution]  # per group, then all groups
    auc: list[float]
    hist_counts: np.ndarray | None  # (G, 60) coarse histogram of the report
    hist_edges: np.ndarray | None
    thresholds: dict[float, float] = field(default_factory=dict)
    hits: dict[float, _HitStats] = field(default_factory=dict)
    _terms: dict = field(default_factory=dict, repr=False)

    @property
    def K(self) -> int:
        return self.G * self.C

    def aggregation(self) -> np.ndarray:
        """``(K, (G+1)(C+1))`` 0/1 matrix: base cell -> every (group + all, condition + all) cell containing it."""
        G, C = self.G, self.C
        M = np.zeros((G * C, (G + 1) * (C + 1)))
        for g in range(G):
            for c in range(C):
                k = g * C + c
                for gg in (g, G):
                    for cc in (c, C):
                        M[k, gg * (C + 1) + cc] = 1.0
        return M


def _dyad_matrix(lo: np.ndarray, hi: np.ndarray, cell: np.ndarray, s0: int, s1: int, S: int, K: int) -> np.ndarray:
    """``(seed pairs of the block, K)`` counts: rows are the block's (lo, hi) seed pairs that occur."""
    key = (lo - s0) * S + hi
    uniq, inv = np.unique(key, return_inverse=True)
    X = np.bincount(inv.ravel() * K + cell, minlength=len(uniq) * K).astype(float)
    return X.reshape(len(uniq), K), uniq


def _per_seed(a: np.ndarray, b: np.ndarray, cell: np.ndarray, S: int, K: int) -> np.ndarray:
    return (np.bincount(a * K + cell, minlength=S * K) + np.bincount(b * K + cell, minlength=S * K)).reshape(S, K).astype(float)


def reduce_impostors(source: ImpostorSource, G: int, C: int, W: np.ndarray, targets: list[float],
                     gen_by_set: list[np.ndarray], far_points: list[float], gen_all_scores: np.ndarray,
                     hist_bins: int = 60, fine_bins: int = FINE_BINS, keep_whole: int = KEEP_WHOLE,
                     timings: dict | None = None, given_thresholds: dict | None = None) -> ImpostorStats:
    """Four passes over ``source`` (module docstring): the impostor statistics of one model.

    Parameters
    ----------
    source : ImpostorSource
        The model's impostor comparisons.
    G, C : int
        Groups and edit conditions of the layout.
    W : numpy.ndarray
        ``(n_boot, n_seeds)`` seed-bootstrap weights.
    targets : list of float
        Target FMRs; the global threshold of each is found exactly.
    gen_by_set : list of numpy.ndarray
        Sorted genuine ok scores per group, then of all groups.
    far_points : list of float
        FARs of the TAR-at-FAR columns.
    gen_all_scores : numpy.ndarray
        Every compared genuine score (for the common histogram edges and the threshold candidates).
    hist_bins, fine_bins : int
        Bins of the report's histogram and of the exact-threshold histogram.
    keep_whole : int
        A group set with at most this many impostor scores is collected whole.
    timings : dict, optional
        Receives the seconds of each pass (``pass1_counts`` ... ``pass4_false_matches``).
    given_thresholds : dict, optional
        ``{target FMR: threshold}`` used instead of the thresholds at ``targets`` (an operating point
        of :mod:`faceaudit.stats.operating_points`).

    Returns
    -------
    ImpostorStats

    Raises
    ------
    ValueError
        No impostor comparison enrolled.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp = md.layout, md.impostor
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C,
    ...                   block_pairs=50)
    >>> gen = md.genuine
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> st.thresholds[0.1] == T.threshold_at_fmr(imp.score, 0.1, candidates=gen.score)  # as in memory
    True
    >>> int(st.n_ok.sum()), st.auc[-1] == T.roc_auc(gen.score, imp.score)
    (168, True)
    """
    import time

    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        if timings is not None:
            timings[name] = timings.get(name, 0.0) + now - clock
        clock = now

    S, K, B = source.n_seeds, G * C, W.shape[0]
    n_ok = np.zeros(K, dtype=np.int64)
    n_fte = np.zeros(K, dtype=np.int64)
    per_seed_ok = np.zeros((S, K))
    gram_nn = np.zeros((K, K))
    lo_g = np.full(G, np.inf)
    hi_g = np.full(G, -np.inf)
    mw_gt = np.zeros(G + 1, dtype=np.int64)
    mw_eq = np.zeros(G + 1, dtype=np.int64)

    def sets(blk: ImpostorBlock):
        """(set index, mask over ok pairs of the block) for each group and for all groups."""
        g = blk.cell // C
        for gi in range(G):
            yield gi, blk.ok & (g == gi)
        yield G, blk.ok

    # pass 1: counts, trial dyadic terms, ranges, Mann-Whitney counts
    for s0, s1, blk in source.blocks():
        ok = blk.ok
        n_ok += np.bincount(blk.cell[ok], minlength=K)
        n_fte += np.bincount(blk.cell[~ok], minlength=K)
        lo, hi = np.minimum(blk.seed_a, blk.seed_b), np.maximum(blk.seed_a, blk.seed_b)
        XN, _ = _dyad_matrix(lo[ok], hi[ok], blk.cell[ok], s0, s1, S, K)
        gram_nn += XN.T @ XN
        per_seed_ok += _per_seed(blk.seed_a[ok], blk.seed_b[ok], blk.cell[ok], S, K)
        for si, m in sets(blk):
            s = blk.score[m]
            if len(s) == 0:
                continue
            if si < G:
                lo_g[si] = min(lo_g[si], s.min())
                hi_g[si] = max(hi_g[si], s.max())
            gen = gen_by_set[si]
            right = np.searchsorted(gen, s, side="right")
            mw_gt[si] += int((len(gen) - right).sum())
            mw_eq[si] += int((right - np.searchsorted(gen, s, side="left")).sum())

    lap("pass1_counts")
    auc = []
    for si in range(G + 1):
        ng, ni = len(gen_by_set[si]), (int(n_ok.reshape(G, C)[si].sum()) if si < G else int(n_ok.sum()))
        auc.append(float((mw_gt[si] + 0.5 * mw_eq[si]) / (ng * ni)) if ng and ni else float("nan"))

    has = np.isfinite(lo_g)
    if not has.any():
        raise ValueError("no impostor comparisons (every impostor pair failed to enrol)")
    imp_lo, imp_hi = float(lo_g[has].min()), float(hi_g[has].max())
    top = imp_hi if imp_hi > imp_lo else imp_lo + max(abs(imp_lo), 1.0) * 1e-9
    edges = np.linspace(imp_lo, top, fine_bins + 1)
    # coarse report histogram: common edges over every compared score of the model
    allmin = min(imp_lo, float(gen_all_scores.min())) if len(gen_all_scores) else imp_lo
    allmax = max(imp_hi, float(gen_all_scores.max())) if len(gen_all_scores) else imp_hi
    if allmax <= allmin:
        allmax = allmin + 1e-9
    hist_edges = np.linspace(allmin, allmax, hist_bins + 1)

    # pass 2: histograms
    fine = np.zeros((G, fine_bins), dtype=np.int64)
    coarse = np.zeros((G, hist_bins), dtype=np.int64)
    for _, _, blk in source.blocks():
        for si, m in sets(blk):
            if si == G:
                continue
            s = blk.score[m]
            if len(s):
                fine[si] += np.bincount(bin_index(edges, s), minlength=fine_bins)
                coarse[si] += np.histogram(s, bins=hist_edges)[0]
    lap("pass2_histograms")
    dists = []
    for si in range(G + 1):
        h = fine[si] if si < G else fine.sum(axis=0)
        lo_s = float(lo_g[si]) if si < G else imp_lo
        hi_s = float(hi_g[si]) if si < G else imp_hi
        dists.append(ScoreDistribution(edges, h, lo_s, hi_s))

    # plan the exact queries
    for si, d in enumerate(dists):
        if d.n == 0:
            continue
        gen = gen_by_set[si]
        if d.n <= keep_whole:
            d.need_all()
            continue
        for t in targets:
            d.plan_first_t(t)
        if len(gen):
            for far in far_points:
                d.plan_first_t(far)
            d.plan_eer(gen)
            d.plan_det(gen)

    # pass 3: collect the needed bins
    got: list[list[np.ndarray]] = [[] for _ in range(G + 1)]
    for _, _, blk in source.blocks():
        for si, m in sets(blk):
            d = dists[si]
            if d.n == 0:
                continue
            s = blk.score[m]
            s = s[d.need[bin_index(edges, s)]]
            if len(s):
                got[si].append(s)
    for si, d in enumerate(dists):
        d.finish(got[si])

    lap("pass3_exact_bins")
    gen_all_sorted = np.sort(np.asarray(gen_all_scores, dtype=float))
    thresholds = {t: dists[G].first_t(t, gen_all_sorted) for t in targets}
    if given_thresholds is not None:  # an operating point set elsewhere (faceaudit.stats.operating_points)
        thresholds = dict(given_thresholds)

    # pass 4: false matches at each threshold
    hits = {t: _HitStats(np.zeros(K, dtype=np.int64), np.zeros((S, K)), np.zeros((K, K)), np.zeros((K, K)), np.zeros((B, K)))
            for t in thresholds}
    step = max(1, 4_000_000 // max(B, 1))
    for s0, s1, blk in source.blocks():
        ok = blk.ok
        lo, hi = np.minimum(blk.seed_a, blk.seed_b), np.maximum(blk.seed_a, blk.seed_b)
        XN, keys = _dyad_matrix(lo[ok], hi[ok], blk.cell[ok], s0, s1, S, K)
        for t, thr in thresholds.items():
            hm = ok & (blk.score >= thr)
            if not hm.any():
                continue
            h = hits[t]
            a, b, c = blk.seed_a[hm], blk.seed_b[hm], blk.cell[hm]
            h.count += np.bincount(c, minlength=K)
            h.pairs.append((a, b, c))
            h.per_seed += _per_seed(a, b, c, S, K)
            XH, hkeys = _dyad_matrix(lo[hm], hi[hm], c, s0, s1, S, K)
            h.gram_hh += XH.T @ XH
            # hit seed pairs are a subset of the ok seed pairs: align rows
            h.gram_hn += XH.T @ XN[np.searchsorted(keys, hkeys)]
            for i in range(0, len(a), step):
                P = W[:, a[i:i + step]] * W[:, b[i:i + step]]
                onehot = np.zeros((len(P[0]), K))
                onehot[np.arange(len(P[0])), c[i:i + step]] = 1.0
                h.boot += P @ onehot

    lap("pass4_false_matches")
    # bootstrap sums of the comparisons: every pair of a cell's enrolled seeds (closed form) or general
    trial_boot = np.zeros((B, K))
    for k in range(K):
        if n_ok[k] == 0:
            continue
        present = np.flatnonzero(per_seed_ok[:, k] > 0)
        m = len(present)
        if n_ok[k] == m * (m - 1) // 2 and gram_nn[k, k] == n_ok[k]:
            Wp = W[:, present]
            trial_boot[:, k] = 1.0 * (Wp.sum(axis=1) ** 2 - (Wp * Wp).sum(axis=1)) / 2
        else:
            trial_boot[:, k] = source.trial_quadform(W, k)
    lap("trial_bootstrap")

    return ImpostorStats(S, G, C, n_ok, n_fte, per_seed_ok, gram_nn, trial_boot, dists, auc,
                         coarse, hist_edges, thresholds, hits)


# ---------------------------------------------------------------------------------------------
# dyadic-robust variances from the reduced terms


def dyadic_terms(st: ImpostorStats, target: float) -> "DyadicTerms":
    """The :class:`DyadicTerms` of one threshold, computed once and kept on ``st``.

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    target : float
        A target FMR of ``st`` (its global threshold).

    Returns
    -------
    DyadicTerms

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> d = dyadic_terms(st, 0.1)
    >>> d is dyadic_terms(st, 0.1), float(d.n[-1]), float(d.e[-1])  # cached; all groups, all conditions
    (True, 168.0, 16.0)
    """
    if target not in st._terms:
        st._terms[target] = DyadicTerms(st, target)
    return st._terms[target]


class DyadicTerms:
    """Per (group + all, condition + all) cell: counts, per-seed totals and Gram matrices of one threshold.

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    target : float
        A target FMR of ``st`` (its global threshold).

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> d = DyadicTerms(st, 0.1)
    >>> j = d.n.size - 1  # all groups, all conditions
    >>> d.variance([(j, 1.0, d.e[j] / d.n[j])]) > 0
    True
    """

    def __init__(self, st: ImpostorStats, target: float):
        M = st.aggregation()
        h = st.hits[target]
        self.e = h.count.astype(float) @ M
        self.n = st.n_ok.astype(float) @ M
        self.Th = h.per_seed @ M
        self.Tn = st.per_seed_ok @ M
        self.HH = M.T @ h.gram_hh @ M
        self.HN = M.T @ h.gram_hn @ M
        self.NN = M.T @ st.gram_nn @ M

    def variance(self, parts: list[tuple[int, float, float]]) -> float:
        """Variance of ``sum_j a_j * (hits_j - R_j * comparisons_j)`` over cells ``j`` (``parts`` = (cell, a_j, R_j))."""
        idx = [j for j, _, _ in parts]
        # coefficients on the basis (H_j, N_j) of every cell involved
        coef = np.array([v for _, a, r in parts for v in (a, -a * r)])
        gram = np.zeros((2 * len(parts), 2 * len(parts)))
        for x, j in enumerate(idx):
            for y, l in enumerate(idx):
                gram[2 * x, 2 * y] = self.HH[j, l]
                gram[2 * x, 2 * y + 1] = self.HN[j, l]
                gram[2 * x + 1, 2 * y] = self.HN[l, j]
                gram[2 * x + 1, 2 * y + 1] = self.NN[j, l]
        ee = float(coef @ gram @ coef)
        T_ = sum(a * (self.Th[:, j] - r * self.Tn[:, j]) for j, a, r in parts)
        present = int((sum(self.Tn[:, j] for j in idx) > 0).sum())
        if present == 0:
            return float("nan")
        vd = float(T_ @ T_) - ee
        return max(small_sample_factor(present) * vd, ee)


def fmr_ci_streamed(st: ImpostorStats, target: float, level: float, est: np.ndarray):
    """Dyadic-robust logit intervals of the FMR of every (group + all, condition + all) cell.

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    target : float
        A target FMR of ``st`` (its global threshold).
    level : float
        Confidence level.
    est : numpy.ndarray
        ``(G+1, C+1)`` FMR estimates, returned as they are.

    Returns
    -------
    est, lo, hi : numpy.ndarray
        ``(G+1, C+1)``; NaN where a cell has no comparison.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> d = dyadic_terms(st, 0.1)
    >>> est, lo, hi = fmr_ci_streamed(st, 0.1, 0.95, (d.e / d.n).reshape(L.G + 1, L.C + 1))
    >>> bool(lo[-1, -1] < est[-1, -1] < hi[-1, -1])
    True
    """
    G, C = st.G, st.C
    d = dyadic_terms(st, target)
    lo = np.full((G + 1, C + 1), np.nan)
    hi = np.full((G + 1, C + 1), np.nan)
    for g in range(G + 1):
        for c in range(C + 1):
            j = g * (C + 1) + c
            n, e = d.n[j], d.e[j]
            if n == 0:
                continue
            se = np.sqrt(d.variance([(j, 1.0, e / n)])) / n
            lo[g, c], hi[g, c] = logit_interval(e / n, se, level)
    return est, lo, hi


def fmr_contrast_streamed(st: ImpostorStats, target: float, g: int, r: int, cond: int | None):
    """FMR difference and smoothed ratio of group ``g`` against group ``r``, with dyadic-robust SEs.

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    target : float
        A target FMR of ``st`` (its global threshold).
    g, r : int
        Group indices (``r``: the reference).
    cond : int or None
        Condition index; None pools the conditions.

    Returns
    -------
    diff, se_diff, ratio, se_log : float
        The difference and its SE; the ratio of smoothed rates and the SE of its log.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> diff, se_diff, ratio, se_log = fmr_contrast_streamed(st, 0.1, 1, 0, None)
    >>> float(diff), float(ratio), bool(se_diff > 0 and se_log > 0)
    (0.0, 1.0, True)
    """
    C = st.C
    c = C if cond is None else cond
    d = dyadic_terms(st, target)
    jg, jr = g * (C + 1) + c, r * (C + 1) + c
    eg, ng, er, nr = d.e[jg], d.n[jg], d.e[jr], d.n[jr]
    rg, rr = eg / ng, er / nr
    diff = eg / ng - er / nr
    se_diff = np.sqrt(d.variance([(jg, 1.0 / ng, rg), (jr, -1.0 / nr, rr)]))
    ratio = ((eg + 0.5) / (ng + 1)) / ((er + 0.5) / (nr + 1))
    se_log = np.sqrt(d.variance([(jg, 1.0 / (eg + 0.5), rg), (jr, -1.0 / (er + 0.5), rr)]))
    return diff, se_diff, ratio, se_log


# ---------------------------------------------------------------------------------------------
# tables


def threshold_free_streamed(st: ImpostorStats, groups: list[str], gen_by_set: list[np.ndarray],
                            far_points: list[float], fmr_key) -> pd.DataFrame:
    """Threshold-free rows (AUC, EER, TAR at FAR) per group and ``all``, exactly as in memory.

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    groups : list of str
        Group names.
    gen_by_set : list of numpy.ndarray
        Sorted genuine ok scores per group, then all.
    far_points : list of float
        FARs of the ``tar_at_far_*`` columns.
    fmr_key : callable
        Column suffix of a FAR.

    Returns
    -------
    pandas.DataFrame

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> t = threshold_free_streamed(st, L.groups, gen_by_set, [0.1], lambda f: f"{f:g}")
    >>> t["group"].tolist(), t.columns.tolist()[1:]
    (['skin=light', 'skin=dark', 'all'], ['auc', 'eer', 'eer_threshold', 'tar_at_far_0.1'])
    >>> (t.loc[2, "eer"], t.loc[2, "eer_threshold"]) == T.eer(gen.score, imp.score)
    True
    """
    rows = []
    for si, name in enumerate(groups + ["all"]):
        gs, d = gen_by_set[si], st.dists[si]
        row = {"group": name}
        if len(gs) and d.n:
            row["auc"] = st.auc[si]
            row["eer"], row["eer_threshold"] = d.eer(gs)
            for far in far_points:
                row[f"tar_at_far_{fmr_key(far)}"] = 1.0 - T.fnmr_at(gs, d.first_t(far, gs))
        rows.append(row)
    return pd.DataFrame(rows)


def group_threshold_streamed(st: ImpostorStats, g: int, target: float, gen: np.ndarray) -> float:
    """The threshold at ``target`` on group ``g``'s impostor scores alone (diagnostic).

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    g : int
        Group index (``G``: all groups).
    target : float
        Target FMR.
    gen : numpy.ndarray
        Sorted genuine scores, the other threshold candidates.

    Returns
    -------
    float
        NaN when the group has no impostor comparison.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> t = group_threshold_streamed(st, 0, 0.1, gen_by_set[0])
    >>> t == T.threshold_at_fmr(imp.score[imp.group == 0], 0.1, candidates=gen_by_set[0])
    True
    """
    d = st.dists[g]
    if d.n == 0:
        return float("nan")
    return d.first_t(target, gen)


def roc_table_streamed(st: ImpostorStats, model: str, groups: list[str], gen_by_set: list[np.ndarray]) -> pd.DataFrame:
    """The thinned error curve of each group and ``all`` (:func:`faceaudit.stats.thresholds.det_points`).

    Parameters
    ----------
    st : ImpostorStats
        The reduced statistics (:func:`reduce_impostors`).
    model : str
        Written in the ``model`` column.
    groups : list of str
        Group names.
    gen_by_set : list of numpy.ndarray
        Sorted genuine ok scores per group, then all.

    Returns
    -------
    pandas.DataFrame
        ``model, group, threshold, fmr, fnmr, n_genuine, n_impostor``.

    Examples
    --------
    >>> from faceaudit.stats import thresholds as T
    >>> from faceaudit.stats.bootstrap import bootstrap_rng, seed_weights
    >>> from faceaudit.stats.simulate import example_model_data
    >>> md = example_model_data(n_seeds=8)
    >>> L, imp, gen = md.layout, md.impostor, md.genuine
    >>> src = ArraySource(imp.seed_a, imp.seed_b, imp.group * L.C + imp.cond, imp.score, imp.ok, L.S, L.G * L.C)
    >>> gen_by_set = [np.sort(gen.score[gen.ok & (gen.group == g)]) for g in range(L.G)] + [np.sort(gen.score[gen.ok])]
    >>> st = reduce_impostors(src, L.G, L.C, seed_weights(L.S, 20, bootstrap_rng(0)), [0.1], gen_by_set, [0.1],
    ...                       gen.score[gen.ok])
    >>> r = roc_table_streamed(st, "sim", L.groups, gen_by_set)
    >>> r["group"].unique().tolist(), bool((r.groupby("group")["fmr"].max() == 1.0).all())
    (['skin=light', 'skin=dark', 'all'], True)
    """
    parts = []
    for si, name in enumerate(groups + ["all"]):
        gs, d = gen_by_set[si], st.dists[si]
        if not len(gs) or not d.n:
            continue
        thr, fmr, fnmr = d.det_points(gs)
        parts.append(pd.DataFrame({"model": model, "group": name, "threshold": thr, "fmr": fmr, "fnmr": fnmr,
                                   "n_genuine": int(len(gs)), "n_impostor": int(d.n)}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def embedding_source(faces: pd.DataFrame, embeddings: pd.DataFrame, layout, similarity: str | Callable = "cosine",
                     block_pairs: int = BLOCK_PAIRS, where: str = "embeddings") -> EmbeddingSource:
    """The matched-impostor design of ``faces`` (:func:`faceaudit.pairs.impostor_pairs`, no cap) over one
    model's ``embeddings`` table (``face_id``, ``status``, ``embedding``), as an :class:`EmbeddingSource`.

    Parameters
    ----------
    faces : pandas.DataFrame
        The run's faces table.
    embeddings : pandas.DataFrame
        One model's embeddings (``face_id, status, embedding``).
    layout : faceaudit.stats.data.Layout
        The run's index space.
    similarity : "cosine" or callable
        How two embeddings are scored.
    block_pairs : int
        About the most pairs in a block.
    where : str
        Where ``embeddings`` came from, for error messages.

    Returns
    -------
    EmbeddingSource

    Raises
    ------
    BadInput
        A missing column, or a face without an embedding.

    Examples
    --------
    >>> from faceaudit.stats.data import make_layout
    >>> from faceaudit.stats.simulate import SimSpec, simulate_run_tables
    >>> faces = simulate_run_tables(SimSpec(n_seeds=5, groups=("skin=light",), edits={"yaw": (1.0,)}),
    ...                             np.random.default_rng(0))["faces"]
    >>> vectors = np.random.default_rng(1).normal(size=(len(faces), 4))
    >>> emb = pd.DataFrame({"face_id": faces["face_id"], "status": "ok", "embedding": list(vectors)})
    >>> src = embedding_source(faces, emb, make_layout(faces, ["skin=light"]))
    >>> sum(len(blk.score) for _, _, blk in src.blocks()) == src.n_pairs() == 20
    True
    """
    from faceaudit.core.errors import BadInput

    missing = [c for c in ("face_id", "status", "embedding") if c not in embeddings.columns]
    if missing:
        raise BadInput(f"{where}: missing columns {missing}")
    emb = embeddings.drop_duplicates("face_id").set_index("face_id")
    absent = ~faces["face_id"].isin(emb.index)
    if absent.any():
        raise BadInput(f"{where}: no embedding for face {faces.loc[absent, 'face_id'].iloc[0]!r}")
    emb = emb.loc[faces["face_id"]]
    ok = (emb["status"] == "ok").to_numpy()
    mat = np.stack([np.asarray(e, dtype=np.float32) for e in emb["embedding"]])
    mat[~ok] = 0.0  # failed enrolments carry NaN; their pairs are not compared
    seed = layout.seed_index(faces["seed"].to_numpy(), "faces.parquet")
    group = layout.group_index(faces["group"].to_numpy(), "faces.parquet")
    cond = layout.condition_index(faces["edit_attr"].to_numpy(), faces["edit_level"].to_numpy(dtype=float), "faces.parquet")
    cell = group * layout.C + cond
    order = np.lexsort((seed, cell))
    cell_seeds, cell_rows = [], []
    bounds = np.searchsorted(cell[order], np.arange(layout.G * layout.C + 1))
    for k in range(layout.G * layout.C):
        rows = order[bounds[k]:bounds[k + 1]]
        s = seed[rows]
        first = np.concatenate([[True], s[1:] != s[:-1]]) if len(s) else np.zeros(0, dtype=bool)
        cell_seeds.append(s[first])
        cell_rows.append(rows[first])
    return EmbeddingSource(cell_seeds, cell_rows, mat, ok, layout.S, similarity, block_pairs)
