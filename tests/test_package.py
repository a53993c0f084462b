"""The tests import the installed distribution, every public name resolves, the README runs.

``__all__`` ordering is checked by ruff (RUF022).
"""

import importlib
import json
from importlib.metadata import distribution
from pathlib import Path

import pytest

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


README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_session() -> str:
    text = README.read_text(encoding="utf-8")
    section = text.split("## A first session", 1)[1]
    return section.split("```python", 1)[1].split("```", 1)[0]


@pytest.mark.slow
def test_readme_first_session_runs(capsys):
    """The README's "A first session" code runs as written against the installed package."""
    code = _readme_session()
    assert "BetaGeoModel().fit(activity, random_seed=1)" in code
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)  # noqa: S102 - our own README
    model = namespace["model"]
    out = capsys.readouterr().out
    assert "Fit check: PASS" in out  # the README promises a converged fit
    head = model.probability_alive().head()
    assert list(head.columns) == ["mean", "sd", "ci_lower", "ci_upper"]
    assert ((head["ci_lower"] <= head["mean"]) & (head["mean"] <= head["ci_upper"])).all()
