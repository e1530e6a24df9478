"""The package's import arrows point one way: experiments -> library; models never import planners or synthesis."""
from __future__ import annotations

import ast
from pathlib import Path

import torchrl_gbp

ROOT = Path(torchrl_gbp.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> set[str]:
    """Every torchrl_gbp module ``path`` imports, at any depth of the file (lazy imports included)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "torchrl_gbp" or m.startswith("torchrl_gbp.")}


def imports_by_module() -> dict[str, set[str]]:
    return {module_name(path): imported_modules(path) for path in ROOT.rglob("*.py")}


def offenders(importer_prefix: str, forbidden: tuple[str, ...], allowed_prefix: str | None = None) -> list[str]:
    bad = []
    for name, imports in imports_by_module().items():
        if not (name == importer_prefix or name.startswith(importer_prefix + ".")):
            continue
        if allowed_prefix is not None and (name == allowed_prefix or name.startswith(allowed_prefix + ".")):
            continue
        bad += [f"{name} imports {m}" for m in imports
                if any(m == f or m.startswith(f + ".") for f in forbidden)]
    return sorted(bad)


def test_the_walk_sees_relative_and_lazy_imports():
    imports = imports_by_module()
    assert "torchrl_gbp.models" in imports["torchrl_gbp.experiments.pipeline"]
    assert "torchrl_gbp.experiments.recipes.gymnasium" in imports["torchrl_gbp.experiments.recipes"]


def test_the_library_never_imports_the_experiment_layer():
    assert offenders("torchrl_gbp", ("torchrl_gbp.experiments",), allowed_prefix="torchrl_gbp.experiments") == []


def test_models_never_import_planners_or_synthesis():
    assert offenders("torchrl_gbp.models", ("torchrl_gbp.planners", "torchrl_gbp.synthesis")) == []


def test_tasks_never_import_recipes_planners_or_models():
    assert offenders("torchrl_gbp.tasks", ("torchrl_gbp.experiments", "torchrl_gbp.planners",
                                           "torchrl_gbp.models")) == []


def test_examples_import_the_library_only():
    examples = Path(__file__).resolve().parents[1] / "examples"
    imports = {path.name: imported_modules(path) for path in examples.glob("*.py")}
    assert imports, f"no examples in {examples}"
    assert {name: sorted(m for m in found if m.startswith("torchrl_gbp.experiments"))
            for name, found in imports.items()} == {name: [] for name in imports}
