"""mazejax: a JAX simulator of the maze model of Wei & Kim (ICML 2026), RLVR vs SFT backtracking.

Exact analysis (:mod:`mazejax.exact`) and the trainers run in float64: call
``jax.config.update("jax_enable_x64", True)`` once at start-up (README, "Precision").
"""

from mazejax import exact, reference, simulate, train, validate
from mazejax.maze import Capacity, Maze, common_capacity, pad, stack
from mazejax.montecarlo import MonteCarlo, monte_carlo
from mazejax.policy import (
    backtracker_logits,
    continues,
    log_probabilities,
    pretrained_logits,
    probabilities,
    sft_limit_logits,
    trainable_moves,
    type_probabilities,
    typed_logits,
)
from mazejax.simulate import rollout, sample_walks, search_walks
from mazejax.validate import PrecisionError

__version__ = "0.2.0"

#: Version of everything that determines a result (solvers, samplers, trainers). Part of every
#: sweep run's identity: bump it whenever a change alters any result, so old rows are never
#: reported as results of the new code.
RESULTS_VERSION = "2"

__all__ = [
    "Capacity",
    "Maze",
    "MonteCarlo",
    "PrecisionError",
    "RESULTS_VERSION",
    "backtracker_logits",
    "common_capacity",
    "continues",
    "exact",
    "log_probabilities",
    "monte_carlo",
    "pad",
    "pretrained_logits",
    "probabilities",
    "reference",
    "rollout",
    "sample_walks",
    "search_walks",
    "sft_limit_logits",
    "simulate",
    "stack",
    "train",
    "trainable_moves",
    "type_probabilities",
    "typed_logits",
    "validate",
]

# Neural policies (docs/model.md §4.6): policies over the walk so far, their sampler and trainers.
from mazejax.simulate.sequence import monte_carlo_sequences, sample_sequences  # noqa: E402
from mazejax.transformer import TabularPolicy, TransformerPolicy, init_transformer, transformer_policy  # noqa: E402

__all__ += ["TabularPolicy", "TransformerPolicy", "init_transformer", "monte_carlo_sequences", "sample_sequences",
            "transformer_policy"]
