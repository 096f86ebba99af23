"""Monte Carlo walks of a tabular policy on a maze (docs/model.md §2), and the search scaffold (§4.3).

* :func:`rollout` -- the public API: lengths and successes of ``num`` rollouts, with or without
  the search scaffold.
* :func:`sample_walks` -- the stepper for trainers (jit / scan / vmap friendly), with optional
  state records and weighted move counts (:mod:`mazejax.simulate.walks`), on a pool of lanes
  whose cost is proportional to the moves made (:mod:`mazejax.simulate.pool`).
* :func:`search_walks` -- the walk under the search scaffold (:mod:`mazejax.simulate.scaffold`).

Randomness (:mod:`mazejax.simulate.rng`) is counter-based: walk ``i`` depends only on the key
and ``i``, never on the batch, padding, jit or devices. Move sampling uses Walker alias tables
(:mod:`mazejax.simulate.alias`). :func:`mazejax.monte_carlo` compares Monte Carlo means with the
exact value.
"""

from mazejax.simulate.pool import PoolStats
from mazejax.simulate.scaffold import SEARCH_MODES, SearchWalks, search_walks
from mazejax.simulate.walks import Walks, rollout, sample_walks

__all__ = ["PoolStats", "SEARCH_MODES", "SearchWalks", "Walks", "rollout", "sample_walks", "search_walks"]
