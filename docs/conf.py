"""Sphinx configuration for the Sportello documentation (Markdown through MyST, theme furo).

Build: ``make docs`` (``sphinx-build -W --keep-going -q -b html docs docs/_build/html``).
Every warning fails the build, so keep links and code blocks valid.
"""

from __future__ import annotations

project = "Sportello"
author = "Sportello contributors"
copyright = "Sportello contributors, EUPL-1.2"  # noqa: A001 - Sphinx setting name
release = "0.1.0"
version = "0.1"

# The reference pages are written by hand from the code. autodoc is left out on purpose:
# the docs build runs in `make test` with -W, and autodoc would make it fail whenever a
# docstring in code under active development is not valid reStructuredText.
extensions = ["myst_parser"]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

myst_enable_extensions = ["colon_fence", "deflist"]
# Anchors for headings down to level 3, so pages can link to [text](page.md#section).
myst_heading_anchors = 4

html_theme = "furo"
html_title = "Sportello"
language = "en"
