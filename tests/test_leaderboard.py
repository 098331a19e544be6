"""`nox -s leaderboard`: fixture records -> exact tables, hand-computed aggregates, determinism, bad records,
and `--check`.

Fixtures (`tests/data/leaderboard/`): `runs/` holds hand-written records (3 protocols; 1-3 seeds; one
failed, one truncated JSON, one of schema version 2, one cell with mixed task versions), `published/`
holds fixture published numbers, `expected/` the golden markdown and CSV. After an intended change of
the output, regenerate the golden files and review the diff:

    python -m experiments.leaderboard --runs tests/data/leaderboard/runs \
        --published tests/data/leaderboard/published --out tests/data/leaderboard/expected --no-figures
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path

import pytest

from experiments.leaderboard.__main__ import main
from experiments.leaderboard.collect import PROTOCOL_CONFIGS
from experiments.leaderboard.outputs import OUTPUTS, Inputs, generate
from tests.conftest import REPO

DATA = Path(__file__).parent / "data" / "leaderboard"
RUNS, PUBLISHED, EXPECTED = DATA / "runs", DATA / "published", DATA / "expected"
FIXTURES = Inputs(
    runs=RUNS,
    published=PUBLISHED,
    protocols=REPO / PROTOCOL_CONFIGS,
    root=REPO,
    entropy=DATA / "entropy",
    screen=DATA / "screen",
)
MALFORMED = "theia/theia-base/metaworld-drawer-open/seed=100.json"
OTHER_SCHEMA = "theia/vc1-large/metaworld-drawer-open/seed=100.json"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("board")
    warn = io.StringIO()
    generate(FIXTURES, out, warn=warn, draw=False)
    return out, warn.getvalue()


def _rows(out: Path) -> dict[tuple[str, ...], dict[str, str]]:
    with (out / "leaderboard.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {(r["protocol"], r["selection"], r["source"], r["label"], r["cell"]): r for r in rows}


def test_golden_markdown_and_csv(built):
    out, _ = built
    for name in OUTPUTS:
        assert (out / name).read_text() == (EXPECTED / name).read_text(), f"{name} differs from the golden file"


def test_aggregates_match_hand_computed_values(built):
    out, _ = built
    rows = _rows(out)

    def entry(protocol, selection, label, column, source="ours"):
        return rows[(protocol, selection, source, label, column)]

    # theia-base, metaworld-assembly, seeds 100/200/300: best 80, 88, 96 -> mean 88, SE = 8 / sqrt(3)
    r = entry("theia", "best", "theia-base", "metaworld-assembly")
    assert (r["value"], r["se"], r["n_seeds"]) == ("88.00", f"{8 / math.sqrt(3):.2f}", "3")
    assert (r["published"], r["delta"]) == ("93.33", f"{88 - 93.33:.2f}")
    assert r["feature_norm_entropy"] == f"{(3.1 + 3.2 + 3.3) / 3:.4f}" and r["task_version"] == "1"
    # final 76, 84, 92 -> 84; hammer best 90, 100 -> 95 with SE = sqrt(50) / sqrt(2) = 5; final 90, 96 -> 93, SE 3
    assert entry("theia", "final", "theia-base", "metaworld-assembly")["value"] == "84.00"
    r = entry("theia", "best", "theia-base", "metaworld-hammer")
    assert (r["value"], r["se"], r["n_seeds"], r["delta"]) == ("95.00", "5.00", "2", f"{95 - 98.67:.2f}")
    assert (entry("theia", "final", "theia-base", "metaworld-hammer")["se"]) == "3.00"
    # one seed: no standard error
    r = entry("theia", "best", "theia-base", "dmc-walker-stand")
    assert (r["value"], r["se"], r["n_seeds"]) == ("50.50", "", "1")
    # IQM over the 6 runs 50.5, 80, 88, 90, 96, 100: one cut at each end -> (80 + 88 + 90 + 96) / 4
    r = entry("theia", "best", "theia-base", "iqm")
    assert r["value"] == f"{(80 + 88 + 90 + 96) / 4:.2f}" and r["note"] == "3 tasks, 6 runs"
    assert float(r["ci_low"]) <= 88.5 <= float(r["ci_high"])
    # suites need all their tasks; cortexbench vc1-large has the whole MetaWorld suite at one seed each
    assert entry("theia", "best", "theia-base", "suite:metaworld")["note"] == "missing"
    r = entry("cortexbench", "best", "vc1-large", "suite:metaworld")
    assert (r["value"], r["published"], r["delta"]) == ("87.00", "88.8", "-1.80")  # (90+80+70+100+95)/5
    assert (r["ci_low"], r["ci_high"]) == ("87.00", "87.00")  # one seed per task: nothing to resample
    # mixed task versions (v1 seed 100, v2 seed 200) are reported, not averaged
    r = entry("theia", "best", "vc1-large", "metaworld-hammer")
    assert r["value"] == "" and r["note"] == "mixed task versions 1, 2: not averaged"
    # published rows: printed values keep their decimals, recalled ones are marked
    assert entry("cortexbench", "best", "vc1-large", "suite:adroit", "published")["note"] == "recalled"
    assert entry("theia", "best", "theia-base", "iqm", "published")["note"] == "n/a"


def test_markdown_shows_entries_entropy_correlation_and_missing(built):
    out, _ = built
    md = (out / "leaderboard.md").read_text()
    assert "| Theia-B | ours | 88.00 ± 4.62 (3) | 95.00 ± 5.00 (2) | 50.50 ± - (1) |" in md
    assert "| Theia-B | published | 93.33 | 98.67 | 92.55 |" in md
    assert "| Theia-B | `theia-base` | metaworld-assembly | 88.00 ± 4.62 (3) | 93.33 | -5.33 |" in md
    # entropy vs score over our theia rows: (entropy, score) = random (1.0, 0), theia-base (4.25: its pooled v2
    # record in tests/data/leaderboard/entropy/ replaces the mean of its per-cell values; mean of 88, 95, 50.5),
    # vc1-large (2.1 from its assembly records, 65; the mixed-version hammer records excluded)
    x = [1.0, 4.25, (2.0 + 2.2) / 2]
    y = [0.0, (88 + 95 + 50.5) / 3, 65.0]
    mx, my = sum(x) / 3, sum(y) / 3
    r = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True)) / math.sqrt(
        sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)
    )
    assert f"| Theia-B | `theia-base` | {x[1]:.4f} | v2: pooled over mujoco | {y[1]:.2f} | mean of 3 tasks |" in md
    assert "| VC-1-L-sp | `vc1-large` | 2.1000 | v1: mean of per-task values |" in md
    assert f"Pearson r = {r:.3f}, Spearman ρ = 1.000" in md  # x and y have the same ranks
    assert "- failed run `theia/theia-base/adroit-pen/seed=100.json`: RuntimeError: simulator exploded" in md
    assert "`theia/vc1-large/metaworld-hammer`: task versions 1, 2 across seeds 100, 200: not averaged" in md
    assert "- `vc1-large` (ours): 2 of 3 tasks without an ok record: metaworld-hammer, dmc-walker-stand" in md
    # the smoke protocol has its own section, and none of its labels appear in another protocol's tables
    theia = md.split("## Protocol `theia`")[1].split("## Protocol `smoke`")[0]
    smoke = md.split("## Protocol `smoke`")[1]
    assert "theia-tiny@random" in smoke and "theia-tiny@random" not in theia
    assert "## Protocol `cortexbench`" in md and md.index("`cortexbench`") < md.index("## Protocol `smoke`")


def test_bad_records_are_reported_by_path_and_skipped(built):
    out, warn = built
    assert str(RUNS / MALFORMED) in warn and "not readable JSON" in warn
    assert str(RUNS / OTHER_SCHEMA) in warn and "schema_version 2 is not 1" in warn
    md = (out / "leaderboard.md").read_text()
    assert f"- `{MALFORMED}` (malformed): not readable JSON" in md
    assert f"- `{OTHER_SCHEMA}` (malformed): schema_version 2 is not 1" in md
    assert "(24 files: 21 ok, 1 failed, 2 not usable)" in md
    rows = _rows(out)
    assert not any(key[4] == "metaworld-drawer-open" for key in rows if key[0] == "theia")  # no usable record
    assert rows[("theia", "best", "ours", "theia-base", "metaworld-hammer")]["value"] == "95.00"  # the rest counts


def test_cli_reports_a_malformed_record_and_still_writes_the_tables(tmp_path, capsys):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    (runs / "theia" / "theia-base" / "metaworld-hammer" / "seed=200.json").write_text("[1, 2")
    code = main(["--runs", str(runs), "--out", str(tmp_path / "out"), "--published", str(PUBLISHED)])
    err = capsys.readouterr().err
    assert code == 0
    assert f"skipped {runs / 'theia/theia-base/metaworld-hammer/seed=200.json'}" in err
    rows = _rows(tmp_path / "out")
    hammer = rows[("theia", "best", "ours", "theia-base", "metaworld-hammer")]
    assert (hammer["value"], hammer["n_seeds"]) == ("90.00", "1")  # seed 100 alone
    assert (tmp_path / "out" / "figures" / "theia-entropy.svg").is_file()


def test_two_runs_give_byte_identical_files(tmp_path):
    first, second = tmp_path / "first", tmp_path / "second"
    generate(FIXTURES, first, warn=None)
    generate(FIXTURES, second, warn=None)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert {"leaderboard.md", "leaderboard.csv", "figures/theia-entropy.svg", "figures/theia-gmacs.svg"} <= {
        p.as_posix() for p in files
    }
    assert files == sorted(p.relative_to(second) for p in second.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), f"{rel} differs between two runs"
    svg = (first / "figures" / "theia-entropy.svg").read_text()
    assert "<dc:date>" not in svg and "Pearson r" in svg
    before = {rel: (first / rel).read_bytes() for rel in files}
    generate(FIXTURES, first, warn=None)  # rewriting in place changes nothing
    assert {rel: (first / rel).read_bytes() for rel in files} == before


def test_check_passes_when_current_and_fails_with_a_diff_when_stale(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--runs", str(RUNS), "--out", str(out), "--published", str(PUBLISHED)]
    assert main(args) == 0
    capsys.readouterr()
    assert main([*args, "--check"]) == 0
    assert "up to date" in capsys.readouterr().err

    md = out / "leaderboard.md"
    md.write_text(md.read_text().replace("88.00 ± 4.62 (3)", "99.00 ± 4.62 (3)"))
    assert main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert (
        "leaderboard.md: differs" in err and "-| Theia-B | ours | 99.00" in err and "+| Theia-B | ours | 88.00" in err
    )

    assert main(args) == 0
    (out / "figures" / "theia-entropy.svg").unlink()
    (out / "figures" / "old-suites.svg").write_text("<svg/>")
    assert main([*args, "--check"]) == 1
    err = capsys.readouterr().err
    assert "figures/theia-entropy.svg: missing" in err and "figures/old-suites.svg: in" in err

    main(args)
    runs = tmp_path / "runs"  # a new record makes the tables stale
    shutil.copytree(RUNS, runs)
    new = runs / "theia/theia-base/dmc-walker-stand/seed=200.json"
    new.write_text(new.parent.joinpath("seed=100.json").read_text().replace('"seed": 100', '"seed": 200'))
    capsys.readouterr()
    assert main(["--runs", str(runs), "--out", str(out), "--published", str(PUBLISHED), "--check"]) == 1
    assert "leaderboard.csv: differs" in capsys.readouterr().err


def test_no_records_gives_the_published_rows(tmp_path):
    """A clean clone has no records: the tables still hold every published row (with the real data)."""
    out = tmp_path / "out"
    real = Inputs(tmp_path / "no-runs", REPO / "results" / "published", REPO / PROTOCOL_CONFIGS, REPO)
    generate(real, out, draw=False)
    md = (out / "leaderboard.md").read_text()
    assert "(0 files: 0 ok, 0 failed, 0 not usable)" in md
    assert "| Theia-B | published | `theia-base` | 13/13 | n/a | 90.13† | 79.12† | 62.67† |" in md
    assert "| VC-1: Ego4D + MNI (VIT-L) | published | `vc1-large` |" in md
    assert "## Protocol `smoke`" not in md


def test_the_state_reference_row_and_the_demo_ceiling(tmp_path):
    """Fixture `cortexbench/state`: two MetaWorld seeds (best 84, 76) and one DMC seed (61.5), demos at 92 %
    success and a mean return of 903; they deviate (expert demos), so they have a section of their own."""
    generate(FIXTURES, tmp_path, warn=None)
    rows = _rows(tmp_path)
    section = "cortexbench [demos.source=expert (protocol: official)]"
    state = rows[(section, "best", "ours", "state", "metaworld-assembly")]
    assert (state["model"], state["value"], state["n_seeds"]) == ("state (reference)", "80.00", "2")
    assert state["feature_norm_entropy"] == ""  # n/a: no feature norms
    ceiling = {
        cell: rows[(section, "best", "demos", "", cell)]["value"] for cell in ("metaworld-assembly", "dmc-walker-stand")
    }
    assert ceiling == {"metaworld-assembly": "92.00", "dmc-walker-stand": "90.30"}  # 0.92 x 100, 903 / 10
    assert not any(key[0] == "cortexbench" and key[3] == "state" for key in rows)  # never beside published rows
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "| demonstrations (ceiling) | demos | 92.00 | 90.30 |" in markdown
    curves = tmp_path / "figures" / "cortexbench-deve79c9da3-state-curves.svg"
    assert f"figures/{curves.name}" in markdown and curves.is_file()
    svg = curves.read_text()
    assert "metaworld-assembly" in svg and "dmc-walker-stand" in svg and "seed 100" in svg and "demos" in svg


def test_the_screening_section_ranks_proxies_against_scores_by_hand(tmp_path):
    """Fixture screening records (theia, metaworld-assembly) for three encoders whose theia best scores are
    theia-base 88 > vc1-large 65 > random-vit-tiny 0. By hand: state_r2 0.9 > 0.6 > 0.2 orders them the same
    way (rho = tau = 1); entropy 3.0, 3.5, 2.0 ranks them 2, 3, 1 against 3, 2, 1: rho = 1 - 6 * 2 / (3 * 8)
    = 0.5, tau = (2 concordant - 1 discordant) / 3; action_mse falls as the score rises (rho = -1). Published
    numbers exist for two of them only: not defined, and the table says on how many encoders."""
    warn = io.StringIO()
    generate(FIXTURES, tmp_path, warn=warn, draw=False)
    assert "screening: skipped" in warn.getvalue() and "broken/metaworld-assembly.json" in warn.getvalue()
    lines = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:3]): line
        for line in (tmp_path / "leaderboard.md").read_text().splitlines()
        if line.startswith("| `")
    }
    assert "| 1.000 [1.000, 1.000] | 1.000 [1.000, 1.000] |" in lines[("`state_r2`", "ours", "3")]
    assert "| 0.500 [0.500, 0.500] | 0.333 [0.333, 0.333] |" in lines[("`entropy`", "ours", "3")]
    assert "| -1.000 [-1.000, -1.000] | -1.000 [-1.000, -1.000] |" in lines[("`action_mse`", "ours", "3")]
    assert "not defined (n = 2)" in lines[("`state_r2`", "published", "2")]
