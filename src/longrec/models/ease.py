"""EASE (Steck, WWW 2019): a closed-form item-item model.

B = I - P diag(1/diag(P)), P = (XᵀX + λI)⁻¹, scores = X_u B. Needs dense items x items
matrices (float32, three of them while λ is searched): about 1.8 GB at 12k items; the
fit refuses, with advice, when they would not fit in the available memory (use itemknn or
lm-linear-dp for larger catalogues).

λ is chosen on the validation split by NDCG@10. Without an explicit `l2_grid` the search
runs in units of the mean item popularity d̄ (the mean diagonal of XᵀX), so the same
default suits small and large catalogues: λ = d̄·{1, 3, 9}, extended outwards by ×3 while the
best sits at an end (up to `l2_extend` times), then one refinement at the vertex of a
parabola through the best point and its neighbours (log λ). Typically 4 solves. The chosen λ
is written to the saved config (`l2`) and to meta.json (fit_info.l2); a warning is given when
it sits at the edge of what was searched.

Each solve is a Cholesky factorisation and inverse in place (LAPACK spotrf/spotri).
"""

from __future__ import annotations

import math
import os
import time
import warnings

import numpy as np
from pydantic import Field

from longrec._threads import limit_blas
from longrec.errors import ConfigError
from longrec.models._progress import available_memory_bytes, progress_enabled, report
from longrec.models.base import ModelConfig, Recommender

#: fits expected to take longer than this print an estimate first
ESTIMATE_ABOVE_S = 30.0


class EASEConfig(ModelConfig):
    l2: float | None = Field(None, gt=0, description="ridge penalty λ used when not tuned; None = l2_scale × the mean "
                             "item popularity. After a fit, the λ actually used.")
    tune_l2: bool = Field(True, description="with a validation split, choose λ by validation NDCG@10")
    l2_grid: list[float] | None = Field(None, description="explicit λ values to try (all of them); None = the "
                                        "adaptive search relative to the mean item popularity")
    l2_scale: float = Field(3.0, gt=0, description="centre of the search (and the untuned λ), in units of the mean "
                            "item popularity (mean diagonal of XᵀX)")
    l2_step: float = Field(3.0, gt=1, description="ratio between neighbouring λ in the search")
    l2_extend: int = Field(2, ge=0, description="extra steps outwards while the best λ sits at an end of the search")
    max_items: int | None = Field(None, ge=1, description="refuse larger catalogues (None: decided by memory)")
    max_memory_gb: float | None = Field(None, gt=0, description="refuse when the dense matrices need more than this "
                                        "(None: the memory available now)")
    num_threads: int = Field(1, ge=0, description="BLAS threads (0 = all cores). 1 is the default: on a busy 2-core "
                             "machine the 12k-item solve took 15 s with 1 thread and 44-77 s with 2; idle, 0 (all) is ~1.5x faster")
    progress: bool | None = Field(None, description="print the λ search and estimates (None: when stderr is a terminal)")
    pop_l2: float = Field(0.0, ge=0, description="extra ridge penalty per item, proportional to its popularity "
                          "(adds pop_l2 · diag(XᵀX) to the diagonal; dropout-denoising EASE, Steck 2020)")
    refit_on_valid: bool = Field(False, description="after choosing λ on valid, refit B on train + valid "
                                 "(more data for the final model; valid can then no longer score it)")


# --------------------------------------------------------------------------- the solve
def _lapack():
    from scipy.linalg import lapack

    return lapack


def ease_weights(G: np.ndarray, lam: float, out: np.ndarray | None = None, pop_l2: float = 0.0) -> np.ndarray:
    """EASE weights B (float32, n x n) from the Gram matrix G = XᵀX (float32, C order, symmetric).

    G is left untouched; `out` (float32, C order, n x n) is used as the work buffer when given, so
    a λ search needs no allocation per λ. The inverse comes from a Cholesky factorisation in place."""
    n = G.shape[0]
    W = np.empty((n, n), dtype=np.float32) if out is None else out
    np.copyto(W, G, casting="same_kind")
    W.flat[::n + 1] += np.float32(lam)
    if pop_l2:  # EDLAE-style (Steck 2020): a penalty growing with the item's popularity
        W.flat[::n + 1] += np.float32(pop_l2) * np.diag(G)
    lapack = _lapack()
    # W is symmetric: its transpose is a Fortran-ordered view LAPACK works on without a copy;
    # the factor and the inverse land in that view's lower triangle = W's upper triangle
    F = W.T
    c, info = lapack.spotrf(F, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise ConfigError(f"EASE: XᵀX + λI is not positive definite at λ={lam:g} (LAPACK info {info}); use a larger l2.")
    inv, info = lapack.spotri(c, lower=1, overwrite_c=1)
    if info != 0:
        raise ConfigError(f"EASE: the inverse failed at λ={lam:g} (LAPACK info {info}); use a larger l2.")
    if not np.shares_memory(inv, W):  # LAPACK copied after all (unusual memory layout)
        np.copyto(W, inv.T)
    _symmetrize_from_upper(W)
    scale = np.diag(W).copy()
    np.reciprocal(scale, out=scale)
    scale *= -1.0
    np.multiply(W, scale[None, :], out=W)  # B = -P / diag(P) column-wise
    W.flat[::n + 1] = 0.0
    return W


def _symmetrize_from_upper(W: np.ndarray, block: int = 1024) -> None:
    """Copy W's upper triangle onto its lower one, in blocks (no n x n temporary)."""
    n = W.shape[0]
    for a in range(0, n, block):
        b = min(a + block, n)
        D = W[a:b, a:b]
        D[...] = np.triu(D) + np.triu(D, 1).T
        if b < n:
            W[b:, a:b] = W[a:b, b:].T


def gram(X) -> np.ndarray:
    """Dense float32 XᵀX of a binary sparse user x item matrix."""
    Xc = X.astype(np.float32)
    G = np.zeros((X.shape[1], X.shape[1]), dtype=np.float32)
    (Xc.T.tocsr() @ Xc).toarray(out=G)
    return G


def solve_scores(X, lam: float, num_threads: int = 1) -> np.ndarray:
    """X @ B for the EASE weights of X at ridge λ (float32): the simulator's true-utility fit."""

    @limit_blas(num_threads or None)
    def run():
        B = ease_weights(gram(X), lam)
        return np.asarray(X.astype(np.float32) @ B)

    return run()


# --------------------------------------------------------------------------- estimates
#: n³ per second of one solve (Cholesky + inverse + scaling) on one core; measured on the 2-core
#: reference machine: 12,339 items in 15.6 s with 1 BLAS thread (OpenBLAS, float32)
REF_SOLVE_RATE = 1.2e11
#: sparse x dense multiply-adds per second when the validation users are scored
REF_SCORE_RATE = 1.0e9


def estimate_seconds(n_items: int, n_solves: int, score_nnz: int, threads: int) -> tuple[float, float]:
    """(seconds per solve, total seconds) expected for a fit, from the reference rates scaled
    by the BLAS threads and by how busy the machine is now (1-minute load average)."""
    cores = os.cpu_count() or 1
    t = min(threads or cores, cores)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    busy = max(1.0, load / cores)
    per_solve = n_items ** 3 / (REF_SOLVE_RATE * t) * busy
    per_eval = per_solve + score_nnz * n_items / REF_SCORE_RATE * busy
    gram_s = 2 * score_nnz * n_items / REF_SCORE_RATE * busy
    return per_solve, n_solves * per_eval + gram_s


def memory_needed(n_items: int, searching: bool) -> int:
    """Bytes of the dense matrices: G, the work buffer and (while searching) the best B so far."""
    return (3 if searching else 2) * n_items * n_items * 4


class EASE(Recommender):
    name = "ease"
    Config = EASEConfig

    def _fit(self, X, train, valid) -> None:
        limit_blas(self.config.num_threads or None)(self._fit_limited)(X, train, valid)

    # ------------------------------------------------------------------ checks before the work
    def _check_resources(self, n: int, n_solves: int, score_nnz: int, show: bool) -> None:
        cfg = self.config
        if cfg.max_items is not None and n > cfg.max_items:
            raise ConfigError(f"EASE was limited to {cfg.max_items:,} items (max_items) and this catalogue has {n:,}; "
                              "raise max_items, or use --model itemknn or lm-linear-dp.")
        need = memory_needed(n, n_solves > 1)
        have = cfg.max_memory_gb * 2**30 if cfg.max_memory_gb is not None else available_memory_bytes()
        if have is not None and need > have:
            source = "max_memory_gb" if cfg.max_memory_gb is not None else "available now"
            raise ConfigError(
                f"EASE on {n:,} items needs about {need / 2**30:.1f} GiB for its dense {n:,} x {n:,} matrices but "
                f"{have / 2**30:.1f} GiB is {source}. Use --model itemknn (sparse neighbours, little memory) or "
                f"lm-linear-dp for a catalogue this size, free memory, or give a single λ (tune_l2 = false) to "
                f"need {memory_needed(n, False) / 2**30:.1f} GiB.")
        per_solve, total = estimate_seconds(n, n_solves, score_nnz, cfg.num_threads)
        self.fit_info_["estimate"] = {"seconds": round(total, 1), "memory_gb": round(need / 2**30, 2),
                                      "solves": n_solves}
        if total > ESTIMATE_ABOVE_S:
            report(show, f"EASE: {n:,} items, about {n_solves} solve(s) of ~{per_solve:.0f} s: expect ~{total:.0f} s "
                   f"and {need / 2**30:.1f} GiB ({cfg.num_threads or 'all'} BLAS thread(s)).")

    # ------------------------------------------------------------------ fit
    def _fit_limited(self, X, train, valid) -> None:
        cfg = self.config
        show = progress_enabled(cfg.progress)
        n = X.shape[1]
        tuning = valid is not None and cfg.tune_l2
        n_solves = (len(cfg.l2_grid) if cfg.l2_grid else 4) if tuning else 1
        self._check_resources(n, n_solves, X.nnz, show)
        t0 = time.perf_counter()
        G = gram(X)
        mean_pop = float(np.trace(G)) / n if n else 1.0
        unit = max(mean_pop, 1e-3)
        self.fit_info_["mean_item_popularity"] = round(mean_pop, 4)
        W = np.empty_like(G)
        if not tuning:
            lam = cfg.l2 if cfg.l2 is not None else cfg.l2_scale * unit
            self.B_ = ease_weights(G, lam, out=W, pop_l2=cfg.pop_l2)
        else:
            lam = self._search(G, W, unit, valid, show, t0)
        del W
        self.fit_info_["l2"] = round(float(lam), 6)
        self.config = self.config.model_copy(update={"l2": round(float(lam), 6)})
        if cfg.refit_on_valid and valid is not None:
            Xall = ((X + valid.matrix(self.vocab_)) > 0).astype(np.float32)
            self.B_ = ease_weights(gram(Xall), lam, out=G, pop_l2=cfg.pop_l2)
            self.fit_info_["refit_on_valid"] = True
        self.fit_info_["solve_seconds"] = round(time.perf_counter() - t0, 2)

    def _search(self, G, W, unit, valid, show, t0) -> float:
        from longrec.models.validation import valid_ndcg

        cfg = self.config
        scores: dict[float, float] = {}
        planned = len(cfg.l2_grid) if cfg.l2_grid else 4
        t_gram = time.perf_counter() - t0
        bufs: list = [W, None]  # the best B so far lives in one, the next solve goes to the other
        best = {"i": None}

        def evaluate(lam: float) -> float:
            lam = float(f"{lam:.6g}")
            if lam in scores:
                return scores[lam]
            i = 1 if best["i"] == 0 else 0
            if bufs[i] is None:
                bufs[i] = np.empty_like(G)
            self.B_ = ease_weights(G, lam, out=bufs[i], pop_l2=cfg.pop_l2)
            s = valid_ndcg(self, valid)
            if best["i"] is None or (s, -lam) > (best["s"], -best["lam"]):
                best.update(i=i, s=s, lam=lam)
            scores[lam] = s
            spent = time.perf_counter() - t0
            left = max(planned - len(scores), 0) * (spent - t_gram) / len(scores)
            report(show, f"EASE λ={lam:g}: valid NDCG@10 {s:.4f}  [{spent:.0f} s"
                   + (f", ~{left:.0f} s left]" if left else "]"))
            return s

        if cfg.l2_grid:
            for lam in cfg.l2_grid:
                evaluate(lam)
            edges = (min(scores), max(scores))
        else:
            edges = self._adaptive(evaluate, scores, unit)
        lam = best["lam"]
        self.B_ = bufs[best["i"]]
        bufs.clear()
        self.fit_info_["valid_ndcg@10"] = {f"{k:g}": round(v, 6) for k, v in sorted(scores.items())}
        if len(scores) > 1 and lam in edges:
            side = "smallest" if lam == edges[0] else "largest"
            warnings.warn(f"EASE: the chosen λ={lam:g} is the {side} value searched; the best may lie beyond it "
                          f"(set l2_grid, or l2_scale/l2_extend to search further).", stacklevel=6)
            self.fit_info_["l2_at_edge"] = True
        return lam

    def _adaptive(self, evaluate, scores, unit) -> tuple[float, float]:
        cfg = self.config
        step, centre = cfg.l2_step, cfg.l2_scale * unit
        for lam in (centre / step, centre, centre * step):
            evaluate(lam)
        lo, hi = centre / step, centre * step
        for _ in range(cfg.l2_extend):
            best = max(scores, key=lambda k: (scores[k], -k))
            if math.isclose(best, lo, rel_tol=1e-4):
                lo /= step
                evaluate(lo)
            elif math.isclose(best, hi, rel_tol=1e-4):
                hi *= step
                evaluate(hi)
            else:
                break
        lo, hi = min(scores), max(scores)
        best = max(scores, key=lambda k: (scores[k], -k))
        if best in (lo, hi):
            return lo, hi
        # one refinement at the vertex of the parabola through best and its neighbours (in log λ)
        keys = sorted(scores)
        i = keys.index(best)
        x0, x1, x2 = (math.log(keys[j]) for j in (i - 1, i, i + 1))
        y0, y1, y2 = (scores[keys[j]] for j in (i - 1, i, i + 1))
        denom = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
        if denom != 0:
            xv = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denom
            xv = min(max(xv, x1 - 0.75 * (x1 - x0)), x1 + 0.75 * (x2 - x1))
            if abs(xv - x1) > 0.2 * math.log(cfg.l2_step):
                evaluate(math.exp(xv))
        return lo, hi

    def _score(self, users, hist) -> np.ndarray:
        return np.asarray(hist.matrix() @ self.B_)

    def _state(self):
        return {"B": self.B_}

    def _check_state(self, d, t, n_users, n_items):
        from longrec.models.artifacts import check_tensors

        check_tensors(d, t, {"B": ("f", (n_items, n_items))})

    def _set_state(self, t):
        self.B_ = t["B"]
