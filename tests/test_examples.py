"""Every example runs end to end in its ``--quick`` form, as a user runs it (a script in a fresh process)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Each example's command-line switches and the modules of the extra it needs (pip install 'torchrl_gbp[extra]').
EXAMPLES = {
    "wall": ([], None, ()),
    "wall --pixels": (["--pixels"], None, ()),
    "pointmaze": ([], "pointmaze", ("mujoco",)),
    "pusht": ([], "pusht", ("gym_pusht", "pymunk")),
    "reacher": ([], "dmc", ("dm_control",)),
    "gym_pointmaze": ([], "gymnasium", ("gymnasium", "gymnasium_robotics", "mujoco")),
    "gym_reward": ([], "gymnasium", ("gymnasium", "mujoco")),
}


def test_every_example_is_run_here() -> None:
    assert {name.split()[0] for name in EXAMPLES} == {path.stem for path in (REPO / "examples").glob("*.py")}


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_quick(name: str, tmp_path: Path) -> None:
    switches, extra, modules = EXAMPLES[name]
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}: pip install 'torchrl_gbp[{extra}]'")
    script = REPO / "examples" / f"{name.split()[0]}.py"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), "--quick", *switches, "--out", str(tmp_path / "runs")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if "planning" in line]
    assert len(rows) == 4, result.stdout  # base and finetuned model, each with GD and CEM
    assert all(("success" in row) or ("mean return" in row) for row in rows), result.stdout
    assert (tmp_path / "runs" / "base.pt").is_file() and (tmp_path / "runs" / "finetuned.pt").is_file()
