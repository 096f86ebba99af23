"""numpy baselines for the benchmarks: what a competent numpy user would write without mazejax.

Exact RLVR (docs/model.md §4.2), sign ascent on branch-symmetric policies:

* :func:`numpy_symmetric_rlvr` -- one run on the branch-symmetric *quotient chain* (the public
  reproduction's approach): every branch collapses to its ``2K + 1`` nodes with two states per
  node (arrived moving forward F / backward B); one non-target branch stands for the ``W - 1``
  alike ones, plus the target branch and the fork: ``8K + 2`` transient states. Each step builds
  ``A = I - Q`` with vectorised fancy indexing, solves ``A h = 1`` (hitting times) and
  ``A^T v = e_fork`` (expected visits) with ``np.linalg.solve`` in float64, and gets the exact
  gradient from the occupancy formula ``dH/dp = sum_s v_s (h(continue_s) - h(turn_s))`` summed per
  (type, depth) with ``np.bincount`` -- no finite differences, no Python loop over states.
* :func:`numpy_symmetric_rlvr_batch` -- the same for many runs at once: runs with the same ``K``
  share the chain's shape, so each step is one stacked ``np.linalg.solve`` per ``K``.
* :func:`numpy_dense_rlvr_step` -- one step on the full edge-state graph with dense per-target
  solves (``bench/exact.py``'s :func:`numpy_hitting_time_and_gradient`): the naive column.

Both follow :func:`mazejax.train.rlvr.symmetric_trajectory` step for step: float32 logits
``theta [4, K, 2]`` (desired / other logit per type a, b, c, d and depth), type probability
``sigmoid(theta_d - theta_u + log(n_d / n_u))`` with ``(n_d, n_u) = (1, L)`` for a and d and
``(L, 1)`` for b and c, the float64 gradient cast to float32 before its sign (as optax sees it),
``theta <- theta - lr * sign(dH/dtheta)`` in float32; fork rows stay uniform.

Monte Carlo (docs/model.md §2, §4.3):

* :func:`numpy_walks` -- full-length walks of the tabular policy from state 0 to a uniformly drawn
  target (or the horizon), vectorised over walks, only unfinished walks stepped: Walker alias
  tables (``method="alias"``, default, fastest) or inverse CDF (``"cdf"``), walks that hit their
  target parked in a sink row and compacted away every ``compact`` moves.
  ``bench/rollout.py``'s numpy walkers (fixed horizon 512, totals only) compact at every hit and
  keep ``x - slot < keep``; this one premultiplies states by ``D`` and folds the slot into the
  threshold, two numpy passes fewer per move (25% more moves/s measured at (6,6,5)).
* :func:`numpy_search_walks` -- the same under the search scaffold of Corollary 1, semantics
  ``"aggregate"`` and ``"mask"`` as :func:`mazejax.simulate.search_walks`.

The baselines compute in numpy only (float64 unless stated); importing this module imports
``bench/exact.py`` (for the dense solver), which imports jax and mazejax.

``python bench/baselines.py`` times the walkers (methods and compaction intervals, interleaved)
and the quotient-chain step at a few sizes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from exact import numpy_hitting_time_and_gradient  # noqa: E402  (the dense full-graph solver)

TYPES = "abcd"  # a = R+, b = R-, c = L+, d = L- (docs/model.md §2.1; mazejax.maze type codes 0..3)


def blas_threads(count: int) -> int | None:
    """Set the threads of numpy's OpenBLAS (``count``); returns the previous count, None if unknown.

    The quotient-chain solves are tiny ([8K + 2]^2): on this 2-core machine OpenBLAS's threading
    makes a K = 15 step 13-45x slower than one thread (2.8-9.6 ms against 0.21 ms). Benchmarks call
    ``blas_threads(1)`` (or start Python with ``OPENBLAS_NUM_THREADS=1``).
    """
    import ctypes

    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "openblas" in line.lower() and line.split()[-1].startswith("/")}
    except OSError:
        return None
    for path in sorted(paths):
        lib = ctypes.CDLL(path)
        for prefix, suffix in (("scipy_openblas", "64_"), ("openblas", "64_"), ("scipy_openblas", ""), ("openblas", "")):
            setter = getattr(lib, f"{prefix}_set_num_threads{suffix}", None)
            getter = getattr(lib, f"{prefix}_get_num_threads{suffix}", None)
            if setter is not None and getter is not None:
                previous = int(getter())
                setter(int(count))
                return previous
    return None


# ----------------------------------------------------------------------------------------
# The branch-symmetric quotient chain


def quotient_chain(K: int) -> dict:
    """Index tables of the quotient chain of a ``Maze(W, K, L)`` (independent of W and L).

    Transient states (``n = 8K + 2``): 0 the fork (``s0 -> f`` and every exit state ``u -> f``
    alike: all move uniformly into the W branches), then per branch (target, non-target) the
    states F_k (k = 1..2K, arrived at level k moving forward) and B_k (k = 1..2K, arrived moving
    backward), and the non-target leaf F_{2K+1}. Level k odd is the left node of diamond
    ``(k + 1) // 2``, k even its right node. The target leaf is absorbing (column ``n``).

    Returns a dict with ``n``, the typed rows ``row`` [8K], their ``cont``/``turn`` columns
    (where continuing / turning back leads), ``param`` (``type * K + depth - 1``), and the fixed
    entries: ``fork_target``, ``fork_other`` (the F_1 columns the fork enters), ``leaf``/``leaf_to``
    (the non-target leaf's U-turn).
    """
    n = 8 * K + 2
    rows, cont, turn, param = [], [], [], []
    for branch, target in ((1, True), (1 + 4 * K, False)):
        F = lambda k: branch + k - 1  # noqa: E731  F_k, k = 1..2K (+ 2K+1 below)
        B = lambda k: branch + 2 * K + k - 1 if k >= 1 else 0  # noqa: E731  B_0 is the fork
        leaf = n if target else branch + 4 * K  # F_{2K+1}
        for k in range(1, 2 * K + 1):
            j = (k + 1) // 2 - 1
            nxt = F(k + 1) if k < 2 * K else leaf
            left = k % 2 == 1
            # F_k: continue to F_{k+1} (c at a left node, a at a right one), else turn to B_{k-1}.
            rows.append(F(k)), cont.append(nxt), turn.append(B(k - 1)), param.append((2 if left else 0) * K + j)
            # B_k: continue to B_{k-1} (d at a left node, b at a right one), else turn to F_{k+1}.
            rows.append(B(k)), cont.append(B(k - 1)), turn.append(nxt), param.append((3 if left else 1) * K + j)
    return {
        "n": n,
        "row": np.array(rows),
        "cont": np.array(cont),
        "turn": np.array(turn),
        "param": np.array(param),
        "fork_target": 1,
        "fork_other": 1 + 4 * K,
        "leaf": 1 + 8 * K,
        "leaf_to": 1 + 4 * K + 4 * K - 1,  # B_2K of the non-target branch
    }


def _log_ratio(L, K):
    """[4, K]: ``log(n_desired / n_other)`` per type a, b, c, d (the same at every depth)."""
    L = float(L)
    return np.array([[-np.log(L)], [np.log(L)], [np.log(L)], [-np.log(L)]]) * np.ones((1, K))


def type_probabilities(theta, L):
    """float64 [4, K]: a, b, c, d of float32 per-type logits ``theta`` [4, K, 2]."""
    theta = np.asarray(theta, np.float64)
    x = theta[..., 0] - theta[..., 1] + _log_ratio(L, theta.shape[1])
    return 1.0 / (1.0 + np.exp(-x))


class QuotientSolver:
    """``A = I - Q`` of the quotient chain for one (W, K), rebuilt in place from type probabilities."""

    def __init__(self, W: int, K: int):
        c = quotient_chain(K)
        self.W, self.K, self.n = W, K, c["n"]
        n = self.n
        self.row, self.cont, self.turn, self.param = c["row"], c["cont"], c["turn"], c["param"]
        # Flat positions in an [n, n + 1] buffer: the absorbing column n collects the moves into
        # the target (never solved for).
        self.flat_cont = self.row * (n + 1) + self.cont
        self.flat_turn = self.row * (n + 1) + self.turn
        base = np.zeros((n, n + 1))
        base[np.arange(n), np.arange(n)] = 1.0
        base[0, c["fork_target"]] -= 1.0 / W
        base[0, c["fork_other"]] -= (W - 1.0) / W
        base[c["leaf"], c["leaf_to"]] -= 1.0
        self.base = base
        self.buffer = base.copy()
        self.rhs = np.ones(n)
        self.start = np.zeros(n)
        self.start[0] = 1.0
        self.pair = np.empty((2, n, n))  # [A, A^T]: both solves in one np.linalg.solve call
        self.pair_rhs = np.stack([self.rhs, self.start])[..., None]

    def matrix(self, probs):
        """``I - Q`` [n, n] for type probabilities [4, K] (a view into a reused buffer)."""
        p = probs.ravel()[self.param]
        flat = self.buffer.reshape(-1)
        flat[self.flat_cont] = -p
        flat[self.flat_turn] = -(1.0 - p)
        return self.buffer[:, : self.n]

    def hitting_time(self, probs) -> float:
        """Exact H (float64, dense solve) of the branch-symmetric policy ``probs`` [4, K]."""
        return float(np.linalg.solve(self.matrix(probs), self.rhs)[0])

    def value_and_grad(self, probs):
        """``(H, dH/dp [4, K])``: one solve for h, one with the transpose for the visits v.

        Both go through one stacked ``np.linalg.solve`` call (5-10% faster per step than two calls
        at K = 1..10, measured interleaved).
        """
        A = self.matrix(probs)
        self.pair[0] = A
        self.pair[1] = A.T
        x = np.linalg.solve(self.pair, self.pair_rhs)
        h, v = x[0, :, 0], x[1, :, 0]
        h_ext = np.append(h, 0.0)  # the absorbing target: h = 0
        g = v[self.row] * (h_ext[self.cont] - h_ext[self.turn])
        return h[0], np.bincount(self.param, weights=g, minlength=4 * self.K).reshape(4, self.K)


def numpy_symmetric_hitting_time(probs, W: int, K: int) -> float:
    """H of the branch-symmetric policy with type probabilities ``probs`` [4, K] on Maze(W, K, .)."""
    return QuotientSolver(W, K).hitting_time(np.asarray(probs, np.float64).reshape(4, K))


def _sign_step(theta, dH_dp, probs, lr32):
    """One float32 sign step on ``theta`` [4, K, 2] given dH/dp [4, K] (module docstring)."""
    g0 = (dH_dp * probs * (1.0 - probs)).astype(np.float32)  # dH/dtheta_desired; other = -g0
    s = np.sign(g0)
    theta[..., 0] += -lr32 * s
    theta[..., 1] += lr32 * s
    return theta


def numpy_symmetric_rlvr(W: int, K: int, L: int, steps: int = 600, lr: float = 0.01, *, return_theta=False):
    """Exact sign-gradient RLVR on the quotient chain; returns H [steps + 1] (float64).

    ``H[t]`` is the exact expected hitting time after ``t`` steps (``H[0]`` the base model). With
    ``return_theta``, also returns the final float32 ``theta`` [4, K, 2].
    """
    solver = QuotientSolver(W, K)
    lr32 = np.float32(lr)
    theta = np.zeros((4, K, 2), np.float32)
    log_ratio = _log_ratio(L, K)
    H = np.empty(steps + 1)
    for t in range(steps):
        x = theta[..., 0].astype(np.float64) - theta[..., 1] + log_ratio
        probs = 1.0 / (1.0 + np.exp(-x))
        H[t], dH_dp = solver.value_and_grad(probs)
        _sign_step(theta, dH_dp, probs, lr32)
    H[steps] = solver.hitting_time(type_probabilities(theta, L))
    return (H, theta) if return_theta else H


def numpy_symmetric_rlvr_batch(configs, steps: int = 600, lr: float = 0.01):
    """Many quotient-chain runs at once: ``configs`` a sequence of (W, K, L); returns H [runs, steps + 1].

    Runs with the same K share the chain's shape; each step stacks their ``I - Q`` and calls
    ``np.linalg.solve`` once per K for h and once for the visits (LAPACK's loop over the stack).
    """
    configs = [tuple(int(x) for x in c) for c in configs]
    out = np.empty((len(configs), steps + 1))
    lr32 = np.float32(lr)
    for K in sorted({c[1] for c in configs}):
        idx = [i for i, c in enumerate(configs) if c[1] == K]
        m = len(idx)
        ref = QuotientSolver(1, K)
        n = ref.n
        base = np.stack([QuotientSolver(configs[i][0], K).base for i in idx])  # [m, n, n + 1]
        buffer = base.copy()
        flat = buffer.reshape(m, -1)
        log_ratio = np.stack([_log_ratio(configs[i][2], K) for i in idx])  # [m, 4, K]
        theta = np.zeros((m, 4, K, 2), np.float32)
        rhs = np.ones((m, n, 1))
        start = np.zeros((m, n, 1))
        start[:, 0] = 1.0
        H = np.empty((m, steps + 1))

        def probabilities(theta):
            x = theta[..., 0].astype(np.float64) - theta[..., 1] + log_ratio
            return 1.0 / (1.0 + np.exp(-x))

        for t in range(steps + 1):
            probs = probabilities(theta)
            p = probs.reshape(m, -1)[:, ref.param]
            flat[:, ref.flat_cont] = -p
            flat[:, ref.flat_turn] = -(1.0 - p)
            A = buffer[:, :, :n]
            h = np.linalg.solve(A, rhs)[..., 0]
            H[:, t] = h[:, 0]
            if t == steps:
                break
            v = np.linalg.solve(np.swapaxes(A, 1, 2), start)[..., 0]
            h_ext = np.concatenate([h, np.zeros((m, 1))], axis=1)
            g = v[:, ref.row] * (h_ext[:, ref.cont] - h_ext[:, ref.turn])  # [m, 8K]
            dH_dp = (g @ ref_onehot(ref)).reshape(m, 4, K)  # per-(type, depth) sums
            _sign_step(theta, dH_dp, probs, lr32)
        out[idx] = H
    return out


def ref_onehot(solver: QuotientSolver) -> np.ndarray:
    """[8K, 4K] 0/1 matrix summing the typed rows per (type, depth) (a bincount for batches)."""
    cached = getattr(solver, "_onehot", None)
    if cached is None:
        cached = np.zeros((solver.row.size, 4 * solver.K))
        cached[np.arange(solver.row.size), solver.param] = 1.0
        solver._onehot = cached
    return cached


# ----------------------------------------------------------------------------------------
# The dense full-graph column


def maze_arrays(maze):
    """(successors, valid, target_hit) numpy arrays of a mazejax Maze."""
    return np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.target_hit)


def numpy_dense_rlvr_step(arrays, logits, lr, trainable):
    """One exact-RLVR sign step on the full graph (dense per-target solves); (new logits, H)."""
    H, grad = numpy_hitting_time_and_gradient(*arrays, logits)
    return np.where(trainable, logits - lr * np.sign(grad), logits), H


# ----------------------------------------------------------------------------------------
# Monte Carlo walks


def softmax_probabilities(valid, logits):
    """float64 [S, D] move probabilities (rows without a valid move: zeros)."""
    z = np.where(valid, np.asarray(logits, np.float64), -np.inf)
    top = z.max(axis=1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    w = np.where(valid, np.exp(z - top), 0.0)
    total = w.sum(axis=1, keepdims=True)
    return w / np.where(total > 0, total, 1.0)


def alias_tables(p):
    """Walker alias tables of every row of ``p`` [S, D] at once: (keep [S, D], alias [S, D]).

    Drawing slot ``j`` uniformly and keeping it with probability ``keep[s, j]`` (else taking
    ``alias[s, j]``) samples row ``s`` exactly. Vectorised over rows: ``D - 1`` rounds, each pairing
    the poorest open slot of every row with its richest one.
    """
    S, D = p.shape
    mass = p * D
    keep = np.ones((S, D))
    alias = np.tile(np.arange(D), (S, 1))
    open_ = np.ones((S, D), bool)
    rows = np.arange(S)
    for _ in range(D - 1):
        poor = np.where(open_, mass, np.inf).argmin(axis=1)
        rich_mass = np.where(open_, mass, -np.inf)
        rich_mass[rows, poor] = -np.inf
        rich = rich_mass.argmax(axis=1)
        m = mass[rows, poor]
        keep[rows, poor] = np.clip(m, 0.0, 1.0)
        alias[rows, poor] = rich
        mass[rows, rich] -= 1.0 - m
        open_[rows, poor] = False
    keep = np.where(p > 0, keep, 0.0)
    return keep, alias


def _target_of(target_hit, target_mask, S):
    """int32 [S + 1]: the real target slot whose node is the head of each state, -1 if none (+ sink)."""
    hits = np.asarray(target_hit, bool) & np.asarray(target_mask, bool)[:, None]
    out = np.where(hits.any(0), hits.argmax(0), -1).astype(np.int32)
    return np.append(out, -2)  # the sink matches no goal


def _draw_targets(target_mask, num, rng):
    real = np.flatnonzero(np.asarray(target_mask, bool))
    return real[rng.integers(0, real.size, num)].astype(np.int32)


def numpy_walks(successors, valid, target_hit, target_mask, logits, num, horizon, rng, *,
                method="alias", compact=16):
    """``num`` walks of the tabular policy from state 0, each to a uniformly drawn target.

    Returns ``(length int64 [num], success bool [num])``: moves taken (``horizon`` if the target
    was not hit within ``horizon`` moves). Vectorised over the unfinished walks: a walk that hits
    its target has its length written and moves to a sink row (which matches no goal); every
    ``compact`` moves the sink walks are dropped from the working arrays (8-32 measured alike, 1
    about 20% slower). ``method``:

    * ``"alias"`` (default, fastest): Walker alias tables; float32 uniforms drawn ``compact`` moves
      at a time; states stored premultiplied by the padded out-degree ``D`` so a move is
      ``flat = state + int(u * D)``, then three gathers (threshold ``(slot + keep) / D``, kept and
      alias successors) and one ``where``;
    * ``"cdf"``: inverse CDF, ``slot = (u[:, None] >= cdf[state]).sum(1)``, float64 (the version
      most users write first; ``np.searchsorted`` on a flattened CDF measured slower still).
    """
    successors = np.asarray(successors)
    S, D = successors.shape
    p = softmax_probabilities(valid, logits)
    target_of = _target_of(target_hit, target_mask, S)  # [S + 1], the sink (row S) matches no goal
    goal = _draw_targets(target_mask, num, rng)
    succ = np.vstack([np.where(valid, successors, 0), np.full((1, D), S)])  # [S + 1, D]
    length = np.full(num, horizon, np.int64)
    success = np.zeros(num, bool)
    index = np.arange(num)
    if method == "alias":
        keep, alias = alias_tables(p)
        keep = np.vstack([keep, np.ones((1, D))])
        alias = np.vstack([alias, np.zeros((1, D), int)])
        threshold = ((np.arange(D) + keep) / D).astype(np.float32).ravel()  # keep slot iff u < this
        kept_next = (succ * D).astype(np.int32).ravel()
        alias_next = (np.take_along_axis(succ, alias, axis=1) * D).astype(np.int32).ravel()
        target_of = np.repeat(target_of, D)  # indexed by premultiplied states
        sink, scale = S * D, np.float32(D)
        state = np.zeros(num, np.int32)
    elif method == "cdf":
        cdf = np.cumsum(np.vstack([p, np.eye(1, D)]), axis=1)[:, :-1]
        sink = S
        state = np.zeros(num, np.int64)
    else:
        raise ValueError(f"method must be 'alias' or 'cdf', got {method!r}")
    t = 0
    while t < horizon and state.size:
        moves = min(compact, horizon - t)
        if method == "alias":
            U = rng.random((moves, state.size), dtype=np.float32)
        for i in range(moves):
            if method == "alias":
                u = U[i]
                flat = (u * scale).astype(np.int32)
                flat += state
                state = np.where(u < threshold.take(flat), kept_next.take(flat), alias_next.take(flat))
            else:
                u = rng.random(state.size)
                state = succ[state, (u[:, None] >= cdf[state]).sum(axis=1)]
            hit = np.flatnonzero(target_of.take(state) == goal)
            if hit.size:
                length[index[hit]] = t + i + 1
                success[index[hit]] = True
                state[hit] = sink
        t += moves
        live = state != sink
        if not live.all():
            state, goal, index = state[live], goal[live], index[live]
    return length, success


# ----------------------------------------------------------------------------------------
# Search scaffold


def direction_classes(successors, valid, head):
    """int [S]: the smallest state id with the same (tail, head) (parallel copies, one direction)."""
    successors, valid, head = np.asarray(successors), np.asarray(valid, bool), np.asarray(head)
    S = successors.shape[0]
    tail = np.full(S, -1)
    rows = np.broadcast_to(np.arange(S)[:, None], successors.shape)
    tail[successors[valid]] = head[rows[valid]]
    tail = np.where(tail >= 0, tail, -1 - np.arange(S))  # no predecessor: a class of its own
    key = tail.astype(np.int64) * (S + 1) + (head.astype(np.int64) + 1)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return first[inverse]


def numpy_search_walks(successors, valid, head, target_hit, target_mask, logits, num, horizon, rng,
                       mode="aggregate"):
    """Walks under the search scaffold (docs/model.md §4.3), as :func:`mazejax.simulate.search_walks`.

    Within an attempt, entering an already visited state (``"mask"``) or direction class of
    parallel copies (``"aggregate"``) is forbidden. ``"aggregate"``: proposals are drawn from the
    policy and forbidden ones rejected; simulated by drawing the accepted move from the policy
    restricted to the allowed moves and the number of rejections from Geometric(allowed mass).
    ``"mask"``: forbidden moves are masked and the policy renormalised (one proposal per move).
    When every move is forbidden the attempt restarts from state 0 with an empty visited set
    (cost kept). Returns ``(length, success, moves, restarts)``; ``length`` counts proposals,
    capped at ``horizon``. Memory: an int32 [num, S] table of visit marks. Every array op runs on
    the live walks only (finished walks are dropped from ``index`` as they end).
    """
    if mode not in ("aggregate", "mask"):
        raise ValueError(f"mode must be 'aggregate' or 'mask', got {mode!r}")
    successors = np.asarray(successors)
    S, D = successors.shape
    p = softmax_probabilities(valid, logits)
    classes = np.arange(S) if mode == "mask" else direction_classes(successors, valid, head)
    succ_class = classes[successors]
    target_of = _target_of(target_hit, target_mask, S)[:S]
    goal = _draw_targets(target_mask, num, rng)
    marks = np.full((num, S), -1, np.int32)
    marks[:, classes[0]] = 0
    cost = np.zeros(num, np.int64)
    success = np.zeros(num, bool)
    moves = np.zeros(num, np.int64)
    restarts = np.zeros(num, np.int64)
    attempt = np.zeros(num, np.int32)
    state = np.zeros(num, np.int64)
    index = np.arange(num)  # live walks
    while index.size:
        st = state[index]
        prob = p[st]
        forbidden = marks[index[:, None], succ_class[st]] == attempt[index, None]
        weight = np.where(forbidden, 0.0, prob)
        cdf = np.cumsum(weight, axis=1)
        allowed = cdf[:, -1]
        stuck = ~(weight > 0).any(axis=1)
        u = rng.random(index.size)
        slot = (cdf <= (u * allowed)[:, None]).sum(axis=1)
        slot = np.minimum(slot, D - 1 - np.argmax((weight > 0)[:, ::-1], axis=1))  # last allowed
        if mode == "aggregate":  # rejected proposals before the accepted one: Geometric(allowed)
            forbidden_mass = np.where(forbidden, prob, 0.0).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                log_reject = np.where(allowed < 0.5, np.log1p(-allowed), np.log(forbidden_mass))
                rejected = np.floor(np.log1p(-rng.random(index.size)) / log_reject)
            rejected = np.where((forbidden_mass > 0) & ~stuck, rejected, 0.0)
        else:
            rejected = np.zeros(index.size)
        remaining = horizon - cost[index]
        rejected = np.minimum(rejected, remaining).astype(np.int64)
        nxt = successors[st, slot]
        over = ~stuck & (rejected >= remaining)
        moving = ~stuck & ~over
        reached = moving & (target_of[nxt] == goal[index])
        # restarts: a new attempt from state 0
        r = index[stuck]
        attempt[r] += 1
        restarts[r] += 1
        state[r] = 0
        marks[r, classes[0]] = attempt[r]
        mv = index[moving]
        state[mv] = nxt[moving]
        marks[mv, classes[nxt[moving]]] = attempt[mv]
        cost[mv] += 1 + rejected[moving]
        moves[mv] += 1
        cost[index[over]] = horizon
        success[index[reached]] = True
        ended = over | reached
        if ended.any():
            index = index[~ended]
    return cost, success, moves, restarts


__all__ = [
    "QuotientSolver",
    "blas_threads",
    "alias_tables",
    "direction_classes",
    "maze_arrays",
    "numpy_dense_rlvr_step",
    "numpy_hitting_time_and_gradient",
    "numpy_search_walks",
    "numpy_symmetric_hitting_time",
    "numpy_symmetric_rlvr",
    "numpy_symmetric_rlvr_batch",
    "numpy_walks",
    "quotient_chain",
    "softmax_probabilities",
    "type_probabilities",
]


# ----------------------------------------------------------------------------------------
# Timing (python bench/baselines.py)


def _main():
    """Time the walkers (methods and compaction, interleaved) and the quotient-chain step."""
    import argparse
    import os
    import time

    import mazejax as mj

    parser = argparse.ArgumentParser(description="time the numpy baselines (interleaved repeats)")
    parser.add_argument("--mazes", default="3,3,2;6,6,5", help="semicolon-separated W,K,L (base policy)")
    parser.add_argument("--num", type=int, default=16384, help="walks per timing")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cdf-num", type=int, default=2048, help="walks for the (slow) cdf method")
    args = parser.parse_args()
    print(f"numpy {np.__version__}; load {os.getloadavg()[0]:.1f}; base policy, {args.num} walks (cdf: "
          f"{args.cdf_num}), full length (horizon 1e8) unless stated; million moves/s, median [min-max] of "
          f"{args.repeats}, variants interleaved")
    for triple in args.mazes.split(";"):
        W, K, L = (int(x) for x in triple.split(","))
        maze = mj.Maze(W, K, L)
        arrays = (maze.successors, maze.valid, maze.target_hit, maze.target_mask, np.asarray(mj.pretrained_logits(maze)))
        import rollout  # bench/rollout.py: its horizon-512 numpy walkers, for comparison

        tables = rollout.host_tables(maze, mj.pretrained_logits(maze))
        variants = {f"alias compact={c}": dict(method="alias", compact=c, num=args.num) for c in (1, 4, 16, 64)}
        variants["cdf compact=16"] = dict(method="cdf", compact=16, num=args.cdf_num)
        variants["alias horizon=512"] = dict(method="alias", compact=16, num=args.num, horizon=512)
        variants["rollout.py numpy-alias horizon=512"] = None
        rates = {k: [] for k in variants}
        for rep in range(args.repeats):
            for name, kw in variants.items():
                start = time.perf_counter()
                if kw is None:
                    moves = rollout.numpy_walks(tables, args.num, 512, rep, "alias")
                else:
                    kw = dict(kw)
                    num, horizon = kw.pop("num"), kw.pop("horizon", 10**8)
                    moves = numpy_walks(*arrays, num, horizon, np.random.default_rng(rep), **kw)[0].sum()
                rates[name].append(moves / (time.perf_counter() - start) / 1e6)
        for name, r in rates.items():
            print(f"{W},{K},{L} {name:<34} {np.median(r):7.1f} [{min(r):.1f}-{max(r):.1f}]")
    previous = blas_threads(1)
    print(f"quotient-chain RLVR step (OpenBLAS threads 1; default {previous}), us/step over 200 steps:")
    for W, K, L in [(2, 1, 1), (6, 6, 5), (16, 10, 10), (15, 15, 5)]:
        per = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            numpy_symmetric_rlvr(W, K, L, steps=200)
            per.append((time.perf_counter() - start) / 200 * 1e6)
        print(f"{W},{K},{L} n={8 * K + 2:<4} {np.median(per):7.0f} [{min(per):.0f}-{max(per):.0f}]")


if __name__ == "__main__":
    _main()
