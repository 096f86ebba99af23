"""The command line: the default table and its input checks."""

import pytest

from mazejax import cli, scaling


def test_table_prints_exact_values(capsys):
    assert cli.main(["table", "--W", "6", "--K", "5,6", "--L", "5"]) == 0
    out = capsys.readouterr().out
    assert "2966043.189" in out  # SFT limit, docs/model.md §3
    assert "3337.4" in out and " 143 " in out  # base model and backtracker at (6, 6, 5)
    assert "measured 7.2000   theory 7.2000" in out


def test_flags_without_subcommand_run_the_table(capsys):
    assert cli.main(["--W", "3", "--K", "3", "--L", "2"]) == 0
    assert " 275 " in capsys.readouterr().out


def test_growth_per_depth():
    rows = scaling.exact_table([6], [4, 5, 6], [1])
    assert scaling.growth_per_depth(rows, "sft_limit")[(6, 1)] == pytest.approx([20481 / 5119, 81923 / 20481])


@pytest.mark.parametrize("argv", [["--W", "0"], ["table", "--K", "2,x"], ["table", "--L", ""]])
def test_bad_input_exits_with_a_message(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    assert stop.value.code == 2
    assert "error" in capsys.readouterr().err


def test_methods_lists_every_setting_with_its_default(capsys):
    from mazejax.sweep import methods

    assert cli.main(["methods", "neural_reinforce", "ppo"]) == 0
    out = capsys.readouterr().out
    for name in ("neural_reinforce", "ppo"):
        for param, spec in methods.get(name).params.items():
            assert f"  {param} = " in out, param
    assert "  policy = transformer  [static]" in out and "  lr = 0.003  [leaf" in out
    with pytest.raises(SystemExit):
        cli.main(["methods", "nope"])
    assert "unknown method 'nope'" in capsys.readouterr().err
