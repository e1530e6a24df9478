"""Typed, frozen budgets of each planner: what :func:`~torchrl_gbp.planners.make_planner` builds from.

One option type per planner (:data:`PLANNER_OPTIONS`), holding the settings that make its search (steps and
rate, samples and elites); what every planner shares (horizon, objective, bounds, :class:`SearchBudget`,
compilation) stays a keyword of :func:`~torchrl_gbp.planners.make_planner`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from ..optimizers import OPTIMIZERS, optimizer_class


@dataclass(frozen=True, kw_only=True)
class GradientOptions:
    """:class:`~torchrl_gbp.planners.GradientPlanner`'s search: ``steps`` of ``optimizer`` (a name of
    :data:`~torchrl_gbp.optimizers.OPTIMIZERS`) at ``lr``, ``noise_std`` added after each step, ``num_restarts``
    parallel searches from ``init`` (``"randn"`` or ``"zeros"``). Defaults: the paper's MPC budget.

    Example:
        >>> GradientOptions(steps=30).arguments()["optimizer"].__name__
        'Adam'
        >>> GradientOptions(optimizer="lbfgs")
        Traceback (most recent call last):
            ...
        ValueError: optimizer must be one of ('adam', 'adamw', 'sgd'), got 'lbfgs'
    """

    planner: ClassVar[str] = "gd"
    steps: int = 100
    lr: float = 0.2
    optimizer: str = "adam"
    noise_std: float = 0.003
    init: str = "randn"
    num_restarts: int = 1

    def __post_init__(self) -> None:
        optimizer_class(self.optimizer)

    def arguments(self) -> dict[str, Any]:
        """The planner class's keyword arguments (the optimiser name resolved to its class)."""
        return {**asdict(self), "optimizer": OPTIMIZERS[self.optimizer]}

    def describe(self) -> str:
        """The budget in words, for tables.

        Example:
            >>> GradientOptions(steps=3).describe()
            'Adam, 3 steps'
        """
        return f"{OPTIMIZERS[self.optimizer].__name__}, {self.steps} steps"


@dataclass(frozen=True, kw_only=True)
class CEMOptions:
    """:class:`~torchrl_gbp.planners.CrossEntropyPlanner`'s search: ``samples`` candidates per iteration, the
    ``elites`` best refit the Gaussian, ``iterations`` rounds, the first Gaussian's std ``init_std`` and a floor
    ``min_std``. Defaults: the paper's 300 x 30 elites x 30 iterations.

    Example:
        >>> CEMOptions(samples=100, elites=10, iterations=10).arguments()["samples"]
        100
    """

    planner: ClassVar[str] = "cem"
    samples: int = 300
    elites: int = 30
    iterations: int = 30
    init_std: float = 1.0
    min_std: float = 0.01

    def __post_init__(self) -> None:
        if not 1 <= self.elites <= self.samples:
            raise ValueError(f"{type(self).__name__} needs 1 <= elites <= samples, got elites={self.elites}, "
                             f"samples={self.samples}")

    def arguments(self) -> dict[str, Any]:
        """The planner class's keyword arguments."""
        return asdict(self)

    def describe(self) -> str:
        """The budget in words, for tables.

        Example:
            >>> CEMOptions().describe()
            'CEM, 300 samples x 30 iterations'
        """
        return f"{self.planner.upper().replace('_', '-')}, {self.samples} samples x {self.iterations} iterations"


@dataclass(frozen=True, kw_only=True)
class MPPIOptions(CEMOptions):
    """:class:`~torchrl_gbp.planners.PathIntegralPlanner`'s search: CEM's, the elites weighted by
    ``exp(-cost / temperature)``.

    Example:
        >>> MPPIOptions().temperature
        0.05
    """

    planner: ClassVar[str] = "mppi"
    temperature: float = 0.05


@dataclass(frozen=True, kw_only=True)
class ICEMOptions(CEMOptions):
    """:class:`~torchrl_gbp.planners.ImprovedCEMPlanner`'s search: CEM's with coloured noise (``noise_beta``), a
    population shrinking by ``population_decay`` per iteration and a share ``keep_elites`` of elites kept.

    Example:
        >>> ICEMOptions().iterations
        10
    """

    planner: ClassVar[str] = "icem"
    iterations: int = 10
    noise_beta: float = 2.0
    population_decay: float = 1.25
    keep_elites: float = 0.3


@dataclass(frozen=True, kw_only=True)
class GDCEMOptions(CEMOptions):
    """:class:`~torchrl_gbp.planners.GradientCEMPlanner`'s search: a CEM stage of ``iterations``, then ``steps``
    of ``optimizer`` at ``lr`` from its ``num_restarts`` best candidates.

    Example:
        >>> GDCEMOptions().arguments()["steps"], GDCEMOptions().iterations
        (30, 3)
    """

    planner: ClassVar[str] = "gd_cem"
    iterations: int = 3
    steps: int = 30
    lr: float = 0.2
    optimizer: str = "adam"
    noise_std: float = 0.003
    num_restarts: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        optimizer_class(self.optimizer)

    def arguments(self) -> dict[str, Any]:
        """The planner class's keyword arguments (the optimiser name resolved to its class)."""
        return {**asdict(self), "optimizer": OPTIMIZERS[self.optimizer]}

    def describe(self) -> str:
        """The budget in words, for tables."""
        return f"{super().describe()}, then {self.steps} {OPTIMIZERS[self.optimizer].__name__} steps"


PlannerOptions = GradientOptions | CEMOptions
# Planner name -> its option type (the names of :data:`~torchrl_gbp.planners.PLANNER_CLASSES`).
PLANNER_OPTIONS: dict[str, type[GradientOptions] | type[CEMOptions]] = {
    options.planner: options for options in (GradientOptions, CEMOptions, MPPIOptions, ICEMOptions, GDCEMOptions)
}
