"""Pixel world models end to end: encoder hook, frame-causal predictor, pixel datasets, planning and synthesis."""
from __future__ import annotations

import pytest
import torch
from tensordict import MemoryMappedTensor, TensorDict
from torchrl.data import Unbounded
from torchrl.envs import Compose, ObservationTransform, Resize, ToTensorImage, TransformedEnv
from torchrl.envs.utils import check_env_specs
from torchrl.record import CSVLogger, VideoRecorder

from torchrl_gbp.data import load_dataset, make_window_buffer
from torchrl_gbp.diagnostics import goal_cost_agreement
from torchrl_gbp.experiments.pipeline import make_policy, model_config
from torchrl_gbp.experiments.recipes import apply_profile, recipe_for
from torchrl_gbp.models import (
    BlurPoolEncoder,
    DINOv2Encoder,
    FrameCausalTransformerPredictor,
    PatchAutoencoder,
    PixelWorldModel,
    PixelWorldModelConfig,
    TeacherForcingLoss,
    fit_patch_autoencoder,
    load_checkpoint,
    save_checkpoint,
)
from torchrl_gbp.planners import (
    CEMOptions,
    GoalCost,
    GradientOptions,
    MPCPolicy,
    MPPIOptions,
    make_planner,
    planning_inputs,
)
from torchrl_gbp.synthesis import AdversarialOptions, AdversarialSynthesis, OnlineOptions, OnlineSynthesis
from torchrl_gbp.tasks import PixelTask, WallTask, make_task
from torchrl_gbp.train import build_world_model, train_world_model

SIZE = 16
PATCH = {"patch_size": 8, "token_dim": 4, "hidden_dim": 8}
TINY_DINO = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 32,
             "patch_size": 7, "image_size": 14}


@pytest.fixture(scope="module")
def task() -> PixelTask:
    return PixelTask(WallTask(), image_size=SIZE)


@pytest.fixture(scope="module")
def data(task, tmp_path_factory):
    path = task.write_dataset(tmp_path_factory.mktemp("pixels") / "wall", 24, seed=0)
    return load_dataset(path)


def tiny_config(num_hist: int = 2, **kwargs) -> PixelWorldModelConfig:
    return PixelWorldModelConfig(image_size=SIZE, proprio_dim=2, env_action_dim=2, frameskip=5, num_hist=num_hist,
                                 encoder_options=dict(PATCH), hidden_dim=16, depth=1, heads=2, **kwargs)


@pytest.fixture(scope="module")
def model(data) -> PixelWorldModel:
    torch.manual_seed(0)
    return build_world_model(tiny_config(), data, encoder_steps=20)


# ------------------------------------------------------------------ observations and datasets
def test_pixel_observations_are_keyed_uint8_pixels_and_proprio(task):
    states = torch.tensor([[-0.5, 0.3], [0.6, -0.2]])
    obs = task.observe(states)
    assert list(obs) == ["pixels", "proprio"] == list(task.observation_keys)
    assert obs["pixels"].dtype == torch.uint8 and torch.equal(obs["pixels"], task.render(states))
    assert torch.equal(obs["proprio"], task.proprio_from_state(states))
    with pytest.raises(TypeError, match="keyed"):
        task.observation_from_state(states)
    with pytest.raises(AttributeError, match="obs_dim"):
        task.obs_dim


def test_pixel_env_passes_spec_checks_and_starts_from_chosen_pairs(task):
    env = task.make_env(num_envs=2, seed=0)
    check_env_specs(env)
    spec = env.observation_spec
    assert spec["pixels"].dtype == torch.uint8 and spec["pixels"].shape == (2, SIZE, SIZE, 3)
    assert spec["goal", "pixels"].shape == (2, SIZE, SIZE, 3) and spec["goal", "proprio"].shape == (2, 2)
    start, goal = torch.tensor([[-0.5, 0.5], [-0.4, -0.4]]), torch.tensor([[0.5, 0.5], [0.6, -0.3]])
    td = env.reset(TensorDict({"start_state": start, "goal_state": goal}, [2]), set_state=True)
    for key, value in task.observe(start).items():
        assert torch.equal(td[key], value)
    for key, value in task.observe(goal).items():
        assert torch.equal(td["goal", key], value)
    after = env.rand_step(td)["next"]
    assert torch.equal(after["goal", "pixels"], td["goal", "pixels"])  # the goal image is observed once per reset


def test_pixel_dataset_is_memory_mapped_and_the_buffer_reads_it_without_a_copy(data):
    assert isinstance(data["pixels"], MemoryMappedTensor) and data["pixels"].dtype == torch.uint8
    assert data["pixels"].shape == (24, WallTask().episode_steps, SIZE, SIZE, 3) and "observation" not in data.keys()
    buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=4)
    stored = buffer.storage._storage["pixels"]
    assert stored.untyped_storage().data_ptr() == data["pixels"].untyped_storage().data_ptr()
    batch = buffer.sample()
    assert batch["pixels"].shape == (4, 3, SIZE, SIZE, 3) and batch["pixels"].dtype == torch.uint8
    assert batch["proprio"].shape == (4, 3, 2) and "observation" not in batch.keys()
    rows = batch["episode"]
    # every window's first frame is a frame of its own trajectory in the dataset
    frames = data["pixels"][rows]  # (4, T, S, S, 3)
    assert all((frames[i] == batch["pixels"][i, 0]).flatten(-3).all(-1).any() for i in range(4))


def test_same_seed_writes_the_same_pixel_dataset(task, data, tmp_path):
    again = load_dataset(task.write_dataset(tmp_path / "again", 24, seed=0))
    assert torch.equal(again["pixels"], data["pixels"]) and torch.equal(again["proprio"], data["proprio"])


# ------------------------------------------------------------------ encoders
def test_patch_autoencoder_learns_the_task_images_and_is_frozen_after(data):
    torch.manual_seed(0)
    autoencoder = PatchAutoencoder(SIZE, **PATCH)
    images = data["pixels"].reshape(-1, SIZE, SIZE, 3)
    losses = fit_patch_autoencoder(autoencoder, images, steps=150, batch_size=32,
                                   generator=torch.Generator().manual_seed(0))
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10
    assert not autoencoder.training and not any(p.requires_grad for p in autoencoder.parameters())


def test_foreground_weighting_makes_the_autoencoder_see_the_small_agent():
    task = PixelTask(WallTask(), image_size=32)
    images = task.generate_dataset(30, seed=0)["pixels"].reshape(-1, 32, 32, 3)
    test = task.render(torch.tensor([[-0.5, 0.4], [0.5, -0.4], [0.3, 0.6]]))
    unit = test.permute(0, 3, 1, 2).float() / 255
    agent = (unit[:, 0] - unit[:, 1]) > 0.3  # the red dot

    def agent_redness(weight: float) -> float:
        torch.manual_seed(0)
        autoencoder = PatchAutoencoder(32, patch_size=8, token_dim=8, hidden_dim=16)
        fit_patch_autoencoder(autoencoder, images, steps=150, batch_size=32, lr=3e-3,
                              generator=torch.Generator().manual_seed(0), foreground_weight=weight)
        with torch.no_grad():
            rebuilt = autoencoder.decode(autoencoder(unit))
        return float((rebuilt[:, 0] - rebuilt[:, 1])[agent].mean())

    assert agent_redness(50.0) > agent_redness(0.0) + 0.1
    with pytest.raises(ValueError, match="foreground_weight"):
        fit_patch_autoencoder(PatchAutoencoder(32, patch_size=8), images, steps=1, foreground_weight=-1.0)


@pytest.fixture(scope="module")
def maze():
    task = make_task("pointmaze", obs="pixels", image_size=32)
    return task, task.generate_dataset(8, seed=0)


def blur_model(data, sigma: float) -> PixelWorldModel:
    config = PixelWorldModelConfig(image_size=32, proprio_dim=4, env_action_dim=2, num_hist=1, encoder="blur",
                                   encoder_options={"patch_size": 8, "pool": 2, "sigma": sigma}, hidden_dim=16,
                                   depth=1, heads=2)
    return build_world_model(config, data)


def test_blurred_tokens_rank_goal_distance_where_sharp_ones_cannot(maze):
    task, data = maze
    tokens_only = GoalCost("last", alpha=0.0, proprio_dim=4)
    sharp = goal_cost_agreement(blur_model(data, 0.5), task, tokens_only, num_pairs=64)["latent"]
    blurred = goal_cost_agreement(blur_model(data, 4.0), task, tokens_only, num_pairs=64)["latent"]
    assert blurred > 0.9 and blurred > sharp + 0.2


def test_blur_encoder_keeps_its_mean_image_through_a_checkpoint_and_decodes(maze, tmp_path):
    task, data = maze
    model = blur_model(data, 4.0)
    encoder = model.image_encoder
    assert encoder.background.abs().sum() > 0 and not list(encoder.parameters())  # weight-free
    save_checkpoint(tmp_path / "blur.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "blur.pt")
    obs = task.observe(task.sample_start_goal(3, torch.Generator().manual_seed(0))[0]).values()
    assert isinstance(loaded.image_encoder, BlurPoolEncoder) and torch.equal(loaded.encode(*obs), model.encode(*obs))
    images = model.decode(model.encode(*obs))
    assert images.shape == (3, 32, 32, 3) and 0 <= images.min() and images.max() <= 1


def test_blur_encoder_rejects_bad_sizes_and_images():
    with pytest.raises(ValueError, match="patch_size=5"):
        BlurPoolEncoder(image_size=32, patch_size=5)
    with pytest.raises(ValueError, match="sigma"):
        BlurPoolEncoder(image_size=32, patch_size=8, pool=2, sigma=0.0)
    encoder = BlurPoolEncoder(image_size=32, patch_size=8, pool=2)
    with pytest.raises(ValueError, match=r"\(B, 3, 32, 32\)"):
        encoder(torch.rand(2, 3, 16, 16))
    with pytest.raises(ValueError, match="uint8"):
        encoder.fit_background(torch.rand(2, 32, 32, 3))


def test_dinov2_adapter_plugs_in_and_round_trips_through_a_checkpoint(data, tmp_path):
    encoder = DINOv2Encoder.from_config(TINY_DINO, input_size=14)
    config = PixelWorldModelConfig(image_size=SIZE, proprio_dim=2, env_action_dim=2, num_hist=1, encoder="dinov2",
                                   encoder_options=encoder.config_dict(), hidden_dim=16, depth=1, heads=2)
    model = build_world_model(config, data)
    obs = PixelTask(WallTask(), SIZE).observe(torch.rand(3, 2) - 0.5).values()
    z = model.encode(*obs)
    assert z.shape == (3, encoder.num_tokens * 16 + 2)
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    save_checkpoint(tmp_path / "dino.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "dino.pt")
    assert isinstance(loaded.image_encoder, DINOv2Encoder) and torch.equal(loaded.encode(*obs), z)


def test_dinov2_from_pretrained_reads_a_local_folder_and_never_downloads(tmp_path):
    encoder = DINOv2Encoder.from_config(TINY_DINO, input_size=14)
    encoder.model.save_pretrained(tmp_path / "weights")
    again = DINOv2Encoder.from_pretrained(tmp_path / "weights", input_size=14)
    images = torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(again(images), encoder(images))
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        DINOv2Encoder.from_pretrained(tmp_path / "missing")


def test_any_frozen_module_is_an_encoder_and_must_be_given_again_to_load(data, tmp_path):
    class MeanPatches(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(()))

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            patches = torch.nn.functional.avg_pool2d(images, 8)  # (B, 3, 2, 2)
            return self.scale * patches.flatten(2).transpose(1, 2)  # (B, 4, 3)

    model = PixelWorldModel(tiny_config(num_hist=1, encoder="custom"), image_encoder=MeanPatches())
    assert model.latent_dim == 4 * 3 + 2
    save_checkpoint(tmp_path / "custom.pt", model)
    with pytest.raises(ValueError, match="image_encoder"):
        load_checkpoint(tmp_path / "custom.pt")
    loaded, _ = load_checkpoint(tmp_path / "custom.pt", image_encoder=MeanPatches())
    obs = torch.randint(0, 256, (2, SIZE, SIZE, 3), dtype=torch.uint8), torch.rand(2, 2)
    assert torch.equal(loaded.encode(*obs), model.encode(*obs))


def test_an_encoder_must_return_tokens():
    with pytest.raises(ValueError, match=r"tokens \(B, N, D\)"):
        PixelWorldModel(tiny_config(encoder="custom"), image_encoder=torch.nn.Flatten())


# ------------------------------------------------------------------ predictor
def test_a_token_never_attends_to_a_later_frame():
    torch.manual_seed(0)
    predictor = FrameCausalTransformerPredictor(4, 3, proprio_dim=2, action_embed_dim=5, num_hist=3, width=16)
    z, e = torch.randn(2, 3, 14), torch.randn(2, 3, 5)
    out = predictor.forward_frames(z, e)
    later = z.clone()
    later[:, 2] += torch.randn(2, 14)
    changed = predictor.forward_frames(later, e)
    assert torch.allclose(changed[:, :2], out[:, :2], atol=1e-6)  # frames 0 and 1 never see frame 2
    assert not torch.allclose(changed[:, 2], out[:, 2])
    earlier = z.clone()
    earlier[:, 0] += torch.randn(2, 14)
    assert not torch.allclose(predictor.forward_frames(earlier, e)[:, 2], out[:, 2])  # frame 2 sees frame 0


def test_pixel_model_learns_next_frames(data):
    torch.manual_seed(0)
    model = build_world_model(tiny_config(), data, encoder_steps=20)
    buffer = make_window_buffer(data, frames=4, frameskip=5, batch_size=16, generator=torch.Generator().manual_seed(0))
    loss = TeacherForcingLoss(model)
    before = sum(loss(buffer.sample())["loss_prediction"].item() for _ in range(3))
    train_world_model(model, buffer, 60, lr=3e-3, progress=False)
    after = sum(loss(buffer.sample())["loss_prediction"].item() for _ in range(3))
    assert after < 0.7 * before


def test_checkpoint_rebuilds_the_same_pixel_model(model, tmp_path):
    save_checkpoint(tmp_path / "pixel.pt", model, extra={"task": "wall"})
    loaded, extra = load_checkpoint(tmp_path / "pixel.pt")
    assert isinstance(loaded, PixelWorldModel) and extra == {"task": "wall"}
    obs = torch.randint(0, 256, (3, 2, SIZE, SIZE, 3), dtype=torch.uint8), torch.rand(3, 2, 2)
    z = model.encode(*obs)
    actions = torch.randn(3, 4, model.action_dim)
    assert torch.equal(loaded.encode(*obs), z)
    assert loaded.observation_keys == ("pixels", "proprio") and loaded.goal_keys == (("goal", "pixels"),
                                                                                     ("goal", "proprio"))
    assert torch.equal(loaded.rollout(z, actions[:, :1], actions), model.rollout(z, actions[:, :1], actions))


# ------------------------------------------------------------------ planning and synthesis
@pytest.mark.parametrize("planner", ["gd", "cem", "mppi"])
def test_every_planner_plans_from_pixels_in_an_env_rollout(model, task, planner):
    budget = {"gd": GradientOptions(steps=5), "cem": CEMOptions(samples=16, elites=4, iterations=2),
              "mppi": MPPIOptions(samples=16, elites=4, iterations=2)}[planner]
    recipe = apply_profile(recipe_for("wall", obs="pixels"), {"evaluation.horizon": 3})
    policy = make_policy(model, task, budget, recipe)
    env = task.make_env(num_envs=2, seed=0)
    rollout = env.rollout(7, policy, break_when_any_done=False)
    low, high = env.action_spec.space.low[:, None], env.action_spec.space.high[:, None]
    assert rollout["action"].shape == (2, 7, 2)
    assert ((rollout["action"] >= low) & (rollout["action"] <= high)).all()


def test_gradient_planning_lowers_the_goal_cost_over_tokens(model, task):
    start, goal = torch.tensor([[-0.6, -0.5], [-0.5, 0.6]]), torch.tensor([[0.6, 0.5], [0.5, -0.6]])
    z_hist, a_hist, z_goal = planning_inputs(model, task.observe(start), task.observe(goal))
    objective = GoalCost(proprio_dim=2)
    zero = torch.zeros(2, 4, model.action_dim)
    before = objective(model.rollout(z_hist, a_hist, zero), z_goal)
    result = make_planner("gd", model, 4, objective, steps=30, lr=0.2).plan(z_hist, a_hist, z_goal, init=zero)
    assert (result.cost < before).all()


def test_adversarial_radii_are_per_slice_on_pixel_latents(model, data):
    synthesis = AdversarialSynthesis(model,
                                     generator=torch.Generator().manual_seed(0),
                                     options=AdversarialOptions(latent_factor=0.05, proprio_factor=0.02, action_factor=0.02))
    buffer = make_window_buffer(data, frames=4, frameskip=5, batch_size=8, transform=synthesis,
                                generator=torch.Generator().manual_seed(0))
    batch = buffer.sample()
    dz = batch["latent_perturbation"]
    visual = model.latent_dim - 2
    assert dz.shape == (8, 4, model.latent_dim)
    eps_visual, eps_proprio, _ = synthesis.eps.tolist()
    assert 0 < dz[..., :visual].abs().max() <= eps_visual + 1e-6
    assert 0 < dz[..., visual:].abs().max() <= eps_proprio + 1e-6
    assert eps_visual != pytest.approx(eps_proprio)
    out = TeacherForcingLoss(model)(batch)
    assert torch.isfinite(out["loss_prediction"])


def test_online_synthesis_executes_pixel_plans_in_the_simulator(model, task, data):
    synthesis = OnlineSynthesis(model, task.make_env, every=1, fraction=0.5, seed=0, options=OnlineOptions(capacity=16, planner_steps=3))
    buffer = make_window_buffer(data, frames=4, frameskip=5, batch_size=4, transform=synthesis,
                                generator=torch.Generator().manual_seed(0))
    batch = buffer.sample()
    synthetic = batch["synthetic"]
    assert synthetic.sum() == 2
    # a synthetic window's frames are the rendered simulator states it reached
    rows = synthetic.nonzero().squeeze(-1)
    for key, value in task.observe(batch["state"][rows]).items():
        assert torch.equal(value, batch[key][rows]), key
    torch.testing.assert_close(batch["latent"][rows], model.encode(batch["pixels"][rows], batch["proprio"][rows]))


def test_pixel_recipe_and_config_follow_the_task(task):
    recipe = recipe_for("wall", obs="pixels")
    config = model_config(make_task("wall", obs="pixels"), recipe)
    assert isinstance(config, PixelWorldModelConfig) and config.num_hist == 1 and config.image_size == 64
    assert recipe_for("reacher", obs="pixels").model.num_hist == 3  # the pixel default, DINO-WM's history
    assert recipe_for("pusht", obs="pixels").model.num_hist == 1  # as its state model: budget
    assert recipe_for("pointmaze", obs="pixels").model.num_hist == 1  # its proprio carries the velocity
    with pytest.raises(ValueError, match="obs must be one of"):
        make_task("wall", obs="depth")


def test_diagnose_pixel_checkpoints_draws_real_and_predicted_frames(model, tmp_path):
    from torchrl_gbp.experiments.diagnostics import diagnose

    save_checkpoint(tmp_path / "base.pt", model, extra={"task": "wall"})
    result = diagnose("wall", {"base": tmp_path / "base.pt"}, tmp_path / "diag", num_pairs=2, landscape_pairs=1,
                      planner_steps=3, resolution=3)
    assert result["paths"]["frames_base"].stat().st_size > 0 and result["paths"]["plot"].exists()
    assert "base" in result["table"]


# ------------------------------------------------------------------ TorchRL's image transforms in front of the policy
def _gd_policy(model, env, steps: int = 2) -> MPCPolicy:
    return MPCPolicy(make_planner("gd", model, 3, action_spec=env.action_spec, steps=steps), env.action_spec)


def test_float_images_from_to_tensor_image_encode_as_their_uint8_pixels(model, task):
    env = TransformedEnv(task.make_env(num_envs=2, seed=0),
                         ToTensorImage(in_keys=["pixels", ("goal", "pixels")]))
    td = env.reset()
    assert td["pixels"].dtype == torch.float32 and td["pixels"].shape == (2, 3, SIZE, SIZE)
    uint8 = task.make_env(num_envs=2, seed=0).reset()
    torch.testing.assert_close(model.encode(td["pixels"], td["proprio"]),
                               model.encode(uint8["pixels"], uint8["proprio"]))


class BilinearResize(ObservationTransform):
    """TorchRL's ``Resize`` where torchvision imports, else the same bilinear resize in plain torch.

    TorchRL's ``Resize`` runs torchvision, and PyPI's torchvision does not import beside the CPU build of torch
    2.13.0 this project pins ("operator torchvision::nms does not exist"); either way a resizing observation
    transform sits between the env and the policy.
    """

    def __init__(self, size: int, in_keys: list) -> None:
        super().__init__(in_keys=in_keys, out_keys=in_keys)
        self.size = size

    def _apply_transform(self, images: torch.Tensor) -> torch.Tensor:
        flat = images.reshape(-1, *images.shape[-3:])
        out = torch.nn.functional.interpolate(flat, size=(self.size, self.size), mode="bilinear", antialias=True)
        return out.reshape(*images.shape[:-2], self.size, self.size)

    def _reset(self, tensordict, tensordict_reset):
        return self._call(tensordict_reset)

    def transform_observation_spec(self, observation_spec):
        for key in self.in_keys:
            spec = observation_spec[key]
            observation_spec[key] = Unbounded(shape=(*spec.shape[:-2], self.size, self.size), dtype=spec.dtype,
                                              device=spec.device)
        return observation_spec


def resize(size: int, in_keys: list):
    try:
        import torchvision  # noqa: F401
    except (ImportError, RuntimeError):
        return BilinearResize(size, in_keys)
    return Resize(size, size, in_keys=in_keys)


def test_to_tensor_image_and_resize_in_front_of_a_pixel_policy_in_env_rollout(model):
    big = PixelTask(WallTask(), image_size=2 * SIZE)  # the env renders twice the model's size; Resize brings it down
    keys = ["pixels", ("goal", "pixels")]
    env = TransformedEnv(big.make_env(num_envs=2, seed=0), Compose(ToTensorImage(in_keys=keys), resize(SIZE, keys)))
    check_env_specs(env)
    policy = _gd_policy(model, env)
    env.append_transform(policy.make_tensordict_primer())
    rollout = env.rollout(6, policy, break_when_any_done=False)
    assert rollout["pixels"].shape == (2, 6, 3, SIZE, SIZE) and rollout["action"].shape == (2, 6, 2)
    assert (rollout["action"].abs() <= 1).all()
    goal = rollout["goal", "pixels"][:, 0]
    torch.testing.assert_close(rollout["planner", "goal_latent"][:, 0],
                               model.encode(goal, rollout["goal", "proprio"][:, 0]))
    with pytest.raises(ValueError, match=f"{SIZE}x{SIZE} images"):  # without Resize the sizes disagree
        _gd_policy(model, env)(TransformedEnv(big.make_env(num_envs=2), ToTensorImage(in_keys=keys)).reset())


def test_a_video_recorder_records_the_uint8_pixels_of_a_pixel_env(model, task, tmp_path):
    logger = CSVLogger(exp_name="video", log_dir=str(tmp_path), video_format="pt")
    recorder = VideoRecorder(logger, tag="wall", in_keys=["pixels"], skip=1)
    env = TransformedEnv(task.make_env(num_envs=1, seed=0), recorder)
    policy = _gd_policy(model, env)
    env.append_transform(policy.make_tensordict_primer())
    env.rollout(5, policy, break_when_any_done=False)
    recorder.dump()
    videos = list(tmp_path.rglob("*.pt"))
    assert len(videos) == 1
    frames = torch.load(videos[0])
    assert frames.dtype == torch.uint8 and frames.shape[-3:] == (3, SIZE, SIZE) and frames.shape[-4] >= 5


def test_a_pixel_mpc_rollout_keeps_uint8_images_and_latent_policy_state(model, task):
    env = task.make_env(num_envs=2, seed=0)
    policy = _gd_policy(model, env)
    env.append_transform(policy.make_tensordict_primer())
    rollout = env.rollout(3, policy, break_when_any_done=False)
    floats = [k for k, v in rollout.items(True, True) if v.is_floating_point() and v.shape[-1] == SIZE * SIZE * 3]
    assert floats == [] and rollout["pixels"].dtype == torch.uint8
    assert "planner" not in rollout["next"].keys()  # the policy's state is stored once per step
    assert rollout["planner", "latent_history"].shape == (2, 3, model.num_hist, model.latent_dim)
