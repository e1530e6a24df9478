"""Adversarial World Modeling: FGSM perturbations of the encoded inputs, as a replay-buffer transform."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tensordict import TensorDictBase
from tensordict.utils import NestedKey
from torchrl.envs import Transform

from torchrl_gbp.models.contract import (
    PlanningWorldModel,
    PredictorModel,
    action_interface,
    predictor_inputs,
    proprio_dim,
    require,
)
from torchrl_gbp.models.loss import prediction_error

from .common import (
    check_fraction,
    choose_rows,
    synthesis_mode,
    window_inputs,
)

RADIUS_MODES = ("adaptive", "fixed")
# How a slice's spread is measured: over the whole batch (ours), or per window then averaged (the reference code's).
RADIUS_STATISTICS = ("batch", "per_window")
# The model's mode while the attack runs: eval (ours) or train, dropout on (the reference code's).
ATTACK_MODES = ("eval", "train")


@dataclass(frozen=True)
class AdversarialOptions:
    """How :class:`AdversarialSynthesis` searches its perturbations (defaults: the paper's).

    Args:
        latent_factor, proprio_factor, action_factor: radius factors (>= 0) of
            the main latent, proprio and action slices (``eps = factor * std(slice)``).
        radius: ``"adaptive"`` measures the stds on every batch; ``"fixed"``
            measures them on the first batch and keeps them.
        radius_statistic: ``"batch"``: a slice's std over the batch, time and
            entries; ``"per_window"`` (the reference code's): the std over each
            window's input frames (all but the last; for the action slice
            all its steps) and entries, averaged over the batch; on models with
            a ``token_copies`` attribute (DINO-WM's: ``(proprio, action)``) each
            proprio and action-embedding entry counts once per token it is
            concatenated onto, as in the reference's token layout.
        ascent_steps: gradient-sign steps (>= 1); 1 is FGSM with random start.
        step_size: step length in units of ``eps``.
        attack_mode: ``"eval"`` or ``"train"`` (the reference code's: dropout on): the model's mode
            during the attack.

    Example:
        >>> AdversarialOptions(ascent_steps=3).radius
        'adaptive'
        >>> AdversarialOptions(radius="sometimes")
        Traceback (most recent call last):
        ...
        ValueError: AdversarialOptions.radius must be one of ('adaptive', 'fixed'), got 'sometimes'
    """

    latent_factor: float = 0.05
    proprio_factor: float = 0.02
    action_factor: float = 0.02
    radius: str = "adaptive"
    radius_statistic: str = "batch"
    ascent_steps: int = 1
    step_size: float = 1.25
    attack_mode: str = "eval"

    def __post_init__(self) -> None:
        for name in ("latent_factor", "proprio_factor", "action_factor"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"AdversarialOptions.{name} must be >= 0, got {getattr(self, name)!r}")
        for name, allowed in (("radius", RADIUS_MODES), ("radius_statistic", RADIUS_STATISTICS),
                              ("attack_mode", ATTACK_MODES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"AdversarialOptions.{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if isinstance(self.ascent_steps, bool) or not isinstance(self.ascent_steps, int) or self.ascent_steps < 1:
            raise ValueError(f"AdversarialOptions.ascent_steps must be an int >= 1, got {self.ascent_steps!r}")
        if not self.step_size > 0:
            raise ValueError(f"AdversarialOptions.step_size must be > 0, got {self.step_size!r}")


def _std(x: torch.Tensor, statistic: str = "batch", copies: int = 1) -> torch.Tensor:
    """Std of a slice ``(B, T, n)``: over all entries, or (``"per_window"``) over each window's entries, each
    counted ``copies`` times, then averaged over the batch; zero for an empty slice."""
    if not x.numel():
        return x.new_zeros(())
    if statistic == "batch":
        return x.std()
    x = x.flatten(1)
    squares = (x - x.mean(dim=1, keepdim=True)).pow(2).sum(dim=1)
    return (copies * squares / (copies * x.shape[1] - 1)).sqrt().mean()


class AdversarialSynthesis(Transform):
    """Replay-buffer transform: adversarial perturbations of the encoded windows (latent FGSM).

    For every sampled batch of model-step windows (the model's observation
    entries ``(B, T, ...)`` and ``"action"`` ``(B, T - 1, action_dim)`` in env
    units, as :class:`~torchrl_gbp.data.ModelStepWindows` makes them) it takes
    the latents ``z`` (``"latent"``, encoded once per batch and written there
    for the loss and the other transforms, :func:`~torchrl_gbp.data.window_latents`)
    and what the predictor reads for the actions ``e`` (the action embeddings
    of an :class:`~torchrl_gbp.models.ActionEmbeddingModel`, the normalised
    model actions otherwise) as :class:`~torchrl_gbp.models.TeacherForcingLoss`
    does and, for a random ``round(fraction * B)`` rows, searches perturbations
    within per-slice radii ``eps = factor * std(slice)`` (std over batch, time
    and the slice's entries; slices: main latent, the trailing ``proprio_dim``
    proprio entries, action input): a uniform random start in ``[-eps, eps]``,
    then ``ascent_steps`` steps ``delta += step_size * eps * sign(grad)`` of the
    teacher-forcing prediction loss, clamped to ``[-eps, eps]`` (:meth:`attack`).
    The other rows get zero perturbations. The world model is any
    :class:`~torchrl_gbp.models.PlanningWorldModel` with a predictor
    (:class:`~torchrl_gbp.models.PredictorModel`).

    Returns a new TensorDict: the input entries (untouched, not copied) plus
    ``"latent_perturbation"`` ``(B, T, D)``, ``"action_embedding_perturbation"``
    ``(B, T - 1, E)`` (detached) and a bool ``"adversarial"`` ``(B,)`` flag.

    ``TeacherForcingLoss`` adds the perturbations to its inputs and keeps clean
    targets. The search runs with gradients enabled and the model in eval mode
    (``AdversarialOptions(attack_mode="train")``: train mode, dropout on, as the
    reference code attacks; its modes restored after either way), differentiates only the
    perturbations, and never writes ``.grad`` into the model.

    The model is held by reference, not as a submodule: replay buffers call
    ``eval()`` on their transforms and save their ``state_dict``, which must not
    touch the model being trained.

    Args:
        world_model: the model being trained.
        fraction: share of the batch rows that get perturbed, in ``[0, 1]``.
        options: the search's radii, steps and mode (:class:`AdversarialOptions`).
        generator: random source for the rows and starts (on the data's device).
        in_keys: the latent and action keys read (the latent is written there when missing).
        out_keys: the latent perturbation, action-embedding perturbation and flag keys written.

    Attributes:
        eps: buffer ``(3,)``: the radii of the main-latent, proprio and
            action-embedding slices last used (NaN before the first batch).
        The radii and the generator's state are in ``state_dict()``, so a
        fixed radius and the random stream survive checkpoints.

    Example:
        >>> from torchrl_gbp.data import make_window_buffer
        >>> from torchrl_gbp.models import WorldModelConfig
        >>> from torchrl_gbp.tasks import WallTask
        >>> from torchrl_gbp.train import build_world_model
        >>> data = WallTask().generate_dataset(20, seed=0)
        >>> model = build_world_model(WorldModelConfig(obs_dim=2, env_action_dim=2, frameskip=5), data)
        >>> buffer = make_window_buffer(data, frames=3, frameskip=5, batch_size=8,
        ...                             transform=AdversarialSynthesis(model, fraction=0.5))
        >>> batch = buffer.sample()
        >>> batch["latent_perturbation"].shape, int(batch["adversarial"].sum())
        (torch.Size([8, 3, 2]), 4)
    """

    def __init__(self, world_model: PlanningWorldModel, *, fraction: float = 1.0,
                 options: AdversarialOptions = AdversarialOptions(), generator: torch.Generator | None = None,
                 in_keys: Sequence[NestedKey] = ("latent", "action"),
                 out_keys: Sequence[NestedKey] = ("latent_perturbation", "action_embedding_perturbation",
                                                  "adversarial")) -> None:
        if len(in_keys) != 2 or len(out_keys) != 3:
            raise ValueError(f"in_keys must be (latent, action) and out_keys (latent perturbation, action "
                             f"embedding perturbation, flag); got {list(in_keys)} and {list(out_keys)}")
        require(world_model, PlanningWorldModel, "AdversarialSynthesis")
        require(world_model, PredictorModel, "AdversarialSynthesis")
        if not isinstance(options, AdversarialOptions):
            raise TypeError(f"options must be an AdversarialOptions, got {type(options).__name__}")
        super().__init__(in_keys=list(in_keys), out_keys=list(out_keys))
        object.__setattr__(self, "world_model", world_model)  # a reference, not a submodule (see docstring)
        object.__setattr__(self, "action_interface", action_interface(world_model))
        self.fraction = check_fraction(fraction)
        self.options = options
        self.generator = generator
        self.register_buffer("eps", torch.full((3,), float("nan")))
        self._fixed_measured = False  # "fixed": the radii are measured (a host flag: no device read per batch)

    def get_extra_state(self) -> dict:
        """The generator's state and whether fixed radii are measured, saved in ``state_dict()`` beside the radii."""
        return {"generator": None if self.generator is None else self.generator.get_state(),
                "fixed_measured": self._fixed_measured}

    def set_extra_state(self, state: dict) -> None:
        """Restore the generator's state from ``load_state_dict()``."""
        # states saved before the flag existed: fixed radii are measured where they are not NaN (read once, here)
        self._fixed_measured = state.get("fixed_measured", not bool(self.eps.isnan().any()))
        if state["generator"] is not None:
            if self.generator is None:
                raise ValueError("the resumed AdversarialSynthesis had a generator; give this one a generator too")
            self.generator.set_state(state["generator"])

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Add adversarial perturbations to a batch of windows (see the class docstring)."""
        wm = self.world_model
        out = tensordict.clone(recurse=False)  # new entries go to the output, never into the sampled input
        z, action = window_inputs(wm, out, *self.in_keys)
        with synthesis_mode(wm, train=self.options.attack_mode == "train"), torch.no_grad():
            e = predictor_inputs(wm, self.action_interface.to_model(action.to(z.dtype)))
        self._measure(z, e)
        rows = choose_rows(z.shape[0], self.fraction, self.generator).to(z.device)
        dz, de = torch.zeros_like(z), torch.zeros_like(e)
        if rows.numel():
            start = [(2 * torch.rand(x.shape, generator=self.generator, dtype=x.dtype, device=x.device) - 1) * r
                     for x, r in zip((z[rows], e[rows]), self._entry_radii(z, e))]
            dz[rows], de[rows] = self.attack(z[rows], e[rows], start)
        flag = torch.zeros(z.shape[0], dtype=torch.bool, device=z.device)
        flag[rows] = True
        for key, value in zip(self.out_keys, (dz, de, flag)):
            out.set(key, value)
        return out

    def attack(self, z: torch.Tensor, e: torch.Tensor,
               start: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """The gradient-sign ascent from given perturbations, within the radii :attr:`eps` last measured.

        Args:
            z: latents ``(B, T, D)`` of windows.
            e: what the predictor reads for their actions ``(B, T - 1, E)``.
            start: the perturbations ``(dz, de)`` of ``z`` and ``e`` to start from
                (:meth:`forward` draws them uniformly within the radii).

        Returns:
            The detached ``(dz, de)`` after ``ascent_steps`` steps, each clamped to the radii.

        Example:
            >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
            >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
            >>> synthesis = AdversarialSynthesis(model)
            >>> synthesis.eps = torch.tensor([0.1, 0.0, 0.2])   # radii: latent, proprio, action embedding
            >>> z, e = torch.randn(4, 3, 2), torch.randn(4, 2, model.config.action_embed_dim)  # embeddings
            >>> dz, de = synthesis.attack(z, e, (torch.zeros_like(z), torch.zeros_like(e)))
            >>> float(dz[:, :-1].abs().max()), float(de.abs().max())   # the input frames moved to the radii
            (0.10000000149011612, 0.20000000298023224)
        """
        if len(start) != 2 or start[0].shape != z.shape or start[1].shape != e.shape:
            raise ValueError(f"start must be the perturbations (dz, de) of z {tuple(z.shape)} and e "
                             f"{tuple(e.shape)}; got shapes {[tuple(x.shape) for x in start]}")
        # checked on the device, so a GPU never waits for it (on the CPU it raises here, a RuntimeError)
        torch._assert_async(~self.eps.isnan().any(), "the radii are not measured yet: run the transform on a "
                                                     "batch or set eps")
        radii = self._entry_radii(z, e)
        deltas = [x.detach() for x in start]
        targets = z[:, self.world_model.num_hist:]
        with synthesis_mode(self.world_model, train=self.options.attack_mode == "train"):
            for _ in range(self.options.ascent_steps):
                deltas = [d.requires_grad_(True) for d in deltas]
                loss = prediction_error(self.world_model, z + deltas[0], e + deltas[1], targets).mean()
                grads = torch.autograd.grad(loss, deltas)
                deltas = [torch.clamp(d.detach() + self.options.step_size * r * g.sign(), -r, r)
                          for d, g, r in zip(deltas, grads, radii)]
        return deltas[0], deltas[1]

    def _measure(self, z: torch.Tensor, e: torch.Tensor) -> None:
        """Set :attr:`eps` from the batch (adaptive radii, or fixed ones not measured yet)."""
        statistic = self.options.radius_statistic
        if self.options.radius == "fixed" and self._fixed_measured:
            return
        d, p = z.shape[-1], proprio_dim(self.world_model)
        if statistic == "per_window":
            z = z[:, :-1]  # the input frames: the last frame of a window is only a target
        proprio_copies, action_copies = getattr(self.world_model, "token_copies", (1, 1))
        slices = ((z[..., :d - p], 1), (z[..., d - p:], proprio_copies), (e, action_copies))
        self.eps = torch.stack([_std(x, statistic, copies) * factor
                                for (x, copies), factor in zip(slices, (self.options.latent_factor,
                                                                        self.options.proprio_factor,
                                                                        self.options.action_factor))])
        self._fixed_measured = True

    def _entry_radii(self, z: torch.Tensor, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-entry radii of the latent ``(D,)`` and of the action embedding ``(E,)``."""
        d, p = z.shape[-1], proprio_dim(self.world_model)
        eps = self.eps.to(z)
        return torch.cat([eps[0].expand(d - p), eps[1].expand(p)]), eps[2].expand(e.shape[-1])
