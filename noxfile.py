"""Sessions: `nox -s tests`, `nox -s eval -- encoder=theia task=metaworld`, `nox -s list`, `nox -s lint`.

The heavy sessions share one environment (`.nox/harness`, torch + simulators, several GB) instead of
one each; it is created on first use and updated when pyproject.toml or constraints.txt change.
Everything after `--` goes to the tool the session runs.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
HARNESS_ENV = ROOT / ".nox" / "harness"


def harness(session: nox.Session, extras: str = "all"):
    """Create or update the shared environment; return a runner for commands inside it."""
    python = HARNESS_ENV / "bin" / "python"
    wanted = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes() + extras.encode()
    ).hexdigest()
    stamp = HARNESS_ENV / ".installed"
    if not python.exists():
        session.run(sys.executable, "-m", "venv", str(HARNESS_ENV), external=True)
    if not stamp.exists() or stamp.read_text() != wanted:
        session.run(
            str(python), "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", f".[{extras}]", external=True
        )
        stamp.write_text(wanted)

    def run(*args: str, **kwargs) -> None:
        session.run(str(python), *args, external=True, **kwargs)

    return run


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite on the real simulators with tiny encoders and budgets (pytest args after --)."""
    harness(session)("-m", "pytest", *session.posargs, env={"HF_HUB_OFFLINE": "1", "CORTEXBENCH_OFFLINE": "1"})


@nox.session(venv_backend="none")
def eval(session: nox.Session) -> None:
    """Evaluate an encoder on tasks: nox -s eval -- encoder=theia task=metaworld [protocol=theia] [-m ...]."""
    harness(session)("-m", "experiments.eval", *session.posargs)


@nox.session(name="list", venv_backend="none")
def list_(session: nox.Session) -> None:
    """List encoders, tasks and groups, with simulator availability and cached weights (-- encoders|tasks|groups)."""
    harness(session)("-m", "experiments.listing", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Lint and format-check with ruff (pass --fix after -- to apply fixes)."""
    session.install("-c", "constraints.txt", "ruff")
    fix = "--fix" in session.posargs
    session.run("ruff", "check", *(["--fix"] if fix else []), ".")
    session.run("ruff", "format", *([] if fix else ["--check"]), ".")
