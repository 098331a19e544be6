"""Sessions: `nox -s tests`, `nox -s eval -- encoder=theia task=metaworld`, `nox -s list`, `nox -s lint`,
`nox -s docs`, `nox -s status` / `nox -s slurm` for sweeps.

The heavy sessions share one environment (`.nox/harness`, torch + simulators, several GB) instead of
one each; it is created on first use and updated when pyproject.toml or constraints.txt change. Run
sessions install the `run` extras only; `tests` adds the `test` extras (pytest, transformers, minari[create]
with jax), so `eval` on a fresh clone never pulls test tools, and an environment built for the tests serves
every run session as it is. Everything after `--` goes to the tool the session runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_venv = "yes"

ROOT = Path(__file__).parent
HARNESS_ENV = ROOT / ".nox" / "harness"
RUN_EXTRAS = ("run",)  # eval, list, bench, leaderboard, ...: every suite and feature, no test or lint tools
TEST_EXTRAS = ("run", "test")


@contextlib.contextmanager
def install_lock(session: nox.Session, env: Path) -> Iterator[None]:
    """Hold an exclusive lock on `<env>.lock` while `env` is created or updated, so that two nox calls started
    at once never run two pip installs into one environment (the second waits, then finds it installed)."""
    env.parent.mkdir(parents=True, exist_ok=True)
    with open(env.with_name(env.name + ".lock"), "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            session.log(f"waiting for another nox session that is installing {env} ...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


def installed_extras(stamp: Path, inputs: str) -> set[str]:
    """The extras installed into the environment from these pyproject/constraints inputs (none if they changed)."""
    try:
        recorded = json.loads(stamp.read_text())
        return set(recorded["extras"]) if recorded["inputs"] == inputs else set()
    except (OSError, ValueError, KeyError, TypeError):  # no stamp yet, or one written by an older noxfile
        return set()


def harness(session: nox.Session, extras: tuple[str, ...] = RUN_EXTRAS):
    """Create or update the shared environment with at least `extras`; return a runner for commands inside it."""
    python = HARNESS_ENV / "bin" / "python"
    inputs = hashlib.sha256(
        (ROOT / "pyproject.toml").read_bytes() + (ROOT / "constraints.txt").read_bytes()
    ).hexdigest()
    stamp = HARNESS_ENV / ".installed"
    with install_lock(session, HARNESS_ENV):
        have = installed_extras(stamp, inputs)
        if not python.exists():
            session.run(sys.executable, "-m", "venv", str(HARNESS_ENV), external=True)
            have = set()
        if not set(extras) <= have:
            wanted = sorted(have | set(extras))
            target = f".[{','.join(wanted)}]"
            session.run(str(python), "-m", "pip", "install", "-q", "-c", "constraints.txt", "-e", target, external=True)
            stamp.write_text(json.dumps({"inputs": inputs, "extras": wanted}) + "\n")

    def run(*args: str, **kwargs) -> None:
        """Run the harness; its exit code is nox's (0 ok, 1 some cell or test failed, 2 bad input)."""
        try:
            session.run(str(python), *args, external=True, **kwargs)
        except nox.command.CommandFailed as failed:
            code = re.search(r"code (\d+)", failed.reason or "")
            raise SystemExit(int(code.group(1)) if code else 1) from None

    return run


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Run the test suite on the real simulators with tiny encoders and budgets (pytest args after --)."""
    harness(session, TEST_EXTRAS)(
        "-m", "pytest", *session.posargs, env={"HF_HUB_OFFLINE": "1", "CORTEXBENCH_OFFLINE": "1"}
    )


@nox.session(venv_backend="none")
def eval(session: nox.Session) -> None:
    """Evaluate an encoder on tasks: nox -s eval -- encoder=theia task=metaworld [protocol=theia] [-m ...]."""
    harness(session)("-m", "experiments.eval", *session.posargs)


@nox.session(venv_backend="none")
def status(session: nox.Session) -> None:
    """Show which cells of a sweep are ok, failed, running or missing: nox -s status -- <the eval overrides>."""
    harness(session)("-m", "experiments.status", *session.posargs)


@nox.session(venv_backend="none")
def slurm(session: nox.Session) -> None:
    """Write and submit one sbatch array script for a sweep (fire and forget): nox -s slurm -- <the eval overrides>."""
    harness(session)("-m", "experiments.slurm", *session.posargs)


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


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Regenerate the encoder and task tables in docs/ from the registries (-- --check: fail if stale)."""
    harness(session)("-m", "experiments.docs_tables", *session.posargs)


@nox.session(venv_backend="none")
def entropy(session: nox.Session) -> None:
    """Pooled feature-norm entropy of an encoder over a task group (definition 2): nox -s entropy -- encoder=theia task=mujoco."""
    harness(session)("-m", "experiments.entropy", *session.posargs)


@nox.session(venv_backend="none")
def screen(session: nox.Session) -> None:
    """Cheap predictors of the protocol score (entropy, state / action probes, NN action error) from demos only: nox -s screen -- encoder=a,b task=metaworld."""
    harness(session)("-m", "experiments.screen", *session.posargs)


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Measure evaluation speed as ratios in one run: nox -s bench -- encoder=theia-tiny weights=random task=metaworld-assembly."""
    harness(session)("-m", "experiments.bench", *session.posargs)


@nox.session(venv_backend="none")
def demos(session: nox.Session) -> None:
    """Download and check CortexBench's official demonstrations: nox -s demos -- dmc adroit [source=minari]."""
    harness(session)("-m", "tasks.download", *session.posargs)


@nox.session(venv_backend="none")
def experts(session: nox.Session) -> None:
    """Train (seeded) or measure the offline DMC/Adroit experts: nox -s experts -- task=dmc [train=false]."""
    harness(session)("-m", "tasks.experts.train", *session.posargs)


@nox.session(venv_backend="none")
def leaderboard(session: nox.Session) -> None:
    """Rebuild results/leaderboard.{md,csv} and results/figures from the run records (-- --check: fail if stale)."""
    harness(session)("-m", "experiments.leaderboard", *session.posargs)


# --- Habitat: its own environment (habitat-sim comes from conda; habitat-lab pins numpy < 2) ----------------
HABITAT_CONSTRAINTS = {"numpy": "numpy==1.26.4", "gym": "gym==0.23.1"}  # replace these lines of constraints.txt


def _habitat_python(session: nox.Session, stack: str) -> str:
    """The interpreter that has habitat-sim: $HABITAT_PYTHON, else the active conda env's python; fail with the
    exact install commands (printed by `python -m tasks.habitat`) when there is none."""
    import os
    import subprocess

    prefix = os.environ.get("CONDA_PREFIX")
    python = os.environ.get("HABITAT_PYTHON") or (f"{prefix}/bin/python" if prefix else "")
    check = "import sys, habitat_sim; sys.exit(0 if sys.version_info >= (3, 10) else 3)"
    code = subprocess.run([python, "-c", check], capture_output=True).returncode if python else None
    if code == 0:
        return python
    stack_tasks = {"nav": ["imagenav-gibson", "objectnav-hm3d"], "rearrange": ["mobilepick-replicacad"]}[stack]
    asked = [t for a in session.posargs if a.startswith("task=") for t in a[5:].split(",") if t in stack_tasks]
    # print what is missing and the commands that provide it
    harness(session)("-m", "tasks.habitat", *(asked or stack_tasks), success_codes=[0, 1])
    where = (
        f"{python} (HABITAT_PYTHON or $CONDA_PREFIX/bin/python)" if python else "no HABITAT_PYTHON, no active conda env"
    )
    reason = (
        "its Python is older than 3.10 (the harness needs >= 3.10)"
        if code == 3
        else "habitat_sim does not import there"
    )
    session.error(f"no Habitat environment: {where}: {reason}; build one with the commands above")


@nox.session(name="eval-habitat", venv_backend="none")
def eval_habitat(session: nox.Session) -> None:
    """Evaluate on the Habitat suites in their own environment (conda habitat-sim): nox -s eval-habitat -- encoder=vc1 task=imagenav-gibson."""
    stack = "rearrange" if any(a.startswith("task=") and "mobilepick" in a for a in session.posargs) else "nav"
    python = _habitat_python(session, stack)
    env = ROOT / ".nox" / f"habitat-{stack}"
    constraints = env / "constraints.txt"
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.strip()]
    pinned = [HABITAT_CONSTRAINTS.get(line.split("==")[0].strip().lower(), line) for line in lines]
    wanted = hashlib.sha256(
        "\n".join(pinned).encode() + (ROOT / "pyproject.toml").read_bytes() + python.encode()
    ).hexdigest()
    stamp = env / ".installed"
    with install_lock(session, env):
        if not (env / "bin" / "python").exists():  # sees the conda env's habitat-sim, habitat-lab and eai-vc packages
            session.run(python, "-m", "venv", "--system-site-packages", str(env), external=True)
        if not stamp.exists() or stamp.read_text() != wanted:
            constraints.write_text("\n".join(pinned) + "\n")
            pip = [str(env / "bin" / "python"), "-m", "pip", "install", "-q", "-c", str(constraints)]
            session.run(*pip, "-e", ".[habitat]", external=True)
            stamp.write_text(wanted)
    session.run(str(env / "bin" / "python"), "-m", "experiments.eval", *session.posargs, external=True)
