"""`nox -s list [-- encoders|tasks|groups|policies]`: what can be evaluated here, and what is missing."""

from __future__ import annotations

import argparse

from encoders.storage import weights_root
from encoders.weights import hf_cached


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = lambda cells: "  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _weights_status(spec) -> str:
    if spec.weights is None:
        return "n/a (random)"
    if (weights_root() / spec.name / spec.weights.filename).is_file():
        return "cached"
    return "cached (hf)" if hf_cached(spec.weights) else "not cached"


def encoders_table() -> str:
    import encoders

    rows = [
        [
            s.name,
            ",".join(s.aliases) or "-",
            f"{s.n_parameters / 1e6:.1f}M",
            f"{s.gmacs:g}" if s.gmacs == s.gmacs else "not measured",  # NaN: unknown (see the spec notes)
            ",".join(s.outputs),
            f"{s.embed_dim}",
            "x".join(map(str, s.grid)),
            s.license,
            _weights_status(s),
        ]
        if s.input == "pixels"
        else [s.name, "-", "-", "-", "state", "task's", "-", s.license, "none (the simulator's state)"]
        for s in encoders.available()
    ]
    return _table(["encoder", "aliases", "params", "GMACs", "outputs", "dim", "grid", "licence", "weights"], rows)


def tasks_table() -> str:
    import tasks

    rows = []
    for t in tasks.available():
        missing = t.missing_modules()
        status = "available" if not missing else f"missing {','.join(missing)}: {t.install_hint}"
        rows.append(
            [
                t.name,
                t.suite,
                f"v{t.version}",
                t.camera,
                f"{t.horizon}",
                f"{t.n_demos}",
                f"{t.eval_episodes}",
                t.metric,
                status,
            ]
        )
    return _table(["task", "suite", "version", "camera", "horizon", "demos", "episodes", "metric", "simulator"], rows)


def groups_table() -> str:
    import tasks

    return _table(
        ["group", "tasks"], [[g, ", ".join(members) or "(none registered)"] for g, members in tasks.groups().items()]
    )


def policies_table() -> str:
    from policies import POLICIES

    rows = [[p.name, p.input_kind, p.learning, ",".join(p.suites), p.description] for p in POLICIES.values()]
    return _table(["policy", "input", "learning", "suites", "what"], rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="nox -s list --", description=__doc__)
    sections = {"encoders": encoders_table, "tasks": tasks_table, "groups": groups_table, "policies": policies_table}
    parser.add_argument("what", nargs="*", help=f"any of {', '.join(sections)} (default: all)")
    what = parser.parse_args(argv).what or list(sections)
    unknown = [w for w in what if w not in sections]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {list(sections)}")
    print("\n\n".join(f"# {w}\n{sections[w]()}" for w in what))


if __name__ == "__main__":
    main()
