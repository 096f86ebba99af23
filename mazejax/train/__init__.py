"""Trainers (docs/model.md §4): exact and sampled SFT, exact-gradient RLVR (full and branch-symmetric),
REINFORCE, PPO, distillation, and the backward-supervision ablation.

Every trainer has the same shape (:mod:`mazejax.train.base`): a frozen ``<Name>Config`` of static
settings, a PyTree ``<Name>HParams`` of hyperparameters, and ``make_<name>(config) ->
train(key, hparams, maze, init_logits) -> TrainResult``, a pure function running the whole
training in ``lax.scan``, so ``jax.jit(jax.vmap(train))`` runs a sweep over keys, hyperparameters
and :func:`mazejax.stack`-ed mazes as one program. The one-run functions (``rlvr_exact(maze,
steps=600)``, ``reinforce(maze, key, lr=0.1)``, ...) take any field of either class as a keyword
and compile once per configuration. Trainers need ``jax_enable_x64`` (their records are exact
float64 quantities).
"""

from mazejax.train.ablation import (
    AblationResult,
    ablation_hitting_time,
    backward_supervision_ablation,
    draw_backward_types,
)
from mazejax.train.base import OPTIMIZERS, TrainResult, Trainer, masked, record_steps
from mazejax.train.distill import (
    DISTILL,
    DistillConfig,
    DistillHParams,
    distill,
    make_distill,
    sample_teacher_transitions,
    teacher_transitions,
)
from mazejax.train.ppo import PPO, PPOConfig, PPOHParams, make_ppo, ppo
from mazejax.train.reinforce import REINFORCE, ReinforceConfig, ReinforceHParams, make_reinforce, reinforce, reinforce_gradient
from mazejax.train.rlvr import (
    RLVR_EXACT,
    RLVR_SYMMETRIC,
    RLVRConfig,
    RLVRHParams,
    RLVRSymmetricConfig,
    make_rlvr_exact,
    make_rlvr_symmetric,
    rlvr_exact,
    rlvr_symmetric,
)
from mazejax.train.truncated import (
    RLVR_TRUNCATED,
    TruncatedConfig,
    TruncatedHParams,
    make_rlvr_truncated,
    rlvr_truncated,
)
from mazejax.train.search_sft import SFT_SEARCH, SFT_SEARCH_EXACT, search_sft_limit, sft_search, sft_search_exact
from mazejax.train.sft import (
    SFT,
    SFT_EXACT,
    SFTConfig,
    SFTExactConfig,
    SFTHParams,
    cross_entropy,
    golden_policy,
    golden_transitions,
    limit_logits,
    make_sft,
    make_sft_exact,
    sample_golden_paths,
    sample_golden_transitions,
    sft,
    sft_exact,
    sft_limit,
)

#: Every trainer, by name.
TRAINERS = {t.name: t for t in (SFT_EXACT, SFT, RLVR_EXACT, RLVR_SYMMETRIC, REINFORCE, PPO, DISTILL, RLVR_TRUNCATED,
                                SFT_SEARCH_EXACT, SFT_SEARCH)}

__all__ = [
    "SFT_SEARCH",
    "SFT_SEARCH_EXACT",
    "search_sft_limit",
    "sft_search",
    "sft_search_exact",
    "AblationResult",
    "DISTILL",
    "DistillConfig",
    "DistillHParams",
    "OPTIMIZERS",
    "PPO",
    "PPOConfig",
    "PPOHParams",
    "REINFORCE",
    "RLVRConfig",
    "RLVRHParams",
    "RLVRSymmetricConfig",
    "RLVR_EXACT",
    "RLVR_SYMMETRIC",
    "RLVR_TRUNCATED",
    "ReinforceConfig",
    "ReinforceHParams",
    "SFT",
    "SFTConfig",
    "SFTExactConfig",
    "SFTHParams",
    "SFT_EXACT",
    "TRAINERS",
    "TruncatedConfig",
    "TruncatedHParams",
    "TrainResult",
    "Trainer",
    "ablation_hitting_time",
    "backward_supervision_ablation",
    "cross_entropy",
    "distill",
    "draw_backward_types",
    "golden_policy",
    "golden_transitions",
    "limit_logits",
    "make_distill",
    "make_ppo",
    "make_reinforce",
    "make_rlvr_exact",
    "make_rlvr_symmetric",
    "make_rlvr_truncated",
    "make_sft",
    "make_sft_exact",
    "masked",
    "ppo",
    "record_steps",
    "reinforce",
    "reinforce_gradient",
    "rlvr_exact",
    "rlvr_symmetric",
    "rlvr_truncated",
    "sample_golden_paths",
    "sample_golden_transitions",
    "sample_teacher_transitions",
    "sft",
    "sft_exact",
    "sft_limit",
    "teacher_transitions",
]

from mazejax.train.neural import (  # noqa: E402  (neural policies: mazejax.transformer)
    NeuralReinforceConfig,
    NeuralReinforceHParams,
    NeuralResult,
    NeuralSFTConfig,
    NeuralSFTHParams,
    make_neural_reinforce,
    make_neural_sft,
    reinforce_seeds,
    sft_seeds,
)

__all__ += ["NeuralReinforceConfig", "NeuralReinforceHParams", "NeuralResult", "NeuralSFTConfig", "NeuralSFTHParams",
            "make_neural_reinforce", "make_neural_sft", "reinforce_seeds", "sft_seeds"]
