"""Bad input gets a clear error, inference mode works, checkpoints name what is wrong with them."""
import pytest
import torch
from tensordict import TensorDict
from torchrl.envs import TransformedEnv
from torchrl.envs.utils import step_mdp

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.evaluate import evaluate
from torchrl_gbp.models import StateWorldModel, WorldModelConfig, load_checkpoint, save_checkpoint
from torchrl_gbp.planners import CrossEntropyPlanner, GoalCost, GradientPlanner, MPCPolicy, PathIntegralPlanner
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import build_world_model, train_world_model


def _model() -> StateWorldModel:
    torch.manual_seed(0)
    return StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))


def _policy(**kwargs) -> MPCPolicy:
    model = _model()
    return MPCPolicy(GradientPlanner(model, steps=3), WallTask().action_spec, **kwargs)


# ------------------------------------------------------------ inference mode
@pytest.mark.parametrize("context", [torch.no_grad, torch.inference_mode])
def test_gradient_planning_works_under_no_grad_and_inference_mode(context) -> None:
    model = _model()
    planner = GradientPlanner(model, steps=5, noise_std=0.0)
    z, a, goal = torch.zeros(3, 1, 2), torch.zeros(3, 0, 10), torch.ones(3, 2)
    reference = planner.plan(z, a, goal, generator=torch.Generator().manual_seed(0))
    with context():
        result = planner.plan(z, a, goal, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(result.actions, reference.actions)


def test_the_policy_runs_an_episode_under_inference_mode() -> None:
    policy = _policy()
    env = TransformedEnv(WallTask().make_env(num_envs=2, seed=0), policy.make_tensordict_primer())
    with torch.inference_mode():
        rollout = env.rollout(6, policy)
    assert torch.isfinite(rollout["action"]).all()


# ------------------------------------------------------------ non-finite inputs
def test_a_nan_observation_raises_naming_the_key_and_envs() -> None:
    policy = _policy()
    env = TransformedEnv(WallTask().make_env(num_envs=3, seed=0), policy.make_tensordict_primer())
    td = env.reset()
    td["observation"][1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"observation.*env indices \[1\]"):
        policy(td)
    td = env.reset()
    td["goal"][2] = float("inf")
    with pytest.raises(ValueError, match=r"goal.*\[2\]"):
        policy(td)


def test_hold_repeats_the_last_action_where_the_input_is_not_finite() -> None:
    policy = _policy(on_nonfinite="hold")
    frameskip = policy.action_interface.frameskip
    env = TransformedEnv(WallTask().make_env(num_envs=3, seed=0), policy.make_tensordict_primer())
    td = policy(env.reset())
    for _ in range(frameskip - 1):  # observations between model-step boundaries are not read
        td = step_mdp(env.step(td))  # the policy's state is carried on the state side
        td["observation"][2] = float("nan")
        td = policy(td)
        assert torch.isfinite(td["action"]).all()
    last = td["action"].clone()
    td = step_mdp(env.step(td))  # a model step completes: the observation is read
    state_before = td["planner", "latent_history"].clone()
    td["observation"][1] = float("nan")
    td = policy(td)
    assert torch.equal(td["action"][1], last[1])                                    # held
    assert torch.equal(td["planner", "latent_history"][1], state_before[1])         # its state untouched
    assert not torch.equal(td["planner", "latent_history"][0], state_before[0])     # the others observed
    assert torch.isfinite(td["action"]).all()


def test_nonfinite_plan_costs_are_counted_and_never_win() -> None:
    class NaNBeyond(torch.nn.Module):
        """A model whose prediction is NaN wherever the first action entry exceeds 0."""

        action_dim, num_hist = 2, 1

        def rollout(self, z_hist, a_hist, actions):
            z = z_hist[..., -1:, :] + actions.cumsum(-2)
            return torch.where(actions[..., :1] > 0, float("nan"), z)

    for planner in (GradientPlanner(NaNBeyond(), objective=GoalCost("last"), steps=5, action_low=-torch.ones(2),
                                    action_high=torch.ones(2)),
                    CrossEntropyPlanner(NaNBeyond(), objective=GoalCost("last"), samples=16, elites=4, iterations=3,
                                        action_low=-torch.ones(2), action_high=torch.ones(2))):
        result = planner.plan(torch.zeros(4, 1, 2), torch.zeros(4, 0, 2), torch.ones(4, 2) * 0.5,
                              generator=torch.Generator().manual_seed(0))
        finite = torch.isfinite(result.cost)
        assert result.nonfinite == int((~finite).sum())
        assert (result.actions[finite][..., 0] <= 0).all()  # no NaN-scored plan was returned as finite


# ------------------------------------------------------------ argument checks
@pytest.mark.parametrize("build, name", [
    (lambda m: GradientPlanner(m, lr=0.0), "lr"),
    (lambda m: GradientPlanner(m, lr=-1.0), "lr"),
    (lambda m: GradientPlanner(m, noise_std=-0.1), "noise_std"),
    (lambda m: CrossEntropyPlanner(m, init_std=0.0), "init_std"),
    (lambda m: PathIntegralPlanner(m, init_std=-1.0), "init_std"),
    (lambda m: GoalCost(base=0.0), "base"),
    (lambda m: GoalCost(alpha=-1.0), "alpha"),
    (lambda m: MPCPolicy(GradientPlanner(m), WallTask().action_spec, exploration_std=-0.1),
     "exploration_std"),
    (lambda m: MPCPolicy(GradientPlanner(m), WallTask().action_spec, on_nonfinite="ignore"),
     "on_nonfinite"),
    (lambda m: WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=0), "frameskip"),
    (lambda m: WorldModelConfig(obs_dim=2, env_action_dim=2, proprio_dim=3), "proprio_dim"),
])
def test_bad_arguments_are_named(build, name) -> None:
    with pytest.raises(ValueError, match=name):
        build(_model())


@pytest.mark.parametrize("kwargs, name", [
    ({"log_every": 0}, "log_every"), ({"lr": -1e-3}, "lr"), ({"predictor_lr": -1.0}, "predictor_lr"),
    ({"grad_clip": -1.0}, "grad_clip"), ({"checkpoint_every": -1}, "checkpoint_every"),
])
def test_training_arguments_are_named(kwargs, name) -> None:
    data = WallTask().generate_dataset(10, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=4)
    with pytest.raises(ValueError, match=name):
        train_world_model(model, buffer, steps=1, progress=False, **kwargs)


def test_evaluate_rejects_more_steps_than_an_episode() -> None:
    with pytest.raises(ValueError, match="max_steps"):
        evaluate(_policy(), WallTask(), episodes=2, max_steps=WallTask().episode_steps + 1)


# ------------------------------------------------------------ damaged checkpoints
def test_checkpoint_errors_name_the_path_and_the_problem(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, _model())
    data = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt.*truncated, damaged"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match=r"foreign\.pt.*not a torchrl_gbp checkpoint"):
        load_checkpoint(foreign)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    future = tmp_path / "future.pt"
    torch.save(payload, future)
    with pytest.raises(ValueError, match=r"future\.pt.*format version 99"):
        load_checkpoint(future)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_a_reset_with_a_wrongly_shaped_pair_names_it() -> None:
    env = WallTask().make_env(num_envs=2)
    pairs = TensorDict(start_state=torch.zeros(2, 3), goal_state=torch.zeros(2, 2), batch_size=[2])
    with pytest.raises(ValueError, match=r"start_state.*\(2, 2\)"):
        env.reset(pairs, set_state=True)


# ------------------------------------------------------------ exact resume
def _run(tmp_path, method: str | None, crash_at: int | None, resume: bool) -> dict:
    """Train 8 steps (finetune with ``method`` synthesis when given), checkpointing every 3; optionally crash."""
    from torchrl_gbp.synthesis import OnlineOptions, SynthesisShares, make_synthesis

    torch.manual_seed(0)
    task = WallTask()
    data = task.generate_dataset(30, seed=0)
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, hidden_dim=32), data)
    transform = None if method is None else make_synthesis(method, model, task, online=OnlineOptions(planner_steps=3),
                                                           shares=SynthesisShares(every=2), seed=0)
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8, transform=transform,
                                generator=torch.Generator().manual_seed(1))

    class Crash(torch.nn.Module):
        def __init__(self, loss):
            super().__init__()
            self.loss, self.calls = loss, 0

        def forward(self, batch):
            self.calls += 1
            if crash_at is not None and self.calls == crash_at:
                raise KeyboardInterrupt("killed")
            return self.loss(batch)

    from torchrl_gbp.models import TeacherForcingLoss

    loss = Crash(TeacherForcingLoss(model))
    try:
        train_world_model(model, buffer, steps=8, lr=1e-3, progress=False, loss_module=loss,
                          checkpoint_path=tmp_path / "run.pt", checkpoint_every=3, resume=resume)
    except KeyboardInterrupt:
        return {"calls": loss.calls}
    return {"calls": loss.calls, **{k: v.clone() for k, v in model.state_dict().items()}}


@pytest.mark.parametrize("method", [None, "both"])
def test_a_resumed_run_ends_with_the_same_weights_as_an_uninterrupted_one(tmp_path, method) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        straight = _run(tmp_path / "straight", method, crash_at=None, resume=False)
        assert _run(tmp_path / "killed", method, crash_at=5, resume=False) == {"calls": 5}  # after the step-3 save
        resumed = _run(tmp_path / "killed", method, crash_at=None, resume=True)
    finally:
        torch.set_num_threads(threads)
    assert straight.pop("calls") == 8 and resumed.pop("calls") == 5  # it went on from step 4
    for name in straight:
        assert torch.equal(straight[name], resumed[name]), name
    assert load_checkpoint(tmp_path / "killed" / "run.pt")[1]["step"] == 8
