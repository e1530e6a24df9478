"""Render every results page, its figures, the results index and README's summary from the saved raw results.

Raw results live in ``benchmarks/results/raw/`` only:

- ``raw/<name>/``: the unit result files of one ``torchrl-gbp reproduce`` run (per-seed rows, with per-episode
  lists where the run recorded them) and a ``meta.json`` (the command and the machine), saved by ``--add``; or,
  for ``ablations_<task>``, ``benchmarks/ablations.py``'s ``rows.json`` and ``meta.json``;
- ``raw/<name>.json``: the raw figures another script of this folder saved (:func:`save_raw`), the script whose
  name is ``name`` or starts it before a ``_`` (``planning_speed_issue34.json``: ``planning_speed.py``). That
  script's ``report_text(raw)`` gives the page's text (its first line the title), its ``figures(raw)``, where it
  has one, the page's figures (``{suffix: function drawing one}``), and its ``summary_table(raw)``, where it
  has one, a table of the results summary.

From them this writes one page per run, ``docs/results/<name>.md``: the prose of ``benchmarks/notes/<name>.md``
(its first line the title; a notes file with no raw results is a page of its own), where the page comes from,
its figures (``<name>.png``, ``<name>_<suffix>.png`` beside it) and the generated text. It writes
``docs/results/index.md`` (``notes/index.md``, the summary, ``notes/claims.md`` and every page) and README's
summary block (between ``<!-- table:summary -->`` and ``<!-- /table:summary -->``), and removes every other
``.md`` and ``.png`` file of ``docs/results``: nothing there is edited by hand. A figure records the SHA-256
of the raw file it was drawn from and is drawn again when that changes (``--redraw``: every figure, after a
change to how a script draws), so a check does not depend on the matplotlib that drew it.
``tests/test_provenance.py`` fails where anything differs.

    python benchmarks/regenerate.py            # rewrite what differs
    python benchmarks/regenerate.py --check    # exit 1, naming them, where files differ
    python benchmarks/regenerate.py --add NAME --from runs/wall/units --command "..." --note "..."  # save a run
"""
from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

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
from torchrl_gbp.io import atomic_write_text, save_figure

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
RAW = BENCHMARKS / "results" / "raw"
NOTES = BENCHMARKS / "notes"
PAGES = ROOT / "docs" / "results"
README = ROOT / "README.md"
SUMMARY_BLOCK = "summary"
INDEX_NOTES = ("index", "claims")  # the notes of docs/results/index.md, not pages of their own
DIGEST_KEY = "raw results sha256"  # the PNG text entry where a figure records its raw file's digest


@dataclass(frozen=True)
class Figure:
    """A page's figure: the digest of the raw file it is drawn from, and the function that draws it."""

    digest: str
    draw: Callable[[], object]


def save_raw(name: str, raw: dict, folder: Path | None = None) -> Path:
    """Save a benchmark script's raw figures as ``<folder>/<name>.json`` (atomically); in ``raw/`` (the default),
    :func:`update` renders them."""
    return atomic_write_text((folder or RAW) / f"{name}.json", json.dumps(raw, indent=1) + "\n")


def page_names() -> list[str]:
    """Every page: each raw-results folder and file, and each notes file that is not the index's."""
    runs = {path.name if path.is_dir() else path.stem for path in RAW.iterdir()
            if not path.name.startswith(".") and (path.is_dir() or path.suffix == ".json")}
    return sorted(runs | {path.stem for path in NOTES.glob("*.md")} - set(INDEX_NOTES))


def script_of(name: str) -> str:
    """The script of this folder whose raw figures ``raw/<name>.json`` are: the longest script name that is
    ``name`` or starts it before a ``_``."""
    found = [path.stem for path in BENCHMARKS.glob("*.py") if name == path.stem or name.startswith(f"{path.stem}_")]
    if not found:
        raise ValueError(f"raw/{name}.json: no script of benchmarks/ is named {name!r} or starts it before a '_'")
    return max(found, key=len)


@functools.cache
def benchmark_module(name: str):
    """Another script of this folder, imported by path (it is not a package; its own imports of this folder's
    helpers, such as ``checkouts`` or this module, resolve as when it runs as a script)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.append(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_text(folder: Path) -> str:
    """The generated text of a raw-results folder: a reproduce run's tables and claims, or ablation tables."""
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("kind") == "ablations":
        return format_ablations(json.loads((folder / "rows.json").read_text()), meta["notes"])
    table, claims, more = tables_from_raw(folder, PAPER_TABLE1.get(_task_of(folder)))
    more_text = "".join(f"\n\n{caption}:\n\n{extra}" for caption, extra in more)
    return (f"Command: `{meta['command']}`\n\nMachine: {meta['machine']}\n\n{meta.get('note', '')}\n\n{table}\n\n"
            f"{claims}{more_text}")


def _task_of(folder: Path) -> str:
    """The task of a reproduce run's raw folder (from its first unit's fingerprint)."""
    unit = next(path for path in sorted(folder.glob("*.json")) if path.name != "meta.json")
    return json.loads(unit.read_text())["fingerprint"]["task"]


def page(name: str) -> tuple[str, dict[Path, Figure]]:
    """The text of ``docs/results/<name>.md`` and its figures: the notes' title and prose, where the page comes
    from, the figures, then the generated text."""
    folder, file = RAW / name, RAW / f"{name}.json"
    title, source, text, figures = name, "", "", {}
    if folder.is_dir():
        source, text = f"`benchmarks/results/raw/{name}/`", run_text(folder)
    elif file.exists():
        script, raw = script_of(name), json.loads(file.read_text())
        module = benchmark_module(script)
        heading, text = module.report_text(raw).split("\n", 1)
        title, source = heading.removeprefix("# "), f"`benchmarks/results/raw/{name}.json` (`benchmarks/{script}.py`)"
        digest = hashlib.sha256(file.read_bytes()).hexdigest()
        drawings = module.figures(raw) if hasattr(module, "figures") else {}
        figures = {PAGES / (f"{name}_{suffix}.png" if suffix else f"{name}.png"): Figure(digest, draw)
                   for suffix, draw in drawings.items()}
    notes = NOTES / f"{name}.md"
    prose = ""
    if notes.exists():
        title, prose = notes.read_text().split("\n", 1)
    parts = [f"# {title}", prose, source and f"Written by `python benchmarks/regenerate.py` from {source}.",
             *(f"![{path.stem}]({path.name})" for path in figures), text]
    return "\n\n".join(part.strip() for part in parts if part.strip()) + "\n", figures


def claims_summary(names: list[str]) -> str:
    """Where the paper's headline claims stand in every paper-protocol run: Adam MPC on each model against CEM
    MPC on the base model, and what synthesis does to open-loop Adam, with links to the full tables."""
    rows = []
    for name in names:
        if not (RAW / name).is_dir() or json.loads((RAW / name / "meta.json").read_text()).get("kind") == "ablations":
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


def summary(names: list[str], titles: dict[str, str]) -> str:
    """README's summary block (and the index's first section; links from the repository's root): the claims
    table, then the summary table of every script page whose script has one, under its page's title."""
    parts = [f"Table 1 under the paper's protocol, one row per run:\n\n{claims_summary(names)}"]
    for name in names:
        file = RAW / f"{name}.json"
        if file.exists() and hasattr(module := benchmark_module(script_of(name)), "summary_table"):
            parts.append(f"[{titles[name]}](docs/results/{name}.md):\n\n"
                         f"{module.summary_table(json.loads(file.read_text()))}")
    return "\n\n".join(parts)


def index(names: list[str], summary_text: str) -> str:
    """``docs/results/index.md``: the results' introduction, the summary, the claims' notes and every page."""
    intro = (NOTES / "index.md").read_text().strip()
    claims = (NOTES / "claims.md").read_text().split("\n", 1)
    toctree = "\n".join(["```{toctree}", ":maxdepth: 1", "", *names, "```"])
    return (f"# Results\n\n{intro}\n\n## Where the paper's claims stand\n\n"
            f"{summary_text.replace('docs/results/', '')}\n\n## {claims[0].strip()}\n\n{claims[1].strip()}\n\n"
            f"## Every page\n\n{toctree}\n")


def expected() -> tuple[dict[Path, str], dict[Path, Figure]]:
    """Every generated text file's expected text (the pages, the index, README) and every page's figure."""
    names = page_names()
    texts, figures, titles = {}, {}, {}
    for name in names:
        text, drawn = page(name)
        texts[PAGES / f"{name}.md"] = text
        titles[name] = text.split("\n", 1)[0].removeprefix("# ")
        figures.update(drawn)
    summary_text = summary(names, titles)
    texts[PAGES / "index.md"] = index(names, summary_text)
    texts[README] = replace_block(README.read_text(), SUMMARY_BLOCK, summary_text)
    return texts, figures


def recorded_digest(path: Path) -> str | None:
    """The raw digest a saved figure records (``None`` where there is no figure or it records none)."""
    if not path.exists():
        return None
    with Image.open(path) as image:
        return image.text.get(DIGEST_KEY)


def differences(redraw: bool = False) -> tuple[dict[Path, str], dict[Path, Figure], list[Path]]:
    """What differs from the raw results: ``(texts to write, figures to draw, files to remove)``."""
    texts, figures = expected()
    extra = sorted(path for suffix in ("*.md", "*.png") for path in PAGES.glob(suffix)
                   if path not in texts and path not in figures)
    return ({path: text for path, text in texts.items() if not path.exists() or path.read_text() != text},
            {path: figure for path, figure in figures.items() if redraw or recorded_digest(path) != figure.digest},
            extra)


def update(redraw: bool = False) -> list[Path]:
    """Rewrite every generated file that differs from what the raw results give; return the paths changed."""
    texts, figures, extra = differences(redraw)
    for path, text in texts.items():
        atomic_write_text(path, text)
    for path, figure in figures.items():
        save_figure(figure.draw(), path, metadata={DIGEST_KEY: figure.digest})
    for path in extra:
        path.unlink()
    return sorted([*texts, *figures, *extra])


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
    """Rewrite, check, or add raw results and rewrite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 where files differ")
    parser.add_argument("--redraw", action="store_true", help="draw every figure again (not with --check)")
    parser.add_argument("--add", metavar="NAME", help="save a reproduce run's raw results under this name first")
    parser.add_argument("--from", dest="source", type=Path, help="with --add: a reproduce run's units/ folder")
    parser.add_argument("--command", default="", help="with --add: the command that produced the run")
    parser.add_argument("--note", default="", help="with --add: a line on how it was run (time, workers)")
    args = parser.parse_args()
    if args.check:
        texts, figures, extra = differences()
        if texts or figures or extra:
            sys.exit("out of date (run python benchmarks/regenerate.py): "
                     + ", ".join(str(path.relative_to(ROOT)) for path in sorted([*texts, *figures, *extra])))
        print("up to date")
        return
    if args.add:
        add(args.add, args.source, args.command, args.note)
    changed = update(args.redraw)
    print("rewritten: " + (", ".join(str(path.relative_to(ROOT)) for path in changed) or "nothing (all up to date)"))


if __name__ == "__main__":
    main()
