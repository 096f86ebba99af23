"""Trainers (SPEC 4): exact and sampled SFT, exact-gradient RLVR, REINFORCE, PPO, distillation,
and the backward-supervision ablation.

Each method comes as ``make_*(static config) -> train(key, hparams, maze, init_logits)``, a pure
function that runs the whole training in ``lax.scan`` (``x64_jit(jax.vmap(train))`` runs a sweep
over keys, hyperparameters and :func:`mazejax.stack`-ed mazes as one program; :func:`x64_jit` is
``jax.jit`` compiling with x64 enabled, which the float64 exact metrics need), plus a one-run
convenience function compiled once per static configuration.
"""

from mazejax.train.ablation import (
    AblationResult,
    ablation_hitting_time,
    backward_supervision_ablation,
    draw_backward_types,
)
from mazejax.train.common import TrainResult, masked, record_steps, x64_jit
from mazejax.train.distill import DistillHParams, distill, make_distill, sample_teacher_transitions, teacher_transitions
from mazejax.train.ppo import PPOHParams, make_ppo, ppo
from mazejax.train.reinforce import ReinforceHParams, make_reinforce, reinforce, reinforce_gradient
from mazejax.train.rlvr import RLVRHParams, make_rlvr_exact, rlvr_exact
from mazejax.train.sft import (
    SFTHParams,
    cross_entropy,
    golden_policy,
    golden_transitions,
    limit_logits,
    make_sft,
    make_sft_exact,
    sample_golden_transitions,
    sft,
    sft_exact,
    sft_limit,
)

__all__ = [
    "AblationResult",
    "DistillHParams",
    "PPOHParams",
    "ReinforceHParams",
    "distill",
    "make_distill",
    "make_ppo",
    "make_reinforce",
    "ppo",
    "reinforce",
    "reinforce_gradient",
    "sample_teacher_transitions",
    "teacher_transitions",
    "RLVRHParams",
    "SFTHParams",
    "TrainResult",
    "ablation_hitting_time",
    "backward_supervision_ablation",
    "cross_entropy",
    "draw_backward_types",
    "golden_policy",
    "golden_transitions",
    "limit_logits",
    "make_rlvr_exact",
    "make_sft",
    "make_sft_exact",
    "masked",
    "record_steps",
    "rlvr_exact",
    "sample_golden_transitions",
    "sft",
    "sft_exact",
    "sft_limit",
    "x64_jit",
]
