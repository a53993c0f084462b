"""Sphinx configuration of the listening-models documentation.

Build with ``sphinx-build -W --keep-going -b html docs docs/_build/html``.
The API pages under ``docs/api/`` are generated from the ``__all__`` of the
public modules every time (see ``docs/_ext/apigen.py``); the tutorials are MyST
notebooks executed during the build.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

import apigen  # noqa: E402

import models  # noqa: E402

# -- API pages: written before Sphinx reads any source -----------------------
apigen.write_api_pages(HERE / "api")

# -- Project ------------------------------------------------------------------
project = "listening-models"
author = "listening-models developers"
copyright = "listening-models developers"
release = models.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_nb",
    "apigen",
]

exclude_patterns = ["_build", "jupyter_execute", "**.ipynb_checkpoints", "README.md"]
# The benchmarks page includes benchmarks/README.md; without that file the page is left out
# and its entry is taken out of the index's toctree (see setup below).
HAVE_BENCHMARKS = (HERE.parent / "benchmarks" / "README.md").is_file()
if not HAVE_BENCHMARKS:
    exclude_patterns.append("benchmarks.md")
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb"}
root_doc = "index"

# -- Cross-references: every internal reference must resolve ------------------
nitpicky = True
# Third-party and builtin types named in docstrings and numpydoc type fields: there is
# no intersphinx (the build must not need the network), so these are left unlinked.
_THIRD_PARTY = r"(numpy|np|pandas|pd|scipy|xarray|xr|arviz|az|pymc|pm|pytensor|matplotlib|networkx)"
nitpick_ignore_regex = [
    (r"py:.*", _THIRD_PARTY + r"(\..*)?"),
    (r"py:.*", r"(int|float|str|bool|dict|list|tuple|set|callable|object|type|None)"),
    (r"py:.*", r"(ValueError|TypeError|RuntimeError|UserWarning|KeyError|FileNotFoundError"
     r"|OSError|PermissionError|FileExistsError|NotADirectoryError|KeyboardInterrupt)"),
    (r"py:.*", r"(abc|pathlib|os|collections\.abc|typing|warnings)\..*"),
    # mixins from private modules, named among a public class's bases (not documented)
    (r"py:class", r"models(\.\w+)*\._[a-z]\w*\.\w+"),
]

# -- autodoc / autosummary / numpydoc ----------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc's Parameters sections carry the types
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True}
numpydoc_show_class_members = False  # members are listed by the class template
numpydoc_class_members_toctree = False
numpydoc_validation_checks = set()

# -- MyST and notebooks ------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "force"  # tutorials always run against the code being documented
nb_execution_timeout = 120  # seconds per cell
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

# -- HTML ---------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"listening-models {release}"
html_static_path = ["_static"]
html_css_files = ["custom.css"]  # narrower sidebars: code cells fit at laptop widths
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_show_sourcelink = False


def _drop_benchmarks_entry(app, docname, source):  # noqa: ANN001, ANN202
    if docname == "index" and not HAVE_BENCHMARKS:
        source[0] = source[0].replace("\nbenchmarks\n", "\n")


def setup(app):  # noqa: ANN001, ANN201
    app.connect("source-read", _drop_benchmarks_entry)
