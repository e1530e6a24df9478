"""Everything through the TensorDict: chosen resets under transforms and batched envs, evaluation from the rollout."""
import pytest
import torch
from tensordict import TensorDict
from torchrl.collectors import Evaluator
from torchrl.envs import ParallelEnv, TransformedEnv
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.evaluate import episode_metrics, evaluate, evaluation_pairs
from torchrl_gbp.models import StateWorldModel, WorldModelConfig
from torchrl_gbp.planners import GradientPlanner, MPCPolicy
from torchrl_gbp.tasks import WallTask


def _wall_env(num_envs: int = 3):
    return WallTask().make_env(num_envs=num_envs)


def _policy(env) -> MPCPolicy:
    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5))
    return MPCPolicy(GradientPlanner(model, steps=3), env.action_spec)


def _pairs(shape: tuple[int, ...]) -> TensorDict:
    n = int(torch.Size(shape).numel())
    start = torch.linspace(-0.8, -0.2, n).unsqueeze(-1).expand(n, 2).reshape(*shape, 2)
    goal = torch.linspace(0.2, 0.8, n).unsqueeze(-1).expand(n, 2).reshape(*shape, 2)
    return TensorDict(start_state=start.clone(), goal_state=goal.clone(), batch_size=shape)


def test_reset_inputs_are_declared_and_the_specs_hold() -> None:
    env = _wall_env()
    assert {"start_state", "goal_state"} <= set(env.state_spec.keys())
    assert {"state", "success", "distance"} <= set(env.observation_spec.keys())
    check_env_specs(env)


def test_transformed_env_with_the_policy_primer_resets_to_chosen_pairs() -> None:
    env = _wall_env()
    env = TransformedEnv(env, _policy(env).make_tensordict_primer())
    pairs = _pairs((3,))
    td = env.reset(pairs.clone(), set_state=True)
    assert torch.equal(td["state"], pairs["start_state"])
    assert torch.equal(td["goal_state"], pairs["goal_state"])
    assert torch.equal(td["goal"], WallTask().observation_from_state(pairs["goal_state"]))
    rollout = env.rollout(3, tensordict=td, auto_reset=False)
    assert torch.equal(rollout["goal_state"][:, -1], pairs["goal_state"])


def test_rollout_resets_never_replay_the_carried_pair() -> None:
    env = _wall_env(4)
    env.set_seed(0)
    td = env.reset(_pairs((4,)), set_state=True)
    # the step-and-reset path of rollouts and collectors draws fresh pairs although the td carries the old ones
    td.set("_reset", torch.ones(4, 1, dtype=torch.bool))
    fresh = env.reset(td, select_reset_only=True)
    assert not torch.equal(fresh["start_state"], _pairs((4,))["start_state"])


def test_reset_with_set_state_needs_both_keys() -> None:
    env = _wall_env()
    with pytest.raises(KeyError, match="start_state"):
        env.reset(TensorDict(batch_size=[3]), set_state=True)
    with pytest.raises(ValueError, match="goal_state"):
        env.reset(TensorDict(start_state=torch.zeros(3, 2), batch_size=[3]), set_state=True)


@pytest.mark.slow
def test_parallel_env_with_the_policy_primer_resets_to_chosen_pairs() -> None:
    policy = _policy(_wall_env())
    env = TransformedEnv(ParallelEnv(2, _wall_env, mp_start_method="spawn"), policy.make_tensordict_primer())
    try:
        pairs = _pairs((2, 3))
        td = env.reset(pairs.clone(), set_state=True)
        assert torch.equal(td["state"], pairs["start_state"])
        rollout = env.rollout(2, policy, tensordict=td, auto_reset=False)
        assert torch.equal(rollout["goal_state"][..., -1, :], pairs["goal_state"])
    finally:
        env.close()


@pytest.mark.slow
def test_evaluate_gives_the_same_answer_on_one_env_and_a_parallel_env() -> None:
    task = WallTask(door_half_width=0.05)  # not the default: the workers must build this very task
    policy = _policy(task.make_env())
    one = evaluate(policy, task, episodes=4, seed=3, max_steps=10)
    parallel = evaluate(policy, task, episodes=4, seed=3, max_steps=10, num_workers=2)
    for key in ("success_rate", "sticky_success_rate", "final_distance"):
        assert one[key] == parallel[key], key


def test_evaluate_starts_from_the_seeded_pairs_a_seeded_env_draws() -> None:
    task = WallTask()
    pairs = evaluation_pairs(task, 5, seed=7)
    first = task.make_env(num_envs=5, seed=7).reset()
    assert torch.equal(first["start_state"], pairs["start_state"])
    assert torch.equal(first["goal_state"], pairs["goal_state"])


def test_evaluate_leaves_the_callers_pairs_as_they_were_for_the_next_policy() -> None:
    task = WallTask()
    pairs = _pairs((3,))
    policy = _policy(task.make_env())
    model = policy.world_model
    short = MPCPolicy(GradientPlanner(model, horizon=3, steps=2), task.action_spec)
    evaluate(policy, task, episodes=3, pairs=pairs, max_steps=5)
    assert sorted(pairs.keys()) == ["goal_state", "start_state"]
    metrics = evaluate(short, task, episodes=3, pairs=pairs, max_steps=5)  # another plan shape on the same pairs
    assert len(metrics["episodes"]["solved_at_start"]) == 3


def test_episode_metrics_scores_an_evaluator_run() -> None:
    policy = _policy(_wall_env(2))
    seen = []

    def metrics_fn(rollout):
        metrics = episode_metrics(rollout)
        seen.append(metrics)
        return metrics

    evaluator = Evaluator(env=lambda: WallTask().make_env(num_envs=2, seed=1), policy=policy, num_trajectories=2,
                          max_steps=10, backend="thread", metrics_fn=metrics_fn,
                          collector_kwargs={"auto_register_policy_transforms": True, "traj_format": "padded"})
    try:
        evaluator.evaluate()
    finally:
        evaluator.shutdown()
    assert seen and 0.0 <= seen[0]["success_rate"] <= seen[0]["sticky_success_rate"] <= 1.0
    assert seen[0]["plan_seconds"] > 0


def test_episode_metrics_names_the_missing_key() -> None:
    with pytest.raises(KeyError, match="success"):
        episode_metrics(TensorDict({"next": {"distance": torch.zeros(2, 3, 1)}}, [2, 3]))


# ------------------------------------------------ a user's own TorchRL replay buffer of flat trajectories
from torchrl.data import LazyMemmapStorage, SliceSampler, TensorDictReplayBuffer  # noqa: E402
from torchrl.envs import Compose  # noqa: E402

from torchrl_gbp.data import ModelStepWindows  # noqa: E402
from torchrl_gbp.models import TeacherForcingLoss  # noqa: E402
from torchrl_gbp.synthesis import AdversarialSynthesis, OnlineOptions, OnlineSynthesis  # noqa: E402
from torchrl_gbp.train import build_world_model, train_world_model  # noqa: E402


def _data_and_model():
    torch.manual_seed(0)
    data = WallTask().generate_dataset(30, seed=0)
    return data, build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)


def _user_buffer(data, tmp_path, *transforms, batch: int = 8):
    """A user's TorchRL buffer of flat trajectories; the window layout is stated once, in ModelStepWindows."""
    flat = data.reshape(-1)
    windows = ModelStepWindows(frames=3, frameskip=5)
    buffer = TensorDictReplayBuffer(
        storage=LazyMemmapStorage(flat.shape[0], scratch_dir=tmp_path),
        sampler=windows.sampler(traj_key="episode"),
        batch_size=batch * windows.slice_len, transform=Compose(windows, *transforms))
    buffer.extend(flat)
    return buffer


def test_a_users_buffer_feeds_windows_to_both_transforms_and_the_loss_with_no_slice_len(tmp_path) -> None:
    data, model = _data_and_model()
    task = WallTask()
    online = OnlineSynthesis(model, lambda n: task.make_env(num_envs=n), every=2, fraction=0.5, options=OnlineOptions(planner_steps=3))
    adversarial = AdversarialSynthesis(model, generator=torch.Generator().manual_seed(0))
    buffer = _user_buffer(data, tmp_path, online, adversarial)
    batch = buffer.sample()
    assert batch.shape == (8,) and batch["observation"].shape == (8, 3, 2) and batch["action"].shape == (8, 2, 10)
    assert batch["index"].shape == (8, 11, 1)  # the buffer's sample metadata, one slice of indices per window
    assert int(batch["synthetic"].sum()) == 4 and (batch["episode"][batch["synthetic"]] == -1).all()
    # a synthetic window keeps its recorded first frame and continues with what the simulator did
    start = batch["state"][batch["synthetic"]][:, 0]
    step = batch["action"][batch["synthetic"]][:, 0].reshape(-1, 5, 2)
    for k in range(5):
        start = task.step(start, step[:, k])
    torch.testing.assert_close(batch["state"][batch["synthetic"]][:, 1], start)
    torch.testing.assert_close(batch["latent"], model.encode(batch["observation"]))
    assert batch["latent_perturbation"].abs().sum() > 0 and batch["adversarial"].all()
    before = [p.detach().clone() for p in model.predictor.parameters()]
    metrics = train_world_model(model, buffer, steps=3, progress=False, log_every=1)
    assert torch.isfinite(torch.tensor(metrics["loss_prediction"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.predictor.parameters()))


def test_a_batch_is_encoded_once_for_the_transforms_and_the_loss(tmp_path) -> None:
    data, model = _data_and_model()
    task = WallTask()
    online = OnlineSynthesis(model, lambda n: task.make_env(num_envs=n), every=2, options=OnlineOptions(planner_steps=1))
    buffer = _user_buffer(data, tmp_path, online, AdversarialSynthesis(model))
    calls = []
    model.state_encoder.register_forward_hook(lambda module, args, out: calls.append(out.shape[:2]))
    TeacherForcingLoss(model)(buffer.sample())  # a synthesis round: the batch and the simulated frames
    assert calls == [(8, 3), (8, 2)]
    calls.clear()
    TeacherForcingLoss(model)(buffer.sample())  # no synthesis round: the batch only, once
    assert calls == [(8, 3)]


def test_a_flat_slice_batch_and_a_folded_one_give_the_same_windows() -> None:
    data, _ = _data_and_model()
    windows = ModelStepWindows(frames=3, frameskip=5)
    slices = data[:4, :windows.slice_len]
    flat, folded = windows(slices.reshape(-1)), windows(slices)
    assert flat.shape == folded.shape == (4,)
    for key in ("observation", "state", "action", "episode"):
        assert torch.equal(flat[key], folded[key]), key
    torch.testing.assert_close(folded["observation"], slices["observation"][:, ::5])
    with pytest.raises(ValueError, match="slice_len=11"):
        windows(slices.reshape(-1)[:15])


def test_a_plain_slice_sampler_in_a_tensordict_buffer_fails_where_the_windows_sampler_works(tmp_path) -> None:
    data, _ = _data_and_model()
    flat = data.reshape(-1)
    windows = ModelStepWindows(frames=3, frameskip=5)
    plain = TensorDictReplayBuffer(storage=LazyMemmapStorage(flat.shape[0], scratch_dir=tmp_path / "plain"),
                                   sampler=SliceSampler(slice_len=windows.slice_len, traj_key="episode"),
                                   batch_size=4 * windows.slice_len, transform=windows)
    plain.extend(flat)
    with pytest.raises(RuntimeError, match="metadata"):  # TorchRL cannot write flat indices into windows
        plain.sample()
    assert _user_buffer(data, tmp_path / "windows", batch=4).sample().shape == (4,)


def test_keys_follow_in_keys_and_set_keys(tmp_path) -> None:
    data, built = _data_and_model()
    data = data.rename_key_("observation", "obs")
    model = StateWorldModel(built.config, observation_key="obs")
    model.load_state_dict(built.state_dict())
    adversarial = AdversarialSynthesis(model, in_keys=("z", "action"), out_keys=("dz", "de", "perturbed"))
    batch = _user_buffer(data, tmp_path, adversarial).sample()
    assert {"z", "dz", "de", "perturbed"} <= set(batch.keys()) and "latent" not in batch.keys()
    loss = TeacherForcingLoss(model)
    loss.set_keys(latent="z", latent_perturbation="dz", action_embedding_perturbation="de")
    assert loss.in_keys == ["obs", "z", "action", "dz", "de"]
    assert torch.isfinite(loss(batch)["loss_prediction"])


# ------------------------------------------------ one objective for our planners and TorchRL's
def test_torchrl_planning_env_rewards_sum_to_minus_our_planning_cost() -> None:
    from torchrl_gbp.planners import GoalCost
    from torchrl_gbp.planners.torchrl_baselines import make_planning_env

    torch.manual_seed(0)
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, proprio_dim=1))
    objective = GoalCost("all", base=0.5, alpha=0.3, proprio_dim=1)
    env = make_planning_env(model, WallTask().make_env(), objective, horizon=4)
    latent, goal, actions = torch.randn(3, 2), torch.randn(3, 2), torch.randn(3, 4, 10).clamp(-1, 1)
    td = TensorDict(latent=latent, goal_latent=goal, plan_step=torch.zeros(3, 1, dtype=torch.int64), batch_size=[3])
    total = torch.zeros(3)
    with torch.no_grad():
        for t in range(4):
            td = env.step(td.set("action", actions[:, t]))
            total += td["next", "reward"].squeeze(-1)
            td = td["next"]
        ours = GradientPlanner(model, objective=objective, horizon=4, steps=0).score(
            latent[:, None], torch.zeros(3, 0, 10), goal, actions[:, None])
    torch.testing.assert_close(-total, ours.squeeze(1))


def test_a_trainable_encoder_is_not_cached_so_the_loss_trains_it(tmp_path) -> None:
    data, _ = _data_and_model()
    model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5, encoder="mlp"), data)
    batch = _user_buffer(data, tmp_path, AdversarialSynthesis(model)).sample()
    assert "latent" not in batch.keys() and batch["latent_perturbation"].shape == (8, 3, model.latent_dim)
    loss = TeacherForcingLoss(model)(batch)
    (loss["loss_prediction"] + loss["loss_reconstruction"]).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.state_encoder.parameters())
