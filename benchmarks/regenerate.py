"""Rebuild every generated table from saved raw results, at HEAD.

Each folder ``benchmarks/results/raw/<name>/`` holds the unit result files of
one ``torchrl-gbp reproduce`` run (per-seed rows, with per-episode lists where
the run recorded them) and a ``meta.json`` (the command and the machine), or,
for ``ablations_<task>``, ``benchmarks/ablations.py``'s ``rows.json``. From
each, this writes ``benchmarks/results/<name>.md`` and the README block between
``<!-- table:<name> -->`` and ``<!-- /table:<name> -->``. It also rewrites the
budget sweeps' reports from ``benchmarks/results/sweeps/*.json``
(``benchmarks/success_vs_time.py``) and the pixel speed tables from
``benchmarks/results/raw_pixel_speed_*.json`` (``benchmarks/pixel_speed.py``) and the planning
speed and soak reports from ``raw_planning_speed*.json`` and ``raw_soak.json``
(``benchmarks/planning_speed.py``, ``benchmarks/soak.py``), the time-per-episode report and the MPC budget
sweeps' reports (``benchmarks/time_per_episode.py``, ``benchmarks/mpc_budget.py``); where the script has a
``readme_block(raw)`` and README a block named after the report's file (for example
``table:planning_speed``), that block too.
It writes the docs' results pages too, ``docs/results/<name>.md``: the prose
that explains a table (``benchmarks/notes/<name>.md``, its first line the
title) above the generated text, and ``docs/results/index.md`` with README's
summary of where the paper's claims stand (block ``table:claims_summary``).
Nothing in those places is edited by hand; ``tests/test_provenance.py`` fails
when they differ from what this script writes.

    python benchmarks/regenerate.py            # rewrite the results files and README blocks
    python benchmarks/regenerate.py --check    # exit 1, naming them, where they differ
    python benchmarks/regenerate.py --add NAME --from runs/wall/units --command "..."   # save a run's raw results
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import re
import shutil
import sys
from pathlib import Path

import torch

from torchrl_gbp.experiments.protocol import PAPER_TABLE1
from torchrl_gbp.experiments.reporting import (
    format_ablations,
    load_raw_runs,
    markdown_table,
    paper_success_key,
    protocol_choices_note,
    replace_block,
    success_cell,
    summarize,
    tables_from_raw,
)
from torchrl_gbp.io import atomic_write_text

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RAW = RESULTS / "raw"
NOTES = ROOT / "benchmarks" / "notes"
# README's block built from every reproduce run's raw results (claims_summary), not from one folder.
SUMMARY_BLOCK = "claims_summary"
DOCS_RESULTS = ROOT / "docs" / "results"


# Other benchmarks' saved raw figures: (files under benchmarks/results, the script whose ``report_text(raw)``
# renders one, where its report goes).
REPORTS = (
    ("sweeps/*.json", "success_vs_time", lambda path, raw: ROOT / raw["out"]),
    ("raw_pixel_speed_*.json", "pixel_speed",
     lambda path, raw: RESULTS / path.name.removeprefix("raw_").replace(".json", ".md")),
    ("raw_planning_speed*.json", "planning_speed", lambda path, raw: RESULTS / raw["out"]),
    ("raw_soak.json", "soak", lambda path, raw: RESULTS / "soak.md"),
    ("raw_time_per_episode.json", "time_per_episode", lambda path, raw: RESULTS / "time_per_episode.md"),
    ("raw_pixel_rollout_memory.json", "pixel_rollout_memory", lambda path, raw: RESULTS / "pixel_rollout_memory.md"),
    ("raw_mpc_step.json", "mpc_step", lambda path, raw: RESULTS / "mpc_step.md"),
    ("raw_mpc_budget_*.json", "mpc_budget", lambda path, raw: RESULTS / f"mpc_budget_{raw['task']}.md"),
)


def generated(name: str) -> tuple[str, str]:
    """``(README block, results file text)`` of ``raw/<name>/``: a reproduce run's table, or ablation tables."""
    meta = json.loads((RAW / name / "meta.json").read_text())
    header = f"# {name}\n\nWritten by `python benchmarks/regenerate.py` from `benchmarks/results/raw/{name}/`.\n\n"
    if meta.get("kind") == "ablations":
        rows = json.loads((RAW / name / "rows.json").read_text())
        return format_ablations(rows, meta["notes"], level=4), f"{header}{format_ablations(rows, meta['notes'])}\n"
    table, claims, more = tables_from_raw(RAW / name, PAPER_TABLE1.get(_task_of(RAW / name)))
    more_text = "".join(f"\n\n{caption}:\n\n{extra}" for caption, extra in more)
    return table, (f"{header}Command: `{meta['command']}`\n\nMachine: {meta['machine']}\n\n"
                   f"{meta.get('note', '')}\n\n{table}\n\n{claims}{more_text}\n")


def claims_summary(names: list[str]) -> str:
    """Where the paper's headline claims stand in every paper-protocol run: Adam MPC on each model against CEM
    MPC on the base model, and what synthesis does to open-loop Adam, with links to the full tables."""
    rows = []
    for name in names:
        if json.loads((RAW / name / "meta.json").read_text()).get("kind") == "ablations":
            continue
        runs, protocol = load_raw_runs(RAW / name)
        if protocol != "paper":
            continue
        by = {(r["model"], r["mode"], r["planner"]): r
              for r in summarize(runs, by=("model", "mode", "planner"), success=paper_success_key(runs))}

        def cell(key):
            return success_cell(by[key]) if key in by else "-"

        cem = by.get(("base", "mpc", "cem"))
        adversarial = by.get(("adversarial", "mpc", "adam"))
        verdict = ("-" if cem is None or adversarial is None else
                   "holds" if adversarial["success_rate"] >= cem["success_rate"] else "does not hold")
        choices = protocol_choices_note(runs).removeprefix("Protocol choices: ").rstrip(".")
        rows.append([f"[{name}](docs/results/{name}.md)", cell(("base", "mpc", "cem")), cell(("base", "mpc", "adam")),
                     cell(("online", "mpc", "adam")), cell(("adversarial", "mpc", "adam")), verdict,
                     f"{cell(('base', 'open loop', 'adam'))} -> {cell(('adversarial', 'open loop', 'adam'))}",
                     choices])
    header = ["run", "CEM MPC, base", "Adam MPC, base", "Adam MPC, online", "Adam MPC, adversarial",
              "adversarial Adam MPC >= base CEM MPC", "open-loop Adam, base -> adversarial", "protocol choices"]
    return markdown_table(header, rows)


def docs_page(name: str, text: str) -> str:
    """The docs page of results file ``name``: its notes (title, then prose) above the generated text."""
    notes = NOTES / f"{name}.md"
    title, prose = (notes.read_text().split("\n", 1) if notes.exists() else (name, ""))
    body = text.split("\n", 1)[1] if text.startswith("# ") else text
    # figures stay beside their results files in benchmarks/results
    body = re.sub(r"!\[([^\]]*)\]\(([^)/:]+\.png)\)", r"![\1](../../benchmarks/results/\2)", body)
    return f"# {title}\n\n{prose.strip()}\n\n{body.strip()}\n".replace("\n\n\n", "\n\n")


def docs_index(pages: list[str], summary: str) -> str:
    """``docs/results/index.md``: the results' introduction, the claims summary and every results page."""
    intro = (NOTES / "index.md").read_text().strip()
    claims = (NOTES / "claims.md").read_text().split("\n", 1)
    toctree = "\n".join(["```{toctree}", ":maxdepth: 1", "", *pages, "```"])
    return (f"# Results\n\n{intro}\n\n## Where the paper's claims stand\n\n{summary.replace('docs/results/', '')}"
            f"\n\n## {claims[0].strip()}\n\n{claims[1].strip()}\n\n## Every table\n\n{toctree}\n")


def _task_of(folder: Path) -> str:
    """The task of a reproduce run's raw folder (from its first unit's fingerprint)."""
    unit = next(path for path in sorted(folder.glob("*.json")) if path.name != "meta.json")
    return json.loads(unit.read_text())["fingerprint"]["task"]


def expected() -> dict[Path, str]:
    """Every generated file's expected text: the results files and README with its blocks filled."""
    names = sorted(path.name for path in RAW.iterdir() if path.is_dir() and not path.name.startswith("."))
    texts = {name: generated(name) for name in names}
    files = {ROOT / "benchmarks" / "results" / f"{name}.md": texts[name][1] for name in names}
    readme = (ROOT / "README.md").read_text()
    for name in names:
        if f"<!-- table:{name} -->" in readme:
            readme = replace_block(readme, name, texts[name][0])
    for pattern, script, target in REPORTS:
        module = _benchmark_module(script)
        for path in sorted(RESULTS.glob(pattern)):
            raw = json.loads(path.read_text())
            report = target(path, raw)
            files[report] = module.report_text(raw)
            if hasattr(module, "readme_block") and f"<!-- table:{report.stem} -->" in readme:
                readme = replace_block(readme, report.stem, module.readme_block(raw))
    summary = claims_summary(names)
    if f"<!-- table:{SUMMARY_BLOCK} -->" in readme:
        readme = replace_block(readme, SUMMARY_BLOCK, summary)
    files[ROOT / "README.md"] = readme
    results = {path: text for path, text in files.items() if path.parent == RESULTS and path.suffix == ".md"}
    extra = sorted(path for path in RESULTS.glob("*.md") if path not in results)  # written by their own scripts
    results.update({path: path.read_text() for path in extra})
    for path, text in results.items():
        files[DOCS_RESULTS / path.name] = docs_page(path.stem, text)
    files[DOCS_RESULTS / "index.md"] = docs_index(sorted(path.stem for path in results), summary)
    return files


def _benchmark_module(name: str):
    """Another script of this folder, imported by path (it is not a package; its own imports of this folder's
    helpers, such as ``checkouts``, resolve as when it runs as a script)."""
    if str(ROOT / "benchmarks") not in sys.path:
        sys.path.append(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def add(name: str, source: Path, command: str, note: str) -> None:
    """Save a run's unit files as ``raw/<name>/`` with the command and this machine, replacing what was there.

    The new folder is built beside the old one and swapped in, so an interrupted call leaves the old one whole.
    """
    units = sorted(source.glob("*.json"))
    if not units:
        raise FileNotFoundError(f"no unit result files (*.json) in {source}")
    target, staging, old = RAW / name, RAW / f".{name}.new", RAW / f".{name}.old"
    for leftover in (staging, old):
        shutil.rmtree(leftover, ignore_errors=True)
    staging.mkdir(parents=True)
    for unit in units:
        shutil.copy(unit, staging / unit.name)
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads (driver), torch {torch.__version__}"
    (staging / "meta.json").write_text(json.dumps({"command": command, "machine": machine, "note": note}, indent=1))
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def main() -> None:
    """Rewrite, check, or add raw results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where files differ")
    parser.add_argument("--add", metavar="NAME", help="save raw results under this name first")
    parser.add_argument("--from", dest="source", type=Path, help="with --add: a reproduce run's units/ folder")
    parser.add_argument("--command", default="", help="with --add: the command that produced the run")
    parser.add_argument("--note", default="", help="with --add: a line on how it was run (time, workers)")
    args = parser.parse_args()
    if args.add:
        add(args.add, args.source, args.command, args.note)
    stale = []
    for path, text in expected().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            atomic_write_text(path, text)
    if args.check and stale:
        sys.exit(f"out of date (run python benchmarks/regenerate.py): {', '.join(map(str, stale))}")
    print("rewritten: " + (", ".join(map(str, stale)) or "nothing (all up to date)"))


if __name__ == "__main__":
    main()
