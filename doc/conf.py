"""Sphinx configuration for the skmoe documentation.

Build with ``make html`` (or ``sphinx-build -W --keep-going -b html . _build/html``)
from this directory.  Intersphinx links to NumPy, SciPy, scikit-learn and Python
need network access to download the inventories, so they are only enabled when
the environment variable ``SKMOE_DOCS_INTERSPHINX=1`` is set; offline builds stay
warning-free.
"""

import os
import sys
import warnings
from pathlib import Path

# -- Path setup ---------------------------------------------------------------

DOC_DIR = Path(__file__).resolve().parent
# Make the package importable without installing it (an editable install works
# too; this only matters for a plain checkout).
sys.path.insert(0, str(DOC_DIR.parent))
# Local helpers (see sphinxext/skmoe_doc_utils.py).
sys.path.insert(0, str(DOC_DIR / "sphinxext"))

import skmoe  # noqa: E402

# -- Project information ------------------------------------------------------

project = "skmoe"
author = "The skmoe developers"
copyright = f"2024-%Y, {author}"
release = skmoe.__version__
# The short X.Y version.
version = ".".join(release.split(".")[:2])

# -- General configuration ----------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    # Local: links to scikit-learn labels used by inherited docstrings, and
    # the gallery reset function (sphinxext/skmoe_doc_utils.py).
    "skmoe_doc_utils",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "modules/_*.rst"]
root_doc = "index"
default_role = "literal"
nitpicky = False

# -- autodoc / autosummary / numpydoc ------------------------------------------

autosummary_generate = True
autodoc_typehints = "none"

numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
# Parameter types are rendered as written (no automatic cross-references).
numpydoc_xref_param_type = False

# -- intersphinx ----------------------------------------------------------------

_INTERSPHINX_MAPPING = {
    "python": ("https://docs.python.org/3", None),
    "numpy": ("https://numpy.org/doc/stable/", None),
    "scipy": ("https://docs.scipy.org/doc/scipy/", None),
    "sklearn": ("https://scikit-learn.org/stable/", None),
    "matplotlib": ("https://matplotlib.org/stable/", None),
}
if os.environ.get("SKMOE_DOCS_INTERSPHINX", "0") == "1":
    intersphinx_mapping = _INTERSPHINX_MAPPING
else:
    # Offline default: no inventories are fetched; references to external
    # objects are rendered as plain literals instead of links.
    intersphinx_mapping = {}
intersphinx_timeout = 10

# -- sphinx-gallery -------------------------------------------------------------


sphinx_gallery_conf = {
    "examples_dirs": ["../examples"],
    "gallery_dirs": ["auto_examples"],
    "doc_module": ("skmoe",),
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"skmoe": None},
    "within_subsection_order": "FileNameSortKey",
    "filename_pattern": r"/plot_",
    # Scripts in examples/ without the plot_ prefix (long studies) are not
    # gallery pages.
    "ignore_pattern": r"__init__\.py|(?:^|[/\\])(?!plot_)\w+\.py$",
    "inspect_global_variables": False,
    "remove_config_comments": True,
    # Restore matplotlib and scikit-learn global settings between examples.
    "reset_modules": ("matplotlib", "skmoe_doc_utils.reset_sklearn_config"),
    "plot_gallery": "True",
    "download_all_examples": False,
    "show_memory": False,
    "matplotlib_animations": False,
}

# Silence a harmless matplotlib warning when the Agg backend is selected.
warnings.filterwarnings(
    "ignore",
    category=UserWarning,
    message="Matplotlib is currently using agg, which is a non-GUI backend",
)

# -- HTML output ----------------------------------------------------------------

html_theme = "pydata_sphinx_theme"
html_title = f"skmoe {release}"
html_static_path = []
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "navbar_end": ["theme-switcher", "navbar-icon-links"],
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}
