"""The tests import the installed distribution, and every public name resolves.

``__all__`` ordering is checked by ruff (RUF022).
"""

import importlib
import json
from importlib.metadata import distribution
from pathlib import Path

import models


def test_models_is_the_installed_distribution():
    dist = distribution("listening-models")
    assert models.__version__ == dist.version
    here = Path(models.__file__).resolve()
    direct_url = dist.read_text("direct_url.json")
    editable = bool(direct_url) and json.loads(direct_url).get("dir_info", {}).get("editable")
    if editable:
        source = Path(json.loads(direct_url)["url"].removeprefix("file://")).resolve()
        assert here.is_relative_to(source), f"models imported from {here}, not the editable {source}"
    else:
        installed = dist.locate_file("models/__init__.py").resolve()
        assert here == installed, f"models imported from {here}, not the installed {installed}"


def test_public_names_resolve():
    for name in ("models", "models.data", "models.diagnostics", "models.predict", "models.priors",
                 "models.exceptions", "models.base"):
        module = importlib.import_module(name)
        public = module.__all__
        for attr in public:
            assert hasattr(module, attr), f"{name}.{attr} is in __all__ but missing"
