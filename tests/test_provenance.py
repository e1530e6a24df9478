"""Every generated table in README and benchmarks/results matches what the regenerate script writes from raw results."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _regenerate():
    spec = importlib.util.spec_from_file_location("regenerate", ROOT / "benchmarks" / "regenerate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_tables_match_their_raw_results() -> None:
    regenerate = _regenerate()
    if not any(path.is_dir() for path in regenerate.RAW.iterdir()):
        pytest.skip("no raw results saved yet")
    for path, text in regenerate.expected().items():
        assert path.read_text() == text, f"{path.relative_to(ROOT)} differs from benchmarks/regenerate.py's output"


def test_every_readme_block_has_raw_results() -> None:
    from torchrl_gbp.experiments.reporting import block_names

    regenerate = _regenerate()
    from_reports = {target(path, json.loads(path.read_text())).stem  # blocks a benchmark's raw figures fill
                    for pattern, _, target in regenerate.REPORTS for path in regenerate.RESULTS.glob(pattern)}
    summary = {regenerate.SUMMARY_BLOCK} if any(regenerate.RAW.glob("*/meta.json")) else set()  # from every run
    for name in block_names((ROOT / "README.md").read_text()):
        assert (regenerate.RAW / name / "meta.json").exists() or name in from_reports | summary, \
            f"README block {name!r} has no raw results"
