"""The command line generated from the option types: every field reachable, defaults shown, values checked."""
from __future__ import annotations

import subprocess
import sys
from dataclasses import fields

import pytest

from torchrl_gbp.experiments.cli import COMMANDS, build_parser, main, parse
from torchrl_gbp.experiments.recipes import Recipe, flatten
from torchrl_gbp.experiments.typed_args import cli_fields


def _flags(command: str) -> set[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    return {option for action in sub._actions for option in action.option_strings}


def test_every_option_field_is_reachable_from_the_command_line() -> None:
    """Each field of each command's option type is a flag of that command; each recipe field a flag of some
    command (all of them of reproduce), under its section's name."""
    reachable: set[str] = set()
    for name, command in COMMANDS.items():
        flags = _flags(name)
        for path in cli_fields(command.options):
            assert "--" + path.replace("_", "-") in flags, (name, path)
        for section in command.sections:
            for path in cli_fields(type(getattr(Recipe(), section))):
                flag = f"--{section}.{path}".replace("_", "-")
                assert flag in flags, (name, flag)
                reachable.add(f"{section}.{path}")
    settable = {path for path in flatten(Recipe()) if path != "online.objective"}  # an object: set in Python
    assert settable <= reachable
    assert {f.name for f in fields(Recipe)} == set(COMMANDS["reproduce"].sections)


def test_help_is_generated_with_defaults() -> None:
    result = subprocess.run([sys.executable, "-m", "torchrl_gbp.experiments.cli", "reproduce", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--budget.max-iterations INT|none" in result.stdout
    assert "--planners.cem.samples INT" in result.stdout and "(wall: 300)" in result.stdout
    assert "--dinowm.run STR" in result.stdout and "required with any --dinowm.* flag" in result.stdout
    top = subprocess.run([sys.executable, "-m", "torchrl_gbp.experiments.cli", "--help"], capture_output=True,
                         text=True, check=True).stdout
    assert all(name in top for name in COMMANDS)


def test_flags_become_typed_objects_and_a_recipe_profile() -> None:
    name, options, profile, verbose = parse(["--verbose", "evaluate", "--checkpoint", "m.pt", "--planner", "gd_warm",
                                             "--budget.patience", "5", "--planners.gd-warm.steps", "2",
                                             "--evaluation.seeds", "3", "4", "--video.path", "v.gif"])
    assert (name, options.planner, options.budget.patience, options.video.path, verbose) == \
        ("evaluate", "gd_warm", 5, "v.gif", True)
    assert profile == {"planners.gd_warm.steps": 2, "evaluation.seeds": (3, 4)}


def test_bad_values_are_refused_naming_the_flag(capsys) -> None:
    assert main(["reproduce", "--budget.unit", "mpc_iterations", "--budget.max-iterations", "10"]) == 2  # ours: episodes
    assert "needs protocol='paper'" in capsys.readouterr().err
    assert main(["reproduce", "--protocol", "paper", "--budget.unit", "mpc_iterations"]) == 2  # no cap, no limit
    assert "safety_env_steps" in capsys.readouterr().err
    assert main(["reproduce", "--dinowm.run", "r"]) == 2
    assert "--dinowm.dataset, --dinowm.dinov2" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", "m.pt", "--planners.gd.optimizer", "lbfgs"]) == 2
    assert "optimizer must be one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--dataset", "d", "--out", "m.pt", "--training.steps", "ten"])
    assert "invalid int value: 'ten'" in capsys.readouterr().err
