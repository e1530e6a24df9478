"""DINO-WM's PushT physics: gym-pusht's pymunk world and PD controller, driven by relative targets."""
from __future__ import annotations

import torch

from torchrl_gbp.tasks.pusht.simulator import PushTSimulator, pusht_step

#: An action ``a`` sets the PD target ``agent position + ACTION_SCALE * a`` (DINO-WM's ``action_scale``).
ACTION_SCALE = 100.0


class DinoWMPushTSimulator(PushTSimulator):
    """``num_envs`` PushT worlds whose actions are targets relative to the agent: ``agent + 100 a``.

    States are :class:`~torchrl_gbp.tasks.pusht.PushTSimulator`'s 10 numbers
    (agent xy, block xy and angle, agent velocity, block velocity and angular
    velocity); one env step is :func:`~torchrl_gbp.tasks.pusht.pusht_step`,
    10 PD substeps of 0.01 s (10 Hz control over 100 Hz physics, ``k_p`` 100,
    ``k_v`` 20), toward the target, which is not clamped to the arena
    (DINO-WM's env does not clamp it either).

    Example:
        >>> simulator = DinoWMPushTSimulator(num_envs=1)
        >>> simulator.set_state(torch.tensor([[100.0, 100.0, 300.0, 300.0, 0, 0, 0, 0, 0, 0]]))
        >>> simulator.step(torch.tensor([[0.2, 0.0]]))
        >>> simulator.get_state()[0, :2].round().tolist()  # the agent moves toward (120, 100)
        [106.0, 100.0]
    """

    def step(self, action: torch.Tensor) -> None:
        """One env step for every env under relative actions ``action`` ``(num_envs, 2)``."""
        if tuple(action.shape) != (self.num_envs, 2):
            raise ValueError(f"action must have shape (num_envs, 2) = ({self.num_envs}, 2), got {tuple(action.shape)}")
        states = self._state.to("cpu", torch.float64)
        targets = states[:, :2] + ACTION_SCALE * action.detach().to("cpu", torch.float64)
        new = [pusht_step(s, t) for s, t in zip(states.tolist(), targets.tolist())]
        self._state = torch.tensor(new, dtype=torch.float32).to(self.device)
