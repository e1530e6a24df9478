"""DINO-WM's models in this package: their checkpoints read safely, converted once, loaded by every command."""
from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from torch.nn import functional as F

from torchrl_gbp.bridges import (
    DinoWMConfig,
    DinoWMImageEncoder,
    DinoWMRun,
    DinoWMWorldModel,
    PickledObject,
    UnsafeCheckpointError,
    classify_global,
    convert_dinowm_checkpoint,
    dinowm_config,
    read_pickle,
    read_pickled_checkpoint,
)
from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.diagnostics import planned_state_error
from torchrl_gbp.models import PatchAutoencoder, TeacherForcingLoss, load_checkpoint
from torchrl_gbp.models.checkpoint import read_checkpoint
from torchrl_gbp.planners import GoalCost, MPCPolicy, make_planner, planning_inputs
from torchrl_gbp.synthesis import AdversarialOptions, AdversarialSynthesis
from torchrl_gbp.tasks import PixelTask, WallTask

# Numbers made once by running the reference code (robust-world-model-planning @ 07726ac: models/vit.py
# ViTPredictor, models/proprio.py ProprioceptiveEmbedding, models/visual_world_model.py VWorldModel with
# concat_dim=1, planning/objectives.py create_objective_fn; the repository's files are not in ours) on seeded
# random weights, float32 on a CPU, torch 2.13:
#   torch.manual_seed(0); ViTPredictor(num_patches=4, num_frames=3, dim=32, depth=2, heads=2, mlp_dim=64,
#   dim_head=8, dropout=0.1, emb_dropout=0), ProprioceptiveEmbedding(in_chans=4 (action 2 x frameskip 2),
#   emb_dim=4) and (in_chans=3, emb_dim=4), then every LayerNorm's weight and bias += 0.1 * randn; VWorldModel
#   in eval mode over an identity "encoder" (observations are 4 tokens of 24); then in this order
#   tokens = randn(2, 3, 4, 24), proprio = randn(2, 3, 3), actions = randn(2, 7, 4), goal_tokens =
#   randn(2, 1, 4, 24), goal_proprio = randn(2, 1, 3).
# Saved: those inputs; "predictor_input" = VWorldModel.encode(obs, actions[:, :3]); "predictor_output_f" =
# VWorldModel.predict of its first f frames (f = 1, 2, 3); "full_rollout_from_hist" = rollout_legacy(obs, actions)
# after the 3 given frames; "full_rollout_from_one" = rollout_legacy(first frame, actions[:, 2:]) and
# "one_frame_rollout_from_one" = custom_rollout(first frame, actions[:, 2:].unsqueeze(2)), both after the start
# frame, with create_objective_fn(alpha=0.5, base=0.5, mode in "all"/"last") of each against
# encode_obs(goal) ("<rollout>_cost_<mode>") and the gradient of its batch sum w.r.t. actions[:, 2:] ("..._grad");
# "state_dict": the three modules' state dicts (the fork's, whose frame masks are buffers ...0.bias).
FIXTURE = Path(__file__).parent / "fixtures" / "dinowm_reference.pt"

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
        weights = torch.load(a["weights"], weights_only=True)["state_dict"]
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
    return write_reference_runs(tmp_path_factory.mktemp("runs"), weights=FIXTURE)


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
    (subprocess.check_call, "subprocess.check_call"), (getattr, "builtins.getattr"),
    (torch.load, "torch.serialization.load"),
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


@pytest.mark.parametrize("module, name, outcome", [
    ("collections", "OrderedDict", "allowed"), ("torch._utils", "_rebuild_tensor_v2", "allowed"),
    ("torch", "float16", "allowed"), ("torch", "FloatStorage", "allowed"), ("__builtin__", "set", "allowed"),
    ("numpy.core.multiarray", "scalar", "allowed"),
    ("models.vit", "ViTPredictor", "record"), ("torch.nn.modules.linear", "Linear", "record"),
    ("torch.optim.adamw", "AdamW", "record"), ("accelerate.optimizer", "AcceleratedOptimizer", "record"),
    ("numpy", "load", "package 'numpy'"), ("numpy.core.multiarray", "_reconstruct", "package 'numpy'"),
    ("torch.nn.modules.module", "torch.load", "not a plain identifier"), ("models", "vit.ViTPredictor", "dotted"),
    ("torch", "load", "package 'torch'"), ("torch.serialization", "load", "package 'torch'"),
    ("torch.jit", "ScriptModule", "package 'torch'"), ("subprocess", "Popen", "package 'subprocess'"),
    ("builtins", "getattr", "package 'builtins'"), ("models.vit", "build_predictor", "not a class name"),
    ("torch.nn.functional", "relu", "not a class name"), ("<computed>", "<computed>", "not a plain identifier"),
])
def test_the_allow_list_decides_every_global_by_module_and_name(module, name, outcome):
    if outcome in ("allowed", "record"):
        assert classify_global(module, name)[0] == outcome
    else:
        with pytest.raises(UnsafeCheckpointError, match=rf"model\.pth: refusing the global .*{outcome}"):
            classify_global(module, name, "model.pth")


def test_a_refused_global_deep_in_a_file_stops_it_before_any_record_is_built(tmp_path, monkeypatch):
    from torchrl_gbp.bridges import dinowm_checkpoint

    built = []
    monkeypatch.setattr(dinowm_checkpoint, "record_class", lambda *key: built.append(key))
    layer = torch.nn.Linear(2, 2)
    layer.extra = [CallsOnLoad(os.system, "echo pwned")]  # after the module's class in the pickle
    torch.save({"predictor": layer}, tmp_path / "model.pth")
    with pytest.raises(UnsafeCheckpointError, match="os.system"):
        read_pickled_checkpoint(tmp_path / "model.pth")
    assert built == []


def test_seq_lengths_of_numpy_integers_are_read(tmp_path):
    numpy = pytest.importorskip("numpy")
    for protocol in (2, 4):
        (tmp_path / "seq_lengths.pkl").write_bytes(pickle.dumps([numpy.int64(7), 5, numpy.int32(3)], protocol))
        assert read_pickle(tmp_path / "seq_lengths.pkl") == [7, 5, 3]
    (tmp_path / "seq_lengths.pkl").write_bytes(pickle.dumps([numpy.array([1.5])], 4))
    with pytest.raises(UnsafeCheckpointError, match=r"numpy\.core\.multiarray\._reconstruct|numpy\._core"):
        read_pickle(tmp_path / "seq_lengths.pkl")


def test_a_run_without_the_models_or_config_says_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="hydra.yaml"):
        DinoWMRun(tmp_path)
    (tmp_path / "hydra.yaml").write_text(TINY_HYDRA)
    (tmp_path / "checkpoints").mkdir()
    torch.save({"epoch": 1, "predictor": torch.nn.Linear(2, 2)}, tmp_path / "checkpoints" / "model_latest.pth")
    with pytest.raises(ValueError, match=r"lacks the pickled modules \['action_encoder', 'proprio_encoder'\]"):
        DinoWMRun(tmp_path)
    (tmp_path / "checkpoints" / "model_latest.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="is not a readable pickle"):
        DinoWMRun(tmp_path)


def test_a_torchscript_archive_is_refused_before_torch_would_run_it(tmp_path):
    path = tmp_path / "model_latest.pth"
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), path)
    with pytest.raises(UnsafeCheckpointError, match="TorchScript archive"):
        read_pickled_checkpoint(path)


# ------------------------------------------------------------------------- weight-compatible model
@pytest.fixture(scope="module")
def reference() -> dict:
    return torch.load(FIXTURE, weights_only=True)


def tiny_config(**kwargs) -> DinoWMConfig:
    return DinoWMConfig(env_action_dim=2, proprio_in_dim=3, frameskip=2, num_hist=3, num_patches=4, visual_dim=24,
                        proprio_embed_dim=4, action_embed_dim=4, depth=2, heads=2, dim_head=8, mlp_dim=64, **kwargs)


def without_masks(state_dict: dict) -> dict:
    """DINO-WM's layout: the frame mask is a plain attribute, not in the state dict."""
    return {k: v for k, v in state_dict.items() if not (k.startswith("transformer.layers.") and k.endswith(".0.bias")
                                                        and k.count(".") == 4)}


def reference_model(reference: dict, rollout: str = "full") -> DinoWMWorldModel:
    model = DinoWMWorldModel(tiny_config(rollout=rollout)).eval()
    weights = reference["state_dict"]
    model.predictor.load_state_dict(weights["predictor"])
    model.action_encoder.load_state_dict(weights["action_encoder"])
    model.proprio_encoder.load_state_dict(weights["proprio_encoder"])
    return model


def flat(frames: dict) -> torch.Tensor:
    """The reference's {"visual": (B, T, N, D), "proprio": (B, T, P)} as our flat latents (B, T, N * D + P)."""
    return torch.cat([frames["visual"].flatten(-2), frames["proprio"]], dim=-1)


def test_their_state_dicts_load_strictly_with_or_without_the_saved_masks(reference):
    fork = reference["state_dict"]["predictor"]
    model = DinoWMWorldModel(tiny_config())
    assert "transformer.layers.1.0.bias" in fork
    model.predictor.load_state_dict(fork)  # the fork's buffers: checked, then dropped
    model.predictor.load_state_dict(without_masks(fork))  # DINO-WM's layout
    assert set(model.predictor.state_dict()) == set(without_masks(fork))
    for name, shape in (("pos_embedding", (1, 12, 32)), ("transformer.layers.0.0.to_qkv.weight", (48, 32)),
                        ("transformer.layers.1.1.net.1.weight", (64, 32)), ("transformer.norm.bias", (32,))):
        assert model.predictor.state_dict()[name].shape == shape
    wrong = dict(fork, **{"transformer.layers.1.0.bias": torch.ones(1, 1, 12, 12)})
    with pytest.raises(RuntimeError, match=r"transformer.layers.1.0.bias: expected the frame-causal mask of 3 frames"):
        model.predictor.load_state_dict(wrong)
    with pytest.raises(RuntimeError, match="Missing key.*pos_embedding"):
        model.predictor.load_state_dict({k: v for k, v in fork.items() if k != "pos_embedding"})


def test_the_predictor_matches_the_reference_on_full_and_partial_context(reference):
    model = reference_model(reference)
    tokens = reference["predictor_input"]  # (B, 3 frames, 4 patches, 32)
    # our latents, tiled with the action embeddings as DINO-WM concatenates them, are the reference's tokens
    z = model.encode(reference["tokens"], reference["proprio"])
    e = model.embed_actions(reference["actions"][:, :3])
    ours = torch.cat([model.predictor.observation_tokens(z), e.unsqueeze(-2).expand(-1, -1, 4, -1)], dim=-1)
    torch.testing.assert_close(ours, tokens, rtol=0, atol=1e-5)
    for frames in (1, 2, 3):
        out = model.predictor.forward_tokens(tokens[:, :frames].flatten(1, 2)).unflatten(1, (frames, 4))
        torch.testing.assert_close(out, reference[f"predictor_output_{frames}"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("rollout, key, frames", [("history", "full_rollout_from_hist", 3),
                                                  ("full", "full_rollout_from_one", 1),
                                                  ("one_frame", "one_frame_rollout_from_one", 1)])
def test_each_rollout_matches_the_reference(reference, rollout, key, frames):
    model = reference_model(reference, rollout)
    z = model.encode(reference["tokens"][:, :frames], reference["proprio"][:, :frames])
    actions = reference["actions"]
    predicted = model.rollout(z, actions[:, :frames - 1], actions[:, 2:])
    torch.testing.assert_close(predicted, flat(reference[key]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("rollout", ["full", "one_frame"])
def test_goal_costs_and_their_action_gradients_match_the_reference(reference, rollout):
    model = reference_model(reference, rollout)
    start = model.encode(reference["tokens"][:, :1], reference["proprio"][:, :1])
    goal = model.encode(reference["goal_tokens"][:, 0], reference["goal_proprio"][:, 0])
    plan = reference["actions"][:, 2:].clone().requires_grad_(True)
    trajectory = model.rollout(start, plan[:, :0], plan)
    cost = GoalCost("last", alpha=0.5, proprio_dim=model.config.proprio_dim)
    # the reference's "all": base**i weights over the start frame and the H predictions, normalised, then averaged
    steps = cost.step_costs(torch.cat([start, trajectory], dim=1), goal)
    weights = 0.5 ** torch.arange(steps.shape[1])
    costs = {"last": cost(trajectory, goal), "all": (steps * weights / weights.sum()).mean(-1)}
    for mode, value in costs.items():
        grad, = torch.autograd.grad(value.sum(), plan, retain_graph=True)
        torch.testing.assert_close(value, reference[f"{rollout}_cost_{mode}"], rtol=0, atol=1e-5)
        torch.testing.assert_close(grad, reference[f"{rollout}_cost_{mode}_grad"], rtol=0, atol=1e-5)


@pytest.mark.parametrize("layout", ["dino_wm", "fork"])
def test_a_converted_run_loads_with_load_checkpoint_and_matches_the_reference(reference_runs, reference, layout,
                                                                               tmp_path):
    path = convert_dinowm_checkpoint(reference_runs[layout], tmp_path / "model.pt", rollout="one_frame")
    model, extra = load_checkpoint(path)  # weights_only, as every command loads
    assert read_checkpoint(path)["kind_module"] == "torchrl_gbp.bridges.dinowm_model"  # imported when loading
    assert isinstance(model, DinoWMWorldModel)
    assert model.config == tiny_config(rollout="one_frame", dropout=0.1)
    assert extra == {"converted_from": str(reference_runs[layout] / "checkpoints" / "model_latest.pth"),
                     "epoch": 7, "env": "wall", "encoder": "dinov2_vits14"}
    model.eval()
    z = model.encode(reference["tokens"][:, :1], reference["proprio"][:, :1])
    predicted = model.rollout(z, reference["actions"][:, :0], reference["actions"][:, 2:])
    torch.testing.assert_close(predicted, flat(reference["one_frame_rollout_from_one"]), rtol=0, atol=1e-5)


def test_settings_that_disagree_with_the_weights_are_named(reference_runs, tmp_path):
    run = DinoWMRun(reference_runs["dino_wm"])
    run.config = {**run.config, "predictor": {**run.config["predictor"], "mlp_dim": 2048}}
    with pytest.raises(ValueError, match="hydra.yaml says mlp_dim=2048 but the weights have mlp_dim=64"):
        dinowm_config(run)
    run.config = {**run.config, "concat_dim": 0}
    with pytest.raises(ValueError, match="concat_dim=0"):
        dinowm_config(run)


# One step of the reference fork's Adversarial World Modeling (its train.py Trainer.fgsm_step, run by
# tests/fixtures/make_dinowm_fgsm_fixture.py, whose docstring says how) on a tiny DINO-WM of 196 patch tokens of 8,
# proprio embedded to 4 and tiled twice, action embedding 4, one history frame. Conventions:
# - radii: theirs are each window's std over its history tokens, averaged over the batch, every tiled copy of a
#   proprio or action entry counted: radius_statistic="per_window" (on a window's input frames, config.token_copies).
# - where perturbations go: theirs on the history tokens, each patch's visual, proprio and action-embedding slots
#   apart (per token, so a patch's proprio and action copies move apart from the other patches'); ours on the flat
#   latent (visual tokens, one proprio embedding) and the action embedding, never on raw actions. The visual slices
#   coincide, so the step is compared with proprio and action factors 0; their radii with their default factors.
# - the loss ascended: the prediction of the next frame against the clean one, theirs over every patch's visual and
#   proprio slots, ours over the visual tokens and patch 0's proprio; the fixture's predictor predicts the proprio
#   slot as a constant 0, so both ascend the same visual gradient, and our loss_prediction is their visual loss
#   plus that constant. With more history frames their loss also scores the predictions from shorter prefixes.
# - mode: their trainer attacks in train mode (dropout on): attack_mode="train" (dropout 0 here, to be deterministic).
# - the random start is theirs (our draw comes from our generator), given to AdversarialSynthesis.attack.
FGSM_FIXTURE = Path(__file__).parent / "fixtures" / "dinowm_fgsm.pt"


def test_one_fgsm_step_matches_the_reference_fork():
    reference = torch.load(FGSM_FIXTURE, weights_only=True)
    config = DinoWMConfig(env_action_dim=2, proprio_in_dim=3, frameskip=2, num_hist=1, num_patches=196, visual_dim=8,
                          proprio_embed_dim=4, proprio_repeat=2, action_embed_dim=4, depth=2, heads=2, dim_head=8,
                          mlp_dim=32, dropout=0.0)
    model = DinoWMWorldModel(config).eval()
    for name in ("predictor", "action_encoder", "proprio_encoder"):
        getattr(model, name).load_state_dict(reference["state_dict"][name])
    batch = TensorDict({"tokens": reference["tokens"], "proprio": reference["proprio"],
                        "action": reference["actions"][:, :1]}, [3])
    theirs = AdversarialOptions(radius_statistic="per_window", attack_mode="train")
    with_their_factors = AdversarialSynthesis(model, options=theirs, generator=torch.Generator().manual_seed(0))
    with_their_factors(batch)
    torch.testing.assert_close(with_their_factors.eps, reference["radii"], rtol=0, atol=1e-5)

    synthesis = AdversarialSynthesis(model, options=replace(theirs, proprio_factor=0.0, action_factor=0.0),
                                     generator=torch.Generator().manual_seed(0))
    out = synthesis(batch)
    with torch.no_grad():
        z = model.encode(batch["tokens"], batch["proprio"])
        e = model.embed_actions(model.normalize_action(batch["action"]))
    start = torch.zeros_like(z)
    start[:, 0, :-4] = reference["start"][:, 0].flatten(-2)  # their visual draw on the history frame
    dz, de = synthesis.attack(z, e, (start, torch.zeros_like(e)))
    torch.testing.assert_close(dz[:, 0, :-4], reference["perturbation"][:, 0].flatten(-2), rtol=0, atol=1e-5)
    assert not dz[:, 0, -4:].any() and not dz[:, 1].any() and not de.any()
    assert not torch.allclose(dz, start)  # the sign step moved it
    # trained against the clean next frame: their visual loss, plus the constant proprio term of ours
    proprio_term = z[:, 1, -4:].pow(2).sum(-1).mean()
    for perturbation, key in ((start, "visual_loss_start"), (dz, "visual_loss_step")):
        out.set("latent_perturbation", perturbation)
        loss = TeacherForcingLoss(model)(out)["loss_prediction"]
        expected = (reference[key] * 196 * 8 + proprio_term) / model.latent_dim
        torch.testing.assert_close(loss, expected, rtol=0, atol=1e-5)


# ------------------------------------------------------------------ the package's verbs run on it
@pytest.fixture(scope="module")
def task() -> PixelTask:
    return PixelTask(WallTask(), image_size=16)


@pytest.fixture(scope="module")
def pixel_model() -> DinoWMWorldModel:
    """A tiny DINO-WM over Wall's 16x16 images: 4 patch tokens of 6 from a (random, frozen) patch encoder."""
    torch.manual_seed(0)
    config = DinoWMConfig(env_action_dim=2, proprio_in_dim=2, frameskip=5, num_hist=2, num_patches=4, visual_dim=6,
                          proprio_embed_dim=3, action_embed_dim=3, depth=1, heads=2, dim_head=4, mlp_dim=16,
                          encoder="custom")
    encoder = PatchAutoencoder(image_size=16, patch_size=8, token_dim=6, hidden_dim=8)
    return DinoWMWorldModel(config, image_encoder=encoder).eval()


@pytest.mark.parametrize("planner, rollout", [("gd", "one_frame"), ("cem", "full")])
def test_gradient_and_cem_planners_plan_on_it(pixel_model, task, planner, rollout):
    pixel_model.use_rollout(rollout)
    start, goal = torch.tensor([[-0.6, -0.5], [-0.5, 0.6]]), torch.tensor([[0.6, 0.5], [0.5, -0.6]])
    z_hist, a_hist, z_goal = planning_inputs(pixel_model, task.observe(start), task.observe(goal))
    objective = GoalCost(proprio_dim=pixel_model.config.proprio_dim)
    budget = {"gd": {"steps": 10, "lr": 0.3}, "cem": {"samples": 32, "elites": 4, "iterations": 3}}[planner]
    init = torch.zeros(2, 3, pixel_model.action_dim)
    before = objective(pixel_model.rollout(z_hist, a_hist, init), z_goal)
    result = make_planner(planner, pixel_model, 3, objective, **budget).plan(z_hist, a_hist, z_goal, init=init)
    assert result.actions.shape == (2, 3, 10) and torch.isfinite(result.actions).all()
    assert (result.cost < before).all()


def test_an_mpc_policy_steps_a_pixel_env_with_it(pixel_model, task):
    pixel_model.use_rollout("one_frame")
    env = task.make_env(num_envs=2, seed=0)
    policy = MPCPolicy(make_planner("gd", pixel_model, 3, action_spec=env.action_spec, steps=2), env.action_spec)
    env.append_transform(policy.make_tensordict_primer())
    rollout = env.rollout(3, policy, break_when_any_done=False)
    assert rollout["action"].shape == (2, 3, 2) and torch.isfinite(rollout["action"]).all()
    assert rollout["planner", "latent_history"].shape == (2, 3, 2, pixel_model.latent_dim)


def test_adversarial_synthesis_and_the_teacher_forcing_loss_on_a_window_batch(pixel_model, task):
    data = task.generate_dataset(4, seed=0)
    synthesis = AdversarialSynthesis(pixel_model, generator=torch.Generator().manual_seed(0))
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=4, transform=synthesis,
                                generator=torch.Generator().manual_seed(0))
    batch = buffer.sample()
    eps_visual, eps_proprio, eps_action = synthesis.eps.tolist()
    dz, p = batch["latent_perturbation"], pixel_model.config.proprio_dim
    assert dz.shape == (4, 3, 4 * 6 + 3) and batch["action_embedding_perturbation"].shape == (4, 2, 3)
    assert 0 < dz[..., :-p].abs().max() <= eps_visual + 1e-6 and 0 < dz[..., -p:].abs().max() <= eps_proprio + 1e-6
    out = TeacherForcingLoss(pixel_model.train())(batch)
    out["loss_prediction"].backward()
    pixel_model.eval()
    assert torch.isfinite(out["loss_prediction"])
    assert pixel_model.predictor.pos_embedding.grad is not None
    assert pixel_model.action_encoder.patch_embed.weight.grad is not None
    pixel_model.zero_grad(set_to_none=True)


def test_the_diagnostics_run_on_it(pixel_model, task):
    pixel_model.use_rollout("one_frame")
    planner = make_planner("gd", pixel_model, 3, GoalCost(proprio_dim=pixel_model.config.proprio_dim), steps=2)
    result = planned_state_error(pixel_model, task, planner, num_pairs=3)
    assert len(result["error_per_step"]) == 3 and all(map(math.isfinite, result["error_per_step"]))


# ------------------------------------------------------------------------------ DINOv2 the hub's way
TINY_DINO = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "patch_size": 7, "image_size": 28}


def test_dinov2_position_embedding_is_resampled_as_torch_hub_does():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINO))  # 4 x 4 pretrained positions
    original = model.embeddings.position_embeddings.detach().clone()
    encoder = DinoWMImageEncoder(model, image_size=48)  # DINO-WM's grid: 48 // 16 = 3 patches a side
    # the hub's interpolate_pos_encoding for a 3 x 3 grid: bicubic by the scale factor (3 + 0.1) / 4, no antialias
    patches = original[:, 1:].reshape(1, 4, 4, 16).permute(0, 3, 1, 2)
    hub = F.interpolate(patches, scale_factor=(3.1 / 4, 3.1 / 4), mode="bicubic", antialias=False)
    expected = torch.cat([original[:, :1], hub.permute(0, 2, 3, 1).reshape(1, 9, 16)], dim=1)
    assert torch.equal(encoder.model.embeddings.position_embeddings, expected)
    # transformers' own interpolation (to a size, no offset) gives other numbers
    assert not torch.allclose(hub, F.interpolate(patches, size=(3, 3), mode="bicubic", align_corners=False),
                              atol=1e-3)


def test_dinov2_sees_images_resized_normalised_and_resized_as_dino_wm_does():
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    encoder = DinoWMImageEncoder.from_config(TINY_DINO, image_size=48)
    seen = []
    encoder.model.embeddings.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[0] if args else kwargs["pixel_values"]), with_kwargs=True)
    tokens = encoder(torch.full((2, 3, 64, 64), 0.5))
    assert tokens.shape == (2, 9, 16) and seen[0].shape == (2, 3, 21, 21)  # 3 patches of 7 a side
    assert torch.equal(seen[0], torch.zeros(2, 3, 21, 21))  # mid-grey is 0 after normalising by 0.5 and 0.5
    config = DinoWMConfig(env_action_dim=2, proprio_in_dim=2, num_patches=9, visual_dim=16, depth=1, heads=2,
                          dim_head=4, mlp_dim=16, encoder="custom")
    model = DinoWMWorldModel(config, image_encoder=encoder)
    pixels = torch.randint(0, 256, (2, 64, 64, 3), dtype=torch.uint8)  # TorchRL's "pixels" layout
    z = model.encode(pixels, torch.zeros(2, 2))
    assert z.shape == (2, 9 * 16 + 10)
    torch.testing.assert_close(z[:, :-10].reshape(2, 9, 16), encoder(pixels.permute(0, 3, 1, 2) / 255))


def test_the_command_line_converts_a_run_and_refuses_a_malicious_pickle(tmp_path, capsys) -> None:
    from torchrl_gbp.experiments.cli import main
    from torchrl_gbp.models import load_checkpoint

    model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4, visual_dim=8, depth=1,
                                          heads=2, dim_head=4, mlp_dim=16))
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "hydra.yaml").write_text("num_hist: 3\nframeskip: 5\n")
    torch.save({"epoch": 2, "predictor": model.predictor, "action_encoder": model.action_encoder,
                "proprio_encoder": model.proprio_encoder}, run / "checkpoints" / "model_latest.pth")
    assert main(["convert-dinowm", "--run-dir", str(run), "--out", str(tmp_path / "ours.pt"),
                 "--rollout", "one_frame"]) == 0
    loaded, extra = load_checkpoint(tmp_path / "ours.pt")
    assert loaded.config.rollout == "one_frame" and extra["epoch"] == 2
    torch.save({"predictor": _Exploit()}, run / "checkpoints" / "model_latest.pth")
    assert main(["convert-dinowm", "--run-dir", str(run), "--out", str(tmp_path / "bad.pt")]) == 2
    assert "system" in capsys.readouterr().err and not (tmp_path / "bad.pt").exists()


class _Exploit:
    def __reduce__(self):
        import os

        return os.system, ("echo pwned",)


def test_a_run_converted_with_a_local_dinov2_carries_it_and_reads_pixels(reference_runs, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    # TINY's 4 patches of 24 at the run's img_size 32: DINO-WM's grid of 32 // 16 = 2 patches a side
    backbone = transformers.Dinov2Model(transformers.Dinov2Config(**{**TINY_DINO, "hidden_size": 24}))
    backbone.save_pretrained(tmp_path / "dinov2")
    statistics = {"proprio_mean": torch.tensor([1.0, 2.0, 3.0]), "proprio_std": torch.tensor([2.0, 2.0, 4.0]),
                  "action_mean": torch.tensor([0.5, -0.5]), "action_std": torch.tensor([0.1, 0.2])}
    path = convert_dinowm_checkpoint(reference_runs["dino_wm"], tmp_path / "model.pt", dinov2=tmp_path / "dinov2",
                                     normalization=statistics)
    reference_encoder = DinoWMImageEncoder.from_pretrained(tmp_path / "dinov2", image_size=32)
    for file in (tmp_path / "dinov2").iterdir():  # the checkpoint needs the folder no more
        file.unlink()
    model, _ = load_checkpoint(path)
    assert model.config.encoder == "dinov2" and model.config.image_size == 32
    assert model.config.dinov2["hidden_size"] == 24 and model.observation_keys == ("pixels", "proprio")
    pixels = torch.randint(0, 256, (2, 40, 40, 3), dtype=torch.uint8)
    proprio = torch.tensor([[1.0, 2.0, 3.0], [3.0, 4.0, 7.0]])
    z = model.eval().encode(pixels, proprio)
    expected = reference_encoder(pixels.permute(0, 3, 1, 2) / 255)
    torch.testing.assert_close(z[:, :-4].reshape(2, 4, 24), expected, rtol=0, atol=1e-5)
    embedded = model.proprio_encoder((proprio - statistics["proprio_mean"]) / statistics["proprio_std"])
    torch.testing.assert_close(z[:, -4:], embedded)
    torch.testing.assert_close(model.denormalize_action(torch.zeros(1, 4)), torch.tensor([[0.5, -0.5, 0.5, -0.5]]))
    small = transformers.Dinov2Model(transformers.Dinov2Config(**TINY_DINO))  # 16-wide tokens: not the run's 24
    small.save_pretrained(tmp_path / "small")
    with pytest.raises(ValueError, match="gives 4 tokens of 16 at img_size 32, but .* reads 4 of 24"):
        convert_dinowm_checkpoint(reference_runs["dino_wm"], tmp_path / "bad.pt", dinov2=tmp_path / "small")
