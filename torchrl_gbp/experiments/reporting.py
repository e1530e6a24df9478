"""Reports shared by the pipeline, diagnostics and benchmarks: summaries, markdown tables, figures."""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from ..io import pyplot, save_figure


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A markdown table: ``header`` cells, then one line per row (cells formatted with ``str``).

    Example:
        >>> print(markdown_table(["a", "b"], [[1, "x"]]))
        | a | b |
        |---|---|
        | 1 | x |
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(cell) for cell in row]
        if len(cells) != len(header):
            raise ValueError(f"a table row has {len(cells)} cells for {len(header)} columns: {cells}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def success_cell(row: dict) -> str:
    """``row["success_rate"]`` in %, with ``+- std`` over seeds when ``row["success_std"]`` is set.

    Example:
        >>> success_cell({"success_rate": 0.8, "success_std": None})  # one seed
        '80.0'
        >>> success_cell({"success_rate": 0.8, "success_std": 0.05})
        '80.0 +- 5.0'
    """
    std = row.get("success_std")
    return f"{100 * row['success_rate']:.1f}" + (f" +- {100 * std:.1f}" if std is not None else "")


def summarize(runs: list[dict], by: tuple[str, ...] = ("model", "planner"),
              success: str = "success_rate") -> list[dict]:
    """Aggregate evaluation runs over seeds: one row per value of the ``by`` keys, in first-seen order.

    ``success`` names the per-run rate averaged into ``success_rate`` (for example
    ``"sticky_success_rate"`` for the paper's protocol); times are medians over seeds.

    Example:
        >>> runs = [{"model": m, "planner": p, "seed": s, "success_rate": r, "final_distance": 0.1, "plan_seconds": t,
        ...          "plan_seconds_per_env": t / 50}
        ...         for m, p, s, r, t in [("base", "gd", 0, 0.4, 1.0), ("base", "gd", 1, 0.6, 1.2),
        ...                               ("base", "cem", 0, 0.8, 8.0), ("base", "cem", 1, 0.8, 9.0),
        ...                               ("online", "gd", 0, 0.9, 1.0), ("online", "gd", 1, 0.7, 1.0)]]
        >>> rows = summarize(runs)
        >>> [(r["model"], r["planner"], r["seeds"], round(r["success_rate"], 2), round(r["success_std"], 2),
        ...   r["plan_seconds"]) for r in rows]
        [('base', 'gd', 2, 0.5, 0.1, 1.0), ('base', 'cem', 2, 0.8, 0.0, 8.0), ('online', 'gd', 2, 0.8, 0.1, 1.0)]
    """
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        groups.setdefault(tuple(run[key] for key in by), []).append(run)
    rows = []
    for values, items in groups.items():
        rates = torch.tensor([r[success] for r in items], dtype=torch.float64)
        rows.append({
            **dict(zip(by, values)), "seeds": len(items),
            "success_rate": float(rates.mean()),
            "success_std": float(rates.std(unbiased=False)) if len(items) > 1 else None,  # None: one seed
            "final_distance": sum(r["final_distance"] for r in items) / len(items),
            "plan_seconds": float(torch.tensor([r["plan_seconds"] for r in items]).median()),
            "plan_seconds_per_env": float(torch.tensor([r["plan_seconds_per_env"] for r in items]).median()),
            "planning_seconds_total": float(torch.tensor([r.get("planning_seconds_total", 0.0)
                                                          for r in items]).median()),
            "seconds_per_episode": float(torch.tensor([seconds_per_episode(r) for r in items]).median()),
            "budget": items[0].get("budget"),
        })
    return rows


def seconds_per_episode(run: dict) -> float:
    """Planning seconds per episode of an evaluation run: all its planning calls' seconds over its episodes (a
    batched call plans for every episode at once), ``0.0`` where the run did not record them.

    Example:
        >>> seconds_per_episode({"planning_seconds_total": 3.0, "episodes": {"success": [True, False, True]}})
        1.0
    """
    episodes = len(run.get("episodes", {}).get("success", ())) or 1
    return float(run.get("planning_seconds_total", 0.0)) / episodes


def format_paper_table(rows: list[dict], paper: dict | None = None) -> str:
    """Table 1's layout from :func:`summarize` rows by ``(model, mode, planner)``: sticky success %.

    One line per model and mode (``"open loop"``, ``"+ MPC"``), one column per
    planner (SGD, Adam, CEM, MPPI), then the planning time two ways against
    CEM on the base model in the same mode: seconds per planning call and
    planning seconds per (batched) episode, each planner at its own schedule.
    ``paper`` (``{(model, mode): (sgd, adam, cem)}``, for example a task's
    :data:`torchrl_gbp.experiments.protocol.PAPER_TABLE1` entry) adds the paper's numbers as a last column.

    Example:
        >>> rows = [{"model": "base", "mode": "mpc", "planner": p, "success_rate": s, "success_std": None,
        ...          "plan_seconds": t, "planning_seconds_total": 10 * t} for p, s, t in [("adam", 0.8, 1.0),
        ...                                                                               ("cem", 0.9, 10.0)]]
        >>> print(format_paper_table(rows).splitlines()[2])
        | base + MPC | - | 80.0 | 90.0 | - | 0.100 | 0.100 |
    """
    planners = ("sgd", "adam", "cem", "mppi")
    by = {(r["model"], r["mode"], r["planner"]): r for r in rows}
    header = ["model", "SGD", "Adam", "CEM", "MPPI", "Adam s/call vs CEM on base", "Adam s/episode vs CEM on base"]
    if paper is not None:
        header.append("paper SGD / Adam / CEM")
    lines = []
    for model, mode in dict.fromkeys((r["model"], r["mode"]) for r in rows):
        cells = [success_cell(by[model, mode, p]) if (model, mode, p) in by else "-" for p in planners]
        adam, cem = by.get((model, mode, "adam")), by.get(("base", mode, "cem"))
        ratios = ["-", "-"]
        if adam is not None and cem is not None and cem["plan_seconds"] > 0:
            ratios = [f"{adam['plan_seconds'] / cem['plan_seconds']:.3f}",
                      f"{adam['planning_seconds_total'] / cem['planning_seconds_total']:.3f}"]
        label = f"{model} + MPC" if mode == "mpc" else f"{model}, open loop"
        extra = [] if paper is None else [" / ".join(map(str, paper[model, mode])) if (model, mode) in paper
                                          else "-"]
        lines.append([label, *cells, *ratios, *extra])
    return markdown_table(header, lines)


def format_table(rows: list[dict]) -> str:
    """Markdown table of our protocol: model, planner and its budget, success % (mean +- std where several
    seeds), final distance, planning seconds per episode and that time as a fraction of CEM's on the base model.

    Example:
        >>> runs = [{"model": m, "planner": p, "seed": s, "success_rate": r, "final_distance": 0.1, "plan_seconds": t,
        ...          "plan_seconds_per_env": t / 50, "planning_seconds_total": 10 * t,
        ...          "episodes": {"success": [True] * 10}}
        ...         for m, p, s, r, t in [("base", "gd", 0, 0.4, 1.0), ("base", "gd", 1, 0.6, 1.2),
        ...                               ("base", "cem", 0, 0.8, 8.0), ("base", "cem", 1, 0.8, 9.0),
        ...                               ("online", "gd", 0, 0.9, 1.0), ("online", "gd", 1, 0.7, 1.0)]]
        >>> print(format_table(summarize(runs)))
        | model | planner | budget | success % | final distance | planning s / episode | time vs CEM on base |
        |---|---|---|---|---|---|---|
        | base | gd | - | 50.0 +- 10.0 | 0.100 | 1.0000 | 0.125 |
        | base | cem | - | 80.0 +- 0.0 | 0.100 | 8.0000 | 1.000 |
        | online | gd | - | 80.0 +- 10.0 | 0.100 | 1.0000 | 0.125 |
    """
    cem, key = _cem_on_base(rows), _time_key(rows)
    header = ["model", "planner", "budget", "success %", "final distance",
              "planning s / episode" if key == "seconds_per_episode" else "s / plan / env", "time vs CEM on base"]
    return markdown_table(header, [
        [r["model"], r["planner"], r.get("budget") or "-", success_cell(r), f"{r['final_distance']:.3f}",
         f"{r[key]:.4f}", _time_fraction(r, cem, key)] for r in rows])


def _cem_on_base(rows: list[dict]) -> dict | None:
    return next((r for r in rows if r["planner"] == "cem" and r["model"] == "base"), None)


def _time_key(rows: list[dict]) -> str:
    """The time rows are compared by: planning seconds per episode, or, for runs saved before those were
    recorded, the median planning call's seconds per env."""
    return "seconds_per_episode" if any(r["seconds_per_episode"] for r in rows) else "plan_seconds_per_env"


def _time_fraction(row: dict, cem: dict | None, key: str = "seconds_per_episode") -> str:
    """``row``'s time over CEM's on the base model (by ``key``), or ``-``."""
    return f"{row[key] / cem[key]:.3f}" if cem and cem[key] else "-"


def paper_claims(rows: list[dict]) -> str:
    """The paper's claims checked against summarised rows of our protocol, one line each, with the numbers: GD
    (``gd``) on the base model trails CEM on it (the train-test gap), and every other row against CEM on the base
    model: whether it matches or beats it (the difference in points, and whether within seed noise: no larger
    than the larger of the two std over seeds) and at what fraction of its planning time per episode.

    Example:
        >>> runs = [{"model": m, "planner": p, "seed": s, "success_rate": r, "final_distance": 0.1, "plan_seconds": t,
        ...          "plan_seconds_per_env": t / 50, "planning_seconds_total": 10 * t,
        ...          "episodes": {"success": [True] * 10}}
        ...         for m, p, s, r, t in [("base", "gd", 0, 0.4, 1.0), ("base", "gd", 1, 0.6, 1.2),
        ...                               ("base", "cem", 0, 0.8, 8.0), ("base", "cem", 1, 0.8, 9.0),
        ...                               ("online", "gd", 0, 0.9, 1.0), ("online", "gd", 1, 0.7, 1.0)]]
        >>> print(paper_claims(summarize(runs)))
        - gd on base (50.0%) trails CEM on base (80.0%), the train-test gap: holds (-30.0 points, outside seed noise (std 10.0))
        - gd on online (80.0%) matches or beats CEM on base (80.0%) at 0.125 of its planning time per episode (+0.0 points, within seed noise (std 10.0))
        Rows that match or beat CEM on base: online/gd at 0.125 of its time.
    """
    by = {(r["model"], r["planner"]): r for r in rows}
    cem = _cem_on_base(rows)
    if cem is None:
        return "claims need a base / cem row"

    def pct(r: dict) -> str:
        return f"{100 * r['success_rate']:.1f}%"

    def points(r: dict) -> float:  # success in points, rounded so float32 rates compare exactly
        return round(100 * float(r["success_rate"]), 6)

    def noise(r: dict) -> str:
        diff = points(r) - points(cem)
        if r.get("success_std") is None or cem.get("success_std") is None:
            return f"{diff:+.1f} points, one seed: no noise estimate"
        std = 100 * max(r["success_std"], cem["success_std"])
        return f"{diff:+.1f} points, {'within' if abs(diff) <= std else 'outside'} seed noise (std {std:.1f})"

    lines, winners, key = [], [], _time_key(rows)
    what = "planning time per episode" if key == "seconds_per_episode" else "time per plan"
    gd = by.get(("base", "gd"))
    if gd is not None:
        verdict = "holds" if points(gd) < points(cem) else "does not hold"
        lines.append(f"- gd on base ({pct(gd)}) trails CEM on base ({pct(cem)}), the train-test "
                     f"gap: {verdict} ({noise(gd)})")
    for r in rows:
        if r["planner"] == "cem" or (r["model"], r["planner"]) == ("base", "gd"):
            continue
        beats = points(r) >= points(cem)
        fraction = _time_fraction(r, cem, key)
        lines.append(f"- {r['planner']} on {r['model']} ({pct(r)}) "
                     f"{'matches or beats' if beats else 'trails'} CEM on base ({pct(cem)}) at {fraction} "
                     f"of its {what} ({noise(r)})")
        if beats:
            winners.append(f"{r['model']}/{r['planner']} at {fraction} of its time")
    lines.append(f"Rows that match or beat CEM on base: {', '.join(winners) if winners else 'none'}.")
    return "\n".join(lines)


def paper_protocol_claims(rows: list[dict]) -> str:
    """The paper's headline claim under its protocol, from :func:`summarize` rows by (model, mode, planner).

    Adam MPC on each finetuned model against CEM MPC on the base model (sticky
    success), with the difference in points and the seed noise, and the time ratio.

    Example:
        >>> rows = [{"model": m, "mode": "mpc", "planner": p, "success_rate": r, "success_std": None,
        ...          "plan_seconds": t, "planning_seconds_total": 10 * t}
        ...         for m, p, r, t in [("base", "cem", 0.8, 10.0), ("online", "adam", 0.9, 1.0)]]
        >>> for part in paper_protocol_claims(rows).split("; "):
        ...     print(part)
        - Adam MPC on online (90.0%) >= CEM MPC on base (80.0%): holds (+10.0 points, one seed: no noise estimate)
        time vs CEM: 0.100 per call, 0.100 per episode
    """
    by = {(r["model"], r["mode"], r["planner"]): r for r in rows}
    cem = by.get(("base", "mpc", "cem"))
    if cem is None:
        return "the claim needs a base / MPC / CEM row"
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        adam = by.get((model, "mpc", "adam"))
        if adam is None:
            continue
        diff = round(100 * adam["success_rate"], 6) - round(100 * cem["success_rate"], 6)
        if adam.get("success_std") is None or cem.get("success_std") is None:
            noise = "one seed: no noise estimate"
        else:
            std = 100 * max(adam["success_std"], cem["success_std"])
            noise = f"{'within' if abs(diff) <= std else 'outside'} seed noise (std {std:.1f})"
        verdict = "holds" if diff >= 0 else "does not hold"
        per_call = adam["plan_seconds"] / cem["plan_seconds"] if cem["plan_seconds"] else float("nan")
        per_episode = (adam["planning_seconds_total"] / cem["planning_seconds_total"]
                       if cem["planning_seconds_total"] else float("nan"))
        lines.append(f"- Adam MPC on {model} ({success_cell(adam)}%) >= CEM MPC on base ({success_cell(cem)}%): "
                     f"{verdict} ({diff:+.1f} points, {noise}); time vs CEM: {per_call:.3f} per call, "
                     f"{per_episode:.3f} per episode")
    return "\n".join(lines)


def plot_success_vs_seconds(rows: list[dict], path: str | os.PathLike, title: str) -> Path:
    """Scatter of success rate against planning seconds per episode (log axis), one point per row (colour: model,
    marker: planner, error bar: std over seeds), saved as PNG.

    Example:
        >>> import tempfile
        >>> runs = [{"model": m, "planner": p, "seed": s, "success_rate": r, "final_distance": 0.1, "plan_seconds": t,
        ...          "plan_seconds_per_env": t / 50, "planning_seconds_total": 10 * t,
        ...          "episodes": {"success": [True] * 10}}
        ...         for m, p, s, r, t in [("base", "gd", 0, 0.4, 1.0), ("base", "gd", 1, 0.6, 1.2),
        ...                               ("base", "cem", 0, 0.8, 8.0), ("base", "cem", 1, 0.8, 9.0),
        ...                               ("online", "gd", 0, 0.9, 1.0), ("online", "gd", 1, 0.7, 1.0)]]
        >>> path = plot_success_vs_seconds(summarize(runs), Path(tempfile.mkdtemp()) / "wall.png", "wall")
        >>> path.name, path.stat().st_size > 0
        ('wall.png', True)
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.0, 4.5))
    models = list(dict.fromkeys(r["model"] for r in rows))
    planners = list(dict.fromkeys(r["planner"] for r in rows))
    markers = "sovD^P*X"
    for r in rows:
        seconds = r["seconds_per_episode"] or r["plan_seconds_per_env"]
        ax.errorbar(seconds, 100 * r["success_rate"], yerr=100 * (r.get("success_std") or 0.0),
                    fmt=markers[planners.index(r["planner"]) % len(markers)], markersize=8, capsize=3,
                    color=plt.cm.tab10(models.index(r["model"]) % 10), label=f"{r['model']} / {r['planner']}")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, numticks=8))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("planning seconds per episode (log scale)")
    ax.set_ylabel("success %")
    ax.set_ylim(-5, 105)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    return save_figure(fig, path)


_METHOD_ORDER = ("base", "online", "adversarial", "both")


def load_raw_runs(folder: str | os.PathLike) -> tuple[list[dict], str]:
    """The runs saved in a raw-results folder (``reproduce``'s unit files), in reproduce's order, and the protocol.

    ``folder`` holds ``*.json`` unit files ``{"fingerprint": ..., "runs": [...]}``; the
    runs are ordered by seed, then model (base, online, adversarial, both).

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for method, planner, rate in [("online", "gd", 0.9), ("base", "gd", 0.5), ("base", "cem", 0.8)]:
        ...     run = {"model": method, "planner": planner, "seed": 0, "success_rate": rate, "final_distance": 0.1,
        ...            "plan_seconds": 1.0, "plan_seconds_per_env": 0.02}
        ...     unit = folder / f"{method}_seed0_{planner}.json"
        ...     _ = unit.write_text(json.dumps({"fingerprint": {"method": method, "unit_seed": 0}, "runs": [run]}))
        >>> runs, protocol = load_raw_runs(folder)
        >>> [(run["model"], run["planner"]) for run in runs], protocol
        ([('base', 'cem'), ('base', 'gd'), ('online', 'gd')], 'ours')
    """
    units = []
    for path in sorted(Path(folder).glob("*.json")):
        if path.name == "meta.json":
            continue
        saved = json.loads(path.read_text())
        units.append((saved["fingerprint"]["unit_seed"], _METHOD_ORDER.index(saved["fingerprint"]["method"]),
                      saved["fingerprint"].get("protocol", "ours"), saved["runs"]))
    if not units:
        raise FileNotFoundError(f"no unit result files in {str(folder)!r}")
    protocols = {protocol for _, _, protocol, _ in units}
    if len(protocols) != 1:
        raise ValueError(f"{str(folder)!r} mixes protocols {sorted(protocols)}")
    units.sort(key=lambda unit: unit[:2])
    return [run for *_, runs in units for run in runs], protocols.pop()


def tables_from_raw(folder: str | os.PathLike,
                    paper: dict | None = None) -> tuple[str, str, list[tuple[str, str]]]:
    """``(table, claims, more tables)`` of a raw-results folder: the table and claims as ``reproduce`` prints
    them (``paper``: see :func:`format_paper_table`), and for the paper's protocol ``(caption, table)`` pairs in
    the same layout: final-state instead of sticky success, and, where the runs recorded which episodes'
    start state already passed the success test, sticky success over the other episodes only.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for method, planner, rate in [("online", "gd", 0.9), ("base", "gd", 0.5), ("base", "cem", 0.8)]:
        ...     run = {"model": method, "planner": planner, "seed": 0, "success_rate": rate, "final_distance": 0.1,
        ...            "plan_seconds": 1.0, "plan_seconds_per_env": 0.02}
        ...     unit = folder / f"{method}_seed0_{planner}.json"
        ...     _ = unit.write_text(json.dumps({"fingerprint": {"method": method, "unit_seed": 0}, "runs": [run]}))
        >>> table, claims, more = tables_from_raw(folder)
        >>> print(table.splitlines()[-1])  # runs saved without planning seconds per episode: time per plan
        | online | gd | - | 90.0 | 0.100 | 0.0200 | 1.000 |
        >>> print(claims.splitlines()[1])
        - gd on online (90.0%) matches or beats CEM on base (80.0%) at 1.000 of its time per plan (+10.0 points, one seed: no noise estimate)
        >>> more  # only the paper's protocol has more tables
        []
    """
    runs, protocol = load_raw_runs(folder)
    if protocol != "paper":
        rows = summarize(runs)
        return format_table(rows), paper_claims(rows), []
    by = ("model", "mode", "planner")
    rows = summarize(runs, by=by, success=paper_success_key(runs))
    more = [("Final-state success % (the task's test on the last state of the episode or of the executed "
             "open-loop plan; same runs)", format_paper_table(summarize(runs, by=by, success="success_rate")))]
    if all("solved_at_start" in run.get("episodes", {}) for run in runs):
        unsolved = [_without_solved_starts(run) for run in runs]
        counts = sorted({(run["seed"], run["episodes_unsolved"]) for run in unsolved})
        if any(run["episodes_unsolved"] < len(run["episodes"]["sticky_success"]) for run in unsolved):
            caption = ("Sticky success % over the episodes whose start state does not already pass the success "
                       "test (same runs; episodes kept per seed: "
                       + ", ".join(f"seed {seed}: {n}" for seed, n in counts) + ")")
            scored = [run for run in unsolved if run["episodes_unsolved"]]  # no episode left: no rate, not 0 %
            more.append((caption, format_paper_table(summarize(scored, by=by, success="sticky_success_rate"))))
    return f"{format_paper_table(rows, paper)}\n\n{protocol_choices_note(runs)}", paper_protocol_claims(rows), more


# The choices runs made before the paper protocol recorded them (and before it followed the reference code).
EARLIER_CHOICES = {"objective_frames": "predicted", "success_rule": "sticky", "result_rule": "best",
                   "bounds": "project"}
# Choices recorded since a later version (how the models were finetuned; what the MPC budget counts): runs that
# lack them used ours.
UNRECORDED_CHOICES = {"online_schedule": "replace", "finetuning": "ours", "budget_unit": "env_steps"}


def paper_success_key(runs: list[dict]) -> str:
    """The per-run rate a paper-protocol table reports: ``"reported_success_rate"`` (under the run's success
    rule) where every run recorded it, else ``"sticky_success_rate"`` (runs before the rule was recorded).

    Example:
        >>> paper_success_key([{"reported_success_rate": 0.5, "sticky_success_rate": 0.6}])
        'reported_success_rate'
        >>> paper_success_key([{"sticky_success_rate": 0.6}])
        'sticky_success_rate'
    """
    return "reported_success_rate" if runs and all("reported_success_rate" in r for r in runs) else \
        "sticky_success_rate"


def protocol_choices_note(runs: list[dict]) -> str:
    """One sentence naming the protocol choices the runs were made with (see ``PaperSettings.choices``).

    Runs that recorded no choices made :data:`EARLIER_CHOICES`; a choice
    added later that a run lacks (:data:`UNRECORDED_CHOICES`, how the models
    were finetuned and what the MPC budget counts) was ours, and is named as ours.

    Example:
        >>> earlier = {"objective_frames": "with_start", "success_rule": "reference", "result_rule": "final",
        ...            "bounds": "none"}
        >>> protocol_choices_note([{"protocol_choices": earlier}])  # doctest: +NORMALIZE_WHITESPACE
        'Protocol choices: bounds=none, budget_unit=env_steps, finetuning=ours, objective_frames=with_start,
        online_schedule=replace, result_rule=final, success_rule=reference.'
        >>> protocol_choices_note([{"protocol_choices": {**earlier, "online_schedule": "append",
        ...                                              "finetuning": "reference",
        ...                                              "budget_unit": "mpc_iterations:cap=10"}}]
        ...                       )  # doctest: +NORMALIZE_WHITESPACE
        'Protocol choices: bounds=none, budget_unit=mpc_iterations:cap=10, finetuning=reference,
        objective_frames=with_start, online_schedule=append, result_rule=final, success_rule=reference.'
    """
    recorded = [r.get("protocol_choices") for r in runs]
    choices = {tuple(sorted({**UNRECORDED_CHOICES, **(made or EARLIER_CHOICES)}.items())) for made in recorded}
    if len(choices) != 1:
        raise ValueError(f"the runs mix protocol choices {sorted(choices)}; tabulate them apart")
    text = ", ".join(f"{name}={value}" for name, value in choices.pop())
    earlier = all("protocol_choices" not in r for r in runs)
    return f"Protocol choices: {text}" + (" (runs made before the choices were recorded)." if earlier else ".")


def _without_solved_starts(run: dict) -> dict:
    """``run`` with its sticky success rate over the episodes not solved at their start state (NaN if none)."""
    kept = [sticky for sticky, solved in zip(run["episodes"]["sticky_success"], run["episodes"]["solved_at_start"])
            if not solved]
    return {**run, "sticky_success_rate": sum(kept) / len(kept) if kept else float("nan"), "episodes_unsolved": len(kept)}


def format_ablations(rows: list[dict], notes: dict[str, str]) -> str:
    """One markdown table per ablation (``benchmarks/ablations.py``'s raw rows), each under a second-level heading
    after its command note.

    Rows hold ``ablation``, ``setting``, ``model``, ``seed``, ``episodes``, ``sticky_success_rate``,
    ``success_rate`` (final state), ``final_distance``, ``planned_error`` and ``plan_seconds``; tables keep the
    rows' order.

    Example:
        >>> row = {"ablation": "steps", "setting": "Adam MPC, 10 steps per call", "model": "base", "seed": 5000,
        ...        "episodes": 50, "sticky_success_rate": 0.5, "success_rate": 0.2, "final_distance": 0.1,
        ...        "planned_error": 0.02, "plan_seconds": 0.3}
        >>> print(format_ablations([row], {"steps": "cmd"}).splitlines()[8])
        | Adam MPC, 10 steps per call | base | 50.0 | 20.0 | 0.100 | 0.0200 | 0.300 |
    """
    blocks = []
    for name in dict.fromkeys(row["ablation"] for row in rows):
        chosen = [row for row in rows if row["ablation"] == name]
        seeds = sorted({row["seed"] for row in chosen})
        groups: dict[tuple, list[dict]] = {}  # rows of one (setting, model) over seeds, in first-run order
        for row in chosen:
            groups.setdefault((row["setting"], row["model"]), []).append(row)
        table = markdown_table(
            ("setting", "model", "success % (sticky)", "success % (final state)", "final distance",
             "planned-state error", "s / call"),
            [(setting, model, _percent_over_seeds(items, "sticky_success_rate"),
              _percent_over_seeds(items, "success_rate"), f"{_mean(items, 'final_distance'):.3f}",
              f"{_mean(items, 'planned_error'):.4f}", f"{_mean(items, 'plan_seconds'):.3f}")
             for (setting, model), items in groups.items()])
        spread = " (mean +- std over seeds where a row has several)" if len(seeds) > 1 else ""
        counts = sorted({row["episodes"] for row in chosen})
        episodes = str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"
        blocks.append(f"## Ablation: {name}\n\n{notes.get(name, '')}\n\nTuning pair seed(s) {seeds}, "
                      f"{episodes} episodes per row and seed{spread}.\n\n{table}")
    return "\n\n".join(blocks)


def _mean(rows: list[dict], key: str) -> float:
    return sum(row[key] for row in rows) / len(rows)


def _percent_over_seeds(rows: list[dict], key: str) -> str:
    """``key``'s mean over ``rows`` as :func:`success_cell` writes it (``+- std`` when there are several)."""
    rates = torch.tensor([row[key] for row in rows], dtype=torch.float64)
    return success_cell({"success_rate": float(rates.mean()),
                         "success_std": float(rates.std(unbiased=False)) if len(rows) > 1 else None})


def replace_block(text: str, name: str, content: str) -> str:
    """``text`` with the block between ``<!-- table:name -->`` and ``<!-- /table:name -->`` set to ``content``.

    Example:
        >>> text = "# Results\\n<!-- table:wall -->\\nold table\\n<!-- /table:wall -->\\nNotes."
        >>> print(replace_block(text, "wall", markdown_table(["success %"], [[80.0]])))
        # Results
        <!-- table:wall -->
        | success % |
        |---|
        | 80.0 |
        <!-- /table:wall -->
        Notes.
    """
    start, end = f"<!-- table:{name} -->", f"<!-- /table:{name} -->"
    if start not in text or end not in text:
        raise ValueError(f"no block {start} ... {end}")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content.strip()}\n{end}{tail}"


def block_names(text: str) -> list[str]:
    """The names of the generated blocks in ``text``.

    Example:
        >>> text = ("<!-- table:wall -->\\n| a |\\n<!-- /table:wall -->\\n"
        ...         "<!-- table:pusht.paper -->\\n| b |\\n<!-- /table:pusht.paper -->")
        >>> block_names(text)
        ['wall', 'pusht.paper']
    """
    return re.findall(r"<!-- table:([\w.-]+) -->", text)
