"""mazejax: a JAX simulator of the maze model of Wei & Kim (ICML 2026), RLVR vs SFT backtracking."""

from mazejax import exact, reference, train
from mazejax.maze import Capacity, Maze, common_capacity, pad, stack
from mazejax.policy import (
    backtracker_logits,
    sft_limit_logits,
    continues,
    pretrained_logits,
    probabilities,
    trainable_moves,
    type_probabilities,
    typed_logits,
)

__version__ = "0.1.0"

__all__ = [
    "Capacity",
    "backtracker_logits",
    "sft_limit_logits",
    "Maze",
    "common_capacity",
    "continues",
    "exact",
    "reference",
    "train",
    "pad",
    "pretrained_logits",
    "probabilities",
    "stack",
    "trainable_moves",
    "type_probabilities",
    "typed_logits",
]
