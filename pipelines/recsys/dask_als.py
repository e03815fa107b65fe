"""Regularized ALS on Dask, explicit and implicit feedback, by the broadcast or the block method.

Model and loss: exactly als_reference's (the tests hold this module to it). The per-row work
is normal_equations' whole-block kernel, so every task is a few large numpy / scipy calls.

Broadcast method (`method="broadcast"`, the default):
  The rating matrix is cut into P row blocks of users (CSR) and Q row blocks of items (the
  transpose, i.e. CSC blocks), balanced by stored values, one of each per worker by default,
  and sent ONCE, straight from the client, into a Dask actor per worker that weights them and
  keeps them for the whole fit (all workers' transfers in flight together). Each
  half-iteration broadcasts the fixed factor to every actor in one direct call; each actor
  solves its blocks and returns its rows, which the client concatenates for the next
  broadcast. No task is scheduled per iteration: on this machine a chain of scheduled tasks
  cost ~8-13 ms per hop and a direct actor call ~3-7 ms, against ~3-5 ms of numpy work per
  MovieLens-100K half-iteration.

Block method (`method="block"`, for item sets too large to broadcast):
  The matrix is cut into a P x Q grid; block (p, q) lives with item block q. The user
  half-iteration computes, next to each block, the partial normal equations of users p
  against item factors q only (Gram sums and right-hand sides, plus Y_q^T Y_q for implicit
  feedback) and one task per user block sums its Q partials and solves; the item half is the
  mirror image. No task ever holds the whole item factor matrix.

  Nothing goes back to the client between iterations: all iterations are submitted at once,
  each depending on the previous one's futures, and the client only waits for the tiny loss
  figures (its clock gives the per-iteration times). The factors are gathered once, at the end.
  Per iteration: 2PQ partial tasks, P + Q reduce-and-solve tasks, Q tiny stats tasks.

Both methods keep the ratings on the workers from the first transfer to the end of the fit; a
lost worker loses its blocks, so the fit fails rather than recomputing (rerun it). Workers must
be able to import `pipelines` (true for a LocalCluster; install the project on remote workers).
"""

from __future__ import annotations

import itertools
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from pipelines.recsys.als_reference import init_item_factors
from pipelines.recsys.cluster import retain_freed_memory, worker_addresses
from pipelines.recsys.normal_equations import (
    RowEquations,
    WeightedBlock,
    gramian,
    outer_products,
    row_equations,
    row_regularization,
    solve_rows,
    weighted_block,
)


@dataclass
class ALSResult:
    """Factors and the run's record. loss[t] is the full objective after iteration t+1.

    iteration_seconds: wall time of each iteration seen by the client; worker_seconds (broadcast
    method only): per iteration, the slowest worker's compute in each half, summed; the rest of
    an iteration is Dask messaging and the client concatenating the factor blocks.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    loss: list[float]
    iteration_seconds: list[float]
    worker_seconds: list[float]
    setup_seconds: float
    fit_seconds: float
    method: str
    n_user_blocks: int
    n_item_blocks: int
    params: dict = field(default_factory=dict)


def balanced_cuts(indptr: np.ndarray, n_parts: int) -> np.ndarray:
    """Boundaries of at most n_parts contiguous, non-empty row ranges holding about equal stored values.

    Fewer ranges come back when rows are too few or too heavy to fill n_parts.
    """
    n_rows = len(indptr) - 1
    if n_rows <= 0:
        return np.array([0, 0], dtype=np.int64)
    n_parts = max(1, min(n_parts, n_rows))
    targets = np.linspace(0, indptr[-1], n_parts + 1)[1:-1]
    inner = np.searchsorted(indptr, targets, side="left")
    return np.unique(np.concatenate([[0], np.clip(inner, 1, n_rows - 1), [n_rows]])).astype(np.int64)


# ----------------------------------------------------------------------------- worker-side tasks
# Every task result is a tuple (factor block, stats); stats = (data loss, own penalty, other side's penalty).


def _concat_factors(results) -> np.ndarray:
    return np.concatenate([r[0] for r in results], axis=0)


def _solve_broadcast(block: WeightedBlock, reg: np.ndarray, implicit: bool, carry_other: bool, *fixed):
    """Solve one row block against the whole fixed factor (all its blocks, broadcast to this worker)."""
    F = _concat_factors(fixed)
    eq = row_equations(block, F)
    X, data, pen = solve_rows(eq, reg, gramian(F) if implicit else None)
    other = sum(r[1][1] for r in fixed) if carry_other else 0.0
    return X, (data, pen, other)


def _partial(block: WeightedBlock, implicit: bool, fixed_part):
    """Partial normal equations of a grid block's rows against one block of the fixed factor."""
    F = fixed_part[0]
    eq = row_equations(block, F)
    return eq, (gramian(F) if implicit else None), fixed_part[1][1]


def _reduce_solve(reg: np.ndarray, implicit: bool, carry_other: bool, *partials):
    """Sum a row block's partial equations over the fixed factor's blocks, then solve."""
    eq: RowEquations = partials[0][0]
    for p in partials[1:]:
        eq = eq + p[0]
    YtY = sum(p[1] for p in partials) if implicit else None
    X, data, pen = solve_rows(eq, reg, YtY)
    other = sum(p[2] for p in partials) if carry_other else 0.0
    return X, (data, pen, other)


def _transposed_block(M: sp.csr_matrix, implicit: bool, alpha: float, dtype: str) -> WeightedBlock:
    return weighted_block(M.T, implicit, alpha, dtype)


def _stats(result):
    return result[1]


class ALSShard:
    """Dask actor: one worker's user blocks and item blocks, kept for the whole fit, solved on request."""

    def __init__(self, implicit: bool, alpha: float, dtype: str):
        self.implicit = implicit
        self.alpha = alpha
        self.dtype = np.dtype(dtype)
        self.user: list = []
        self.item: list = []

    def load(self, user_blocks: list, user_regs: list, item_blocks: list, item_regs: list) -> int:
        """Receive this worker's rating blocks (sent once, straight from the client) and weight them here.

        user_blocks: CSR slices (users x items); item_blocks: CSC views (items x users).
        Returns the bytes kept.
        """
        prep = lambda m: weighted_block(m, self.implicit, self.alpha, self.dtype)  # noqa: E731
        self.user = [(prep(m), r) for m, r in zip(user_blocks, user_regs)]
        self.item = [(prep(m), r) for m, r in zip(item_blocks, item_regs)]
        return int(sum(b.nbytes + r.nbytes for b, r in self.user + self.item))

    def _solve(self, side, F):
        t0 = time.perf_counter()
        YtY = gramian(F) if self.implicit else None
        Z = outer_products(np.ascontiguousarray(F, dtype=side[0][0].gram.dtype)) if side else None
        out, data, pen = [], 0.0, 0.0
        for block, reg in side:
            X, d, p = solve_rows(row_equations(block, F, Z), reg, YtY)
            out.append(X)
            data += d
            pen += p
        return out, data, pen, time.perf_counter() - t0

    def solve_users(self, item_factors: np.ndarray):
        """New factors of this worker's user blocks (in order), their data loss, penalty, seconds spent."""
        return self._solve(self.user, item_factors)

    def solve_items(self, user_factors: np.ndarray):
        """New factors of this worker's item blocks (in order), their data loss, penalty, seconds spent."""
        return self._solve(self.item, user_factors)


# ----------------------------------------------------------------------------- client side


def _as_csr(ratings) -> sp.csr_matrix:
    R = sp.csr_matrix(ratings)
    R.sum_duplicates()
    R.sort_indices()
    return R


def fit_als(client, ratings: sp.spmatrix, *, rank: int = 10, reg: float = 0.1, iterations: int = 10,
            implicit: bool = False, alpha: float = 1.0, weighted_reg: bool = False, method: str = "broadcast",
            n_user_blocks: int | None = None, n_item_blocks: int | None = None, dtype=np.float32, seed: int = 0,
            item_init: np.ndarray | None = None, tune_worker_malloc: bool = True) -> ALSResult:
    """Fit ALS on the Dask cluster behind `client`.

    ratings: users x items sparse matrix of ratings (explicit) or interaction strengths r >= 0
      (implicit: confidence 1 + alpha * r on stored pairs).
    reg: lam; with weighted_reg, lam * n_u per row (ALS-WR, Spark MLlib's choice).
    method: "broadcast" or "block"; n_user_blocks / n_item_blocks default to the worker count.
    dtype: of the factors and Gram sums (the k x k solves and the loss run in float64).
    item_init: starting item factors (default als_reference.init_item_factors(n_items, rank, seed)).
    tune_worker_malloc: for the fit's duration, let the workers' glibc keep freed memory
      (cluster.retain_freed_memory); restored afterwards.
    Times: setup_seconds = cutting + scattering the blocks; fit_seconds = everything from the
    call to the gathered factors (no cluster start-up).
    """
    if method not in ("broadcast", "block"):
        raise ValueError("method must be 'broadcast' or 'block'")
    if iterations < 1:
        raise ValueError("iterations must be >= 1")
    t0 = time.perf_counter()
    dtype = np.dtype(dtype)
    workers = worker_addresses(client)
    if not workers:
        raise RuntimeError("the Dask cluster has no workers")
    R = _as_csr(ratings)
    item_counts = np.bincount(R.indices, minlength=R.shape[1])
    item_indptr = np.concatenate([[0], np.cumsum(item_counts)])
    n_users, n_items = R.shape
    ucuts = balanced_cuts(R.indptr, n_user_blocks or len(workers))
    icuts = balanced_cuts(item_indptr, n_item_blocks or len(workers))
    ureg = row_regularization(np.diff(R.indptr), reg, weighted_reg)
    ireg = row_regularization(item_counts, reg, weighted_reg)
    Y0 = init_item_factors(n_items, rank, seed) if item_init is None else np.asarray(item_init)
    if Y0.shape != (n_items, rank):
        raise ValueError(f"item_init must have shape {(n_items, rank)}")
    Y0 = Y0.astype(dtype)
    run = _Run(client, workers, implicit, alpha, dtype, t0)
    if tune_worker_malloc:
        client.run(retain_freed_memory, True, workers=workers)
    try:
        if method == "broadcast":
            X, Y, losses, iter_s, setup_s, busy_s = run.broadcast(R, ucuts, icuts, ureg, ireg, Y0, iterations)
        else:
            X, Y, losses, iter_s, setup_s, busy_s = run.block(R, ucuts, icuts, ureg, ireg, Y0, iterations)
    finally:
        if tune_worker_malloc:
            client.run(retain_freed_memory, False, workers=workers)
    return ALSResult(
        user_factors=X, item_factors=Y, loss=losses, iteration_seconds=iter_s, worker_seconds=busy_s,
        setup_seconds=setup_s,
        fit_seconds=time.perf_counter() - t0, method=method, n_user_blocks=len(ucuts) - 1,
        n_item_blocks=len(icuts) - 1,
        params=dict(rank=rank, reg=reg, iterations=iterations, implicit=implicit, alpha=alpha,
                    weighted_reg=weighted_reg, dtype=dtype.name, seed=seed),
    )


class _Run:
    """One fit's client-side bookkeeping: block placement, scattering, and the two iteration drivers."""

    def __init__(self, client, workers, implicit, alpha, dtype, t0):
        self.client, self.workers, self.implicit, self.alpha, self.dtype, self.t0 = (
            client, workers, implicit, alpha, dtype, t0)
        self.key = uuid.uuid4().hex[:8]

    def w(self, j: int) -> str:
        return self.workers[j % len(self.workers)]

    def scatter(self, obj, j: int):
        return self.client.scatter(obj, workers=[self.w(j)], hash=False)

    def broadcast(self, R, ucuts, icuts, ureg, ireg, Y0, iterations):
        P, Q, W = len(ucuts) - 1, len(icuts) - 1, len(self.workers)
        n_shards = min(W, max(P, Q))
        created = [self.client.submit(ALSShard, self.implicit, self.alpha, self.dtype.name, actor=True,
                                      workers=[self.w(j)],
                                      key=f"als-{self.key}-shard-{j}") for j in range(n_shards)]
        actors, loads = [], []
        for j in range(n_shards):
            ups = [p for p in range(P) if p % W == j]
            iqs = [q for q in range(Q) if q % W == j]
            ublocks = [R[ucuts[p]:ucuts[p + 1]] for p in ups]
            # item block q: the items' columns of R, transposed without a copy (a CSC view)
            iblocks = [R[:, icuts[q]:icuts[q + 1]].T for q in iqs]
            actor = created[j].result()
            loads.append(actor.load(ublocks, [ureg[ucuts[p]:ucuts[p + 1]] for p in ups],
                                    iblocks, [ireg[icuts[q]:icuts[q + 1]] for q in iqs]))
            actors.append((actor, ups, iqs))
        for f in loads:
            f.result()
        setup_s = time.perf_counter() - self.t0
        Y = Y0
        losses, iter_s, busy_s = [], [], []
        last = time.perf_counter()
        X = None
        for _ in range(iterations):
            X, _, upen, ubusy = self._half(actors, "solve_users", Y, P, 1)
            Y, data, ipen, ibusy = self._half(actors, "solve_items", X, Q, 2)
            losses.append(float(data + ipen + upen))
            busy_s.append(ubusy + ibusy)
            now = time.perf_counter()
            iter_s.append(now - last)
            last = now
        del actors
        for f in created:
            f.release()
        return X, Y, losses, iter_s, setup_s, busy_s

    @staticmethod
    def _half(actors, method, F, n_blocks, which):
        calls = [(getattr(a, method)(F), ups if which == 1 else iqs) for a, ups, iqs in actors]
        parts: list = [None] * n_blocks
        data = pen = busy = 0.0
        for call, ids in calls:
            blocks, d, p, seconds = call.result()
            for b, arr in zip(ids, blocks):
                parts[b] = arr
            data += d
            pen += p
            busy = max(busy, seconds)
        return np.concatenate(parts, axis=0), data, pen, busy

    def block(self, R, ucuts, icuts, ureg, ireg, Y0, iterations):
        client, key, implicit = self.client, self.key, self.implicit
        P, Q = len(ucuts) - 1, len(icuts) - 1
        w, scatter = self.w, self.scatter
        ublocks, iblocks = {}, {}
        prep = (self.implicit, self.alpha, self.dtype.name)
        for q in range(Q):
            cols = R[:, icuts[q]:icuts[q + 1]]  # all users x the items of block q (CSR)
            for p in range(P):
                raw = scatter(cols[ucuts[p]:ucuts[p + 1]], q)
                # both orientations of block (p, q) are weighted on its worker
                ublocks[p, q] = client.submit(weighted_block, raw, *prep, key=f"als-{key}-ub-{p}-{q}",
                                              workers=[w(q)])
                iblocks[p, q] = client.submit(_transposed_block, raw, *prep, key=f"als-{key}-ib-{p}-{q}",
                                              workers=[w(q)])
        uregs = [scatter(ureg[ucuts[p]:ucuts[p + 1]], p) for p in range(P)]
        iregs = [scatter(ireg[icuts[q]:icuts[q + 1]], q) for q in range(Q)]
        Yf = [scatter((Y0[icuts[q]:icuts[q + 1]], (0.0, 0.0, 0.0)), q) for q in range(Q)]
        setup_s = time.perf_counter() - self.t0
        stat_futures = []
        Xf: list = []
        for it in range(iterations):
            uparts = {(p, q): client.submit(_partial, ublocks[p, q], implicit, Yf[q],
                                            key=f"als-{key}-up-{it}-{p}-{q}", workers=[w(q)])
                      for p, q in itertools.product(range(P), range(Q))}
            Xf = [client.submit(_reduce_solve, uregs[p], implicit, False, *[uparts[p, q] for q in range(Q)],
                                key=f"als-{key}-u-{it}-{p}", workers=[w(p)]) for p in range(P)]
            iparts = {(p, q): client.submit(_partial, iblocks[p, q], implicit, Xf[p],
                                            key=f"als-{key}-ip-{it}-{p}-{q}", workers=[w(q)])
                      for p, q in itertools.product(range(P), range(Q))}
            # only item block 0 carries the user penalty (each item reduce sees every user block)
            Yf = [client.submit(_reduce_solve, iregs[q], implicit, q == 0, *[iparts[p, q] for p in range(P)],
                                key=f"als-{key}-i-{it}-{q}", workers=[w(q)]) for q in range(Q)]
            stat_futures.append([client.submit(_stats, Yf[q], key=f"als-{key}-s-{it}-{q}", workers=[w(q)])
                                 for q in range(Q)])
            del uparts, iparts
        losses, iter_s = [], []
        last = self.t0 + setup_s
        for it in range(iterations):
            stats = client.gather(stat_futures[it])
            now = time.perf_counter()
            iter_s.append(now - last)
            last = now
            losses.append(float(sum(s[0] + s[1] + s[2] for s in stats)))
        results = client.gather(Xf + Yf)
        X = np.concatenate([r[0] for r in results[:P]], axis=0)
        Y = np.concatenate([r[0] for r in results[P:]], axis=0)
        for f in [*Xf, *Yf, *ublocks.values(), *iblocks.values(), *uregs, *iregs]:
            f.release()
        return X, Y, losses, iter_s, setup_s, []

