"""A trainable fork row (issue 12, item 1): what the fork rows learn when training may change them.

The paper freezes the rows of the states whose head is the fork: uniform over all W branches, the
one just left included (docs/model.md §2). A target-blind tabular policy still knows which branch
it arrives from -- the state ``u(i,1,l) -> f`` differs for each ``i`` -- so with ``train_fork =
true`` (:func:`mazejax.trainable_moves`, the ``train_fork`` setting of exact RLVR, REINFORCE and
PPO) it can learn not to re-enter branch ``i``, and even a fixed order of branches. Three values
frame what it can reach, all with the backtracker inside the branches
(:mod:`mazejax.reference`):

* the frozen fork: ``4WK + 2W - 2K - 1`` (the paper's efficient regime);
* the best fork that treats all branches alike (never re-enter, uniform over the others):
  ``(2K + 1) (1 + 2 (W - 1)^2 / W)``;
* a fork that breaks the symmetry into one fixed order of branches (start row -> branch
  ``o_1``, "arrived from ``o_k``" -> ``o_{k+1}``): a depth-first search that never re-enters an
  explored branch, ``W (2K + 1)``, the history-aware optimum.

Gradient flow from the uniform start keeps the branches alike only while nothing breaks the
tie: the start row's exact gradient is zero by symmetry, and sign ascent turns its float64
rounding noise into steps of ``lr``. The branch-symmetric solution is a saddle, so exact sign
ascent on the full chain breaks the symmetry from that noise; :func:`symmetric_fork_trajectory`
is the same exact optimisation held to branch-symmetric policies (O(K) per step), the value the
paper's optimizer would reach without any tie-breaking.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from mazejax import exact, validate
from mazejax.maze import Maze
from mazejax.policy import fork_rows, probabilities


def fork_matrix(maze: Maze, logits) -> np.ndarray:
    """float64 [W + 1, W] (host): row 0 the start state ``s0 -> f``, row ``i + 1`` the walk that
    arrived at the fork from branch ``i``; column ``j`` the probability of entering branch ``j``.

    Needs a concrete paper maze (branch tags) and concrete logits.
    """
    validate.require_x64("mazejax.fork.fork_matrix")
    if not maze.structured or not np.any(np.asarray(maze.branch) >= 0):
        raise ValueError("fork_matrix needs a paper maze (Maze(W, K, L) or heterogeneous)")
    pi = np.asarray(probabilities(maze, jnp.asarray(logits).astype(jnp.float64)))
    succ, valid, branch = np.asarray(maze.successors), np.asarray(maze.valid), np.asarray(maze.branch)
    W = int(np.sum(np.asarray(maze.target_mask)))
    out = np.zeros((W + 1, W))
    for s in np.flatnonzero(np.asarray(fork_rows(maze))):
        row = 0 if s == 0 else int(branch[s]) + 1
        for slot in np.flatnonzero(valid[s]):
            out[row, int(branch[succ[s, slot]])] += pi[s, slot]
    return out


def fork_summary(maze: Maze, logits, tol: float = 0.01) -> dict:
    """What the fork rows of a policy do (host-side numbers).

    Keys: ``reenter_mean``, ``reenter_max`` (probability of re-entering the branch just left, over
    the W "arrived from" rows), ``other_min``, ``other_max`` (the smallest / largest probability of
    entering one of the other branches), ``start_max`` (the start row's largest probability),
    ``symmetric`` (every row treats the branches alike within ``tol``: the start row uniform, each
    row's other branches equal, the same re-entry probability everywhere), ``order`` (the branches
    in the order the most likely moves visit them from the start, stopping at the first repeat)
    and ``depth_first`` (that order covers all W branches with every move's probability >= 1 - tol:
    a fixed depth-first order), ``matrix`` (:func:`fork_matrix`).
    """
    M = fork_matrix(maze, logits)
    W = M.shape[1]
    arrived = M[1:]
    diag = np.diag(arrived)
    other = arrived[~np.eye(W, dtype=bool)].reshape(W, W - 1) if W > 1 else np.zeros((W, 0))
    symmetric = bool(np.ptp(M[0]) <= tol and np.ptp(diag) <= tol and (W < 2 or np.max(np.ptp(other, axis=1)) <= tol))
    order, probs, current = [], [], M[0]
    while True:
        j = int(np.argmax(current))
        if j in order:
            break
        order.append(j)
        probs.append(float(current[j]))
        current = arrived[j]
    return {
        "reenter_mean": float(diag.mean()), "reenter_max": float(diag.max()),
        "other_min": float(other.min()) if W > 1 else 0.0, "other_max": float(other.max()) if W > 1 else 0.0,
        "start_max": float(M[0].max()), "symmetric": symmetric, "order": tuple(order),
        "depth_first": len(order) == W and min(probs) >= 1 - tol, "matrix": M,
    }


def _sizes(W, K, L):
    return validate.positive_int("W", W, 2), validate.positive_int("K", K), validate.positive_int("L", L)


def symmetric_fork_trajectory(W: int, K: int, L: int, steps: int = 1000, lr: float = 0.01,
                              record_every: int = 10) -> dict:
    """Exact sign-ascent RLVR on ``Maze(W, K, L)`` held to branch-symmetric policies with a trained fork.

    The parameters are the per-(type, depth) logits of :mod:`mazejax.train.rlvr`'s fast path and a
    pair ``(re-enter, other)`` of fork logits shared by the W "arrived from" rows (re-entry
    probability ``r = e^x / (e^x + (W - 1) e^y)``); the start row stays uniform (its gradient is
    zero by symmetry). H is :func:`mazejax.exact.symmetric_hitting_time` with ``reenter = r``, O(K)
    per step. Each logit moves by ``lr`` per step, as in the full trainer.

    Returns a dict of numpy arrays with ``steps // record_every + 1`` rows: ``step``,
    ``hitting_time``, ``reenter`` and ``types`` (``a, b, c, d`` -> [rows, K]).
    """
    validate.require_x64("mazejax.fork.symmetric_fork_trajectory")
    W, K, L = _sizes(W, K, L)
    steps, record_every = validate.positive_int("steps", steps), validate.positive_int("record_every", record_every)
    if steps % record_every:
        raise ValueError(f"record_every must divide steps = {steps}, got {record_every}")
    validate.number("lr", lr, 0.0, low_open=True)
    out = _symmetric_fork(W, K, L, steps, record_every, float(lr))
    return {k: (np.asarray(v) if not isinstance(v, dict) else {t: np.asarray(x) for t, x in v.items()})
            for k, v in out.items()}


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _symmetric_fork(W, K, L, steps, record_every, lr):
    from mazejax.train.rlvr import symmetric_probabilities  # (train imports this package's siblings)

    F64 = jnp.float64
    shift = jnp.log(jnp.asarray(W - 1.0, F64))

    def evaluate(params):
        theta, phi = params
        p, q = symmetric_probabilities(theta, L), symmetric_probabilities(theta, L, complement=True)
        x = phi[0] - phi[1] - shift
        return exact.symmetric_hitting_time(p, W, K, q, reenter=jax.nn.sigmoid(x), reenter_complement=jax.nn.sigmoid(-x))

    tx = optax.sign_sgd(lr)
    params = (jnp.zeros((4, K, 2), F64), jnp.zeros(2, F64))

    def step(carry, _):
        params, state = carry
        H, grad = jax.value_and_grad(evaluate)(params)
        updates, state = tx.update(grad, state, params)
        return (optax.apply_updates(params, updates), state), None

    def record(params):
        theta, phi = params
        p = symmetric_probabilities(theta, L)
        return {"hitting_time": evaluate(params), "reenter": jax.nn.sigmoid(phi[0] - phi[1] - shift),
                "types": dict(zip("abcd", p))}

    def chunk(carry, _):
        rec = record(carry[0])
        carry, _ = lax.scan(step, carry, None, length=record_every)
        return carry, rec

    carry, history = lax.scan(chunk, (params, tx.init(params)), None, length=steps // record_every)
    last = record(carry[0])
    history = jax.tree.map(lambda r, x: jnp.concatenate([r, x[None]]), history, last)
    return {"step": jnp.arange(0, steps + 1, record_every), **history}


__all__ = ["fork_matrix", "fork_summary", "symmetric_fork_trajectory"]
