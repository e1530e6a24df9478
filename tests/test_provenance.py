"""Results are rendered once: every page, figure and README's summary is what benchmarks/regenerate.py writes from
the raw results, which live in benchmarks/results/raw only."""
import hashlib
import json
import sys
from pathlib import Path

from torchrl_gbp.experiments.reporting import block_names

ROOT = Path(__file__).resolve().parent.parent

TOY = '''
def report_text(raw):
    return f"# Toy\\n\\n| x |\\n|---|\\n| {raw['x']} |\\n"


def figures(raw):
    def draw():
        from torchrl_gbp.io import pyplot

        fig, ax = pyplot().subplots()
        ax.plot([0, raw["x"]])
        return fig

    return {"": draw}


def summary_table(raw):
    return f"| toy x |\\n|---|\\n| {raw['x']} |"
'''


def test_every_page_figure_and_the_readme_summary_match_the_raw_results(benchmarks) -> None:
    texts, figures, extra = benchmarks.differences()
    stale = [str(path.relative_to(ROOT)) for path in [*texts, *figures, *extra]]
    assert stale == [], f"out of date (run python benchmarks/regenerate.py): {stale}"


def test_raw_results_live_in_raw_only_and_readme_holds_only_the_summary(benchmarks) -> None:
    assert [path.name for path in (ROOT / "benchmarks" / "results").iterdir()] == ["raw"]
    assert block_names((ROOT / "README.md").read_text()) == [benchmarks.SUMMARY_BLOCK]


def test_the_renderer_writes_checks_and_redraws_from_raw_results(benchmarks, tmp_path, monkeypatch) -> None:
    scripts, raw, notes, pages, readme = (tmp_path / "benchmarks", tmp_path / "raw", tmp_path / "notes",
                                          tmp_path / "pages", tmp_path / "README.md")
    for folder in (scripts, raw, notes, pages):
        folder.mkdir()
    (scripts / "toy.py").write_text(TOY)
    (notes / "index.md").write_text("Every page.\n")
    (notes / "claims.md").write_text("The claims\n\nNone yet.\n")
    (notes / "toy.md").write_text("A toy benchmark\n\nWhat the toy measures.\n")
    (notes / "reasons.md").write_text("Reasons\n\nProse with no raw results.\n")
    readme.write_text("# Project\n\n<!-- table:summary -->\n<!-- /table:summary -->\n")
    for name, value in (("ROOT", tmp_path), ("BENCHMARKS", scripts), ("RAW", raw), ("NOTES", notes),
                        ("PAGES", pages), ("README", readme)):
        monkeypatch.setattr(benchmarks, name, value)
    monkeypatch.setattr(sys, "path", list(sys.path))
    units = tmp_path / "units"  # a reproduce run's unit file, saved with --add
    units.mkdir()
    run = {"model": "base", "planner": "gd", "seed": 0, "success_rate": 0.5, "final_distance": 0.1,
           "plan_seconds": 1.0, "plan_seconds_per_env": 0.02}
    (units / "base_seed0_gd.json").write_text(json.dumps(
        {"fingerprint": {"method": "base", "unit_seed": 0, "task": "wall"}, "runs": [run]}))
    benchmarks.save_raw("toy", {"x": 1})
    monkeypatch.setattr(sys, "argv", ["regenerate.py", "--add", "wall_run", "--from", str(units),
                                      "--command", "torchrl-gbp reproduce --task wall", "--note", "One seed."])
    try:
        benchmarks.main()
        assert benchmarks.differences() == ({}, {}, [])
        assert sorted(path.name for path in pages.iterdir()) == ["index.md", "reasons.md", "toy.md", "toy.png",
                                                                 "wall_run.md"]
        assert (pages / "toy.md").read_text() == (
            "# A toy benchmark\n\nWhat the toy measures.\n\nWritten by `python benchmarks/regenerate.py` from "
            "`benchmarks/results/raw/toy.json` (`benchmarks/toy.py`).\n\n![toy](toy.png)\n\n| x |\n|---|\n| 1 |\n")
        assert "Command: `torchrl-gbp reproduce --task wall`" in (pages / "wall_run.md").read_text()
        assert "[A toy benchmark](docs/results/toy.md):\n\n| toy x |\n|---|\n| 1 |" in readme.read_text()
        assert "[A toy benchmark](toy.md)" in (pages / "index.md").read_text()
        digest = hashlib.sha256((raw / "toy.json").read_bytes()).hexdigest()
        assert benchmarks.recorded_digest(pages / "toy.png") == digest

        (pages / "toy.md").write_text((pages / "toy.md").read_text().replace("| 1 |", "| 2 |"))  # edited by hand
        readme.write_text(readme.read_text().replace("| toy x |", "| x |"))
        (pages / "stray.png").write_bytes((pages / "toy.png").read_bytes())
        benchmarks.save_raw("toy", {"x": 3})  # new raw figures: the page, the summary and the figure are stale
        texts, figures, extra = benchmarks.differences()
        assert (sorted(texts), list(figures), extra) == ([readme, pages / "index.md", pages / "toy.md"],
                                                         [pages / "toy.png"], [pages / "stray.png"])
        assert benchmarks.update() == sorted([readme, pages / "index.md", pages / "toy.md", pages / "toy.png",
                                              pages / "stray.png"])
        assert benchmarks.differences() == ({}, {}, []) and not (pages / "stray.png").exists()
        assert benchmarks.recorded_digest(pages / "toy.png") != digest
    finally:
        benchmarks.benchmark_module.cache_clear()
        sys.modules.pop("toy", None)
