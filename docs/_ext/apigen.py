"""Generate the API reference pages from the ``__all__`` of the public modules.

``conf.py`` calls :func:`write_api_pages` before Sphinx reads any source, so a
name added to a module's ``__all__`` appears in the reference without editing
the docs. ``tests/test_docs.py`` calls :func:`public_api` (the same listing) to
check that every public name has a docstring and a place in the reference.

Each object is documented once, on the page of its *canonical* public module:
the defining module when that module is public and exports the name, otherwise
the most specific public module that exports it (``models.data`` for
``validate_events``, which is defined in the private-by-omission
``models.data.validation``). Other public modules that re-export it list it
with a link to the canonical entry. A public module that cannot be imported
fails the build; only a module that does not exist yet (no file, or a
namespace package without ``__init__.py``) is left out, and
:func:`public_api` reports it in ``missing``.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import types
from dataclasses import dataclass, field
from pathlib import Path

#: The public modules, in the order of the API index.
PUBLIC_MODULES = (
    "models",
    "models.data",
    "models.diagnostics",
    "models.churn",
    "models.listening",
    "models.network",
    "models.experiments",
    "models.predict",
    "models.scoring",
    "models.metrics",
    "models.analysis",
    "models.priors",
    "models.exceptions",
    "models.base",
)

#: Text for standard dunder metadata that cannot carry a doc comment of its own.
DUNDER_DOCS = {
    "__version__": "Version of the installed listening-models package, e.g. ``'0.1.0'``.",
}

#: What each kind of entry is called in the section headings of a module page.
KIND_TITLES = {
    "module": "Subpackages",
    "class": "Classes",
    "exception": "Exceptions and warnings",
    "function": "Functions",
    "data": "Constants",
}


#: Kinds that get their own autosummary stub page.
_STUBBED = ("class", "exception", "function")


@dataclass
class Entry:
    """One public name of one public module."""

    module: str
    name: str
    obj: object
    kind: str  # "class", "exception", "function", "data" or "module"
    canonical: str  # full dotted name where the object is documented
    doc: str  # the docstring (or doc comment for data); "" when there is none

    @property
    def is_canonical(self) -> bool:
        return self.canonical == f"{self.module}.{self.name}"


@dataclass
class PublicAPI:
    """All public modules that exist, their entries, and the ones not written yet."""

    modules: dict[str, list[Entry]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def entries(self) -> list[Entry]:
        return [e for entries in self.modules.values() for e in entries]


def _module_exists(name: str) -> bool:
    """Whether a module has a real file (a namespace package without ``__init__`` does not)."""
    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:  # a parent package is missing
        return False
    return spec is not None and spec.origin not in (None, "namespace")


def _kind(obj: object) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if callable(obj) and (inspect.isfunction(obj) or inspect.isbuiltin(obj)):
        return "function"
    return "data"


def _attribute_comment(module: types.ModuleType, name: str) -> str:
    """Doc comment (``#:`` lines above, or a string right after) of a module-level assignment."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return ""
    lines = source.splitlines()
    body = ast.parse(source).body
    for i, node in enumerate(body):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        if not any(isinstance(t, ast.Name) and t.id == name for t in targets):
            continue
        comment: list[str] = []
        j = node.lineno - 2
        while j >= 0 and lines[j].strip().startswith("#:"):
            comment.insert(0, lines[j].strip()[2:].strip())
            j -= 1
        if comment:
            return " ".join(comment)
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (
            isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            return inspect.cleandoc(nxt.value.value)
    return ""


def _data_doc(module: types.ModuleType, name: str, obj: object) -> str:
    """Doc comment of a public constant, looked up where it is assigned."""
    if name in DUNDER_DOCS:
        return DUNDER_DOCS[name]
    doc = _attribute_comment(module, name)
    if doc or not hasattr(module, "__path__"):
        return doc
    # Re-exported from a submodule: find the submodule that assigns the same object.
    for info in pkgutil.walk_packages(module.__path__, prefix=module.__name__ + "."):
        sub = importlib.import_module(info.name)
        if getattr(sub, name, None) is obj:
            doc = _attribute_comment(sub, name)
            if doc:
                return doc
    return ""


def _object_doc(obj: object) -> str:
    """Own docstring of a class, function or module ("" when there is none)."""
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__") or ""
        # dataclasses invent "Name(field: type, ...)" when the class has no docstring
        if doc.startswith(f"{obj.__name__}("):
            return ""
        return inspect.cleandoc(doc)
    return inspect.getdoc(obj) or ""


def public_api(modules: tuple[str, ...] = PUBLIC_MODULES) -> PublicAPI:
    """List every name in ``__all__`` of every public module that exists.

    Raises
    ------
    ImportError
        If a public module exists but cannot be imported.
    AttributeError
        If a public module has no ``__all__``, or ``__all__`` names something the
        module does not have.
    """
    api = PublicAPI()
    raw: dict[str, list[tuple[str, object]]] = {}
    for modname in modules:
        if not _module_exists(modname):
            api.missing.append(modname)
            continue
        module = importlib.import_module(modname)
        if not hasattr(module, "__all__"):
            raise AttributeError(f"Public module {modname} has no __all__.")
        raw[modname] = [(name, getattr(module, name)) for name in module.__all__]

    # Where each object is documented: its defining module if public and exporting it,
    # otherwise the most specific (longest-named) public module exporting it.
    homes: dict[int, list[str]] = {}
    for modname, items in raw.items():
        for name, obj in items:
            if _kind(obj) != "data":
                homes.setdefault(id(obj), []).append(f"{modname}.{name}")

    def canonical(modname: str, name: str, obj: object) -> str:
        if _kind(obj) == "module":
            return obj.__name__
        if _kind(obj) == "data":
            return f"{modname}.{name}"
        places = homes[id(obj)]
        defining = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__name__', name)}"
        if defining in places:
            return defining
        return max(places, key=lambda p: (p.count("."), p))

    for modname, items in raw.items():
        module = importlib.import_module(modname)
        entries = []
        for name, obj in items:
            kind = _kind(obj)
            doc = _data_doc(module, name, obj) if kind == "data" else _object_doc(obj)
            entries.append(Entry(modname, name, obj, kind, canonical(modname, name, obj), doc))
        api.modules[modname] = entries
    return api


def _summary(doc: str) -> str:
    """First paragraph of a docstring, on one line."""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _heading(text: str, char: str) -> list[str]:
    return [text, char * len(text), ""]


def _indent(text: str, spaces: int = 3) -> list[str]:
    return [(" " * spaces + line) if line else "" for line in text.splitlines()]


def module_page(modname: str, entries: list[Entry]) -> str:
    """The reStructuredText of one module's API page."""
    lines = _heading(f"``{modname}``", "=")
    lines += [
        f".. automodule:: {modname}",
        "   :no-members:",
        "",
        f".. currentmodule:: {modname}",
        "",
    ]
    for kind, title in KIND_TITLES.items():
        group = [e for e in entries if e.kind == kind]
        if not group:
            continue
        lines += _heading(title, "-")
        if kind == "module":
            lines += [f"- :mod:`{e.canonical}`: {_summary(e.doc)}" for e in group] + [""]
            continue
        if kind == "data":
            for e in group:
                lines += [f".. py:data:: {e.name}", ""]
                lines += _indent(e.doc) + [""]
            continue
        own = [e for e in group if e.is_canonical]
        elsewhere = [e for e in group if not e.is_canonical]
        if own:
            lines += [".. autosummary::", "   :toctree: generated/", "   :nosignatures:", ""]
            lines += [f"   {e.name}" for e in own] + [""]
        if elsewhere:
            role = "func" if kind == "function" else "class"
            lines += ["Also available here, documented where they are defined:", ""]
            lines += [f"- :{role}:`~{e.canonical}`: {_summary(e.doc)}" for e in elsewhere]
            lines += [""]
    return "\n".join(lines).rstrip() + "\n"


def index_page(api: PublicAPI) -> str:
    """The reStructuredText of the API index: one toctree entry per public module."""
    lines = _heading("API reference", "=")
    lines += [
        "Generated from the ``__all__`` of each public module when the documentation is",
        "built; every name listed there has a page here.",
        "",
        ".. toctree::",
        "   :maxdepth: 1",
        "",
    ]
    lines += [f"   {modname}" for modname in api.modules] + [""]
    return "\n".join(lines)


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` unless the file already holds it (keeps Sphinx's incremental build)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def write_api_pages(outdir: str | Path) -> PublicAPI:
    """Write ``index.rst`` and one page per existing public module into ``outdir``.

    Pages of modules that no longer exist, and autosummary stubs in
    ``outdir/generated`` of names no longer public, are removed; the stubs
    themselves are written by Sphinx's autosummary.
    """
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    api = public_api()
    pages = {"index.rst": index_page(api)}
    pages |= {f"{m}.rst": module_page(m, entries) for m, entries in api.modules.items()}
    for stale in outdir.glob("*.rst"):
        if stale.name not in pages:
            stale.unlink()
    for name, text in pages.items():
        _write_if_changed(outdir / name, text)
    stubs = {f"{e.canonical}.rst" for e in api.entries() if e.is_canonical and e.kind in _STUBBED}
    for stale in (outdir / "generated").glob("*.rst"):
        if stale.name not in stubs:
            stale.unlink()
    return api


# --------------------------------------------------------------------------- Sphinx hook


def _import_dotted(target: str) -> object | None:
    """The object a dotted path names (``pkg.module.attr.attr``), or None."""
    parts = target.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _resolve_alias(app, env, node, contnode, canonical, modules):  # noqa: ANN001, ANN202
    """Resolve a reference to a public object through a non-canonical dotted path.

    ``:func:`models.data.validation.validate_events``` names the same function
    the reference documents as ``models.data.validate_events``; a reference to a
    module that has no page of its own (``models.diagnostics.checks``) goes to
    the page of the nearest public package above it. Anything else stays
    unresolved (and fails the nitpicky build).
    """
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    if not target.startswith("models."):
        modname = node.get("py:module")
        if not modname or not modname.startswith("models"):
            return None
        target = f"{modname}.{target}"
    domain = env.get_domain("py")
    new_target = None
    if node["reftype"] == "mod":
        parts = target.split(".")
        while parts and ".".join(parts) not in modules:
            parts.pop()
        new_target = ".".join(parts) or None
    else:
        obj = _import_dotted(target)
        if obj is not None:
            new_target = canonical.get(id(obj))
            if new_target is None and "." in target:
                # a method or attribute reached through an alias of its class
                owner, attr = target.rsplit(".", 1)
                owner_name = canonical.get(id(_import_dotted(owner)))
                new_target = f"{owner_name}.{attr}" if owner_name else None
    if new_target is None and "." not in node["reftarget"]:
        # A short name in an inherited docstring (``BayesianModel`` seen from a subclass page
        # in another module): use the one public object of that name, if there is one.
        matches = {c for c in canonical.values() if c.rsplit(".", 1)[-1] == node["reftarget"]}
        new_target = matches.pop() if len(matches) == 1 else None
    if not new_target or new_target == node["reftarget"]:
        return None
    return domain.resolve_xref(
        env, node["refdoc"], app.builder, node["reftype"], new_target, node, contnode
    )


def setup(app):  # noqa: ANN001, ANN201
    """Sphinx extension: resolve references that reach public objects by another path."""
    api = public_api()
    canonical = {id(e.obj): e.canonical for e in api.entries() if e.kind != "data"}
    modules = set(api.modules)

    def on_missing_reference(app, env, node, contnode):  # noqa: ANN001, ANN202
        return _resolve_alias(app, env, node, contnode, canonical, modules)

    app.connect("missing-reference", on_missing_reference)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
