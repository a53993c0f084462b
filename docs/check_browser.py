"""Open every page of the built documentation in headless Chromium and check it renders.

``check_site.py`` checks the links in the HTML text; this script checks what a reader sees.
It starts one headless Chromium, drives it over the DevTools protocol (through a pipe, so
nothing but the standard library is needed), loads every page of the site from disk and
fails a page when:

- it does not finish loading within the timeout;
- its main content (``<main>``, and the ``<article>`` inside it on theme pages) is missing
  or has no text;
- a script on it throws an uncaught exception, or calls ``console.error``;
- a file of the site it loads (stylesheet, script, image, font) is missing;
- a local image on it did not decode.

External resources (``http:``/``https:``, e.g. MathJax from its CDN) are blocked, so the
check never needs the network and never waits on it; their failures are counted and listed
with ``--verbose``, never fatal.

Usage::

    python docs/check_browser.py [docs/_build/html] [--require] [--verbose]

Exits 0 when every page renders, 1 listing each page that does not, 2 when the build
directory has no HTML or Chromium could not be driven. When no Chromium is installed it prints
a message saying the check was skipped and exits 0, or 3 with ``--require`` or the environment
variable ``CHECK_BROWSER_REQUIRE=1`` (what ``.ci/run`` sets, after installing Debian's
``chromium`` package). Set ``CHROMIUM`` to the browser's path to use
another binary.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_BUILD = Path(__file__).resolve().parent / "_build" / "html"
#: Folders of copied assets, not pages (the theme ships HTML templates in ``_static``).
SKIP_DIRS = frozenset({"_static", "_sources", "_images"})
#: Executables tried in order when ``CHROMIUM`` is not set.
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
#: Console errors that are not faults of the site: the theme reports the empty colour-mode
#: setting of a first visit (nothing in localStorage yet) with ``console.error``.
BENIGN_CONSOLE_ERRORS = ("Got invalid theme mode",)
#: The search page is filled by JavaScript from the query string: it is opened with this query
#: and must list at least one result.
SEARCH_QUERY = "BetaGeoModel"
#: Evaluated on the search page until it has results (or the timeout).
SEARCH_PROBE = """(() => {
  const out = document.getElementById("search-results");
  return out ? out.querySelectorAll("li").length : -1;
})()"""
#: Evaluated in each loaded page; returns what the checks need as one JSON-able object.
PROBE = """(() => {
  const main = document.querySelector("main") || document.querySelector("[role=main]");
  const article = main ? main.querySelector("article") : null;
  const text = (el) => (el ? el.innerText.trim().length : -1);
  const images = Array.from(document.images)
    .filter((img) => img.currentSrc.startsWith("file:") || img.currentSrc.startsWith("data:"))
    .filter((img) => !(img.complete && img.naturalWidth > 0))
    .map((img) => img.getAttribute("src"));
  return {title: document.title, main: text(main), article: text(article),
          themed: !!document.querySelector(".bd-article, .bd-main"), brokenImages: images};
})()"""


def find_chromium() -> str | None:
    """Path of a Chromium executable: ``$CHROMIUM`` if set, else the first one on ``PATH``."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).is_file() or shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def site_pages(root: Path) -> list[Path]:
    """Every HTML page of the built site, asset folders excluded, sorted."""
    root = root.resolve()
    return sorted(
        p for p in root.rglob("*.html")
        if not SKIP_DIRS.intersection(p.relative_to(root).parts[:-1])
    )


@dataclass
class PageResult:
    """What the browser saw on one page."""

    page: str
    problems: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    title: str = ""


def _high_fd(fd: int) -> int:
    """Move ``fd`` to a number >= 10 (so it cannot be 3 or 4 when the child rewires those)."""
    import fcntl

    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


class BrowserError(RuntimeError):
    """Chromium could not be started or stopped answering."""


class Browser:
    """A headless Chromium driven over ``--remote-debugging-pipe`` (fds 3 and 4 of the child).

    Messages are JSON objects, each terminated by a NUL byte. One tab is opened and attached
    in flat mode; every page is loaded in that tab.
    """

    def __init__(self, executable: str, *, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="check-browser-")
        to_child_r, self._to_child = (_high_fd(fd) for fd in os.pipe())
        self._from_child, from_child_w = (_high_fd(fd) for fd in os.pipe())

        args = [
            executable,
            "--headless",
            "--remote-debugging-pipe",
            f"--user-data-dir={self._profile}",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--mute-audio",
            # No network: external resources fail at once instead of hanging the check.
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--allow-file-access-from-files",
            "about:blank",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(2, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        # Chromium reads commands from fd 3 and writes replies to fd 4. The pipe ends (all >= 10,
        # see _high_fd) are copied there in the child just before exec; every other descriptor
        # Python opened is close-on-exec, so nothing else leaks into the browser.
        def _wire_fds() -> None:
            os.dup2(to_child_r, 3)
            os.dup2(from_child_w, 4)

        try:
            self._proc = subprocess.Popen(  # noqa: S603
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                close_fds=False,
                preexec_fn=_wire_fds,  # noqa: PLW1509
            )
        finally:
            os.close(to_child_r)
            os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        self.session: str | None = None
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}
        )["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    # -- protocol -------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise BrowserError("Chromium did not answer in time")
            if self._proc.poll() is not None:
                raise BrowserError(f"Chromium exited with status {self._proc.returncode}")
            import select

            ready, _, _ = select.select([self._from_child], [], [], 0.2)
            if ready:
                chunk = os.read(self._from_child, 1 << 16)
                if not chunk:
                    raise BrowserError("Chromium closed the DevTools pipe")
                self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict | None = None) -> dict:
        """Send one command (to the attached tab once there is one) and return its result."""
        self._next_id += 1
        message: dict = {"id": self._next_id, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self._events.append(reply)

    def wait_for(self, method: str) -> list[dict]:
        """Read events until ``method`` arrives; return every event read since the last call."""
        deadline = time.monotonic() + self.timeout
        while not any(e["method"] == method for e in self._events):
            message = self._read_message(deadline)
            if "method" in message:
                self._events.append(message)
        events, self._events = self._events, []
        return events

    def evaluate(self, expression: str):  # noqa: ANN201
        """Value of a JavaScript expression in the current page."""
        reply = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return reply["result"].get("value")

    def _poll(self, expression: str) -> int:
        """Evaluate ``expression`` until it is positive or the timeout; return the last value."""
        deadline = time.monotonic() + min(self.timeout, 15.0)
        value = self.evaluate(expression)
        while (value is None or value <= 0) and time.monotonic() < deadline:
            time.sleep(0.1)
            value = self.evaluate(expression)
        return -1 if value is None else int(value)

    def close(self) -> None:
        """Stop Chromium and remove its temporary profile."""
        try:
            self.session = None
            self.call("Browser.close")
        except (BrowserError, OSError):
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    # -- one page -------------------------------------------------------------
    def check_page(self, path: Path, root: Path) -> PageResult:
        """Load ``path`` and return what is wrong with it."""
        result = PageResult(page=path.relative_to(root).as_posix())
        self._events = []
        is_search = result.page == "search.html"
        url = path.as_uri() + (f"?q={SEARCH_QUERY}" if is_search else "")
        self.call("Page.navigate", {"url": url})
        try:
            events = self.wait_for("Page.loadEventFired")
        except BrowserError as err:
            result.problems.append(f"did not load: {err}")
            return result
        time.sleep(0.05)  # let scripts run on load finish
        if is_search:
            n_results = self._poll(SEARCH_PROBE)
            if n_results <= 0:
                result.problems.append(
                    f"searching for {SEARCH_QUERY!r} listed no results ({n_results})"
                )
        probe = self.evaluate(PROBE) or {}
        events += self._events
        self._events = []
        result.title = probe.get("title", "")
        requests: dict[str, str] = {}
        for event in events:
            method, params = event["method"], event.get("params", {})
            if method == "Network.requestWillBeSent":
                requests[params["requestId"]] = params["request"]["url"]
            elif method == "Network.loadingFailed":
                url = requests.get(params["requestId"], "?")
                if params.get("canceled"):
                    continue
                entry = f"{url}: {params.get('errorText', 'failed')}"
                (result.problems if url.startswith("file:") else result.external).append(
                    f"missing resource {entry}" if url.startswith("file:") else entry
                )
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                text = details.get("exception", {}).get("description") or details.get("text")
                result.problems.append(f"JavaScript error: {text}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in
                                params.get("args", []))
                if not args.startswith(BENIGN_CONSOLE_ERRORS):
                    result.problems.append(f"console.error: {args}")
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                url = entry.get("url", "")
                if entry.get("source") == "network":
                    continue  # reported through Network.loadingFailed with its URL
                if url.startswith(("http:", "https:")):
                    result.external.append(f"{url}: {entry.get('text', '')}")
                else:
                    result.problems.append(f"browser error: {entry.get('text', '')}")
        if probe.get("main", -1) < 0:
            result.problems.append("no <main> element: the page did not render its content")
        elif probe.get("main", 0) == 0:
            result.problems.append("the <main> element is empty")
        if probe.get("themed") and probe.get("article", -1) <= 0 and not is_search:
            result.problems.append("the page's <article> is missing or empty")
        for src in probe.get("brokenImages", []):
            result.problems.append(f"image did not load: {src}")
        return result


def check_pages(root: Path, executable: str, *, timeout: float = 30.0) -> list[PageResult]:
    """Open every page under ``root`` in one headless Chromium; one result per page."""
    root = root.resolve()
    browser = Browser(executable, timeout=timeout)
    try:
        return [browser.check_page(page, root) for page in site_pages(root)]
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> int:
    """Check the built site in a browser; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", type=Path, default=DEFAULT_BUILD)
    parser.add_argument("--require", action="store_true",
                        help="fail (status 3) instead of skipping when Chromium is absent")
    parser.add_argument("--verbose", action="store_true",
                        help="also list the external resources that were blocked")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per page")
    args = parser.parse_args(argv)

    pages = site_pages(args.root) if args.root.is_dir() else []
    if not pages:
        print(f"No HTML pages under {args.root}; build the documentation first.",
              file=sys.stderr)
        return 2
    executable = find_chromium()
    require = args.require or os.environ.get("CHECK_BROWSER_REQUIRE", "") not in ("", "0")
    if executable is None:
        where = os.environ.get("CHROMIUM") or ", ".join(CANDIDATES)
        message = (f"Chromium not found (looked for {where}); the browser check of the "
                   f"documentation was SKIPPED. Install Debian's 'chromium' package "
                   f"(apt-get install chromium) or set CHROMIUM to a browser's path.")
        if require:
            print(f"ERROR: {message}", file=sys.stderr)
            return 3
        print(message)
        return 0
    started = time.monotonic()
    try:
        results = check_pages(args.root, executable, timeout=args.timeout)
    except (BrowserError, OSError) as err:
        print(f"Could not drive {executable}: {err}", file=sys.stderr)
        return 2
    bad = [r for r in results if r.problems]
    n_external = sum(len(r.external) for r in results)
    if args.verbose:
        for r in results:
            for entry in r.external:
                print(f"{r.page}: external resource blocked: {entry}")
    elapsed = time.monotonic() - started
    if not bad:
        print(f"All {len(results)} pages render in {Path(executable).name} "
              f"({elapsed:.0f} s; {n_external} external resource loads blocked, not checked).")
        return 0
    print(f"{len(bad)} of {len(results)} pages do not render properly:", file=sys.stderr)
    for r in bad:
        print(r.page, file=sys.stderr)
        for problem in r.problems:
            print(f"  {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
