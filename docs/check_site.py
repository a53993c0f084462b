"""Fail on broken internal links in the built HTML documentation.

Walks every ``.html`` file under the build directory, collects each ``href``
and ``src`` that points inside the site (relative paths, no scheme), and checks
that the target file exists and, for ``#fragment`` links into HTML pages, that
the target page has an element with that ``id`` (or an ``<a name=...>``).
External links (``http:``, ``https:``, ``mailto:``, ...) are not checked.

Usage::

    python docs/check_site.py [docs/_build/html]

Exits 0 when every internal link resolves, 1 (listing each broken link with the
page it is on) otherwise, 2 when the build directory has no HTML.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

DEFAULT_BUILD = Path(__file__).resolve().parent / "_build" / "html"
#: Folders of copied assets, not pages: the theme ships HTML templates in ``_static``.
SKIP_DIRS = frozenset({"_static", "_sources", "_images"})


class _LinkParser(HTMLParser):
    """Collect the ids of a page and the links it makes."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if values.get("id"):
            self.ids.add(values["id"])
        if tag == "a" and values.get("name"):
            self.ids.add(values["name"])
        for attr in ("href", "src"):
            link = values.get(attr)
            if link:
                self.links.append(link)


def _parse(path: Path) -> _LinkParser:
    parser = _LinkParser()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return parser


def broken_links(root: Path) -> list[tuple[str, str, str]]:
    """Every broken internal link under ``root`` as ``(page, link, reason)``."""
    root = root.resolve()
    pages = {p.resolve(): _parse(p) for p in root.rglob("*.html")}
    problems: list[tuple[str, str, str]] = []
    for page, parsed in pages.items():
        if SKIP_DIRS.intersection(page.relative_to(root).parts[:-1]):
            continue
        for link in parsed.links:
            parts = urlsplit(link)
            if parts.scheme or parts.netloc or link.startswith(("//", "data:", "javascript:")):
                continue
            rel = page.relative_to(root).as_posix()
            if parts.path:
                target = (page.parent / unquote(parts.path)).resolve()
                if target.is_dir():
                    target = target / "index.html"
            else:
                target = page
            if not target.is_file():
                problems.append((rel, link, "no such file"))
                continue
            if not target.is_relative_to(root):
                problems.append((rel, link, "points outside the site"))
                continue
            fragment = unquote(parts.fragment)
            if fragment and target.suffix == ".html":
                ids = pages[target].ids if target in pages else _parse(target).ids
                if fragment not in ids:
                    problems.append((rel, link, f"no element with id {fragment!r}"))
    return sorted(set(problems))


def main(argv: list[str] | None = None) -> int:
    """Check the site and print the broken links; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else DEFAULT_BUILD
    if not any(root.rglob("*.html")):
        print(f"No HTML files under {root}; build the documentation first.", file=sys.stderr)
        return 2
    problems = broken_links(root)
    if not problems:
        n_pages = sum(1 for _ in root.rglob("*.html"))
        print(f"All internal links resolve ({n_pages} pages under {root}).")
        return 0
    by_page: dict[str, list[str]] = defaultdict(list)
    for page, link, reason in problems:
        by_page[page].append(f"  {link}: {reason}")
    print(f"{len(problems)} broken internal link(s):", file=sys.stderr)
    for page, lines in by_page.items():
        print(page, file=sys.stderr)
        print("\n".join(lines), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
