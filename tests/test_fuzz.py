"""Malformed inputs to every public entry point: each gets a clear error (naming what is wrong) or is handled.

Every case is one row of :data:`CASES`: an entry point fed one bad input,
and either the error it must raise (type and a message naming the key, shape
or value) or a check of the correct handling. README's counts come from this
table (``python -m pytest tests/test_fuzz.py -q``).
"""
from __future__ import annotations

import collections
import functools
import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Unbounded

from torchrl_gbp.bridges import (
    DinoWMConfig,
    DinoWMRun,
    DinoWMWorldModel,
    UnsafeCheckpointError,
    convert_dinowm_dataset,
    dinowm_config,
    dinowm_data,
    encode_images,
    load_dinowm_dataset,
    open_dinowm_dataset,
    read_pickle,
    read_pickled_checkpoint,
    write_dinov2_tokens,
)
from torchrl_gbp.data import ModelStepWindows, SliceLayout, load_dataset, make_window_buffer, save_dataset
from torchrl_gbp.evaluate import episode_metrics, evaluate
from torchrl_gbp.experiments.recipes import recipe_for
from torchrl_gbp.models import StateWorldModel, TeacherForcingLoss, WorldModelConfig, load_checkpoint, save_checkpoint
from torchrl_gbp.planners import (
    CrossEntropyPlanner,
    GoalCost,
    GradientPlanner,
    MPCPolicy,
    PathIntegralPlanner,
    SearchBudget,
    make_planner,
)
from torchrl_gbp.synthesis import (
    AdversarialOptions,
    AdversarialSynthesis,
    OnlineSynthesis,
    make_synthesis,
)
from torchrl_gbp.tasks import WallTask, make_task
from torchrl_gbp.train import build_world_model, train_world_model

TASK = WallTask()


class Case(NamedTuple):
    """One malformed input: ``feed`` runs it; ``raises`` is ``(error type, message regex)``, else ``check`` holds."""

    name: str
    feed: Callable[[], object]
    raises: tuple[type[Exception], str] | None = None
    check: Callable[[object], bool] | None = None


def _model(**overrides) -> StateWorldModel:
    torch.manual_seed(0)
    return StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, **overrides))


def _policy(**kwargs) -> MPCPolicy:
    model = _model()
    return MPCPolicy(GradientPlanner(model, steps=2), TASK.action_spec, **kwargs)


def _policy_input(**replace) -> TensorDict:
    td = TensorDict({"observation": torch.zeros(2, 2), "goal": torch.ones(2, 2)}, [2])
    for key, value in replace.items():
        if value is None:
            del td[key]
        else:
            td[key] = value
    return td


def _env_step(action: torch.Tensor):
    env = TASK.make_env(num_envs=2, seed=0)
    td = env.reset()
    return env.step(td.set("action", action))


def _plan(planner=None, z_hist=None, a_hist=None, z_goal=None, init=None):
    planner = planner or GradientPlanner(_model(), steps=2)
    z_hist = torch.zeros(3, 1, 2) if z_hist is None else z_hist
    a_hist = torch.zeros(3, 0, 10) if a_hist is None else a_hist
    z_goal = torch.ones(3, 2) if z_goal is None else z_goal
    return planner.plan(z_hist, a_hist, z_goal, init=init)


def _dataset_folder(damage: Callable[[Path], None]) -> Path:
    folder = Path(tempfile.mkdtemp()) / "dataset"
    save_dataset(TASK.generate_dataset(4, seed=0), folder)
    damage(folder)
    return folder


def _checkpoint_file(damage: Callable[[Path], None]) -> Path:
    path = Path(tempfile.mkdtemp()) / "model.pt"
    save_checkpoint(path, _model())
    damage(path)
    return path


def _windows(**replace) -> TensorDict:
    td = TensorDict({"observation": torch.zeros(4, 3, 2), "state": torch.zeros(4, 3, 2),
                     "action": torch.zeros(4, 2, 10)}, [4])
    for key, value in replace.items():
        if value is None:
            del td[key]
        else:
            td.set(key, value)
    return td


def _train(**kwargs):
    data = TASK.generate_dataset(6, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
    return train_world_model(model, make_window_buffer(data, frames=3, frameskip=5, batch_size=4), progress=False,
                             **{"steps": 1, **kwargs})


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:10])


NAN, INF = float("nan"), float("inf")
INPUT_CASES = [
    # ------------------------------------------------------------ the task env
    Case("env: reset with set_state and no pair", lambda: TASK.make_env(num_envs=2).reset(
        TensorDict(batch_size=[2]), set_state=True), (KeyError, "start_state")),
    Case("env: start_state without goal_state", lambda: TASK.make_env(num_envs=2).reset(
        TensorDict(start_state=torch.zeros(2, 2), batch_size=[2]), set_state=True), (ValueError, "goal_state")),
    Case("env: start_state of the wrong width", lambda: TASK.make_env(num_envs=2).reset(
        TensorDict(start_state=torch.zeros(2, 3), goal_state=torch.zeros(2, 2), batch_size=[2]), set_state=True),
         (ValueError, r"start_state.*\(2, 2\)")),
    Case("env: num_envs = 0", lambda: TASK.make_env(num_envs=0), (ValueError, "num_envs")),
    Case("env: num_envs < 0", lambda: TASK.make_env(num_envs=-3), (ValueError, "num_envs")),
    Case("env: NaN action", lambda: _env_step(torch.tensor([[NAN, 0.0], [0.0, 0.0]])),
         (ValueError, r"'action'.*\[0\]")),
    Case("env: inf action", lambda: _env_step(torch.tensor([[0.0, 0.0], [INF, 0.0]])),
         (ValueError, r"'action'.*\[1\]")),
    Case("env: action of the wrong width", lambda: _env_step(torch.zeros(2, 3)), (ValueError, "action")),
    Case("env: out-of-spec action is bounded by the dynamics", lambda: _env_step(torch.full((2, 2), 50.0)),
         check=lambda out: bool((out["next", "state"] - out["state"]).abs().max() <= 0.1 + 1e-6)),
    Case("env: integer action is taken as float", lambda: _env_step(torch.ones(2, 2, dtype=torch.int64)),
         check=lambda out: bool(torch.isfinite(out["next", "state"]).all())),
    Case("env: unknown pair mode", lambda: TASK.make_env(pair_mode="diagonal"), (ValueError, "pair mode")),
    # ------------------------------------------------------------ the MPC policy
    Case("policy: missing observation", lambda: _policy()(_policy_input(observation=None)),
         (KeyError, "observation")),
    Case("policy: missing goal", lambda: _policy()(_policy_input(goal=None)), (KeyError, "goal")),
    Case("policy: observation of the wrong width", lambda: _policy()(_policy_input(observation=torch.zeros(2, 3))),
         (ValueError, "observation")),
    Case("policy: NaN observation", lambda: _policy()(_policy_input(observation=torch.tensor([[0.0, NAN],
                                                                                              [0.0, 0.0]]))),
         (ValueError, r"observation.*\[0\]")),
    Case("policy: inf goal", lambda: _policy()(_policy_input(goal=torch.tensor([[0.0, 0.0], [INF, 0.0]]))),
         (ValueError, r"goal.*\[1\]")),
    Case("policy: NaN observation held", lambda: _policy(on_nonfinite="hold")(
        _policy_input(observation=torch.full((2, 2), NAN))),
         check=lambda td: bool(torch.isfinite(td["action"]).all())),
    Case("policy: empty batch", lambda: _policy()(TensorDict({"observation": torch.zeros(0, 2),
                                                             "goal": torch.zeros(0, 2)}, [0])),
         check=lambda td: td["action"].shape == (0, 2)),
    Case("policy: n_taken_actions = 0", lambda: MPCPolicy(GradientPlanner(_model()),
                                                          TASK.action_spec, n_taken_actions=0),
         (ValueError, "n_taken_actions")),
    Case("policy: a model instead of a planner", lambda: MPCPolicy(_model(), TASK.action_spec),
         (TypeError, "Planner")),
    Case("policy: unbounded action spec", lambda: (lambda m: MPCPolicy(GradientPlanner(m), Unbounded((2,))))(
        _model()), (TypeError, "Bounded")),
    Case("policy: action spec of the wrong width",
         lambda: (lambda m: MPCPolicy(GradientPlanner(m), TASK.action_spec))(StateWorldModel(WorldModelConfig(2, 3, 5))),
         (ValueError, "env_action_dim")),
    Case("policy: negative exploration noise", lambda: _policy(exploration_std=-1.0),
         (ValueError, "exploration_std")),
    # ------------------------------------------------------------ planners
    Case("plan: goal of the wrong shape", lambda: _plan(z_goal=torch.ones(3, 5)), (ValueError, "z_goal")),
    Case("plan: goal batch differs", lambda: _plan(z_goal=torch.ones(2, 2)), (ValueError, "z_goal")),
    Case("plan: warm start of the wrong shape", lambda: _plan(init=torch.zeros(3, 4, 10)), (ValueError, "init")),
    Case("plan: past actions of the wrong width", lambda: _plan(a_hist=torch.zeros(3, 0, 7)),
         (ValueError, "a_hist")),
    Case("plan: history without a time axis", lambda: _plan(z_hist=torch.zeros(3, 2)), (ValueError, "z_hist")),
    Case("plan: empty batch", lambda: _plan(z_hist=torch.zeros(0, 1, 2), a_hist=torch.zeros(0, 0, 10),
                                            z_goal=torch.zeros(0, 2)),
         check=lambda r: r.actions.shape == (0, 5, 10)),
    Case("plan: NaN goal gives no finite plan, counted",
         lambda: _plan(GradientPlanner(_model(), steps=2), z_goal=torch.full((3, 2), NAN)),
         check=lambda result: result.nonfinite == 3),
    Case("planner: horizon 0", lambda: GradientPlanner(_model(), horizon=0), (ValueError, "horizon")),
    Case("planner: negative steps", lambda: GradientPlanner(_model(), steps=-1), (ValueError, "steps")),
    Case("planner: zero restarts", lambda: GradientPlanner(_model(), num_restarts=0), (ValueError, "num_restarts")),
    Case("planner: unknown init", lambda: GradientPlanner(_model(), init="ones"), (ValueError, "init")),
    Case("planner: more elites than samples", lambda: CrossEntropyPlanner(_model(), samples=4, elites=8),
         (ValueError, "elites")),
    Case("planner: zero iterations", lambda: CrossEntropyPlanner(_model(), iterations=0), (ValueError, "iterations")),
    Case("planner: zero MPPI temperature", lambda: PathIntegralPlanner(_model(), temperature=0.0),
         (ValueError, "temperature")),
    Case("planner: unknown name", lambda: make_planner("rrt", _model()), (ValueError, "rrt")),
    Case("cost: unknown mode", lambda: GoalCost(mode="first"), (ValueError, "mode")),
    Case("cost: proprio part wider than the latent", lambda: GoalCost(proprio_dim=5)(
        torch.zeros(2, 3, 2), torch.zeros(2, 2)), (ValueError, "proprio_dim")),
    Case("budget: zero seconds", lambda: SearchBudget(max_seconds=0.0), (ValueError, "max_seconds")),
    Case("budget: zero patience", lambda: SearchBudget(patience=0), (ValueError, "patience")),
    # ------------------------------------------------------------ models and checkpoints
    Case("config: obs_dim 0", lambda: WorldModelConfig(obs_dim=0, env_action_dim=2), (ValueError, "obs_dim")),
    Case("config: unknown encoder", lambda: WorldModelConfig(obs_dim=2, env_action_dim=2, encoder="cnn"),
         (ValueError, "encoder")),
    Case("config: negative depth", lambda: WorldModelConfig(obs_dim=2, env_action_dim=2, depth=-1),
         (ValueError, "depth")),
    Case("model: action of the wrong width", lambda: _model().embed_actions(torch.zeros(3, 7)),
         (ValueError, "action_dim")),
    Case("loss: missing action", lambda: TeacherForcingLoss(_model())(_windows(action=None)), (KeyError, "action")),
    Case("loss: too few frames", lambda: TeacherForcingLoss(_model())(
        _windows(observation=torch.zeros(4, 1, 2), action=torch.zeros(4, 0, 10))), (ValueError, "num_hist")),
    Case("loss: flat batch without slice_len", lambda: TeacherForcingLoss(_model())(
        TensorDict({"observation": torch.zeros(22, 2), "action": torch.zeros(22, 2)}, [22])),
         (ValueError, "ModelStepWindows")),
    Case("windows: flat batch not a whole number of slices", lambda: ModelStepWindows(frames=3, frameskip=5)(
        TensorDict({"observation": torch.zeros(20, 2), "action": torch.zeros(20, 2)}, [20])),
         (ValueError, "slice_len=11")),
    Case("checkpoint: missing file", lambda: load_checkpoint("/nonexistent/model.pt"),
         (FileNotFoundError, "model.pt")),
    Case("checkpoint: truncated", lambda: load_checkpoint(_checkpoint_file(_truncate)),
         (ValueError, "truncated, damaged")),
    Case("checkpoint: random bytes", lambda: load_checkpoint(_checkpoint_file(
        lambda p: p.write_bytes(bytes(range(256)) * 8))), (ValueError, "cannot be read")),
    Case("checkpoint: another file's dict", lambda: load_checkpoint(_checkpoint_file(
        lambda p: torch.save({"weights": torch.zeros(1)}, p))), (ValueError, "not a torchrl_gbp checkpoint")),
    # ------------------------------------------------------------ datasets and buffers
    Case("dataset: missing folder", lambda: load_dataset("/nonexistent/dataset"), (FileNotFoundError, "dataset")),
    Case("dataset: tensor file deleted", lambda: load_dataset(_dataset_folder(
        lambda f: (f / "observation.memmap").unlink())), (ValueError, "not a complete dataset")),
    Case("dataset: tensor file truncated", lambda: load_dataset(_dataset_folder(
        lambda f: _truncate(f / "state.memmap"))), (ValueError, "truncated")),
    Case("dataset: metadata damaged", lambda: load_dataset(_dataset_folder(
        lambda f: (f / "meta.json").write_text("{"))), (ValueError, "cannot be read")),
    Case("dataset: save without the time axis", lambda: save_dataset(TASK.generate_dataset(2, seed=0)[:, 0],
                                                                   Path(tempfile.mkdtemp()) / "d"),
         (ValueError, r"\(N, T\)")),
    Case("dataset: zero trajectories", lambda: TASK.generate_dataset(0), (ValueError, "num_trajectories")),
    Case("dataset: non-int seed", lambda: TASK.generate_dataset(2, seed=1.5), (ValueError, "seed")),
    Case("buffer: one frame", lambda: make_window_buffer(TASK.generate_dataset(2, seed=0), frames=1, frameskip=5,
                                                         batch_size=2), (ValueError, "frames")),
    Case("buffer: windows longer than the trajectories", lambda: make_window_buffer(
        TASK.generate_dataset(2, trajectory_steps=5, seed=0), frames=3, frameskip=5, batch_size=2),
         (ValueError, "shorter than one window")),
    Case("layout: slice_len 1", lambda: SliceLayout(1, 5), (ValueError, "slice_len")),
    Case("layout: frameskip 0", lambda: SliceLayout(11, 0), (ValueError, "frameskip")),
    # ------------------------------------------------------------ synthesis
    Case("adversarial: fraction above 1", lambda: AdversarialSynthesis(_model(), fraction=1.5),
         (ValueError, "fraction")),
    Case("adversarial: negative radius factor", lambda: AdversarialSynthesis(_model(), options=AdversarialOptions(latent_factor=-0.1)),
         (ValueError, "latent_factor")),
    Case("adversarial: unknown radius mode", lambda: AdversarialSynthesis(_model(), options=AdversarialOptions(radius="growing")),
         (ValueError, "radius")),
    Case("adversarial: batch without actions", lambda: AdversarialSynthesis(_model())(_windows(action=None)),
         (KeyError, "action")),
    Case("adversarial: actions of the wrong length", lambda: AdversarialSynthesis(_model())(
        _windows(action=torch.zeros(4, 3, 10))), (ValueError, "'action'")),
    Case("online: every 0", lambda: OnlineSynthesis(_model(), TASK, every=0), (ValueError, "every")),
    Case("online: batch without states", lambda: OnlineSynthesis(_model(), TASK.make_env)(_windows(state=None)),
         (KeyError, "state")),
    Case("synthesis: unknown method", lambda: make_synthesis("mixup", _model(), TASK), (ValueError, "mixup")),
    # ------------------------------------------------------------ training and evaluation
    Case("train: negative steps", lambda: _train(steps=-1), (ValueError, "steps")),
    Case("train: log_every 0", lambda: _train(log_every=0), (ValueError, "log_every")),
    Case("train: negative learning rate", lambda: _train(lr=-0.1), (ValueError, "lr")),
    Case("evaluate: zero episodes", lambda: evaluate(_policy(), TASK, episodes=0), (ValueError, "episodes")),
    Case("evaluate: episodes not divisible by workers", lambda: evaluate(_policy(), TASK, episodes=3,
                                                                         num_workers=2),
         (ValueError, "num_workers")),
    Case("evaluate: more steps than an episode", lambda: evaluate(_policy(), TASK, episodes=1, max_steps=10_000),
         (ValueError, "max_steps")),
    Case("metrics: rollout without success", lambda: episode_metrics(TensorDict(
        {"next": {"distance": torch.zeros(2, 3, 1)}}, [2, 3])), (KeyError, "success")),
    Case("tasks: unknown task", lambda: make_task("maze3d"), (ValueError, "maze3d")),
    Case("tasks: unknown recipe", lambda: recipe_for("maze3d"), (ValueError, "maze3d")),
    Case("tasks: unknown pair mode for sampling", lambda: TASK.sample_start_goal(2, torch.Generator(), "diagonal"),
         (ValueError, "diagonal")),
]


# ------------------------------------------------------------ files: hostile pickles
# Each hostile file carries a payload that, read by a plain unpickler, writes its marker file (the TorchScript one
# prints); test_each_hostile_payload_runs_under_a_plain_loader proves that in a throwaway interpreter.
class CallsOnLoad:
    """Pickles as a call of ``target(*args)``: what a malicious checkpoint does."""

    def __init__(self, target, *args):
        self.target, self.args = target, args

    def __reduce__(self):
        return self.target, self.args


class Raw(bytes):
    """Opcodes spliced as they are into a hand-written pickle."""


def _arg(value) -> bytes:
    if isinstance(value, Raw):
        return value
    if value is None:
        return b"N"
    if value is True:
        return b"\x88"
    if isinstance(value, bytes):
        return b"B" + len(value).to_bytes(4, "little") + value
    data = str(value).encode()
    return b"\x8c" + bytes([len(data)]) + data


def _global(module: str, name: str) -> Raw:
    return Raw(b"c" + module.encode() + b"\n" + name.encode() + b"\n")


def _call(function: Raw, *args) -> Raw:
    return Raw(function + b"(" + b"".join(_arg(a) for a in args) + b"tR")


def _pickle(payload: Raw, protocol: int = 4) -> bytes:
    """A pickle of ``{"predictor": payload}``."""
    return bytes([0x80, protocol]) + b"}" + _arg("predictor") + payload + b"s."


def _touch(marker: Path) -> str:
    return f"touch {marker}"


class Hostile(NamedTuple):
    """A hostile file: ``build(path, marker, folder)`` writes it; ``refused`` names the global the error must name."""

    name: str
    container: str  # "zip" / "legacy" (torch.save formats), "pickle" (seq_lengths.pkl), "torchscript"
    build: Callable[[Path, Path, Path], None]
    refused: str


def _torch_save(obj, *, legacy: bool = False, protocol: int = 2) -> Callable[[Path, Path, Path], None]:
    def build(path: Path, marker: Path, folder: Path) -> None:
        torch.save(obj(marker) if callable(obj) else obj, path, _use_new_zipfile_serialization=not legacy,
                   pickle_protocol=protocol)
    return build


def _zip_with(data_pkl: Callable[[Path, Path], bytes]) -> Callable[[Path, Path, Path], None]:
    """A ``torch.save`` zip archive whose ``data.pkl`` is hand-written."""
    def build(path: Path, marker: Path, folder: Path) -> None:
        base = folder / f"{path.stem}.base"
        torch.save({"epoch": 1}, base)
        with zipfile.ZipFile(base) as source, zipfile.ZipFile(path, "w") as target:
            for info in source.infolist():
                is_data = info.filename.endswith("/data.pkl")
                target.writestr(info.filename, data_pkl(marker, folder) if is_data else source.read(info.filename))
    return build


def _plain(data: Callable[[Path, Path], bytes]) -> Callable[[Path, Path, Path], None]:
    return lambda path, marker, folder: path.write_bytes(data(marker, folder))


def _inner_pickle(marker: Path, folder: Path) -> str:
    """A second, plain pickle that runs ``touch marker`` when loaded; its path."""
    inner = folder / f"inner_{marker.name}.pkl"
    inner.write_bytes(pickle.dumps(CallsOnLoad(os.system, _touch(marker))))
    return str(inner)


def _inner_legacy_torch_file(marker: Path, folder: Path) -> str:
    inner = folder / f"inner_{marker.name}.pt"
    torch.save(CallsOnLoad(os.system, _touch(marker)), inner, _use_new_zipfile_serialization=False)
    return str(inner)


def _memo_stack_global(expression: str) -> bytes:
    """``builtins.eval(expression)`` with the global's strings fetched back from the memo (protocol 4)."""
    strings = _arg("builtins") + b"\x94" + _arg("eval") + b"\x94" + b"00"  # push, memoize, pop both
    return b"\x80\x04" + strings + b"h\x00h\x01\x93" + _arg(expression) + b"\x85R."


def _torchscript(path: Path, marker: Path, folder: Path) -> None:
    class Scripted(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.x = 1

        @torch.jit.export
        def __getstate__(self) -> tuple[int, bool]:
            return self.x, self.training

        @torch.jit.export
        def __setstate__(self, state: tuple[int, bool]) -> None:
            self.x, self.training = state[0], state[1]
            print("TorchScript code ran while loading")

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    torch.jit.save(torch.jit.script(Scripted()), path)


def _nested_in_module(marker: Path) -> dict:
    layer = torch.nn.Linear(2, 2)
    layer.hook = {"deep": [CallsOnLoad(os.system, _touch(marker))]}  # inside a module's state, two levels down
    return {"epoch": 1, "predictor": layer}


HOSTILE = [
    Hostile("reduce os.system (zip)", "zip",
            _torch_save(lambda m: {"predictor": CallsOnLoad(os.system, _touch(m))}), r"os\.system"),
    Hostile("reduce os.system (legacy torch.save format)", "legacy",
            _torch_save(lambda m: {"predictor": CallsOnLoad(os.system, _touch(m))}, legacy=True), r"os\.system"),
    Hostile("reduce builtins.exec (zip, protocol 4)", "zip",
            _torch_save(lambda m: {"predictor": CallsOnLoad(exec, f"open({str(m)!r}, 'w').close()")}, protocol=4),
            r"builtins\.exec"),
    Hostile("subprocess.Popen, a class name in a refused package (zip)", "zip",
            _torch_save(lambda m: {"predictor": CallsOnLoad(subprocess.Popen, ("touch", str(m)))}),
            r"subprocess\.Popen"),
    Hostile("functools.partial(os.system) called on load (zip)", "zip",
            _torch_save(lambda m: {"predictor": CallsOnLoad(functools.partial(os.system, _touch(m)))}),
            r"functools\.partial"),
    Hostile("payload two levels down in a module's state (zip)", "zip", _torch_save(_nested_in_module),
            r"os\.system"),
    Hostile("numpy.load of a second pickle (zip)", "zip",
            _zip_with(lambda m, f: _pickle(_call(_global("numpy", "load"), _inner_pickle(m, f), None, True))),
            r"numpy\.load"),
    Hostile("dotted name torch.load under torch.nn (zip)", "zip",
            _zip_with(lambda m, f: _pickle(_call(_global("torch.nn.modules.module", "torch.load"),
                                                 _inner_legacy_torch_file(m, f), None,
                                                 _global("torch.nn.modules.module", "torch.serialization.pickle")))),
            r"torch\.nn\.modules\.module\.torch\.load"),
    Hostile("os.system through a tensor rebuild (zip)", "zip",
            _zip_with(lambda m, f: _pickle(_call(_global("torch._tensor", "_rebuild_from_type_v2"),
                                                 _global("os", "system"), _global("torch", "Tensor"),
                                                 Raw(_arg(_touch(m)) + b"\x85"), Raw(b"}")))),
            r"os\.system"),
    Hostile("posix.system, CPython's spelling (seq_lengths.pkl, protocol 0)", "pickle",
            _plain(lambda m, f: pickle.dumps(CallsOnLoad(os.system, _touch(m)), protocol=0)), r"os\.system"),
    Hostile("__builtin__.eval, Python 2's spelling (seq_lengths.pkl, protocol 2)", "pickle",
            _plain(lambda m, f: _pickle(_call(_global("__builtin__", "eval"), f"open({str(m)!r}, 'w').close()"),
                                        protocol=2)), r"builtins\.eval"),
    Hostile("builtins.eval named through the memo (seq_lengths.pkl)", "pickle",
            _plain(lambda m, f: _memo_stack_global(f"open({str(m)!r}, 'w').close()")), r"builtins\.eval"),
    Hostile("pickle.loads of nested bytes (seq_lengths.pkl)", "pickle",
            _plain(lambda m, f: _pickle(_call(_global("pickle", "loads"),
                                              pickle.dumps(CallsOnLoad(os.system, _touch(m)))))),
            r"pickle\.loads"),
    Hostile("numpy.load of a second pickle (seq_lengths.pkl)", "pickle",
            _plain(lambda m, f: _pickle(_call(_global("numpy", "load"), _inner_pickle(m, f), None, True))),
            r"numpy\.load"),
    Hostile("TorchScript archive whose __setstate__ runs", "torchscript", _torchscript, "TorchScript archive"),
]
HOSTILE_SUFFIX = {"zip": ".pth", "legacy": ".pth", "pickle": ".pkl", "torchscript": ".pth"}


@functools.cache
def hostile_files() -> dict[str, tuple[Path, Path]]:
    """Every hostile file, written once: name -> (file, the marker its payload writes)."""
    folder = Path(tempfile.mkdtemp(prefix="hostile"))
    files = {}
    for index, hostile in enumerate(HOSTILE):
        path, marker = folder / f"hostile_{index:02d}{HOSTILE_SUFFIX[hostile.container]}", folder / f"ran_{index:02d}"
        hostile.build(path, marker, folder)
        files[hostile.name] = path, marker
    return files


def _read_hostile(name: str) -> None:
    """Read a hostile file as the package does (checkpoints and dataset tensors, or side pickles)."""
    path, marker = hostile_files()[name]
    try:
        read_pickle(path) if path.suffix == ".pkl" else read_pickled_checkpoint(path)
    finally:
        assert not marker.exists(), f"{name}: the payload ran"


HOSTILE_CASES = [Case(f"hostile: {h.name}", functools.partial(_read_hostile, h.name),
                      (UnsafeCheckpointError, rf"hostile_\d\d\.\w+'.*{h.refused}")) for h in HOSTILE]

# Loads each file as a plain unpickler would (torch.load without weights_only, pickle.load, torch.jit.load).
PLAIN_LOADER = r'''
import json, pickle, sys, time, warnings
from pathlib import Path
import torch
warnings.simplefilter("ignore")
for path, container in json.loads(sys.argv[1]):
    try:
        if container == "pickle":
            with open(path, "rb") as file:
                pickle.load(file)
        elif container == "torchscript":
            torch.jit.load(path)
        else:
            torch.load(path, weights_only=False)
    except Exception:
        pass  # the payload ran before the object it built failed (e.g. a rebuild given an int)
'''


def test_each_hostile_payload_runs_under_a_plain_loader() -> None:
    """The control: the payloads the reader refuses really run when a plain unpickler loads the same files."""
    files = hostile_files()
    containers = {h.name: h.container for h in HOSTILE}
    args = [(str(path), containers[name]) for name, (path, _) in files.items()]
    result = subprocess.run([sys.executable, "-c", PLAIN_LOADER, json.dumps(args)], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    try:
        deadline = time.monotonic() + 10  # subprocess.Popen's touch runs beside the loader
        pending = [name for name, (_, marker) in files.items() if containers[name] != "torchscript"]
        while pending and time.monotonic() < deadline:
            pending = [name for name in pending if not files[name][1].exists()]
            time.sleep(0.05)
        assert pending == [], f"payloads that did not run under a plain loader: {pending}\n{result.stderr[-2000:]}"
        assert "TorchScript code ran while loading" in result.stdout, result.stderr[-2000:]
    finally:
        for _, marker in files.values():  # the refusal cases check the markers stay absent
            marker.unlink(missing_ok=True)


# ------------------------------------------------------------ files: DINO-WM runs, datasets and token caches
def _dinowm_run(hydra: str, **config) -> Path:
    """A DINO-WM run folder of our weight-compatible model, pickled whole as their train.py saves it."""
    torch.manual_seed(0)
    model = DinoWMWorldModel(DinoWMConfig(env_action_dim=2, proprio_in_dim=4, num_patches=4, visual_dim=8, depth=1,
                                          heads=2, dim_head=4, mlp_dim=16, **config))
    run = Path(tempfile.mkdtemp())
    (run / "checkpoints").mkdir()
    (run / "hydra.yaml").write_text(hydra)
    torch.save({"predictor": model.predictor, "action_encoder": model.action_encoder,
                "proprio_encoder": model.proprio_encoder}, run / "checkpoints" / "model_latest.pth")
    return run


class Settings:
    """A plain class: pickled with arguments, not a module (a record of the wrong kind)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __reduce__(self):
        return Settings, (self.depth,)


def _run_of_wrong_records() -> Path:
    run = _dinowm_run("num_hist: 3\nframeskip: 5\n")
    entries = {name: Settings(2) for name in ("predictor", "action_encoder", "proprio_encoder")}
    torch.save(entries, run / "checkpoints" / "model_latest.pth")
    return run


def _point_maze(damage: Callable[[Path], None] = lambda folder: None, n: int = 10, steps: int = 6) -> Path:
    """A small DINO-WM point_maze folder (``states``, ``actions``, ``seq_lengths``, uint8 frames), then ``damage``."""
    folder = Path(tempfile.mkdtemp()) / "point_maze"
    (folder / "obses").mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    torch.save(torch.randn(n, steps, 4, generator=generator), folder / "states.pth")
    torch.save(torch.randn(n, steps, 2, generator=generator), folder / "actions.pth")
    torch.save(torch.full((n,), steps), folder / "seq_lengths.pth")
    for i in range(n):
        frames = torch.randint(0, 256, (steps, 8, 8, 3), dtype=torch.uint8, generator=generator)
        torch.save(frames, folder / "obses" / f"episode_{i:03d}.pth")
    damage(folder)
    return folder


def _edit_tensor(name: str, edit: Callable[[torch.Tensor], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        tensor = torch.load(folder / name, weights_only=True)
        edit(tensor)
        torch.save(tensor, folder / name)
    return damage


def _set(index: tuple, value: float) -> Callable[[torch.Tensor], None]:
    return lambda tensor: tensor.__setitem__(index, value)


def _pad_beyond_lengths(folder: Path) -> None:
    """Episode 0 records 4 of its 6 steps; its padding is NaN (never read)."""
    torch.save(torch.tensor([4] + [6] * 9), folder / "seq_lengths.pth")
    _edit_tensor("states.pth", _set((0, slice(4, None)), NAN))(folder)


def _converted(source: Path | None = None) -> Path:
    out = Path(tempfile.mkdtemp()) / "converted"
    convert_dinowm_dataset(source or _point_maze(), out)
    return out


def _encoder(seed: int) -> torch.nn.Module:
    """A stand-in image encoder: uint8 frames (B, 3, 8, 8) -> 3 "tokens" of 4; ``seed`` picks its weights."""
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Linear(64, 4))


def _with_tokens(damage: Callable[[Path], None] = lambda tokens: None) -> Path:
    out = _converted()
    damage(write_dinov2_tokens(out, _encoder(0)))
    return out


def _retokenised(damage: Callable[[Path], None], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokens after ``damage`` to a cache of encoder 0 and a new write with encoder ``seed``; and those it must hold."""
    return _retokenised_in(_with_tokens(damage), seed)


def _retokenised_in(out: Path, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    write_dinov2_tokens(out, _encoder(seed))
    data = load_dinowm_dataset(out)
    return data["tokens"], encode_images(_encoder(seed), data["pixels"])


def _seq_lengths(data: bytes) -> Path:
    path = Path(tempfile.mkdtemp()) / "seq_lengths.pkl"
    path.write_bytes(data)
    return path


def _states_of_nan(tensor: torch.Tensor) -> None:
    tensor[..., 0] = NAN


# ------------------------------------------------------------ files: kill -9 while writing
# A forked child runs a conversion or a token write and stops (saying so) half way through its memory-mapped
# writes; the test then kills it with SIGKILL.
def _stop_here(flag: Path) -> None:
    flag.write_text("writing")
    time.sleep(600)


def _convert_stopping_at_episode_3(source: Path, out: Path, flag: Path) -> None:
    load = dinowm_data._load_tensor

    def slow_load(path: Path) -> torch.Tensor:  # episode 3's frames, read while a split's memory map is written
        if path.name == "episode_003.pth":
            _stop_here(flag)
        return load(path)

    dinowm_data._load_tensor = slow_load  # in the child only
    open_dinowm_dataset(source, out)


class StoppingEncoder(torch.nn.Module):
    """Encodes with ``inner``; stops at its third call (the probe and one batch are done)."""

    def __init__(self, inner: torch.nn.Module, flag: Path) -> None:
        super().__init__()
        self.inner, self.flag, self.calls = inner, flag, 0

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        if self.calls == 3:
            _stop_here(self.flag)
        return self.inner(images)


def _write_tokens_stopping(out: Path, seed: int, flag: Path) -> None:
    write_dinov2_tokens(out, StoppingEncoder(_encoder(seed), flag), batch_size=4)


def _kill_while_writing(target: Callable[..., None], *args) -> None:
    """Run ``target(*args, flag)`` in a forked child, wait until it is half way, SIGKILL it."""
    flag = Path(tempfile.mkdtemp()) / "flag"
    child = multiprocessing.get_context("fork").Process(target=target, args=(*args, flag))
    child.start()
    deadline = time.monotonic() + 60
    while not flag.exists() and child.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists(), f"the writer never got half way (exit code {child.exitcode})"
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert child.exitcode == -signal.SIGKILL


def _conversion_killed() -> dict:
    """A conversion killed half way over an older complete one: the half-written folder is never read, and the next
    open converts again."""
    source = _point_maze()
    out = Path(tempfile.mkdtemp()) / "converted"
    open_dinowm_dataset(source, out, episodes=4)  # an older, complete conversion (4 episodes)
    _kill_while_writing(_convert_stopping_at_episode_3, source, out)
    try:
        load_dinowm_dataset(out)
        after_kill = "read"
    except FileNotFoundError:  # the completion marker went before the first write
        after_kill = "refused"
    reopened = open_dinowm_dataset(source, out)
    expected = load_dinowm_dataset(_converted(source))
    return {"after kill": after_kill, "same as a fresh conversion": bool((reopened == expected).all())}


def _token_write_killed() -> dict:
    """Tokens of encoder 1 killed half way over complete tokens of encoder 0: the old ones stay whole, and the next
    write (encoder 1) replaces them."""
    out = _with_tokens()
    before = load_dinowm_dataset(out)["tokens"].clone()
    _kill_while_writing(_write_tokens_stopping, out, 1)
    untouched = bool((load_dinowm_dataset(out)["tokens"] == before).all())
    tokens, expected = _retokenised_in(out, seed=1)
    return {"old tokens whole": untouched, "rewritten": bool(torch.allclose(tokens, expected))}


def _truncate_memmap(folder: Path) -> None:
    _truncate(next(folder.rglob("*.memmap")))


FILE_CASES = [
    Case("dinowm run: hydra dropout disagrees with the pickled Dropout layers",
         lambda: dinowm_config(DinoWMRun(_dinowm_run("num_hist: 3\nframeskip: 5\npredictor:\n  dropout: 0.2\n",
                                                     dropout=0.1))),
         (ValueError, r"predictor\.dropout=0\.2 but the pickled predictor's Dropout layers have p=0\.1")),
    Case("dinowm run: dropout missing from hydra.yaml is read from the pickled layers",
         lambda: dinowm_config(DinoWMRun(_dinowm_run("num_hist: 3\nframeskip: 5\n", dropout=0.1, emb_dropout=0.05))),
         check=lambda config: (config.dropout, config.emb_dropout) == (0.1, 0.05)),
    Case("dinowm run: needed entries are records of the wrong kind", lambda: DinoWMRun(_run_of_wrong_records()),
         (ValueError, r"'predictor': 'test_fuzz\.Settings'.*records of the wrong kind.*no _parameters")),
    Case("dinowm data: states.pth truncated", lambda: convert_dinowm_dataset(
        _point_maze(lambda f: _truncate(f / "states.pth")), Path(tempfile.mkdtemp())),
         (ValueError, r"states\.pth.*(truncated|damaged)")),
    Case("dinowm data: a frame file holds a dict", lambda: convert_dinowm_dataset(
        _point_maze(lambda f: torch.save({"frames": 1}, f / "obses" / "episode_002.pth")), Path(tempfile.mkdtemp())),
         (ValueError, r"episode_002\.pth' must hold a tensor, got dict")),
    Case("dinowm data: NaN in states", lambda: convert_dinowm_dataset(
        _point_maze(_edit_tensor("states.pth", _set((1, 2, 0), NAN))), Path(tempfile.mkdtemp())),
         (ValueError, r"states of .* NaN or inf at episode 1, step 2")),
    Case("dinowm data: inf in actions", lambda: convert_dinowm_dataset(
        _point_maze(_edit_tensor("actions.pth", _set((3, 0, 1), INF))), Path(tempfile.mkdtemp())),
         (ValueError, r"actions of .* NaN or inf at episode 3, step 0")),
    Case("dinowm data: NaN only past an episode's recorded steps is never read", lambda: load_dinowm_dataset(
        _converted(_point_maze(_pad_beyond_lengths))), check=lambda data: bool(torch.isfinite(data["state"]).all())),
    Case("dinowm data: a negative episode length", lambda: convert_dinowm_dataset(
        _point_maze(lambda f: torch.save(torch.tensor([6] * 9 + [-1]), f / "seq_lengths.pth")),
        Path(tempfile.mkdtemp())), (ValueError, r"seq_lengths\.pth' must hold 10 episode lengths \(non-negative")),
    Case("dinowm data: seq_lengths.pkl truncated", lambda: read_pickle(_seq_lengths(pickle.dumps([5, 6, 7])[:-4])),
         (ValueError, r"seq_lengths\.pkl.*truncated or damaged")),
    Case("dataset: NaN in a saved dataset", lambda: load_dataset(_dataset_folder(
        lambda f: _edit_memmap(f, "state", NAN))), (ValueError, r"NaN or inf in 'state'")),
    Case("tokens: memory map truncated", lambda: load_dinowm_dataset(_with_tokens(_truncate_memmap)),
         (ValueError, r"token folder .*tokens_train.*truncated")),
    Case("tokens: tokens.json damaged", lambda: load_dinowm_dataset(_with_tokens(
        lambda t: (t / "tokens.json").write_text("{"))), (ValueError, r"tokens_train.* damaged or incomplete")),
    Case("tokens: written for other frames", lambda: load_dinowm_dataset(_with_tokens(
        lambda t: (t / "tokens.json").write_text('{"frames": [1, 2, 8, 8, 3]}'))),
         (ValueError, r"tokens_train.* written for frames \[1, 2, 8, 8, 3\].*stale")),
    Case("tokens: a truncated cache is rewritten", lambda: _retokenised(_truncate_memmap, seed=0),
         check=lambda pair: bool(torch.allclose(*pair))),
    Case("tokens: a cache of other encoder weights is rewritten", lambda: _retokenised(lambda t: None, seed=1),
         check=lambda pair: bool(torch.allclose(*pair))),
    Case("tokens: converting again drops the old frames' tokens", lambda: (lambda out: (
        convert_dinowm_dataset(_point_maze(), out), load_dinowm_dataset(out))[1])(_with_tokens()),
         check=lambda data: "tokens" not in data.keys()),
    Case("kill -9: dataset conversion", _conversion_killed,
         check=lambda result: result == {"after kill": "refused", "same as a fresh conversion": True}),
    Case("kill -9: token writing", _token_write_killed,
         check=lambda result: result == {"old tokens whole": True, "rewritten": True}),
]


def _edit_memmap(folder: Path, key: str, value: float) -> None:
    data = TensorDict.load_memmap(folder)
    data[key][0, 1, 0] = value


CASES = [*INPUT_CASES, *HOSTILE_CASES, *FILE_CASES]
# case name -> "clear error" / "handled" once its test passed; "silent" while it runs (and if it fails)
OUTCOMES: dict[str, str] = {}


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input(case: Case) -> None:
    OUTCOMES[case.name] = "silent"
    if case.raises is not None:
        error, message = case.raises
        with pytest.raises(error, match=message):
            case.feed()
    else:
        assert case.check(case.feed()), case.name
    OUTCOMES[case.name] = "clear error" if case.raises is not None else "handled"


def test_every_case_says_what_it_expects() -> None:
    assert all((case.raises is None) != (case.check is None) for case in CASES)
    assert len({case.name for case in CASES}) == len(CASES)


def test_the_fuzz_set_prints_its_size_and_outcome(capsys) -> None:
    """Runs after the cases: how many there are, and how the ones run here ended (a failed case counts as silent)."""
    counts = collections.Counter(OUTCOMES.values())
    with capsys.disabled():
        print(f"\nfuzz set: {len(CASES)} cases ({len(INPUT_CASES)} inputs, {len(HOSTILE_CASES)} hostile files, "
              f"{len(FILE_CASES)} damaged or interrupted files); of the {len(OUTCOMES)} run: {counts['clear error']} "
              f"clear errors, {counts['handled']} handled, {counts['silent']} silent")
    assert counts["silent"] == 0, sorted(name for name, outcome in OUTCOMES.items() if outcome == "silent")
