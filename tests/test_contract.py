"""Any world model: a model written to the documented contract (no package base class), the adapters, the env
seams, and TorchRL's and stable-worldmodel's planners and models, all through the public API."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from tensordict import TensorDict
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import Bounded, Categorical
from torchrl.envs import TransformedEnv
from torchrl.envs.model_based import WorldModelEnv
from torchrl.modules import CEMPlanner, WorldModelWrapper

from torchrl_gbp.bridges import MODEL_COST, AsCostable, CostableWorldModel
from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.models import ActionInterface, TeacherForcingLoss, TransitionWorldModel, from_torchrl_world_model
from torchrl_gbp.planners import (
    GradientPlanner,
    MPCPolicy,
    ReturnObjective,
    make_planner,
    make_torchrl_planner,
    planning_inputs,
    reset_planning_env,
)
from torchrl_gbp.synthesis import AdversarialSynthesis, OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import train_world_model

TASK = WallTask()


class Drift(nn.Module):
    """A world model written to the contract from scratch: ``z' = z + g(z, a)``, raw env actions, no base class."""

    observation_keys = ("observation",)
    goal_keys = ("goal",)
    num_hist = 1
    latent_dim = 2
    action_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4, 2)

    def encode(self, observation: torch.Tensor) -> torch.Tensor:
        return observation

    def predict(self, z_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        z = z_hist[..., -1, :]
        return z + self.net(torch.cat([z, actions[..., -1, :]], dim=-1))

    def rollout(self, z_hist: torch.Tensor, a_hist: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        frames, z = [], z_hist
        for t in range(actions.shape[-2]):
            z = self.predict(z, actions[..., t:t + 1, :]).unsqueeze(-2)
            frames.append(z)
        return torch.cat(frames, dim=-2)


@pytest.fixture(scope="module")
def data():
    return TASK.generate_dataset(24, seed=0)


def wall_envs(num_envs: int):
    return TASK.make_env(num_envs=num_envs, seed=0)


def _params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# ------------------------------------------------------------ a model of the protocol only
def test_a_protocol_only_model_plans_in_rollouts_and_collectors():
    model = Drift()
    env = TASK.make_env(num_envs=3, seed=0)
    planner = make_planner("gd", model, action_spec=env.action_spec, steps=3)
    policy = MPCPolicy(planner, env.action_spec)
    rollout = env.append_transform(policy.make_tensordict_primer()).rollout(4, policy)
    assert rollout["action"].shape == (3, 4, 2) and env.action_spec.is_in(rollout["action"][:, 0])
    collector = Collector(lambda: TASK.make_env(num_envs=2, seed=1), MPCPolicy(planner, env.action_spec),
                          frames_per_batch=8, total_frames=8, auto_register_policy_transforms=True)
    try:
        batch = next(iter(collector))
    finally:
        collector.shutdown()
    assert batch.numel() == 8 and torch.isfinite(batch["action"]).all()


def test_a_protocol_only_model_is_trained_with_both_synthesis_transforms_and_the_loss(data):
    model = Drift()
    online = OnlineSynthesis(model, wall_envs, every=1, fraction=0.5, options=OnlineOptions(planner_steps=2))
    buffer = make_window_buffer(data, frames=3, frameskip=1, batch_size=8, transform=online)
    batch = buffer.sample()
    assert int(batch["synthetic"].sum()) == 4 and online.synthesis_rounds == 1
    adversarial = AdversarialSynthesis(model, generator=torch.Generator().manual_seed(0))
    out = adversarial(batch)
    assert out["action_embedding_perturbation"].shape == (8, 2, 2)  # the raw action is perturbed
    assert out["latent_perturbation"].abs().max() > 0
    losses = TeacherForcingLoss(model)(out)
    assert sorted(losses.keys()) == ["loss_prediction", "prediction_error"]
    before = _params(model)
    buffer = make_window_buffer(data, frames=3, frameskip=1, batch_size=8, transform=adversarial)
    train_world_model(model, buffer, steps=3, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("missing, consumer", [
    ("encode", lambda m: MPCPolicy(GradientPlanner(m, steps=1), TASK.action_spec)),
    ("rollout", lambda m: GradientPlanner(m)),
    ("predict", lambda m: TeacherForcingLoss(m)),
    ("predict", lambda m: AdversarialSynthesis(m)),
    ("goal_keys", lambda m: OnlineSynthesis(m, wall_envs)),
])
def test_a_model_missing_a_member_is_refused_naming_it_and_the_guide(missing, consumer):
    class Incomplete(Drift):
        pass

    setattr(Incomplete, missing, None)
    with pytest.raises(TypeError, match=rf"lacks {missing}.*world_models.md"):
        consumer(Incomplete())


# ------------------------------------------------------------ adapters
def test_a_tensordict_module_transition_trains_and_plans(data):
    class Residual(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 32), nn.Tanh(), nn.Linear(32, 2))

        def forward(self, action, latent):  # keys in any order: the one named "action" is the action
            return latent + self.net(torch.cat([latent, action], dim=-1))

    transition = TensorDictModule(Residual(), in_keys=["action", "latent"], out_keys=[("next", "latent")])
    model = TransitionWorldModel(transition, latent_dim=2, action_dim=2)
    buffer = make_window_buffer(data, frames=3, frameskip=1, batch_size=32)
    first = TeacherForcingLoss(model)(buffer.sample())["loss_prediction"].item()
    train_world_model(model, buffer, steps=150, lr=3e-3, progress=False)
    assert TeacherForcingLoss(model)(buffer.sample())["loss_prediction"].item() < 0.5 * first
    start, goal = {"observation": torch.zeros(2, 2) - 0.6}, {"observation": torch.zeros(2, 2) - 0.4}
    plan = make_planner("gd", model, action_spec=TASK.action_spec, steps=20).plan(*planning_inputs(model, start,
                                                                                                   goal))
    assert plan.actions.shape == (2, 5, 2) and (plan.actions.abs() <= 1).all()


def test_a_torchrl_world_model_wrapper_plans_and_learns_its_reward():
    class Step(nn.Module):
        def forward(self, latent, action):
            return latent + 0.2 * action

    wrapper = WorldModelWrapper(
        TensorDictModule(Step(), in_keys=["latent", "action"], out_keys=[("next", "latent")]),
        TensorDictModule(nn.Linear(2, 1), in_keys=[("next", "latent")], out_keys=[("next", "reward")]))
    model = from_torchrl_world_model(wrapper, latent_dim=2, action_dim=2)
    z = torch.randn(64, 2)
    reward = -(z - 0.5).abs().sum(-1, keepdim=True)  # a windows batch with the rewards of each model step
    windows = TensorDict({"observation": torch.stack([z, z], 1), "action": torch.zeros(64, 1, 2),
                          "next": {"reward": reward.unsqueeze(1)}}, [64])
    loss = TeacherForcingLoss(model)(windows)
    assert "loss_reward" in loss.keys()
    loss["loss_reward"].backward()
    assert wrapper.get_reward_operator().module.weight.grad is not None  # the reward head trains
    policy = MPCPolicy(make_planner("gd", model, objective=ReturnObjective(model), action_spec=TASK.action_spec, steps=2),
                       TASK.action_spec)  # its predicted return, no goal key
    env = TASK.make_env(num_envs=2, seed=0)
    assert env.append_transform(policy.make_tensordict_primer()).rollout(2, policy)["action"].shape == (2, 2, 2)


def test_readme_torchrl_claim_cem_planner_and_world_model_env_drive_our_models():
    # README: "TorchRL's WorldModelEnv and CEMPlanner drive it, through make_torchrl_planner"
    from torchrl_gbp.models import StateWorldModel, WorldModelConfig

    env = TASK.make_env(num_envs=3)
    for model in (StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5)),
                  TransitionWorldModel(lambda z, a: z + 0.1 * a, latent_dim=2, action_dim=2)):
        planner = make_torchrl_planner("cem", model, env, samples=16, elites=4, iterations=2)
        assert isinstance(planner, CEMPlanner) and isinstance(planner.env, WorldModelEnv)
        z = model.encode(torch.zeros(3, 2))
        action = planner(reset_planning_env(planner, z, torch.ones(3, 2)))["action"]
        assert action.shape == (3, model.action_dim) and torch.isfinite(action).all()


def test_stable_worldmodel_costables_plan_in_our_policy_and_our_models_serve_its_solvers():
    class ReachCost:  # a stand-in following stable-worldmodel's Costable protocol
        def get_cost(self, info_dict, action_candidates):
            reached = info_dict["observation"] + 0.2 * action_candidates.sum(-2)
            return (reached - info_dict["goal"]).pow(2).sum(-1)

    model = CostableWorldModel(ReachCost(), info_shapes={"observation": (2,), "goal": (2,)}, action_dim=2)
    env = TASK.make_env(num_envs=2, seed=0)
    policy = MPCPolicy(make_planner("gd", model, objective=MODEL_COST, action_spec=env.action_spec, steps=5), env.action_spec)
    assert policy.in_keys[:2] == ["observation", "goal"]  # the goal is part of the costable's info
    rollout = env.append_transform(policy.make_tensordict_primer()).rollout(3, policy)
    assert env.action_spec.is_in(rollout["action"][:, 0])

    from torchrl_gbp.models import StateWorldModel, WorldModelConfig

    ours = AsCostable(StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2)))

    def random_shooting(costable, info_dict, samples=64, horizon=5):  # a stand-in solver: solve(info) -> actions
        b = next(iter(info_dict.values())).shape[0]
        info = {k: v.unsqueeze(1).expand(b, samples, *v.shape[1:]) for k, v in info_dict.items()}
        candidates = torch.randn(b, samples, horizon, 2, generator=torch.Generator().manual_seed(0))
        candidates[:, 0] = 0.0
        cost = costable.get_cost(info, candidates)
        return candidates[torch.arange(b), cost.argmin(1)], cost

    best, cost = random_shooting(ours, {"observation": torch.zeros(3, 2), "goal": torch.ones(3, 2)})
    assert best.shape == (3, 5, 2) and (cost.min(1).values <= cost[:, 0]).all()


# ------------------------------------------------------------ env seams
def test_an_integer_or_discrete_action_spec_is_refused_naming_the_spec():
    model = Drift()
    for spec, name in ((Bounded(-1, 1, shape=(2,), dtype=torch.int64), "int64"), (Categorical(4), "Categorical")):
        with pytest.raises(TypeError, match=f"continuous actions.*{name}"):
            make_planner("gd", model, action_spec=spec)
        with pytest.raises(TypeError, match=name):
            MPCPolicy(GradientPlanner(model), spec)


def test_a_dm_control_env_with_float64_observations_needs_no_dtype_transform():
    dm_control = pytest.importorskip("torchrl.envs.libs.dm_control")
    env = dm_control.DMControlEnv("cartpole", "balance")
    assert env.observation_spec["position"].dtype == torch.float64

    class Cartpole(nn.Module):  # a differentiable stand-in for the physics, with a reward: stay upright
        def forward(self, z, a):
            return z + 0.01 * torch.cat([a, a.new_zeros(*a.shape[:-1], 4)], -1)

    class Encoder(nn.Module):
        def forward(self, position, velocity):
            return torch.cat([position, velocity], -1)

    model = TransitionWorldModel(Cartpole(), latent_dim=5, action_dim=1, encoder=Encoder(),
                                 observation_keys=("position", "velocity"),
                                 reward=lambda z, a: -(z[..., 1] - 1).pow(2))
    planner = make_planner("gd", model, objective=ReturnObjective(model), action_spec=env.action_spec, steps=3)
    policy = MPCPolicy(planner, env.action_spec)
    env = TransformedEnv(env, policy.make_tensordict_primer())
    rollout = env.rollout(3, policy)
    assert rollout["action"].dtype == torch.float64 and env.action_spec.is_in(rollout["action"][0])


def test_the_action_interface_maps_frameskip_blocks_and_bounds():
    interface = ActionInterface(env_action_dim=2, frameskip=5)
    interface.fit(torch.randn(100, 10) * 2 + 1)
    low, high = interface.model_bounds(-torch.ones(2), torch.ones(2))
    assert (interface.to_env(low).flatten(-2) - (-1)).abs().max() < 1e-5
    env_actions = torch.rand(7, 5, 2) * 2 - 1
    torch.testing.assert_close(interface.to_env(interface.to_model(env_actions)), env_actions)
    assert ((interface.to_model(env_actions) >= low) & (interface.to_model(env_actions) <= high)).all()


# ------------------------------------------------------------ the guide's stories
def test_the_bring_your_own_world_model_guide_runs_top_to_bottom(capsys):
    pytest.importorskip("torchrl.envs.libs.dm_control")
    pytest.importorskip("gymnasium")
    guide = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "world_models.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    assert len(blocks) >= 6
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, "world_models.md", "exec"), namespace)  # noqa: S102
    assert "torch.float64" in capsys.readouterr().out
