"""Tests for the data-synthesis replay-buffer transforms (adversarial and online)."""
from __future__ import annotations

import copy

import pytest
import torch
from tensordict import TensorDict
from torchrl.data import Bounded, Composite, ReplayBuffer, Unbounded
from torchrl.envs import Compose, EnvBase
from torchrl.envs.utils import check_env_specs

from torchrl_gbp.data import make_window_buffer
from torchrl_gbp.models import StateWorldModel, TeacherForcingLoss, WorldModelConfig
from torchrl_gbp.models.loss import prediction_error
from torchrl_gbp.planners import GradientPlanner
from torchrl_gbp.synthesis import AdversarialOptions, AdversarialSynthesis, OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import WallTask
from torchrl_gbp.train import appended_batches, build_world_model, train_world_model

FRAMESKIP = 5


def wall_envs(num_envs: int):
    """The simulator online synthesis drives: Wall envs, one per window."""
    return WallTask().make_env(num_envs=num_envs)


def small_config(**overrides) -> WorldModelConfig:
    return WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=FRAMESKIP, hidden_dim=32, depth=1, **overrides)


def windows(data, frames: int = 3, batch_size: int = 8, seed: int = 0, transform=None) -> ReplayBuffer:
    return make_window_buffer(data, frames=frames, frameskip=FRAMESKIP, batch_size=batch_size, transform=transform,
                              generator=torch.Generator().manual_seed(seed))


def stored(buffer: ReplayBuffer) -> TensorDict:
    """A copy of everything in the buffer's storage (no transform applied)."""
    return buffer.storage.get(slice(0, len(buffer))).clone()


def assert_same_tensors(a: TensorDict, b: TensorDict) -> None:
    assert set(a.keys(True, True)) == set(b.keys(True, True))
    for key in a.keys(True, True):
        assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def data():
    return WallTask().generate_dataset(64, seed=0)


@pytest.fixture(scope="module")
def trained(data) -> StateWorldModel:
    torch.manual_seed(0)
    model = build_world_model(small_config(), data)
    train_world_model(model, windows(data, batch_size=32), steps=300, lr=3e-3, progress=False)
    return model


@pytest.fixture
def model(trained) -> StateWorldModel:
    return copy.deepcopy(trained)


@pytest.fixture(scope="module")
def batch(data) -> TensorDict:
    return windows(data, batch_size=64, seed=1).sample()


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ------------------------------------------------------------------ adversarial
@pytest.mark.parametrize("proprio_dim", [0, 1])
def test_radii_are_factor_times_slice_std_and_bound_the_perturbations(data, batch, proprio_dim):
    model = build_world_model(small_config(proprio_dim=proprio_dim), data)
    adv = AdversarialSynthesis(model, generator=rng(), options=AdversarialOptions(latent_factor=0.05, proprio_factor=0.02, action_factor=0.03))
    out = adv(batch)
    z = model.encode(batch["observation"]).detach()
    e = model.embed_actions(model.normalize_action(batch["action"])).detach()
    main, proprio = z[..., :2 - proprio_dim], z[..., 2 - proprio_dim:]
    expected = [0.05 * main.std(), 0.02 * proprio.std() if proprio_dim else 0.0, 0.03 * e.std()]
    torch.testing.assert_close(adv.eps, torch.stack([torch.as_tensor(x) for x in expected]))
    dz, de = out["latent_perturbation"], out["action_embedding_perturbation"]
    assert dz.shape == z.shape and de.shape == e.shape
    tol = 1e-6
    assert (dz[..., :2 - proprio_dim].abs() <= adv.eps[0] + tol).all()
    assert (dz[..., 2 - proprio_dim:].abs() <= adv.eps[1] + tol).all()
    assert (de.abs() <= adv.eps[2] + tol).all()
    # the radius is used, not just respected: FGSM steps of 1.25 eps land on the boundary
    assert torch.isclose(dz[..., :2 - proprio_dim].abs().amax(), adv.eps[0])
    assert torch.isclose(de.abs().amax(), adv.eps[2])


def test_inner_loss_is_the_teacher_forcing_loss(model, batch):
    g = rng(3)
    z = model.encode(batch["observation"]).detach()
    e = model.embed_actions(model.normalize_action(batch["action"])).detach()
    dz, de = 0.1 * torch.randn(z.shape, generator=g), 0.1 * torch.randn(e.shape, generator=g)
    perturbed = batch.clone(False).update({"latent_perturbation": dz, "action_embedding_perturbation": de})
    reference = TeacherForcingLoss(model)(perturbed)["loss_prediction"]
    torch.testing.assert_close(prediction_error(model, z + dz, e + de, z[:, model.num_hist:]).mean(), reference)


def test_ascent_raises_the_loss_above_clean_and_random_perturbations(model, batch):
    loss = TeacherForcingLoss(model)
    clean = loss(batch)["loss_prediction"]
    adv = AdversarialSynthesis(model, generator=rng())
    adversarial = loss(adv(batch))["loss_prediction"]
    # the random start alone, at the same radii, averaged over draws
    g, random_losses = rng(1), []
    for _ in range(10):
        dz = (2 * torch.rand(batch["observation"].shape, generator=g) - 1) * adv.eps[0]
        de = (2 * torch.rand(64, 2, model.config.action_embed_dim, generator=g) - 1) * adv.eps[2]
        random_losses.append(loss(batch.clone(False).update(
            {"latent_perturbation": dz, "action_embedding_perturbation": de}))["loss_prediction"])
    random = torch.stack(random_losses).mean()
    assert adversarial > 1.3 * random and random >= clean


def test_clean_entries_are_untouched_and_the_input_is_not_modified(model, batch):
    before = batch.clone()
    out = AdversarialSynthesis(model, generator=rng())(batch)
    assert out is not batch
    assert_same_tensors(batch, before)  # no entry added to or changed in the input
    for key in before.keys(True, True):
        assert torch.equal(out[key], before[key])
    assert set(out.keys()) == set(before.keys()) | {"latent", "latent_perturbation", "action_embedding_perturbation",
                                                    "adversarial"}


@pytest.mark.parametrize("training", [True, False])
def test_sampling_under_no_grad_leaves_no_gradients_and_restores_the_mode(data, model, training):
    adv = AdversarialSynthesis(model, generator=rng())
    model.train(training)
    buffer = windows(data, transform=adv)
    assert model.training == training  # the buffer's transform.eval() does not reach the model
    assert not any(k.startswith("world_model") for k in adv.state_dict())
    with torch.no_grad():
        out = buffer.sample()
    assert out["latent_perturbation"].abs().sum() > 0 and not out["latent_perturbation"].requires_grad
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == training for m in model.modules())


def test_stored_data_is_unchanged_by_sampling(data, model):
    buffer = windows(data, transform=AdversarialSynthesis(model, generator=rng(), options=AdversarialOptions(ascent_steps=2)))
    before = stored(buffer)
    for _ in range(5):
        buffer.sample()
    assert_same_tensors(stored(buffer), before)


def test_fraction_perturbs_exactly_that_share_of_rows(model, batch):
    out = AdversarialSynthesis(model, fraction=0.5, generator=rng())(batch)
    flag = out["adversarial"]
    assert flag.dtype == torch.bool and flag.shape == (64,) and int(flag.sum()) == 32
    for key in ("latent_perturbation", "action_embedding_perturbation"):
        per_row = out[key].abs().flatten(1).sum(1)
        assert (per_row[~flag] == 0).all() and (per_row[flag] > 0).all()
    none = AdversarialSynthesis(model, fraction=0.0, generator=rng())(batch)
    assert not none["adversarial"].any() and (none["latent_perturbation"] == 0).all()


def test_fixed_radius_is_measured_once_and_kept(data, model):
    buffer = windows(data, seed=2)
    fixed, adaptive = AdversarialSynthesis(model, options=AdversarialOptions(radius="fixed")), AdversarialSynthesis(model)
    assert fixed.eps.isnan().all()
    first, second = buffer.sample(), buffer.sample()
    fixed(first)
    adaptive(first)
    eps_fixed, eps_adaptive = fixed.eps.clone(), adaptive.eps.clone()
    torch.testing.assert_close(eps_fixed, eps_adaptive)
    out = fixed(second)
    adaptive(second)
    assert torch.equal(fixed.eps, eps_fixed)
    assert not torch.equal(adaptive.eps, eps_adaptive)
    assert (out["latent_perturbation"].abs() <= eps_fixed[0] + 1e-6).all()
    # kept across checkpoints of the transform
    restored = AdversarialSynthesis(model, options=AdversarialOptions(radius="fixed"))
    restored.load_state_dict(fixed.state_dict())
    assert torch.equal(restored.eps, eps_fixed)


def test_training_on_perturbed_batches_reaches_the_action_encoder(data, model):
    buffer = windows(data, batch_size=16, transform=AdversarialSynthesis(model, generator=rng()))
    loss = TeacherForcingLoss(model)(buffer.sample())["loss_prediction"]
    loss.backward()
    assert model.action_encoder.linear.weight.grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.predictor.parameters())


@pytest.mark.parametrize("kwargs, match", [
    ({"fraction": 1.5}, "fraction"), ({"fraction": -0.1}, "fraction"), ({"latent_factor": -1.0}, "latent_factor"),
    ({"action_factor": -0.1}, "action_factor"), ({"radius": "sometimes"}, "radius"),
    ({"ascent_steps": 0}, "ascent_steps"), ({"step_size": 0.0}, "step_size"), ({"attack_mode": "test"}, "attack_mode"),
])
def test_adversarial_rejects_bad_arguments(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        if "fraction" in kwargs:
            AdversarialSynthesis(model, **kwargs)
        else:
            AdversarialSynthesis(model, options=AdversarialOptions(**kwargs))


def test_adversarial_names_missing_keys_and_bad_shapes(model, batch):
    adv = AdversarialSynthesis(model)
    with pytest.raises(KeyError, match="action"):
        adv(batch.exclude("action"))
    with pytest.raises(ValueError, match="'action'"):
        adv(batch.clone(False).set("action", batch["action"][:, :1]))
    with pytest.raises(ValueError, match="num_hist"):
        adv(TensorDict(observation=batch["observation"][:, :1], action=batch["action"][:, :0], batch_size=[64]))


# ----------------------------------------------------------------------- online
def replay(task: WallTask, window: TensorDict, num_hist: int) -> torch.Tensor:
    """States the simulator reaches from the window's last history state under its stored actions."""
    position, states = window["state"][:, num_hist - 1], []
    for model_action in window["action"][:, num_hist - 1:].unbind(1):
        for env_action in model_action.reshape(position.shape[0], FRAMESKIP, 2).unbind(1):
            position = task.step(position, env_action)
        states.append(position)
    return torch.stack(states, 1)


@pytest.mark.parametrize("num_hist", [1, 2])
def test_synthetic_windows_are_what_the_simulator_does(data, num_hist):
    task = WallTask()
    model = build_world_model(small_config(num_hist=num_hist), data)
    online = OnlineSynthesis(model, wall_envs, every=1, fraction=1.0, options=OnlineOptions(planner_steps=5))
    batch = windows(data, frames=num_hist + 3, batch_size=8).sample()
    online(batch)
    synthetic = online.synthetic_buffer.storage.get(slice(0, 8))  # this batch's windows, in order
    h = num_hist
    assert synthetic.shape == (8,) and (synthetic["episode"] == -1).all()
    for key in ("observation", "state"):
        assert synthetic[key].shape == batch[key].shape
        assert torch.equal(synthetic[key][:, :h], batch[key][:, :h])  # recorded history kept
    assert torch.equal(synthetic["action"][:, :h - 1], batch["action"][:, :h - 1])
    assert synthetic["action"].shape == batch["action"].shape
    assert (synthetic["action"].abs() <= 1).all()  # executed actions lie in the action spec
    simulated = replay(task, synthetic, h)
    torch.testing.assert_close(synthetic["state"][:, h:], simulated, atol=1e-6, rtol=0)
    torch.testing.assert_close(synthetic["observation"][:, h:], simulated, atol=1e-6, rtol=0)
    # the planned actions are new, not the recorded ones
    assert not torch.equal(synthetic["action"][:, h - 1:], batch["action"][:, h - 1:])


def test_synthesis_happens_every_n_calls_and_the_buffer_is_capped(data, model):
    online = OnlineSynthesis(model, wall_envs, every=3, fraction=0.5, options=OnlineOptions(capacity=20, planner_steps=2))
    buffer = windows(data, transform=online)
    rounds = []
    for _ in range(7):
        buffer.sample()
        rounds.append(online.synthesis_rounds)
    assert rounds == [1, 1, 1, 2, 2, 2, 3]
    assert len(online.synthetic_buffer) == 20  # 3 rounds of 8 windows, capacity 20
    every_call = OnlineSynthesis(model, wall_envs, every=1, options=OnlineOptions(capacity=20, planner_steps=2))
    buffer = windows(data, transform=every_call)
    for _ in range(6):
        buffer.sample()
    assert every_call.synthesis_rounds == 6 and len(every_call.synthetic_buffer) == 20


def test_oldest_synthetic_windows_leave_first(data, model):
    online = OnlineSynthesis(model, wall_envs, every=1, fraction=0.0, options=OnlineOptions(capacity=12, planner_steps=2))
    batches = [windows(data, seed=s).sample() for s in range(3)]
    for b in batches:
        online(b)
    kept = online.synthetic_buffer.storage.get(slice(0, 12))["observation"][:, 0]
    newest = batches[-1]["observation"][:, 0]
    assert all((kept == row).all(-1).any() for row in newest)
    assert len(online.synthetic_buffer) == 12


def test_batch_keeps_its_shape_and_a_fraction_of_rows_is_synthetic(model, batch):
    online = OnlineSynthesis(model, wall_envs, every=10, fraction=0.25, options=OnlineOptions(planner_steps=2))
    before = batch.clone()
    out = online(batch)
    assert_same_tensors(batch, before)  # the input is not written
    assert out.shape == batch.shape
    assert set(out.keys()) == set(batch.keys()) | {"latent", "synthetic"}  # the latents, encoded once
    flag = out["synthetic"]
    assert flag.dtype == torch.bool and int(flag.sum()) == 16
    assert (out["episode"][flag] == -1).all()
    for key in ("observation", "state", "action", "episode"):
        assert out[key].shape == batch[key].shape and out[key].dtype == batch[key].dtype
        assert torch.equal(out[key][~flag], batch[key][~flag])
    torch.testing.assert_close(out["latent"][~flag], model.encode(batch["observation"][~flag]))


def test_replaced_rows_zero_entries_that_synthetic_windows_lack(model, batch):
    extra = batch.clone(False).set("latent_perturbation", torch.ones(64, 3, 2))
    out = OnlineSynthesis(model, wall_envs, fraction=0.5, options=OnlineOptions(planner_steps=2))(extra)
    flag = out["synthetic"]
    assert (out["latent_perturbation"][flag] == 0).all() and (out["latent_perturbation"][~flag] == 1).all()


def test_user_dataset_is_unchanged_after_many_samples(data, model):
    online = OnlineSynthesis(model, wall_envs, every=2, fraction=0.5, options=OnlineOptions(planner_steps=2))
    buffer = windows(data, transform=online)
    before = stored(buffer)
    for _ in range(10):
        buffer.sample()
    assert_same_tensors(stored(buffer), before)


@pytest.mark.parametrize("training", [True, False])
def test_online_under_no_grad_leaves_no_gradients_and_restores_the_mode(data, model, training):
    online = OnlineSynthesis(model, wall_envs, every=1, options=OnlineOptions(planner_steps=3))
    model.train(training)
    buffer = windows(data, transform=online)
    with torch.no_grad():
        out = buffer.sample()
    assert int(out["synthetic"].sum()) == 4 and online.synthesis_rounds == 1
    assert all(p.grad is None for p in model.parameters())
    assert all(m.training == training for m in model.modules())


def test_online_then_adversarial_composes_on_the_buffer(data, model):
    transform = Compose(OnlineSynthesis(model, wall_envs, options=OnlineOptions(planner_steps=2)),
                        AdversarialSynthesis(model, generator=rng()))
    out = windows(data, batch_size=16, transform=transform).sample()
    assert out.shape == (16,) and int(out["synthetic"].sum()) == 8 and bool(out["adversarial"].all())
    TeacherForcingLoss(model)(out)["loss_prediction"].backward()
    assert model.action_encoder.linear.weight.grad.abs().sum() > 0


def test_user_planner_overrides_the_default_and_must_match_the_window(data, model, batch):
    planner = GradientPlanner(model, horizon=2, steps=1)
    online = OnlineSynthesis(model, wall_envs, planner=planner)
    assert online(batch)["synthetic"].sum() == 32
    with pytest.raises(ValueError, match="horizon"):
        OnlineSynthesis(model, wall_envs, planner=GradientPlanner(model, horizon=5, steps=1))(batch)


def test_online_rejects_bad_arguments_and_batches(model, batch):
    for kwargs, match in [({"every": 0}, "every"), ({"fraction": 2.0}, "fraction"),
                          ({"options": {"capacity": 0}}, "capacity"), ({"options": {"planner_lr": 0.0}}, "planner_lr")]:
        with pytest.raises(ValueError, match=match):
            if "options" in kwargs:
                kwargs = {"options": OnlineOptions(**kwargs["options"])}
            OnlineSynthesis(model, wall_envs, **kwargs)
    online = OnlineSynthesis(model, wall_envs, options=OnlineOptions(planner_steps=1))
    with pytest.raises(KeyError, match="state"):
        online(batch.exclude("state"))
    online(batch)
    longer = TensorDict(observation=torch.zeros(4, 4, 2), state=torch.zeros(4, 4, 2),
                        action=torch.zeros(4, 3, 10), episode=torch.zeros(4, dtype=torch.long), batch_size=[4])
    with pytest.raises(ValueError, match="frames"):
        online(longer)


# ------------------------------------------------------------ any TorchRL env with a settable state
class PointEnv(EnvBase):
    """A user's own TorchRL env, no Task: a point moved by 0.1 * action, its state chosen at reset."""

    _supports_set_state = True

    def __init__(self, num_envs: int) -> None:
        super().__init__(batch_size=torch.Size([num_envs]))
        shape = (num_envs, 2)
        self.observation_spec = Composite(observation=Unbounded(shape), state=Unbounded(shape),
                                          shape=self.batch_size)
        self.state_spec = Composite(start_state=Unbounded(shape), shape=self.batch_size)
        self.action_spec = Bounded(-1.0, 1.0, shape=shape)
        self.reward_spec = Unbounded((num_envs, 1))
        self.position = torch.zeros(shape)

    def _reset(self, tensordict, set_state: bool = False, **kwargs):
        if set_state:
            self.position = tensordict["start_state"].clone()
        return TensorDict(observation=self.position.clone(), state=self.position.clone(),
                          start_state=self.position.clone(), batch_size=self.batch_size)

    def _step(self, tensordict):
        self.position = self.position + 0.1 * tensordict["action"]
        done = torch.zeros(*self.batch_size, 1, dtype=torch.bool)
        return TensorDict(observation=self.position.clone(), state=self.position.clone(),
                          reward=-self.position.norm(dim=-1, keepdim=True), done=done, terminated=done.clone(),
                          batch_size=self.batch_size)

    def _set_seed(self, seed):
        pass


def test_online_synthesis_runs_on_a_plain_torchrl_env_built_without_a_task(model, batch):
    check_env_specs(PointEnv(3))
    online = OnlineSynthesis(model, PointEnv, every=1, fraction=0.5, options=OnlineOptions(planner_steps=2), reset_keys=("start_state", None))
    out = online(batch)
    rows = out["synthetic"]
    assert int(rows.sum()) == 32 and (out["episode"][rows] == -1).all()
    state, action = out["state"][rows], out["action"][rows]
    for t in (1, 2):  # every model step: five env steps of 0.1 * action from the state before
        moved = state[:, t - 1] + 0.1 * action[:, t - 1].reshape(-1, 5, 2).clamp(-1, 1).sum(1)
        torch.testing.assert_close(state[:, t], moved)
    torch.testing.assert_close(out["observation"][rows], state)
    torch.testing.assert_close(out["latent"][rows], model.encode(state))
    with pytest.raises(ValueError, match="batch size"):  # an env of another batch size, not a factory
        OnlineSynthesis(model, PointEnv(3), reset_keys=("start_state", None))(batch)


# ------------------------------------------------------------ resume through state_dict
def test_online_synthesis_resumes_exactly_from_its_state_dict(model, data, tmp_path):
    def fresh() -> OnlineSynthesis:
        return OnlineSynthesis(model, wall_envs, every=2, fraction=0.5, seed=3, options=OnlineOptions(capacity=40, planner_steps=2))

    batches = [windows(data, seed=s).sample() for s in range(4)]
    running = fresh()
    for b in batches[:3]:
        running(b)
    torch.save(running.state_dict(), tmp_path / "online.pt")
    resumed = fresh()
    resumed.load_state_dict(torch.load(tmp_path / "online.pt", weights_only=True))
    assert resumed.synthesis_rounds == running.synthesis_rounds == 2 and len(resumed.synthetic_buffer) == 16
    assert_same_tensors(resumed(batches[3]), running(batches[3]))


def test_a_fixed_adversarial_radius_and_its_generator_resume_from_the_state_dict(model, batch, tmp_path):
    def fresh() -> AdversarialSynthesis:
        return AdversarialSynthesis(model, fraction=0.5, generator=torch.Generator().manual_seed(1), options=AdversarialOptions(radius="fixed"))

    running = fresh()
    running(batch)
    torch.save(running.state_dict(), tmp_path / "adversarial.pt")
    resumed = fresh()
    resumed.load_state_dict(torch.load(tmp_path / "adversarial.pt", weights_only=True))
    assert torch.equal(resumed.eps, running.eps)
    shifted = batch.clone().apply(lambda x: x * 3 if x.is_floating_point() else x)  # a fixed radius ignores it
    assert_same_tensors(resumed(shifted), running(shifted))


def test_the_reference_radius_statistic_is_each_windows_spread_averaged_over_the_batch(model, batch):
    synthesis = AdversarialSynthesis(model, fraction=0.5, generator=rng(), options=AdversarialOptions(radius_statistic="per_window"))
    out = synthesis(batch)
    z = out["latent"][:, :-1]  # the input frames (DINO-WM's tiled copies: tests/test_dinowm.py)
    e = model.embed_actions(model.normalize_action(batch["action"])).detach()
    expected = torch.stack([z.flatten(1).std(dim=1).mean(), e.flatten(1).std(dim=1).mean()])
    torch.testing.assert_close(synthesis.eps[[0, 2]], expected * torch.tensor([0.05, 0.02]))
    over_batch = AdversarialSynthesis(model)
    over_batch(batch)
    assert not torch.allclose(over_batch.eps[0], synthesis.eps[0])  # not the batch statistic
    with pytest.raises(ValueError, match="radius_statistic"):
        AdversarialSynthesis(model, options=AdversarialOptions(radius_statistic="median"))


@pytest.mark.parametrize("training", [True, False])
def test_the_attack_in_train_mode_runs_the_predictor_with_dropout_then_restores_the_mode(data, batch, training):
    model = build_world_model(small_config(dropout=0.5), data).train(training)
    seen = []
    model.predictor.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    in_train = AdversarialSynthesis(model, generator=rng(), options=AdversarialOptions(attack_mode="train"))(batch)
    assert seen and all(seen)  # train mode, dropout on, while the attack runs
    assert all(m.training == training for m in model.modules())  # the modes restored after
    seen.clear()
    in_eval = AdversarialSynthesis(model, generator=rng())(batch)
    assert seen and not any(seen)
    assert all(m.training == training for m in model.modules())
    # same rows and starts; the dropout masks change the gradients' signs
    assert torch.equal(in_train["adversarial"], in_eval["adversarial"])
    assert not torch.equal(in_train["latent_perturbation"], in_eval["latent_perturbation"])
    eval_again = AdversarialSynthesis(model, generator=rng())(batch)
    assert torch.equal(eval_again["latent_perturbation"], in_eval["latent_perturbation"])


def test_the_attack_from_a_given_start_needs_measured_radii_and_matching_shapes(model, batch):
    synthesis = AdversarialSynthesis(model, generator=rng())
    z = model.encode(batch["observation"]).detach()
    e = model.embed_actions(model.normalize_action(batch["action"])).detach()
    start = (torch.zeros_like(z), torch.zeros_like(e))
    with pytest.raises(RuntimeError, match="radii are not measured"):
        synthesis.attack(z, e, start)
    synthesis(batch)
    with pytest.raises(ValueError, match=r"start must be the perturbations \(dz, de\)"):
        synthesis.attack(z, e, (start[0][:, :-1], start[1]))
    dz, de = synthesis.attack(z, e, start)
    assert (dz[:, :-1].abs() == synthesis.eps[0]).all() and (de.abs() == synthesis.eps[2]).all()
    assert not dz[:, -1].any()  # the last frame is only a target: no gradient moves it


# ------------------------------------------------------------ the append schedule (the reference code's)
def optimizer_steps(path) -> int:
    """Optimiser steps a checkpoint's training state has taken (Adam counts them per parameter)."""
    return int(torch.load(path, weights_only=False)["training"]["optimizer"]["state"][0]["step"])


@pytest.mark.parametrize("schedule, steps_taken, rounds", [("replace", 6, 3), ("append", 15, 4)])
def test_optimiser_steps_and_batches_under_each_online_schedule(model, data, tmp_path, schedule, steps_taken,
                                                                rounds):
    # every=2 within passes of 3 batches: slots {0, 1} -> 0, {2} -> 1. Append: pass 1 brings one cached set per
    # batch (1 + 1 steps), pass 2 two (1 + 2): 6 batches, 6 + 3 + 6 = 15 steps. Replace: one step per batch.
    online = OnlineSynthesis(model, wall_envs, every=2, options=OnlineOptions(planner_steps=1, schedule=schedule, epoch_batches=3))
    sets = []
    sampled = []
    buffer = windows(data, transform=online)
    sample = buffer.sample

    def counting_sample():
        batch = sample()
        sampled.append(int(batch["synthetic"].sum()))
        sets.append(len(online.appended_batches()))
        return batch

    buffer.sample = counting_sample
    path = tmp_path / "finetuned.pt"
    train_world_model(model, buffer, steps=6, progress=False, checkpoint_path=path)
    assert len(sampled) == 6  # `steps` counts sampled batches under both schedules
    assert optimizer_steps(path) == steps_taken and online.synthesis_rounds == rounds
    if schedule == "append":
        assert sampled == [0] * 6 and sets == [1, 1, 1, 2, 2, 2]  # no row replaced; sets added, never dropped
    else:
        assert sets == [0] * 6 and all(n == 4 for n in sampled)  # half of each batch of 8 replaced


def test_appended_sets_are_the_slots_synthetic_windows_passed_through_the_later_transforms(model, data):
    online = OnlineSynthesis(model, wall_envs, every=2, options=OnlineOptions(planner_steps=1, schedule="append"))
    adversarial = AdversarialSynthesis(model, generator=rng())
    buffer = windows(data, transform=Compose(online, adversarial))
    first = buffer.sample()
    appended = appended_batches(buffer)
    assert len(appended) == 1 and appended[0].shape == first.shape
    assert appended[0]["synthetic"].all() and (appended[0]["episode"] == -1).all()
    assert "latent_perturbation" in appended[0].keys()  # perturbed like a sampled batch
    torch.testing.assert_close(appended[0]["observation"][:, 0], first["observation"][:, 0])  # from this batch
    buffer.sample()
    assert len(appended_batches(buffer)) == 1 and online.synthesis_rounds == 1  # same slot, no new set
    buffer.sample()
    assert online.synthesis_rounds == 2 and len(appended_batches(buffer)) == 1  # a new slot, its own set


def test_append_finetuning_resumes_exactly(trained, data, tmp_path):
    def run(steps: int, path, resume: bool = False) -> StateWorldModel:
        model = copy.deepcopy(trained)
        online = OnlineSynthesis(model, wall_envs, every=2, options=OnlineOptions(planner_steps=1, schedule="append", epoch_batches=3))
        torch.manual_seed(0)
        train_world_model(model, windows(data, transform=online), steps=steps, progress=False, checkpoint_path=path,
                          resume=resume, optimizer="adamw", weight_decay=0.01, grad_clip=None)
        return model

    whole = run(5, tmp_path / "whole.pt")
    run(4, tmp_path / "part.pt")  # stops inside the second pass, with three cached sets
    resumed = run(5, tmp_path / "part.pt", resume=True)
    for a, b in zip(whole.parameters(), resumed.parameters()):
        assert torch.equal(a, b)
    assert optimizer_steps(tmp_path / "part.pt") == optimizer_steps(tmp_path / "whole.pt") == 5 + 3 + 4
    with pytest.raises(ValueError, match="optimizer 'adamw'"):
        train_world_model(copy.deepcopy(trained), windows(data), steps=6, progress=False,
                          checkpoint_path=tmp_path / "part.pt", resume=True)


def test_online_planning_in_train_mode_runs_the_predictor_with_dropout(data, batch):
    model = build_world_model(small_config(dropout=0.5), data).eval()
    seen = []
    model.predictor.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    OnlineSynthesis(model, wall_envs, options=OnlineOptions(planner_steps=1, planning_mode="train"))(batch)
    assert seen and all(seen) and not model.training  # train mode while planning, the mode restored after
    seen.clear()
    OnlineSynthesis(model, wall_envs, options=OnlineOptions(planner_steps=1))(batch)
    assert seen and not any(seen)
    with pytest.raises(ValueError, match="schedule"):
        OnlineSynthesis(model, wall_envs, options=OnlineOptions(schedule="insert"))
    with pytest.raises(ValueError, match="planning_mode"):
        OnlineSynthesis(model, wall_envs, options=OnlineOptions(planning_mode="test"))
