"""Closed-form reference values of docs/model.md §3, computed exactly with rational arithmetic.

These are independent of the solvers in :mod:`mazejax.exact` and serve as their ground truth.
Each function returns a :class:`fractions.Fraction` (convert with ``float``).
"""

from __future__ import annotations

from fractions import Fraction

from mazejax import validate


def _sizes(W, K, L):
    return (validate.positive_int("W", W), validate.positive_int("K", K), validate.positive_int("L", L))


def base_hitting_time(W: int, K: int, L: int) -> Fraction:
    """Pretrained (uniform) model: ``H0 = (2W - 1) * D * (1 + K(L + 1))`` with ``D = 1 + K + K/L``."""
    W, K, L = _sizes(W, K, L)
    return (2 * W - 1) * (1 + K + Fraction(K, L)) * (1 + K * (L + 1))


def backtracker_hitting_time(W: int, K: int, L: int) -> Fraction:
    """Efficient backtracker (``a = b = c = d = 1``): ``H = 4WK + 2W - 2K - 1`` (independent of L)."""
    W, K, L = _sizes(W, K, L)
    return Fraction(4 * W * K + 2 * W - 2 * K - 1)


def sft_limit_hitting_time(W: int, K: int, L: int) -> Fraction:
    """SFT limit (``a = c = 1``, ``b = L/(L+1)``, ``d = 1/(L+1)``) by the docs/model.md §3 recurrence.

    ``g_1 = 1``, ``f_i = ((L+1)/L) g_i + (2i-1)/L + 1``, ``g_{i+1} = (L+1) f_i + 2iL + 1``,
    ``H = (W-1)(2K+1 + g_{K+1}) + (2K+1)``; ``g`` is the exit time from a wrong leaf to the fork.
    """
    W, K, L = _sizes(W, K, L)
    g = Fraction(1)
    for i in range(1, K + 1):
        f = Fraction(L + 1, L) * g + Fraction(2 * i - 1, L) + 1
        g = (L + 1) * f + 2 * i * L + 1
    return (W - 1) * (2 * K + 1 + g) + (2 * K + 1)


def sft_growth_factor(L: int) -> Fraction:
    """Asymptotic growth of the SFT limit per unit of depth: ``(L + 1)^2 / L``."""
    L = validate.positive_int("L", L)
    return Fraction((L + 1) ** 2, L)


def path_star_hitting_time(d: int, l: int) -> Fraction:
    """Uniform walk from the centre of a path-star (d arms of l edges) to one tip: ``(2d - 1) l^2``."""
    d, l = validate.positive_int("d", d), validate.positive_int("l", l)
    return Fraction((2 * d - 1) * l * l)


def scaffold_cost(W: int, K: int, L: int, policy: str) -> Fraction:
    """Expected proposals under the "aggregate" search scaffold (docs/model.md §4.3 (a), Corollary 1).

    ``policy`` is ``"backtracker"``: ``(W-1)/2 (4K+3) + 2K+1``, independent of L; or
    ``"sft_limit"``: the same plus ``(W-1)/2 K (L + 1/L)``, linear in L (against
    ``W ((L+1)^2/L)^K`` without the scaffold). Checked against Monte Carlo in the tests.
    """
    W, K, L = _sizes(W, K, L)
    if policy not in ("backtracker", "sft_limit"):
        raise ValueError(f"policy must be 'backtracker' or 'sft_limit', got {policy!r}")
    cost = Fraction(W - 1, 2) * (4 * K + 3) + 2 * K + 1
    if policy == "sft_limit":
        cost += Fraction(W - 1, 2) * K * (L + Fraction(1, L))
    return cost


# ----------------------------------------------------------------------------------------
# Issue 12, item 1: a trainable fork row (the backtracker inside the branches)


def symmetric_fork_hitting_time(W: int, K: int, L: int, reenter: Fraction | int = 0) -> Fraction:
    """The backtracker with a branch-symmetric fork that re-enters the branch just left with
    probability ``reenter`` (the others share the rest; the start row uniform):
    ``H = (2K + 1) (1 + 2 (W - 1)^2 / (W (1 - reenter)))``. ``reenter = 1/W`` is the paper's frozen
    fork (``4WK + 2W - 2K - 1``); ``reenter = 0`` the best policy that treats all branches alike."""
    W, K, L = _sizes(W, K, L)
    reenter = Fraction(reenter)
    if not 0 <= reenter < 1:
        raise ValueError(f"reenter must be a probability in [0, 1), got {reenter}")
    return (2 * K + 1) * (1 + Fraction(2 * (W - 1) ** 2) / (W * (1 - reenter)))


def depth_first_hitting_time(W: int, K: int, L: int) -> Fraction:
    """``W (2K + 1)``: a depth-first search that never re-enters an explored branch (history-aware).
    A target-blind tabular policy reaches it with a symmetry-broken fork: the start row enters one
    branch and the row "arrived from branch i" the next branch of one fixed order (a Hamiltonian
    path), with the backtracker inside the branches."""
    W, K, L = _sizes(W, K, L)
    return Fraction(W * (2 * K + 1))

