"""Malformed inputs to every public entry point: each gets a clear error (naming what is wrong) or is handled.

Every case is one row of :data:`CASES`: an entry point fed one bad input,
and either the error it must raise (type and a message naming the key, shape
or value) or a check of the correct handling. README's counts come from this
table (``python -m pytest tests/test_fuzz.py -q``).
"""
from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Unbounded

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
CASES = [
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


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_malformed_input(case: Case) -> None:
    if case.raises is not None:
        error, message = case.raises
        with pytest.raises(error, match=message):
            case.feed()
    else:
        assert case.check(case.feed()), case.name


def test_every_case_says_what_it_expects() -> None:
    assert all((case.raises is None) != (case.check is None) for case in CASES)
    assert len({case.name for case in CASES}) == len(CASES)
