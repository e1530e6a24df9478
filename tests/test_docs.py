"""The docs site: it builds offline with warnings as errors, and its API reference covers every public object."""
from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def reference_modules() -> list[str]:
    """The modules docs/api.rst lists."""
    return [line.strip() for line in (ROOT / "docs" / "api.rst").read_text().splitlines()
            if line.strip().startswith("torchrl_gbp")]


def public_objects(name: str) -> dict[str, object]:
    """A module's public classes and functions: its ``__all__``, or what it defines without a leading underscore."""
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None) or [
        n for n, obj in vars(module).items()
        if not n.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj))
        and getattr(obj, "__module__", "") == name]
    return {n: getattr(module, n) for n in names}


def test_the_reference_lists_every_package_and_module_of_the_library() -> None:
    listed = set(reference_modules())
    package = ROOT / "torchrl_gbp"
    top = {f"torchrl_gbp.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    top |= {f"torchrl_gbp.{p.parent.name}" for p in package.glob("*/__init__.py") if p.parent.name != "experiments"}
    experiments = {f"torchrl_gbp.experiments.{p.stem}" for p in (package / "experiments").glob("*.py")
                   if p.stem != "__init__"} | {"torchrl_gbp.experiments.recipes"}
    assert top - {"torchrl_gbp.objectives"} <= listed, sorted(top - listed)  # objectives: under planners
    assert experiments <= listed, sorted(experiments - listed)


def test_every_public_object_in_the_reference_has_a_docstring_with_an_example() -> None:
    documented = [(f"{module}.{name}", inspect.getdoc(obj) or "") for module in reference_modules()
                  for name, obj in public_objects(module).items() if inspect.isclass(obj) or inspect.isfunction(obj)]
    assert len(documented) > 100
    assert [name for name, doc in documented if not doc] == []
    assert [name for name, doc in documented if ">>>" not in doc] == []


@pytest.mark.slow
def test_the_docs_build_offline_with_warnings_as_errors(tmp_path) -> None:
    result = subprocess.run([sys.executable, "-m", "sphinx", "-E", "-W", "--keep-going", "-q", "-b", "html",
                             str(ROOT / "docs"), str(tmp_path / "html")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    page = (tmp_path / "html" / "generated" / "torchrl_gbp.planners.html").read_text()
    assert "MPCPolicy" in page and "GradientPlanner" in page  # the API reference holds the docstrings
    assert (tmp_path / "html" / "results" / "wall_paper.html").exists()
