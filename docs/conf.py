"""Sphinx configuration of torchrl_gbp's docs: offline (no intersphinx), warnings are errors in the build test."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torchrl_gbp  # noqa: E402

project = "torchrl_gbp"
author = "torchrl_gbp developers"
copyright = "2026, torchrl_gbp developers"
release = torchrl_gbp.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
myst_heading_anchors = 3
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
templates_path = ["_templates"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
# A wider page than alabaster's 940 px: the docstring examples are up to 120 characters wide.
html_theme_options = {"description": "Gradient-based planning with learned world models, in TorchRL",
                      "fixed_sidebar": True, "page_width": "1240px", "sidebar_width": "240px",
                      "body_max_width": "none"}
# Type hints name torch, tensordict and torchrl classes this offline build cannot link: do not warn about them.
nitpicky = False
suppress_warnings = ["myst.header"]
