"""`nox -s docs`: the encoder and task tables in docs/, generated from the registries so they cannot drift.

Each table sits in its page between `<!-- BEGIN GENERATED: <name> -->` and `<!-- END GENERATED -->`; the
prose around it is hand-written and left alone. `--check` writes nothing and exits 1, naming the stale pages,
when the committed tables differ from what the registries give (a test runs it). Machine-dependent facts
(simulator availability, cached weights) stay in `nox -s list`. Plug-ins installed in the environment are
part of the registries, so run this where only the repository's own encoders and tasks are installed.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import urlparse

import encoders
import tasks
from encoders.spec import EncoderSpec
from encoders.storage import atomic_write_text
from tasks.spec import TaskSpec

END_MARKER = "<!-- END GENERATED -->"


def begin_marker(name: str) -> str:
    return f"<!-- BEGIN GENERATED: {name} -->"


def markdown_table(headers: list[str], rows: Iterable[list[str]]) -> str:
    """A GitHub-flavoured markdown table; `|` inside a value is escaped."""
    escape = lambda value: str(value).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(map(escape, row)) + " |" for row in rows]
    return "\n".join(lines)


def weights_source(spec: EncoderSpec) -> str:
    """Where `weights=pretrained` comes from: the Hugging Face repo (tried first), else the URL's host."""
    weights = spec.weights
    if weights is None:
        return "seeded random init"
    if weights.hf_repo:
        where = f"[HF {weights.hf_repo}](https://huggingface.co/{weights.hf_repo})"
    elif weights.url:
        where = f"[{urlparse(weights.url).netloc}]({weights.url})"
    else:
        where = "local file only"
    pinned = " (sha256 pinned)" if weights.sha256 else ""
    return f"{where} `{weights.filename}`{pinned}"


def encoders_table(specs: Iterable[EncoderSpec]) -> str:
    rows = [
        [
            f"`{s.name}`",
            ", ".join(f"`{a}`" for a in s.aliases) or "-",
            s.family,
            f"{s.n_parameters / 1e6:.1f}M",
            "not measured" if math.isnan(s.gmacs) else f"{s.gmacs:g}",
            str(s.embed_dim),
            f"{s.grid[0]}x{s.grid[1]}x{s.token_dim}",
            ", ".join(s.outputs),
            s.license,
            "yes" if s.commercial_use else "**no**",
            weights_source(s),
        ]
        if s.input == "pixels"
        else [f"`{s.name}`", "-", s.family, "-", "-", "the task's state", "-", "state", s.license, "yes", "none"]
        for s in specs
    ]
    headers = ["encoder", "aliases", "family", "params", "GMACs", "dim", "tokens", "outputs", "licence"]
    return markdown_table([*headers, "commercial use", "weights (`pretrained`)"], rows)


def tasks_table(specs: Iterable[TaskSpec]) -> str:
    rows = [
        [
            f"`{t.name}`",
            t.suite,
            f"v{t.version}",
            f"camera {t.camera}" if t.camera.isdigit() else t.camera,
            str(t.render_size),
            str(t.horizon),
            str(t.action_repeat),
            str(t.proprio_dim) if t.proprio_dim else "-",
            str(t.n_demos) if t.n_demos else "-",
            "all (val split)" if t.eval_episodes < 0 else str(t.eval_episodes),
            f"`{t.metric}`",
        ]
        for t in specs
    ]
    headers = ["task", "suite", "version", "camera", "size", "horizon", "action repeat", "proprio", "demos"]
    return markdown_table([*headers, "eval episodes", "metric"], rows)


def groups_table(groups: dict[str, list[str]]) -> str:
    rows = [[f"`{g}`", str(len(members)), ", ".join(members) or "(none registered)"] for g, members in groups.items()]
    return markdown_table(["group", "tasks", "members"], rows)


def tables() -> dict[str, tuple[str, Callable[[], str]]]:
    """Table name -> (page under docs/, renderer reading the live registries)."""
    return {
        "encoders": ("encoders.md", lambda: encoders_table(encoders.available())),
        "tasks": ("tasks-and-demos.md", lambda: tasks_table(tasks.available())),
        "task-groups": ("tasks-and-demos.md", lambda: groups_table(tasks.groups())),
    }


def replace_block(text: str, name: str, body: str) -> str:
    """`text` with the generated block `name` holding `body`; a page without the markers is an error."""
    pattern = re.compile(re.escape(begin_marker(name)) + r"\n.*?" + re.escape(END_MARKER), re.S)
    if len(pattern.findall(text)) != 1:
        raise ValueError(f"expected one '{begin_marker(name)}' ... '{END_MARKER}' block")
    return pattern.sub(lambda _: f"{begin_marker(name)}\n{body}\n{END_MARKER}", text)


def render(docs: Path) -> dict[Path, tuple[str, str]]:
    """Page -> (committed text, text with every generated table up to date)."""
    pages: dict[Path, tuple[str, str]] = {}
    for name, (page, make) in tables().items():
        path = docs / page
        if path not in pages:
            text = path.read_text()
            pages[path] = (text, text)
        try:
            updated = replace_block(pages[path][1], name, make())
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from err
        pages[path] = (pages[path][0], updated)
    return pages


def stale_pages(docs: Path) -> list[Path]:
    """Pages whose generated tables differ from the registries."""
    return [path for path, (old, new) in render(docs).items() if old != new]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nox -s docs --", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 when a table is stale")
    parser.add_argument("--docs", type=Path, default=Path("docs"), help="the docs folder (default: ./docs)")
    args = parser.parse_args(argv)
    pages = render(args.docs)
    stale = [path for path, (old, new) in pages.items() if old != new]
    if args.check:
        for path in stale:
            print(f"stale: {path} (regenerate with `nox -s docs`)", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        atomic_write_text(path, pages[path][1])
        print(f"updated {path}")
    if not stale:
        print("docs tables are up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
