"""mazejax: a JAX simulator of the maze model of Wei & Kim (ICML 2026), RLVR vs SFT backtracking."""

from mazejax import exact, reference, simulate, train
from mazejax.maze import Capacity, Maze, common_capacity, pad, stack
from mazejax.policy import (
    backtracker_logits,
    continues,
    pretrained_logits,
    probabilities,
    sft_limit_logits,
    trainable_moves,
    type_probabilities,
    typed_logits,
)
from mazejax.simulate import monte_carlo, rollout, sample_walks, search_walks

__version__ = "0.1.0"

__all__ = [
    "Capacity",
    "Maze",
    "backtracker_logits",
    "common_capacity",
    "continues",
    "exact",
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
]
