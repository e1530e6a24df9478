"""Gradient-based planning: optimise the action sequence through the world model."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.optim.adam import adam as adam_update

from .base import Planner, PlanResult, gaussian
from .budget import BudgetClock


class GradientPlanner(Planner):
    """Optimise a normalised action sequence with any ``torch.optim`` optimiser.

    Each batch element's cost is independent and the costs are summed (not
    averaged), so the step size does not depend on the batch size. After every
    optimiser step a small Gaussian noise is added and the actions are projected
    into the bounds. ``num_restarts`` parallel searches run per batch element
    (restart 0 starts from ``init`` when given); the lowest-cost plan seen at
    any iteration is returned, also when ``budget`` stops the search early
    (``result="final"``: the restart whose last iterate is cheapest, that iterate).
    The loop never reads a tensor on the host unless ``budget`` has a ``patience``
    (then one boolean per step); under it each env's plan freezes once its own cost
    plateaus.

    Args:
        world_model: the world model (see :class:`Planner`).
        steps: optimiser steps per call (the most; ``budget`` may stop sooner).
        lr: learning rate.
        optimizer: a ``torch.optim.Optimizer`` class.
        optimizer_kwargs: extra optimiser arguments (for example ``{"fused": True}``).
        init: ``"randn"`` or ``"zeros"``: the start when no warm start is given.
        noise_std: std of the noise added after each step.
        num_restarts: parallel searches per batch element.
        callback: called after each gradient evaluation as ``callback(step, actions, cost, grad)``
            with the detached actions ``(B, R, H, A)``, their costs ``(B, R)`` and the cost
            gradient ``(B, R, H, A)``, before the optimiser step (for diagnostics).
        planner_options: :class:`Planner`'s keyword arguments (``objective``, ``horizon``,
            ``action_low``, ``action_high``, ``budget``, ``compile``, ``autocast_dtype``).

    Example:
        >>> from torchrl_gbp.models import StateWorldModel, WorldModelConfig
        >>> model = StateWorldModel(WorldModelConfig(obs_dim=2, env_action_dim=2))
        >>> planner = GradientPlanner(model, horizon=3, steps=5)
        >>> plan = planner.plan(torch.zeros(4, 1, 2), torch.zeros(4, 0, 2), torch.ones(4, 2))
        >>> plan.actions.shape, plan.cost.shape
        (torch.Size([4, 3, 2]), torch.Size([4]))
    """

    def __init__(self, world_model, *, steps: int = 100, lr: float = 0.2,
                 optimizer: type[torch.optim.Optimizer] = torch.optim.Adam,
                 optimizer_kwargs: dict[str, Any] | None = None, init: str = "randn", noise_std: float = 0.003,
                 num_restarts: int = 1,
                 callback: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
                 **planner_options) -> None:
        super().__init__(world_model, **planner_options)
        if init not in ("randn", "zeros"):
            raise ValueError(f"init must be 'randn' or 'zeros', got {init!r}")
        if steps < 0 or num_restarts < 1:
            raise ValueError(f"need steps >= 0 and num_restarts >= 1, got {steps} and {num_restarts}")
        if not lr > 0:
            raise ValueError(f"lr must be > 0, got {lr!r}")
        if not noise_std >= 0:
            raise ValueError(f"noise_std must be >= 0, got {noise_std!r}")
        self.steps = steps
        self.lr = lr
        self.optimizer = optimizer
        self.optimizer_kwargs = dict(optimizer_kwargs or {})
        self.init = init
        self.noise_std = noise_std
        self.num_restarts = num_restarts
        self.callback = callback

    def cold_start(self, batch: int, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Standard normal (``init="randn"``) or zero actions ``(B, H, A)``, projected into the bounds."""
        if self.init == "zeros":
            return super().cold_start(batch, like, generator)
        return self.project(gaussian((batch, self.horizon, self.action_dim), like, generator))

    def initial_actions(self, init: torch.Tensor | None, batch: int, like: torch.Tensor,
                        generator: torch.Generator | None) -> torch.Tensor:
        """Starting points ``(B, R, H, A)``: the warm start (restart 0) and cold starts."""
        starts = [self.cold_start(batch, like, generator) for _ in range(self.num_restarts)]
        if init is not None:
            starts[0] = self.project(init)
        return torch.stack(starts, dim=1)

    def search(self, z_hist, a_hist, z_goal, init, generator, clock) -> PlanResult:
        """Run up to ``steps`` optimiser steps on all restarts at once."""
        starts = self.initial_actions(init, z_hist.shape[0], z_hist, generator)
        return self.descend(z_hist, a_hist, z_goal, starts, generator, clock)

    def descend(self, z_hist: torch.Tensor, a_hist: torch.Tensor, z_goal: torch.Tensor, starts: torch.Tensor,
                generator: torch.Generator | None, clock: BudgetClock) -> PlanResult:
        """Up to ``steps`` optimiser steps under ``clock`` from ``starts`` ``(B, R, H, A)`` (one search per restart);
        the cheapest plan any restart reached, the starts included."""
        batch = z_hist.shape[0]
        actions = starts.detach().clone().requires_grad_(True)
        optimizer = self._make_optimizer(actions)
        best_actions = actions.detach().clone()
        best_cost = torch.full(best_actions.shape[:2], float("inf"), dtype=z_hist.dtype, device=z_hist.device)
        for step in range(self.steps):
            cost, grad = self.value_and_grad(z_hist, a_hist, z_goal, actions)
            if self.callback is not None:
                self.callback(step, actions.detach(), cost, grad)
            self._keep_best(actions, cost, best_actions, best_cost)
            before = None if clock.active is None else actions.detach().clone()
            actions.grad = grad.contiguous()  # torch's fused Adam misreads stride-0 gradients (sums, broadcasts)
            optimizer.step()
            with torch.no_grad():
                if self.noise_std > 0:
                    actions.add_(gaussian(actions.shape, actions, generator), alpha=self.noise_std)
                self.project_(actions)
                if before is not None:  # envs whose cost has plateaued keep their plan
                    actions.copy_(clock.freeze(actions, before))
            if clock.should_stop(best_cost):
                break
        with torch.no_grad():
            final_cost = self.score(z_hist, a_hist, z_goal, actions)
            if self.result == "final":
                best_actions, best_cost = actions.detach(), final_cost
            else:
                self._keep_best(actions, final_cost, best_actions, best_cost)
            cost, restart = best_cost.min(dim=1)
            chosen = best_actions[torch.arange(batch, device=restart.device), restart]
        return PlanResult(chosen, cost)

    def _make_optimizer(self, actions: torch.Tensor) -> torch.optim.Optimizer | AdamSteps:
        """The optimiser of ``actions``: ``optimizer(**optimizer_kwargs)``; plain Adam (no implementation chosen in
        the kwargs) on a device with the fused Adam kernel runs as :class:`AdamSteps`."""
        options = dict(self.optimizer_kwargs)
        fused = actions.device.type in torch.utils._foreach_utils._get_fused_kernels_supported_devices()
        if self.optimizer is torch.optim.Adam and fused and set(options) <= {"betas", "eps", "weight_decay"}:
            return AdamSteps(actions, lr=self.lr, **options)
        return self.optimizer([actions], lr=self.lr, **options)

    @staticmethod
    @torch.no_grad()
    def _keep_best(actions: torch.Tensor, cost: torch.Tensor, best_actions: torch.Tensor,
                   best_cost: torch.Tensor) -> None:
        better = cost < best_cost
        torch.where(better, cost, best_cost, out=best_cost)  # elementwise: writing over an input is safe
        torch.where(better.view(*better.shape, 1, 1), actions, best_actions, out=best_actions)


class AdamSteps:
    """``torch.optim.Adam(fused=True)`` on one tensor, stepped through its functional form
    (``torch.optim.adam.adam``).

    The same update and the same numbers, without the optimiser's per-step Python (hooks, parameter groups,
    profiling records), which costs more host time than the fused kernel itself: on the CPU about 0.2 ms a
    step, most of a planning step of a small model. The step count stays on the device. For devices with
    the fused kernel (CPU, CUDA, ...); :class:`GradientPlanner` uses it for plain Adam there.

    Example:
        >>> x = torch.zeros(3, requires_grad=True)
        >>> adam = AdamSteps(x, lr=0.1)
        >>> x.grad = torch.ones(3)
        >>> adam.step()
        >>> x.detach()
        tensor([-0.1000, -0.1000, -0.1000])
    """

    def __init__(self, param: torch.Tensor, *, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        self.param = param
        self.lr, self.betas, self.eps, self.weight_decay = lr, betas, eps, weight_decay
        self.exp_avg = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.exp_avg_sq = torch.zeros_like(param, memory_format=torch.preserve_format)
        self.step_count = torch.zeros((), dtype=torch.float32, device=param.device)

    @torch.no_grad()
    def step(self) -> None:
        """One Adam step of the parameter along its ``.grad`` (made dense first: the fused kernel misreads the
        stride-0 gradients autograd gives for sums and broadcasts)."""
        adam_update([self.param], [self.param.grad.contiguous()], [self.exp_avg], [self.exp_avg_sq], [], [self.step_count],
                    fused=True, amsgrad=False, beta1=self.betas[0], beta2=self.betas[1], lr=self.lr,
                    weight_decay=self.weight_decay, eps=self.eps, maximize=False)
