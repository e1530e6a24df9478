"""Table 1 from a DINO-WM run, dataset and DINOv2 in one command: a CPU dry run at toy size."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from test_dinowm import REFERENCE_RUN_SCRIPT
from test_dinowm_data import TINY_DINO, write_wall

from torchrl_gbp.experiments.cli import main
from torchrl_gbp.experiments.dinowm import reproduce_dinowm
from torchrl_gbp.experiments.reproduce import DinoWMRun, ReproduceOptions
from torchrl_gbp.models import load_checkpoint

# A tiny DINO-WM Wall run: one history frame, frameskip 5, 4 patches of 16 at img_size 32 (DINOv2's 2 x 2 grid).
WALL_RUN = {"num_patches": 4, "visual_dim": 16, "proprio_emb_dim": 4, "action_emb_dim": 4, "depth": 1, "heads": 2,
            "dim_head": 8, "mlp_dim": 32, "num_hist": 1, "proprio_in": 2, "action_in": 10, "weights": None}
WALL_HYDRA = """\
img_size: 32
frameskip: 5
concat_dim: 1
action_emb_dim: 4
proprio_emb_dim: 4
num_hist: 1
env:
  name: wall
encoder:
  name: dinov2_vits14
predictor:
  depth: 1
  heads: 2
  mlp_dim: 32
  dropout: 0.1
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """DINO-WM's released pieces at toy size: a run pickled under their module paths, a wall_single dataset, a
    DINOv2 folder."""
    transformers = pytest.importorskip("transformers")
    root = tmp_path_factory.mktemp("released")
    run = root / "wall"
    (run / "checkpoints").mkdir(parents=True)
    (run / "hydra.yaml").write_text(WALL_HYDRA)
    args = {**WALL_RUN, "runs": [{"dir": str(run), "mask_as_buffer": False}]}
    subprocess.run([sys.executable, "-c", REFERENCE_RUN_SCRIPT, json.dumps(args)], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    write_wall(root / "wall_single", n=10, steps=30)
    torch.manual_seed(0)
    transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINO)).save_pretrained(root / "dinov2")
    return {"run": run, "dataset": root / "wall_single", "dinov2": root / "dinov2"}


@pytest.mark.slow
def test_one_command_finetunes_the_released_model_and_writes_table_1(released, tmp_path, capsys):
    argv = ["reproduce", "--task", "dinowm_wall", "--dinowm.run", str(released["run"]), "--dinowm.dataset",
            str(released["dataset"]), "--dinowm.dinov2", str(released["dinov2"]), "--protocol", "paper",
            "--dinowm.device", "cpu", "--quick", "--methods", "online", "adversarial", "--out", str(tmp_path)]
    assert main(argv) == 0
    root = tmp_path / "dinowm_wall_dinowm"
    table = (root / "results_paper.md").read_text()
    assert "adversarial" in table and "online" in table and "DINO-WM's released wall model" in table
    units = {path.name: json.loads(path.read_text())["runs"] for path in (root / "units").glob("*.json")}
    assert sorted(units) == ["paper_adversarial_seed0.json", "paper_base_seed0.json", "paper_online_seed0.json"]
    cells = {(run["mode"], run["planner"]) for run in units["paper_base_seed0.json"]}
    assert cells == {(mode, name) for mode in ("open loop", "mpc") for name in ("sgd", "adam", "cem", "mppi")}
    assert all(len(run["episodes"]["success"]) == 4 for runs in units.values() for run in runs)
    base, _ = load_checkpoint(root / "base.pt")  # the released weights with the dataset's statistics
    assert base.config.num_hist == 1 and base.observation_keys == ("tokens", "proprio")
    assert not torch.equal(base.state_encoder.proprio_normalizer.std, torch.ones(2))
    adversarial, extra = load_checkpoint(root / "adversarial_seed0.pt")
    assert extra["method"] == "adversarial"
    assert not torch.equal(adversarial.predictor.pos_embedding, base.predictor.pos_embedding)
    assert (root / "dataset" / "tokens_train" / "tokens.json").is_file()
    # the same command again keeps every finished unit
    assert main(argv) == 0 and "kept 3 finished unit(s)" in capsys.readouterr().out


def test_the_dataset_must_be_the_tasks(released, tmp_path):
    write_wall(tmp_path / "other", n=10, steps=8)
    with pytest.raises(ValueError, match="wall_single dataset; dinowm_pusht is evaluated with pusht_noise"):
        reproduce_dinowm(ReproduceOptions(task="dinowm_pusht", out=str(tmp_path / "out"), dinowm=DinoWMRun(
            run=str(released["run"]), dataset=str(tmp_path / "other"), dinov2=str(released["dinov2"]))))
    assert main(["reproduce", "--task", "dinowm_wall", "--dinowm.run", str(released["run"])]) == 2
