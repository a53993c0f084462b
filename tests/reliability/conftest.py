"""Shared fixtures of the fault catalogue (the tests import no sibling modules).

The catalogue is docs/guide/reliability.md as tests: every bad input or fault must end in
a clear error (naming the file, column, rows and a fix) or a correct result, and must leave
every input and earlier output as it was.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

#: A churn analysis small enough for a test: about 80 users, a few dozen draws.
TINY_CHURN = """\
[data]
n_users = 80
days = 75
n_artists = 15
[sampler]
draws = 30
tune = 30
chains = 2
[churn]
holdout_days = 25
fit_bgbb = false
fit_hazard = false
fit_engagement = false
fit_return_hazard = false
max_draws = 30
cohort_period = "W"
"""


@pytest.fixture
def snapshot():
    """``f(path) -> dict``: sha256 of a file, or of every file under a folder, by relative path."""

    def take(path):
        path = Path(path)
        if not path.exists():
            return None
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        return {str(f.relative_to(path)) if f != path else f.name:
                hashlib.sha256(f.read_bytes()).hexdigest() for f in files}

    return take


@pytest.fixture
def tiny_config(tmp_path):
    """A TOML file with the settings of :data:`TINY_CHURN` (plus ``extra`` lines)."""

    def write(extra="", name="tiny.toml"):
        path = tmp_path / name
        path.write_text(TINY_CHURN + extra)
        return path

    return write


@pytest.fixture(scope="session")
def finished_churn(tmp_path_factory):
    """A finished tiny churn run: its output folder (copy it before changing anything)."""
    from models.cli import main

    root = tmp_path_factory.mktemp("finished")
    config = root / "tiny.toml"
    config.write_text(TINY_CHURN)
    code = main(["run", "churn", "--quick", "--quiet", "--config", str(config),
                 "--out", str(root / "out")])
    assert code in (0, 4)
    return root / "out"


@pytest.fixture
def churn_copy(finished_churn, tmp_path):
    """A private copy of :func:`finished_churn` (``tmp_path/out``) and its config file."""
    out = tmp_path / "out"
    shutil.copytree(finished_churn, out)
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_CHURN)
    return out, config


def _default_sigint():
    """Give a child the default Ctrl-C: a shell starting a job in the background ignores SIGINT.

    Python then installs no KeyboardInterrupt handler, and the child would ignore the test's
    SIGINT as every program started with ``command &`` does.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def _ctrl_c_raises_keyboard_interrupt():
    """Ctrl-C raises KeyboardInterrupt in the tests, also where pytest runs as a background job."""
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    if previous is signal.SIG_IGN:
        signal.signal(signal.SIGINT, previous)


@pytest.fixture
def interrupt_cli():
    """``f(args, trigger, delay, setup="")``: run the CLI, SIGINT it ``delay`` s after ``trigger``.

    ``trigger`` is text in its standard error; ``setup`` is Python run before the CLI (to
    slow a step down, for instance). Returns ``(returncode, stderr)``.
    """

    def run(args, trigger, delay=1.0, setup="", timeout=420):
        code = (f"import sys\n{setup}\nfrom models.cli import main\n"
                f"sys.exit(main({list(map(str, args))!r}))\n")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, env=env,
                                preexec_fn=_default_sigint)
        lines = []
        deadline = time.monotonic() + timeout
        try:
            for line in proc.stderr:
                lines.append(line)
                if trigger in line:
                    time.sleep(delay)
                    proc.send_signal(signal.SIGINT)
                    break
                if time.monotonic() > deadline:
                    break
            _, rest = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return proc.returncode, "".join(lines) + rest

    return run
