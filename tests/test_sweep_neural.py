"""Sequence-policy sweep methods (``policy = "tabular" | "transformer"``): rows against the exact base
model, the transformer's row against the one-run trainer, and (slow) PPO and SFT end to end."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mazejax as mj
from mazejax import reference, sweep
from mazejax.simulate.sequence import sample_sequences
from mazejax.sweep import store
from mazejax.train import neural

L = 2
TINY = {"steps": 2, "num_rollouts": 8, "chunk": 8, "grad_chunk": 8, "horizon": 64, "width": 8, "context": 8}
# learning rates too small to move the policy in 2 steps: every row is the base model's walks
FROZEN = {**TINY, "lr": 1e-9, "table_lr": 1e-9, "eval_rollouts": 2000, "eval_horizon": 100_000}
CONFIG = {"W": [2], "K": [1, 2], "L": [L], "methods": ["neural_reinforce"],
          "neural_reinforce": {**FROZEN, "policy": ["tabular", "transformer"]}}


@pytest.fixture(scope="module")
def rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("neural")
    sweep.run_sweep(sweep.parse_spec(CONFIG), out, progress=False)
    return {(r["policy"], r["K"]): r for r in store.read_runs(out / "runs.csv")}, out


@pytest.mark.slow  # 46 s of compiling two policies' programs; the policies' own tests (test_transformer.py) run by default
def test_both_policies_reproduce_the_base_model(rows):
    table, out = rows
    assert len(table) == 4
    for K in (1, 2):
        base = float(reference.base_hitting_time(2, K, L))
        tabular, transformer = table[("tabular", K)], table[("transformer", K)]
        assert tabular["hitting_time"] == pytest.approx(base, rel=1e-6)  # exact H of the trained table
        assert np.isnan(transformer["hitting_time"])  # no exact H for a policy that reads the walk
        for row in (tabular, transformer):
            assert row["success_rate"] == 1.0
            assert abs(row["mc_mean"] - base) <= 4.5 * row["mc_stderr"], row
        # the transformer's empirical a, b, c, d against the base model's 1/(L+1), L/(L+1), L/(L+1), 1/(L+1)
        for name, value in zip("abcd", (1 / (L + 1), L / (L + 1), L / (L + 1), 1 / (L + 1))):
            assert transformer[name] == pytest.approx(value, abs=0.02), (name, transformer)
            assert tabular[name] == pytest.approx(value, abs=1e-6)
    # the tables draw the transformer's Monte Carlo mean where it has no exact H
    assert "neural_reinforce[policy=transformer]" in (out / "tables" / "growth_per_depth.md").read_text()


@pytest.mark.slow
def test_transformer_row_is_the_one_run_trainer_on_the_unpadded_maze(rows):
    """The grid's largest maze (no padding): the row is init, train and evaluate with the run's keys."""
    table, _ = rows
    W, K = 2, 2
    maze = mj.Maze(W, K, L)
    config = neural.NeuralReinforceConfig(policy="transformer", **TINY)
    init_key, train_key, eval_key = jax.random.split(sweep.run_key(0, "neural_reinforce", W, K, L, 0), 3)
    hparams = neural.NeuralReinforceHParams.create(lr=1e-9, table_lr=1e-9)
    params = config.init_params(init_key, maze)
    result = jax.jit(neural.make_neural_reinforce(config))(train_key, hparams, maze, params)
    walks = sample_sequences(config.sequence_policy(maze), result.params, maze, eval_key, 2000, 100_000, chunk=250)
    length = np.asarray(walks.length, np.float64)
    assert table[("transformer", K)]["mc_mean"] == pytest.approx(length.mean(), rel=1e-12)


def test_bad_neural_settings_name_the_parameter_before_compiling():
    with pytest.raises(ValueError, match="chunk must divide num_rollouts"):
        sweep.parse_spec({**CONFIG, "neural_reinforce": {**FROZEN, "chunk": 3}})
    with pytest.raises(ValueError, match="policy"):
        sweep.parse_spec({**CONFIG, "neural_reinforce": {"policy": "lstm"}})
    with pytest.raises(ValueError, match="width must be a multiple of heads"):
        sweep.parse_spec({**CONFIG, "neural_reinforce": {"width": 9, "heads": 2}})


@pytest.mark.slow
def test_neural_ppo_and_sft_rows(tmp_path):
    """PPO and SFT of the transformer end to end: SFT on DFS traces and on the exact-RLVR teacher's
    walks retreats from dead ends (b, d rise) and lowers H below the base model's."""
    config = {"W": [2], "K": [2], "L": [L], "methods": ["neural_ppo", "neural_sft"],
              "neural_ppo": {**TINY, "minibatches": 1, "eval_rollouts": 500},
              "neural_sft": {"steps": 40, "batch_size": 8, "width": 8, "context": 8, "record": 64,
                             "data": ["dfs", "teacher"], "teacher_steps": 40, "teacher_lr": 0.05, "eval_rollouts": 1000}}
    sweep.run_sweep(sweep.parse_spec(config), tmp_path, progress=False)
    table = {(r["method"], r["data"]): r for r in store.read_runs(tmp_path / "runs.csv")}
    base = float(reference.base_hitting_time(2, 2, L))
    assert table[("neural_ppo", "")]["success_rate"] == 1.0
    for data in ("dfs", "teacher"):
        row = table[("neural_sft", data)]
        assert row["mc_mean"] + 4.5 * row["mc_stderr"] < base, row
        assert row["b"] > L / (L + 1) and row["d"] > 1 / (L + 1), row
    assert jnp.isnan(table[("neural_sft", "dfs")]["hitting_time"])


@pytest.mark.slow
def test_transformer_rows_are_bit_identical_whatever_the_grid_chunk_and_devices(tmp_path):
    """A transformer's initial network does not depend on the padded capacity (its embedding rows
    are drawn per state), so its rows are the same in any grid, chunk size and device count."""
    from test_sweep_methods import _reproducible

    config = {"W": [2], "K": [1], "L": [L], "seeds": 1, "methods": ["neural_reinforce", "neural_sft"],
              "neural_reinforce": {**TINY, "steps": 3, "eval_rollouts": 200},
              "neural_sft": {"steps": 3, "batch_size": 4, "width": 8, "context": 8, "data": "dfs", "eval_rollouts": 200}}
    _reproducible(tmp_path, config, "full")
