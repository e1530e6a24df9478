"""DINO-WM's models in this package: their checkpoints read safely, converted once, loaded by every command."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from torchrl_gbp.bridges import DinoWMRun, PickledObject, UnsafeCheckpointError, read_pickled_checkpoint

# Writes a DINO-WM run in a fresh interpreter: classes defined under their module paths (models.vit,
# models.proprio, models.decoder..., accelerate.optimizer), with their attribute names and nesting,
# pickled whole as their train.py saves them. The test process never has those modules.
REFERENCE_RUN_SCRIPT = r'''
import json, sys, types
import torch
from torch import nn

args = json.loads(sys.argv[1])
def module(name):
    sys.modules[name] = types.ModuleType(name)
    return sys.modules[name]
for name in ("models", "models.decoder", "accelerate"):
    module(name)
vit, proprio, decoder, accelerate = (module(n) for n in ("models.vit", "models.proprio",
                                                        "models.decoder.transposed_conv", "accelerate.optimizer"))

def frame_mask(patches, frames):
    frame = torch.arange(frames).repeat_interleave(patches)
    return (frame[:, None] >= frame[None, :]).float()[None, None]

class Attention(nn.Module):
    def __init__(self, dim, heads, dim_head, as_buffer):
        super().__init__()
        self.heads, self.scale = heads, dim_head ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.attend, self.dropout = nn.Softmax(dim=-1), nn.Dropout(0.1)
        self.to_qkv = nn.Linear(dim, 3 * heads * dim_head, bias=False)
        self.to_out = nn.Sequential(nn.Linear(heads * dim_head, dim), nn.Dropout(0.1))
        mask = frame_mask(args["num_patches"], args["num_hist"])
        if as_buffer:
            self.register_buffer("bias", mask)
        else:
            self.bias = mask

class FeedForward(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(0.1),
                                 nn.Linear(hidden, dim), nn.Dropout(0.1))

class Transformer(nn.Module):
    def __init__(self, dim, depth, heads, dim_head, mlp_dim, as_buffer):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.layers = nn.ModuleList(nn.ModuleList([Attention(dim, heads, dim_head, as_buffer),
                                                   FeedForward(dim, mlp_dim)]) for _ in range(depth))

class ViTPredictor(nn.Module):
    def __init__(self, num_patches, num_frames, dim, depth, heads, mlp_dim, dim_head, as_buffer):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, num_frames * num_patches, dim))
        self.dropout = nn.Dropout(0.0)
        self.transformer = Transformer(dim, depth, heads, dim_head, mlp_dim, as_buffer)
        self.pool = "mean"

class ProprioceptiveEmbedding(nn.Module):
    def __init__(self, in_chans, emb_dim):
        super().__init__()
        self.num_frames, self.tubelet_size, self.in_chans, self.emb_dim = 1, 1, in_chans, emb_dim
        self.patch_embed = nn.Conv1d(in_chans, emb_dim, kernel_size=1, stride=1)

class TransposedConvDecoder(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.layer = nn.ConvTranspose2d(emb_dim, 3, 2, stride=2)

class AcceleratedOptimizer:
    def __init__(self, optimizer):
        self.optimizer, self.device_placement = optimizer, True

for mod, classes in ((vit, (Attention, FeedForward, Transformer, ViTPredictor)), (proprio, (ProprioceptiveEmbedding,)),
                     (decoder, (TransposedConvDecoder,)), (accelerate, (AcceleratedOptimizer,))):
    for cls in classes:
        cls.__module__ = mod.__name__
        setattr(mod, cls.__name__, cls)

a = args
dim = a["visual_dim"] + a["proprio_emb_dim"] + a["action_emb_dim"]
for run in a["runs"]:
    torch.manual_seed(0)
    predictor = ViTPredictor(a["num_patches"], a["num_hist"], dim, a["depth"], a["heads"], a["mlp_dim"],
                             a["dim_head"], run["mask_as_buffer"])
    action_encoder = ProprioceptiveEmbedding(a["action_in"], a["action_emb_dim"])
    proprio_encoder = ProprioceptiveEmbedding(a["proprio_in"], a["proprio_emb_dim"])
    nets = {"predictor": predictor, "action_encoder": action_encoder, "proprio_encoder": proprio_encoder}
    if a["weights"]:
        weights = torch.load(a["weights"], weights_only=True)
        for name, net in nets.items():
            net.load_state_dict(weights[name], strict=False)  # the mask buffer is not in the weights
    optimizer = torch.optim.AdamW(predictor.parameters(), lr=1e-3)
    predictor.pos_embedding.sum().backward()
    optimizer.zero_grad()
    torch.save({"epoch": 7, "predictor": predictor, "predictor_optimizer": AcceleratedOptimizer(optimizer),
                "decoder": TransposedConvDecoder(a["visual_dim"]), **nets},
               run["dir"] + "/checkpoints/model_latest.pth")
    torch.save({name: net.state_dict() for name, net in nets.items()}, run["dir"] + "/expected.pt")
'''

# A tiny DINO-WM: 4 patches of 24 + proprio 4 + action 4 = 32 wide, 2 layers, 2 heads of 8, 3 history frames.
TINY = {"num_patches": 4, "visual_dim": 24, "proprio_emb_dim": 4, "action_emb_dim": 4, "depth": 2, "heads": 2,
        "dim_head": 8, "mlp_dim": 64, "num_hist": 3, "proprio_in": 3, "action_in": 4, "frameskip": 2}

# hydra.yaml as DINO-WM's train.py writes it (OmegaConf.to_yaml of the resolved config), trimmed to the TINY sizes.
TINY_HYDRA = """\
ckpt_base_path: /checkpoint/dino_wm
training:
  seed: 0
  epochs: 100
  batch_size: 32
  encoder_lr: 1.0e-06
  decoder_lr: 0.0003
  predictor_lr: 0.0005
  action_encoder_lr: 0.0005
img_size: 32
frameskip: 2
concat_dim: 1
normalize_action: true
action_emb_dim: 4
num_action_repeat: 1
proprio_emb_dim: 4
num_proprio_repeat: 1
num_hist: 3
num_pred: 1
has_predictor: true
has_decoder: true
env:
  name: wall
  dataset:
    _target_: datasets.wall_dset.load_wall_slice_train_val
    data_path: /data/wall_single
    split_ratio: 0.9
  decoder_path: null
encoder:
  _target_: models.dino.DinoV2Encoder
  name: dinov2_vits14
  feature_key: x_norm_patchtokens
predictor:
  _target_: models.vit.ViTPredictor
  depth: 2
  heads: 2
  mlp_dim: 64
  dropout: 0.1
  emb_dropout: 0
  pool: mean
plan_settings:
  plan_cfg_path: null
  planner:
  - gd
  - cem
  goal_H:
  - 5
saved_folder: /checkpoint/dino_wm/outputs/wall_single
wandb_run_id: 1a2b3c4d
"""


def write_reference_runs(root: Path, weights: Path | None = None) -> dict[str, Path]:
    """Two DINO-WM run folders, one per mask layout, written by one subprocess (``weights``: their state dicts)."""
    runs = {"dino_wm": root / "dino_wm", "fork": root / "fork"}
    for run_dir in runs.values():
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "hydra.yaml").write_text(TINY_HYDRA)
    args = {**TINY, "weights": str(weights) if weights else None,
            "runs": [{"dir": str(d), "mask_as_buffer": name == "fork"} for name, d in runs.items()]}
    subprocess.run([sys.executable, "-c", REFERENCE_RUN_SCRIPT, json.dumps(args)], check=True,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return runs


@pytest.fixture(scope="module")
def reference_runs(tmp_path_factory) -> dict[str, Path]:
    return write_reference_runs(tmp_path_factory.mktemp("runs"))


# ------------------------------------------------------------------------------------ safe reader
@pytest.mark.parametrize("layout", ["dino_wm", "fork"])
def test_their_pickled_modules_are_read_without_their_code(reference_runs, layout):
    expected = torch.load(reference_runs[layout] / "expected.pt", weights_only=True)
    assert "models" not in sys.modules and "accelerate.optimizer" not in sys.modules
    run = DinoWMRun(reference_runs[layout])
    assert "models.vit" not in sys.modules  # read as records, never imported
    predictor = run.entries["predictor"]
    assert isinstance(predictor, PickledObject) and predictor.qualified_name == "models.vit.ViTPredictor"
    for name, state in expected.items():
        got = run.state_dict(name)
        assert list(got) == list(state) and all(torch.equal(got[k], state[k]) for k in state)
    # the fork registers the frame mask as a buffer; DINO-WM keeps it as a plain attribute
    assert ("transformer.layers.0.0.bias" in run.state_dict("predictor")) == (layout == "fork")
    attention = predictor.submodule("transformer.layers.1.0")
    assert attention.hyperparameters() == {"heads": 2, "scale": 8 ** -0.5}
    assert run.entries["proprio_encoder"].hyperparameters() == {"num_frames": 1, "tubelet_size": 1, "in_chans": 3,
                                                                  "emb_dim": 4}
    assert run.epoch == 7 and run.config["predictor"]["depth"] == 2 and run.config["training"]["encoder_lr"] == 1e-6
    assert run.config["plan_settings"]["planner"] == ["gd", "cem"] and run.config["env"]["decoder_path"] is None
    optimizer = run.entries["predictor_optimizer"]
    assert optimizer.qualified_name == "accelerate.optimizer.AcceleratedOptimizer"
    assert optimizer.attributes["optimizer"].qualified_name == "torch.optim.adamw.AdamW"
    with pytest.raises(KeyError, match="no submodule 'attn'"):
        predictor.submodule("transformer.attn")


class CallsOnLoad:
    """Pickles as a call of ``target(*args)``: what a malicious checkpoint does."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


@pytest.mark.parametrize("target, shown", [
    (os.system, "os.system"), (eval, "builtins.eval"), (exec, "builtins.exec"), (__import__, "builtins.__import__"),
    (subprocess.check_call, "subprocess.check_call"), (getattr, "builtins.getattr"), (torch.load, "torch.serialization.load"),
])
def test_a_pickle_that_calls_code_is_refused_naming_the_file_and_the_global(tmp_path, target, shown):
    marker = tmp_path / "pwned"
    payload = {"predictor": CallsOnLoad(target, f"touch {marker}"), "epoch": 1}
    path = tmp_path / "model_latest.pth"
    torch.save(payload, path)
    with pytest.raises(UnsafeCheckpointError) as error:
        read_pickled_checkpoint(path)
    assert shown in str(error.value) and str(path) in str(error.value)
    assert not marker.exists()


def test_a_run_without_the_models_or_config_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="hydra.yaml"):
        DinoWMRun(tmp_path)
    (tmp_path / "hydra.yaml").write_text(TINY_HYDRA)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"epoch": 1, "predictor": torch.nn.Linear(2, 2)}, tmp_path / "checkpoints" / "model_latest.pth")
    with pytest.raises(ValueError, match=r"lacks the pickled modules \['action_encoder', 'proprio_encoder'\]"):
        DinoWMRun(tmp_path)
    (tmp_path / "checkpoints" / "model_latest.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot be read as a torch checkpoint"):
        DinoWMRun(tmp_path)
