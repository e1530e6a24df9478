"""Rebuild every generated table from saved raw results, at HEAD.

Each folder ``benchmarks/results/raw/<name>/`` holds the unit result files of
one ``torchrl-gbp reproduce`` run (per-seed rows, with per-episode lists where
the run recorded them) and a ``meta.json`` (the command and the machine). From
each, this writes ``benchmarks/results/<name>.md`` and the README block between
``<!-- table:<name> -->`` and ``<!-- /table:<name> -->``. Nothing in those
places is edited by hand; ``tests/test_provenance.py`` fails when they differ
from what this script writes.

    python benchmarks/regenerate.py            # rewrite the results files and README blocks
    python benchmarks/regenerate.py --check    # exit 1, naming them, where they differ
    python benchmarks/regenerate.py --add NAME --from runs/wall/units --command "..."   # save a run's raw results
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

from torchrl_gbp.reporting import replace_block, table_from_raw

ROOT = Path(__file__).resolve().parent.parent
RAW = ROOT / "benchmarks" / "results" / "raw"


def results_file(name: str) -> str:
    """The text of ``benchmarks/results/<name>.md`` rebuilt from ``raw/<name>/``."""
    meta = json.loads((RAW / name / "meta.json").read_text())
    table, claims = table_from_raw(RAW / name)
    return (f"# {name}\n\nWritten by `python benchmarks/regenerate.py` from `benchmarks/results/raw/{name}/`.\n\n"
            f"Command: `{meta['command']}`\n\nMachine: {meta['machine']}\n\n{meta.get('note', '')}\n\n"
            f"{table}\n\n{claims}\n")


def expected() -> dict[Path, str]:
    """Every generated file's expected text: the results files and README with its blocks filled."""
    names = sorted(path.name for path in RAW.iterdir() if path.is_dir())
    files = {ROOT / "benchmarks" / "results" / f"{name}.md": results_file(name) for name in names}
    readme = (ROOT / "README.md").read_text()
    for name in names:
        if f"<!-- table:{name} -->" in readme:
            readme = replace_block(readme, name, table_from_raw(RAW / name)[0])
    files[ROOT / "README.md"] = readme
    return files


def add(name: str, source: Path, command: str, note: str) -> None:
    """Copy a run's unit files into ``raw/<name>/`` with the command and this machine."""
    target = RAW / name
    target.mkdir(parents=True, exist_ok=True)
    for unit in sorted(source.glob("*.json")):
        shutil.copy(unit, target / unit.name)
    machine = f"{platform.machine()} CPU, {torch.get_num_threads()} torch threads (driver), torch {torch.__version__}"
    (target / "meta.json").write_text(json.dumps({"command": command, "machine": machine, "note": note}, indent=1))


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
            path.write_text(text)
    if args.check and stale:
        sys.exit(f"out of date (run python benchmarks/regenerate.py): {', '.join(map(str, stale))}")
    print("rewritten: " + (", ".join(map(str, stale)) or "nothing (all up to date)"))


if __name__ == "__main__":
    main()
