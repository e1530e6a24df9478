"""Teacher-forcing next-latent prediction loss as a TorchRL ``LossModule``."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from tensordict import TensorDict, TensorDictBase
from tensordict.utils import NestedKey
from torchrl.objectives import LossModule

from .contract import (
    PlanningWorldModel,
    PredictorModel,
    RewardModel,
    action_interface,
    encode_entries,
    has_capability,
    predictor_inputs,
    require,
)


def history_windows(x: torch.Tensor, num_hist: int) -> torch.Tensor:
    """Sliding windows over time: ``(B, T, ...)`` -> ``(B, T - h + 1, h, ...)``."""
    windows = x.unfold(1, num_hist, 1)  # (B, n, ..., h)
    return windows.movedim(-1, 2)


def prediction_error(world_model, z_in: torch.Tensor, e_in: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-step teacher-forcing error ``(B, T - h)``: predict each frame ``t >= h`` from the ``h`` inputs before it.

    ``z_in`` ``(B, T, D)`` and ``e_in`` ``(B, T - 1, E)`` are the encoded inputs
    (possibly perturbed; ``e_in`` what the model's ``predict`` reads for the
    actions, :func:`~torchrl_gbp.models.contract.predictor_inputs`), ``targets`` ``(B, T - h, D)`` the clean frames; gradients
    reach the inputs, which is what adversarial synthesis ascends on.
    """
    h = world_model.num_hist
    prediction = world_model.predict(history_windows(z_in[:, :-1], h), history_windows(e_in, h))
    return (prediction - targets).pow(2).flatten(2).mean(-1)


class TeacherForcingLoss(LossModule):
    """Predict every frame of a window from the ``num_hist`` true frames before it.

    Trains any world model with a predictor: a
    :class:`~torchrl_gbp.models.PlanningWorldModel` that is also a
    :class:`~torchrl_gbp.models.PredictorModel` (its actions embedded first
    when it is an :class:`~torchrl_gbp.models.ActionEmbeddingModel`).

    Reads a batch of model-step windows (as
    :class:`~torchrl_gbp.data.ModelStepWindows` makes them from any TorchRL
    buffer of trajectories): the model's observation entries
    (``world_model.observation_keys``, ``(B, T, ...)``) and ``"action"``
    ``(B, T - 1, action_dim)`` (model actions in env units; the loss
    normalises them with the model's statistics), ``T > num_hist``. When the
    batch holds ``"latent"`` ``(B, T, D)`` (written by a synthesis transform,
    :func:`~torchrl_gbp.data.window_latents`), it is used as the encoded
    frames instead of encoding again: the encoder then gets no gradient, which
    is what finetuning with a frozen encoder wants.
    When a data-synthesis transform wrote ``"latent_perturbation"`` ``(B, T, D)``
    and ``"action_embedding_perturbation"`` ``(B, T - 1, E)``, they are added to
    the encoded inputs (gradients still reach the action encoder) while the
    targets stay the clean encoded frames.

    Returns ``loss_prediction`` (and ``loss_reconstruction`` for models with a
    ``reconstruction_loss``) plus the detached per-step error ``prediction_error`` ``(T - h,)``.
    For models that predict rewards (a :class:`~torchrl_gbp.models.RewardModel`,
    for instance ``WorldModelConfig(reward_head=True)``) it
    also reads ``("next", "reward")`` ``(B, T - 1, 1)`` (the summed env rewards
    of each model step) and returns ``loss_reward``, the squared error of
    ``predict_reward`` on the encoded next frames and the normalised actions.

    Keys are set the TorchRL way, ``loss.set_keys(action="model_action")``.

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> loss = TeacherForcingLoss(model)
        >>> td = TensorDict({"observation": torch.randn(8, 4, 2), "action": torch.randn(8, 3, 2)}, [8])
        >>> sorted(loss(td).keys())
        ['loss_prediction', 'prediction_error']
    """

    @dataclass
    class _AcceptedKeys:
        """Keys read by the loss; change them with ``set_keys``."""

        latent: NestedKey = "latent"
        action: NestedKey = "action"
        latent_perturbation: NestedKey = "latent_perturbation"
        action_embedding_perturbation: NestedKey = "action_embedding_perturbation"
        reward: NestedKey = ("next", "reward")

    default_keys = _AcceptedKeys
    tensor_keys: _AcceptedKeys

    def __init__(self, world_model: PlanningWorldModel) -> None:
        require(world_model, PlanningWorldModel, "TeacherForcingLoss")
        require(world_model, PredictorModel, "TeacherForcingLoss")
        super().__init__()
        self.world_model = world_model
        self.action_interface = action_interface(world_model)
        self._predicts_reward = has_capability(world_model, RewardModel)

    @property
    def in_keys(self) -> list[NestedKey]:
        """The keys the loss reads (they follow ``set_keys``)."""
        keys = self.tensor_keys
        rewards = [keys.reward] if self._predicts_reward else []
        return [*self.world_model.observation_keys, keys.latent, keys.action, keys.latent_perturbation,
                keys.action_embedding_perturbation, *rewards]

    @property
    def out_keys(self) -> list[str]:
        """The entries the loss writes."""
        extra = ["loss_reconstruction"] if getattr(self.world_model, "reconstruction_loss", None) else []
        extra += ["loss_reward"] if self._predicts_reward else []
        return ["loss_prediction", *extra, "prediction_error"]

    def _forward_value_estimator_keys(self, **kwargs) -> None:
        pass

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase:
        """Compute the loss terms for a batch of windows."""
        wm = self.world_model
        h = wm.num_hist
        act_key = self.tensor_keys.action
        if act_key not in tensordict.keys(True):
            raise KeyError(f"TeacherForcingLoss needs key {act_key!r} in the batch; found "
                           f"{list(tensordict.keys(True, True))}")
        action = tensordict.get(act_key)
        z = tensordict.get(self.tensor_keys.latent, None)
        if z is None:
            z = encode_entries(wm, tensordict)
        dz = tensordict.get(self.tensor_keys.latent_perturbation, None)
        de = tensordict.get(self.tensor_keys.action_embedding_perturbation, None)
        if z.ndim != 3 or z.shape[1] <= h or action.shape[:2] != (z.shape[0], z.shape[1] - 1):
            raise ValueError(
                f"TeacherForcingLoss expects windows: observation entries {list(wm.observation_keys)} (B, T, ...) "
                f"with T > num_hist={h} and {act_key!r} (B, T - 1, action_dim); got latents {tuple(z.shape)} "
                f"and actions {tuple(action.shape)} (sample windows with torchrl_gbp.data.ModelStepWindows)"
            )
        out = {}
        action = self.action_interface.to_model(action.to(z.dtype))
        if self._predicts_reward:
            out["loss_reward"] = self._reward_loss(tensordict, z, action)
        reconstruction = getattr(wm, "reconstruction_loss", None)
        if reconstruction is not None:
            out["loss_reconstruction"] = reconstruction(tensordict, z)
        targets = z[:, h:].detach()
        z_in = z
        e_in = predictor_inputs(wm, action)
        if dz is not None:
            z_in = z_in + dz.detach()
        if de is not None:
            e_in = e_in + de.detach()
        error = prediction_error(wm, z_in, e_in, targets)  # (B, T - h)
        out["loss_prediction"] = error.mean()
        out["prediction_error"] = error.detach().mean(0)
        return TensorDict(out, batch_size=[])

    def _reward_loss(self, tensordict: TensorDictBase, z: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """Squared error of the predicted rewards of every model step of the windows."""
        key = self.tensor_keys.reward
        reward = tensordict.get(key, None)
        if reward is None:
            raise KeyError(f"TeacherForcingLoss of a model with a reward head needs {key!r} in the batch; found "
                           f"{list(tensordict.keys(True, True))}")
        reward = reward.reshape(reward.shape[0], -1)
        if reward.shape != action.shape[:2]:
            raise ValueError(f"{key!r} must hold one reward per model step, (B, T - 1[, 1]) = "
                             f"{tuple(action.shape[:2])}, got {tuple(reward.shape)}")
        return (self.world_model.predict_reward(z[:, 1:], action) - reward.to(z)).pow(2).mean()
