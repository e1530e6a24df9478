"""Tests for the world model, its teacher-forcing loss, checkpoints and its TorchRL face."""
from __future__ import annotations

import pytest
import torch
from tensordict import TensorDict
from torchrl.modules import WorldModel

from torchrl_gbp.models import (
    StateWorldModel,
    TeacherForcingLoss,
    WorldModelConfig,
    load_checkpoint,
    load_weights_into,
    save_checkpoint,
)
from torchrl_gbp.planners.torchrl_baselines import (
    make_torchrl_planner,
    reset_planning_env,
)
from torchrl_gbp.tasks import WallTask

SMALL = dict(hidden_dim=32, depth=1, action_embed_dim=8, latent_dim=6)


def make_model(seed: int = 0, **overrides) -> StateWorldModel:
    torch.manual_seed(seed)
    kwargs = dict(obs_dim=2, env_action_dim=2, **SMALL)
    kwargs.update(overrides)
    return StateWorldModel(WorldModelConfig(**kwargs))


def linear_system_data(n: int, steps: int, seed: int = 0, speed: float = 0.1):
    """Trajectories of s' = s + speed * a with uniform actions in [-1, 1]^2."""
    g = torch.Generator().manual_seed(seed)
    actions = torch.rand(n, steps - 1, 2, generator=g) * 2 - 1
    states = [torch.rand(n, 2, generator=g) * 2 - 1]
    for t in range(steps - 1):
        states.append(states[-1] + speed * actions[:, t])
    return torch.stack(states, dim=1), actions


def fit_model(model: StateWorldModel, obs: torch.Tensor, actions: torch.Tensor, steps: int, lr: float = 3e-3):
    """Fit normalisation and train on the sum of the loss terms; returns the loss history."""
    model.fit_normalization(obs, actions)
    loss_fn = TeacherForcingLoss(model)
    # the loss reads model actions in env units and normalises them itself
    batch = TensorDict({"observation": obs, "action": actions}, batch_size=[obs.shape[0]])
    optim = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(steps):
        out = loss_fn(batch)
        loss = sum(out[k] for k in out.keys() if k.startswith("loss_"))
        optim.zero_grad()
        loss.backward()
        optim.step()
        history.append(loss.item())
    return history


# ------------------------------------------------------------------ shapes
def test_world_model_is_a_torchrl_world_model() -> None:
    assert isinstance(make_model(), WorldModel)


@pytest.mark.parametrize("encoder", ["identity", "mlp"])
@pytest.mark.parametrize("lead", [(), (5,), (2, 3)])
def test_encode_keeps_any_leading_dims(encoder: str, lead: tuple[int, ...]) -> None:
    model = make_model(encoder=encoder)
    z = model.encode(torch.randn(*lead, 2))
    latent_dim = 2 if encoder == "identity" else SMALL["latent_dim"]
    assert z.shape == (*lead, latent_dim)
    assert model.latent_dim == latent_dim


@pytest.mark.parametrize("num_hist", [1, 3])
@pytest.mark.parametrize("lead", [(4,), (2, 3)])
@pytest.mark.parametrize("encoder", ["identity", "mlp"])
def test_rollout_shapes(num_hist: int, lead: tuple[int, ...], encoder: str) -> None:
    model = make_model(num_hist=num_hist, frameskip=5, encoder=encoder)
    a = model.action_dim
    assert a == 10
    z = model.encode(torch.randn(*lead, num_hist, 2))
    out = model.rollout(z, torch.randn(*lead, num_hist - 1, a), torch.randn(*lead, 7, a))
    assert out.shape == (*lead, 7, model.latent_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("num_hist", [1, 3])
def test_rollout_is_the_autoregressive_composition_of_step(num_hist: int) -> None:
    model = make_model(num_hist=num_hist, seed=1)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, num_hist, 2, generator=g)
    a_hist = torch.randn(3, num_hist - 1, 2, generator=g)
    actions = torch.randn(3, 4, 2, generator=g)
    out = model.rollout(z, a_hist, actions)
    frames, acts = list(z.unbind(1)), list(a_hist.unbind(1))
    for t in range(4):
        acts.append(actions[:, t])
        nxt = model.step(torch.stack(frames[-num_hist:], 1), torch.stack(acts[-num_hist:], 1))
        frames.append(nxt)
        torch.testing.assert_close(out[:, t], nxt)
    # the history really matters: another first frame changes the prediction
    if num_hist > 1:
        z2 = z.clone()
        z2[:, 0] += 1.0
        assert not torch.allclose(model.rollout(z2, a_hist, actions), out)


@pytest.mark.parametrize("num_hist", [1, 3])
def test_tensordict_step_matches_plain_step_and_rewards_goal_distance(num_hist: int) -> None:
    model = make_model(num_hist=num_hist, seed=2)
    g = torch.Generator().manual_seed(0)
    win = (num_hist,) if num_hist > 1 else ()
    latent = torch.randn(2, 3, *win, 2, generator=g)
    action = torch.randn(2, 3, *win, 2, generator=g)
    goal = torch.randn(2, 3, 2, generator=g)
    td = TensorDict({"latent": latent, "action": action, "goal_latent": goal}, batch_size=[2, 3])
    out = model.step(td)
    z_hist = latent if num_hist > 1 else latent.unsqueeze(-2)
    a_hist = action if num_hist > 1 else action.unsqueeze(-2)
    expected_next = model.step(z_hist, a_hist)
    next_latent = out["next", "latent"]
    assert next_latent.shape == latent.shape
    last = next_latent if num_hist == 1 else next_latent[..., -1, :]
    torch.testing.assert_close(last, expected_next)
    if num_hist > 1:  # the window shifts by one frame
        torch.testing.assert_close(next_latent[..., :-1, :], latent[..., 1:, :])
    torch.testing.assert_close(out["next", "reward"], -(expected_next - goal).pow(2).mean(-1, keepdim=True))
    torch.testing.assert_close(out["next", "goal_latent"], goal)


def test_tensordict_encode_writes_latent() -> None:
    model = make_model(encoder="mlp")
    obs = torch.randn(2, 3, 2)
    td = model.encode(TensorDict({"observation": obs}, batch_size=[2, 3]))
    torch.testing.assert_close(td["latent"], model.encode(obs))


@pytest.mark.parametrize("num_hist", [1, 3])
@pytest.mark.parametrize("encoder", ["identity", "mlp"])
def test_gradients_reach_every_action_through_rollout(num_hist: int, encoder: str) -> None:
    model = make_model(num_hist=num_hist, frameskip=2, encoder=encoder)
    g = torch.Generator().manual_seed(0)
    z = model.encode(torch.randn(3, num_hist, 2, generator=g)).detach()
    a_hist = torch.randn(3, num_hist - 1, model.action_dim, generator=g)
    actions = torch.randn(3, 5, model.action_dim, generator=g, requires_grad=True)
    goal = torch.randn(3, model.latent_dim, generator=g)
    loss = (model.rollout(z, a_hist, actions)[:, -1] - goal).pow(2).sum()
    (grad,) = torch.autograd.grad(loss, actions)
    assert torch.isfinite(grad).all()
    # every planned step (and every batch element) influences the final latent
    assert (grad.abs().sum(-1) > 0).all()


# ----------------------------------------------------------- normalisation
def test_action_normalisation_round_trip_and_bounds() -> None:
    model = make_model(frameskip=3)
    g = torch.Generator().manual_seed(0)
    data = torch.rand(500, model.action_dim, generator=g) * torch.linspace(0.5, 2.0, 6) + 0.3
    obs = torch.randn(500, 2, generator=g) * torch.tensor([3.0, 0.5]) - 1.0
    model.fit_normalization(obs, data)
    normed = model.normalize_action(data)
    torch.testing.assert_close(normed.mean(0), torch.zeros(6), atol=1e-5, rtol=0)
    torch.testing.assert_close(normed.std(0), torch.ones(6), atol=1e-4, rtol=0)
    x = torch.randn(4, 7, 6, generator=g)
    torch.testing.assert_close(model.denormalize_action(model.normalize_action(x)), x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model.normalize_action(model.denormalize_action(x)), x, atol=1e-5, rtol=1e-5)
    # the identity encoder's latent is the z-scored observation
    z = model.encode(obs)
    torch.testing.assert_close(z.mean(0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(z.std(0), torch.ones(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(model.decode(z), obs, atol=1e-5, rtol=1e-5)
    # env bounds (env_action_dim,) -> normalised model bounds (env_action_dim * frameskip,)
    low, high = model.action_interface.model_bounds(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
    assert low.shape == high.shape == (6,)
    torch.testing.assert_close(model.denormalize_action(low), torch.tensor([-1.0, -2.0] * 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.denormalize_action(high), torch.tensor([1.0, 2.0] * 3), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="env_action_dim=2"):
        model.action_interface.model_bounds(torch.zeros(3), torch.ones(3))


# ------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path) -> None:
    model = make_model(num_hist=2, frameskip=2, encoder="mlp", seed=3)
    obs, actions = linear_system_data(8, 5)
    fit_model(model, obs, actions.repeat(1, 1, 2), steps=3)  # non-trivial weights and statistics
    path = tmp_path / "ckpt" / "model.pt"
    save_checkpoint(path, model, {"step": 7, "task": "wall"})

    g = torch.Generator().manual_seed(0)
    raw_obs = torch.randn(4, 2, 2, generator=g)
    a_hist = torch.randn(4, 1, 4, generator=g)
    acts = torch.randn(4, 6, 4, generator=g)

    def outputs(m):
        with torch.no_grad():
            return m.rollout(m.encode(raw_obs), a_hist, acts), m.normalize_action(acts), m.decode(m.encode(raw_obs))

    expected = outputs(model)
    loaded, extra = load_checkpoint(path)
    assert extra == {"step": 7, "task": "wall"}
    assert loaded.config == model.config
    for a, b in zip(outputs(loaded), expected):
        assert torch.equal(a, b)

    fresh = make_model(num_hist=2, frameskip=2, encoder="mlp", seed=99)
    assert not torch.equal(outputs(fresh)[0], expected[0])
    assert load_weights_into(fresh, path) == {"step": 7, "task": "wall"}
    for a, b in zip(outputs(fresh), expected):
        assert torch.equal(a, b)


def test_checkpoint_leaves_no_temporary_files(tmp_path) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_model())
    save_checkpoint(path, make_model(seed=1))  # overwrite in place
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]


@pytest.mark.parametrize(
    "other, field",
    [(dict(num_hist=2), "num_hist"), (dict(hidden_dim=16), "hidden_dim"), (dict(frameskip=5), "frameskip")],
)
def test_loading_a_checkpoint_from_another_config_names_the_field(tmp_path, other: dict, field: str) -> None:
    path = tmp_path / "model.pt"
    save_checkpoint(path, make_model(**other))
    target = make_model()
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=field) as info:
        load_weights_into(target, path)
    untouched = [f for f in ("obs_dim", "env_action_dim", "encoder") if f != field]
    assert not any(f"{f}:" in str(info.value) for f in untouched)
    # nothing was loaded
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())


def test_loading_a_missing_or_foreign_file_raises(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "nope.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a torchrl_gbp checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


def test_checkpoint_keeps_the_observation_key(tmp_path) -> None:
    model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2, **SMALL), observation_key="pixels_state")
    save_checkpoint(tmp_path / "model.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "model.pt")
    obs = torch.randn(3, 2)
    td = loaded.encode(TensorDict({"pixels_state": obs}, batch_size=[3]))
    torch.testing.assert_close(td["latent"], model.encode(obs))


# ------------------------------------------------------------ bad inputs
@pytest.mark.parametrize("encoder", ["identity", "mlp"])
def test_wrong_observation_shape_raises_naming_obs_dim(encoder: str) -> None:
    model = make_model(encoder=encoder)
    with pytest.raises(ValueError, match="obs_dim=2"):
        model.encode(torch.zeros(4, 3))
    with pytest.raises(ValueError, match="obs_dim=2"):
        model.encode(TensorDict({"observation": torch.zeros(4, 5)}, batch_size=[4]))


def test_wrong_action_or_history_shape_raises() -> None:
    model = make_model(num_hist=2, frameskip=5)
    z = torch.zeros(4, 2, 2)
    with pytest.raises(ValueError, match="action_dim=10"):
        model.step(z, torch.zeros(4, 2, 2))
    with pytest.raises(ValueError, match="action_dim=10"):
        model.rollout(z, torch.zeros(4, 1, 2), torch.zeros(4, 3, 2))
    with pytest.raises(ValueError, match=r"\(\.\.\., 2, D\)"):
        model.rollout(torch.zeros(4, 1, 2), torch.zeros(4, 1, 10), torch.zeros(4, 3, 10))
    with pytest.raises(ValueError, match=r"\(\.\.\., 1, A\)"):
        model.rollout(z, torch.zeros(4, 0, 10), torch.zeros(4, 3, 10))


def test_rollout_with_wrong_action_dim_raises_value_error_naming_action_dim() -> None:
    model = make_model(num_hist=2, frameskip=5)
    with pytest.raises(ValueError, match="action_dim=10"):
        model.rollout(torch.zeros(4, 2, 2), torch.zeros(4, 1, 10), torch.zeros(4, 3, 2))


def test_config_validation_and_dict_round_trip() -> None:
    cfg = WorldModelConfig(obs_dim=3, env_action_dim=2, frameskip=4, num_hist=2, encoder="mlp")
    assert cfg.action_dim == 8
    assert WorldModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        WorldModelConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="frameskip"):
        WorldModelConfig(obs_dim=3, env_action_dim=2, frameskip=0)
    with pytest.raises(ValueError, match="encoder"):
        WorldModelConfig(obs_dim=3, env_action_dim=2, encoder="cnn")


# ------------------------------------------------------------------- loss
@pytest.mark.parametrize("num_hist, encoder", [(1, "identity"), (2, "identity"), (1, "mlp")])
def test_loss_decreases_on_a_known_linear_system(num_hist: int, encoder: str) -> None:
    model = make_model(num_hist=num_hist, encoder=encoder, seed=4)
    obs, actions = linear_system_data(64, 6, seed=1)
    history = fit_model(model, obs, actions, steps=100, lr=1e-2)
    assert all(torch.isfinite(torch.tensor(history)))
    assert history[-1] < 0.05 * history[0]
    # the trained model generalises to held-out data of the same system
    test_obs, test_actions = linear_system_data(32, 6, seed=2)
    out = TeacherForcingLoss(model)(
        TensorDict({"observation": test_obs, "action": test_actions}, batch_size=[32])
    )
    assert out["loss_prediction"] < 0.1 * history[0]
    if encoder == "identity":
        assert out["loss_prediction"] < 1e-3
    assert out["prediction_error"].shape == (6 - num_hist,)
    assert not out["prediction_error"].requires_grad
    if encoder == "mlp":
        assert "loss_reconstruction" in out.keys()


def test_loss_output_keys_and_gradients() -> None:
    model = make_model(encoder="mlp")
    obs, actions = linear_system_data(4, 5)
    out = TeacherForcingLoss(model)(TensorDict({"observation": obs, "action": actions}, batch_size=[4]))
    assert set(out.keys()) == {"loss_prediction", "loss_reconstruction", "prediction_error"}
    (out["loss_prediction"] + out["loss_reconstruction"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_the_loss_reads_the_models_observation_keys_and_set_keys_remaps_the_others() -> None:
    model = make_model(seed=5)
    obs, actions = linear_system_data(4, 5)
    loss = TeacherForcingLoss(model)
    reference = loss(TensorDict({"observation": obs, "action": actions}, batch_size=[4]))["loss_prediction"]
    renamed = TensorDict({"state_obs": obs, "action": actions}, batch_size=[4])
    with pytest.raises(KeyError, match="observation"):
        loss(renamed)
    keyed = StateWorldModel(model.config, observation_key="state_obs")
    keyed.load_state_dict(model.state_dict())
    torch.testing.assert_close(TeacherForcingLoss(keyed)(renamed)["loss_prediction"], reference)
    # a latent written into the batch is used as is, under the key set_keys names
    nested = TensorDict({("data", "z"): model.encode(obs).detach(), ("data", "act"): actions}, batch_size=[4])
    loss.set_keys(latent=("data", "z"), action=("data", "act"))
    assert loss.tensor_keys.latent == ("data", "z")
    torch.testing.assert_close(loss(nested)["loss_prediction"], reference)


@pytest.mark.parametrize("num_hist", [1, 2])
def test_perturbations_change_the_inputs_but_targets_stay_clean(num_hist: int) -> None:
    model = make_model(num_hist=num_hist, seed=6)
    obs, actions = linear_system_data(4, 6, seed=3)
    g = torch.Generator().manual_seed(0)
    model.fit_normalization(obs, actions * 0.5 + 0.2)  # non-trivial action statistics
    loss = TeacherForcingLoss(model)
    clean = TensorDict({"observation": obs, "action": actions}, batch_size=[4])
    base = loss(clean)["loss_prediction"]
    z = model.encode(obs).detach()
    e = model.embed_actions(model.normalize_action(actions)).detach()

    # zero perturbations change nothing
    zero = clean.clone().update({"latent_perturbation": torch.zeros_like(z),
                                 "action_embedding_perturbation": torch.zeros_like(e)})
    torch.testing.assert_close(loss(zero)["loss_prediction"], base)

    dz = 0.3 * torch.randn(z.shape, generator=g)
    de = 0.3 * torch.randn(e.shape, generator=g)
    for entries in ({"latent_perturbation": dz}, {"action_embedding_perturbation": de},
                    {"latent_perturbation": dz, "action_embedding_perturbation": de}):
        entries = {k: v.clone().requires_grad_(True) for k, v in entries.items()}
        model.zero_grad()
        out = loss(clean.clone().update(entries))["loss_prediction"]
        assert not torch.allclose(out, base)
        # reference: predict from the perturbed inputs, regress onto the clean encoded targets
        z_in = z + entries.get("latent_perturbation", torch.zeros_like(z)).detach()
        e_in = e + entries.get("action_embedding_perturbation", torch.zeros_like(e)).detach()
        errors = []
        for t in range(6 - num_hist):
            pred = model.predict(z_in[:, t:t + num_hist], e_in[:, t:t + num_hist])
            errors.append((pred - z[:, t + num_hist]).pow(2).mean(-1))
        torch.testing.assert_close(out, torch.stack(errors, 1).mean())
        out.backward()
        # the action encoder still learns; the perturbations themselves get no gradient
        assert model.action_encoder.linear.weight.grad.abs().sum() > 0
        assert all(v.grad is None for v in entries.values())


def test_loss_reads_env_unit_actions_and_normalises_them() -> None:
    model = make_model(seed=8)
    obs, actions = linear_system_data(4, 5)
    model.fit_normalization(obs, actions * 3.0 - 1.0)
    loss = TeacherForcingLoss(model)
    out = loss(TensorDict({"observation": obs, "action": actions}, batch_size=[4]))["loss_prediction"]
    z = model.encode(obs)
    errors = torch.stack([
        (model.step(z[:, t:t + 1], model.normalize_action(actions[:, t:t + 1])) - z[:, t + 1]).pow(2).mean(-1)
        for t in range(4)], 1)
    torch.testing.assert_close(out, errors.mean())
    # feeding already-normalised actions is a different (wrong) input
    wrong = loss(TensorDict({"observation": obs, "action": model.normalize_action(actions)}, batch_size=[4]))
    assert not torch.allclose(wrong["loss_prediction"], out)


def test_loss_rejects_bad_shapes() -> None:
    loss = TeacherForcingLoss(make_model(num_hist=2))
    with pytest.raises(ValueError, match="T > num_hist=2"):
        loss(TensorDict({"observation": torch.zeros(4, 2, 2), "action": torch.zeros(4, 1, 2)}, batch_size=[4]))
    with pytest.raises(ValueError, match="T - 1"):
        loss(TensorDict({"observation": torch.zeros(4, 5, 2), "action": torch.zeros(4, 5, 2)}, batch_size=[4]))


# -------------------------------------------- TorchRL's CEMPlanner over WorldModelEnv
@pytest.mark.parametrize("kind", ["cem", "mppi"])
def test_torchrl_planners_drive_the_model_toward_the_goal(kind: str) -> None:
    model = make_model(seed=7)
    obs, actions = linear_system_data(256, 4, seed=4)
    history = fit_model(model, obs, actions, steps=300, lr=3e-3)
    assert history[-1] < 1e-3

    wall_env = WallTask().make_env(num_envs=3, seed=0)
    planner = make_torchrl_planner(kind, model, wall_env, horizon=3, samples=64, elites=8, iterations=5)
    low, high = planner.env.action_spec.space.low, planner.env.action_spec.space.high

    start = torch.tensor([[0.0, 0.0], [0.3, -0.2], [-0.5, 0.5]])
    direction = torch.tensor([[0.3, 0.0], [0.0, -0.3], [-0.2, -0.2]])
    with torch.no_grad():
        td = reset_planning_env(planner, model.encode(start), model.encode(start + direction))
        assert not td["done"].any()
        torch.manual_seed(0)  # TorchRL's planners sample from the global RNG
        action = planner(td)["action"]
    assert action.shape == (3, model.action_dim)
    assert torch.isfinite(action).all()
    assert ((action >= low - 1e-6) & (action <= high + 1e-6)).all()
    env_action = model.denormalize_action(action)
    cosine = torch.nn.functional.cosine_similarity(env_action, direction, dim=-1)
    assert (cosine > 0.9).all(), cosine


# ------------------------------------------------------------------ dropout
def test_dropout_is_off_by_default_acts_in_train_mode_only_and_changes_no_parameter(tmp_path) -> None:
    from torchrl_gbp.models import PixelWorldModel, PixelWorldModelConfig
    from torchrl_gbp.models.predictors import FrameCausalAttention

    model = make_model(depth=2).train()
    z, e = torch.randn(16, 1, 2), torch.randn(16, 1, 8)
    assert model.config.dropout == 0 and torch.equal(model.predictor(z, e), model.predictor(z, e))
    names = list(model.state_dict())
    model.set_dropout(0.5)
    assert list(model.state_dict()) == names and model.config.dropout == 0.5
    assert not torch.equal(model.predictor(z, e), model.predictor(z, e))  # train mode: dropout draws
    model.eval()
    assert torch.equal(model.predictor(z, e), model.predictor(z, e))
    save_checkpoint(tmp_path / "dropout.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "dropout.pt")
    assert loaded.config.dropout == 0.5 and torch.equal(loaded.eval().predictor(z, e), model.predictor(z, e))
    # a checkpoint of a config from before the option (no "dropout" key) loads with none
    assert WorldModelConfig.from_dict({k: v for k, v in model.config.to_dict().items() if k != "dropout"}).dropout == 0

    config = PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2,
                                   encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8})
    pixel = PixelWorldModel(config)
    pixel.set_dropout(0.1)
    rates = [m.p for m in pixel.predictor.modules() if isinstance(m, torch.nn.Dropout)]
    rates += [m.dropout for m in pixel.predictor.modules() if isinstance(m, FrameCausalAttention)]
    assert len(rates) == 4 * config.depth and set(rates) == {0.1}
    with pytest.raises(ValueError, match="dropout"):
        model.set_dropout(1.0)
    with pytest.raises(ValueError, match="dropout"):
        WorldModelConfig(obs_dim=2, env_action_dim=2, dropout=-0.1)


def test_parameter_groups_can_train_the_proprio_encoder_with_the_action_encoder() -> None:
    from torchrl_gbp.models import PixelWorldModel, PixelWorldModelConfig
    from torchrl_gbp.train import parameter_groups

    model = PixelWorldModel(PixelWorldModelConfig(image_size=16, proprio_dim=2, env_action_dim=2,
                                                  encoder_options={"patch_size": 8, "token_dim": 4, "hidden_dim": 8}))
    ours = parameter_groups(model, 0.0, predictor_lr=1e-4, action_encoder_lr=5e-4)
    reference = parameter_groups(model, 0.0, predictor_lr=1e-5, action_encoder_lr=5e-4, proprio_encoder_lr=5e-4)
    proprio = {id(p) for p in model.proprio_encoder.parameters()}
    assert [g["name"] for g in ours] == ["predictor", "action_encoder"]
    assert proprio <= {id(p) for p in ours[0]["params"]}  # ours: a part of the predictor
    by_name = {g["name"]: g for g in reference}
    assert {id(p) for p in by_name["proprio_encoder"]["params"]} == proprio and by_name["proprio_encoder"]["lr"] == 5e-4
    assert not proprio & {id(p) for p in by_name["predictor"]["params"]}
    assert sum(len(g["params"]) for g in reference) == sum(len(g["params"]) for g in ours)
    state = make_model()
    assert parameter_groups(state, 0.0, predictor_lr=1e-5, proprio_encoder_lr=5e-4)[0]["name"] == "predictor"
