"""Bad input is refused before any work: exit 2, one line naming the key or file and the fix, no traceback,
nothing rendered, embedded or written. Checked by class (every key of a kind), not by one example each.
Corrupt records and cache entries are kept aside and recomputed; a failed rerun never replaces an ok record."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from encoders import storage
from experiments import eval as eval_cli
from experiments.records import REQUIRED_FIELDS, SCHEMA_VERSION, failed_rerun_path, inspect_record, write_record
from tests.conftest import REPO

SMOKE = ["encoder=random-vit-tiny", "task=metaworld-assembly", "protocol=smoke", "progress=false"]
POSITIVE_PROTOCOL_KEYS = ("epochs", "eval_every", "batch_size", "eval_episodes", "n_demos", "horizon", "render_size")


def refused(monkeypatch, capsys, tmp_path, *overrides: str, results: str | None = None) -> str:
    """Run eval's entry point in-process; assert it exits 2 before any work and return its stderr."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("CORTEXBENCH_CACHE", str(cache))
    monkeypatch.setattr(sys, "argv", ["eval"])
    argv = [*SMOKE, *overrides, f"results_dir={results or tmp_path / 'results'}"]
    with pytest.raises(SystemExit) as stop:
        eval_cli.entry(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2, err
    assert "Traceback" not in err and err.startswith("error: ")
    assert not cache.exists(), "demos were rendered or embedded before the input was checked"
    assert not list(tmp_path.rglob("seed=*.json")), "a record was written for bad input"
    return err


@pytest.mark.parametrize("key", POSITIVE_PROTOCOL_KEYS)
@pytest.mark.parametrize("value", ["0", "-1"])
def test_every_count_of_the_protocol_must_be_positive(monkeypatch, capsys, tmp_path, key, value):
    err = refused(monkeypatch, capsys, tmp_path, f"protocol.{key}={value}")
    assert f"protocol.{key}={value}" in err and "at least 1" in err


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("seed=abc", "seed"),
        ("seed=1.5", "seed"),
        ("seed=-1", "seed=-1"),
        ("entropy_bins=1", "entropy_bins"),
        ("entropy_bins=many", "entropy_bins"),
        ("overwrite=maybe", "overwrite"),
        ("protocol.epochs=two", "epochs"),
    ],
)
def test_values_of_the_wrong_type_or_range_name_their_key(monkeypatch, capsys, tmp_path, override, named):
    assert named in refused(monkeypatch, capsys, tmp_path, override)


@pytest.mark.parametrize(
    ("override", "allowed"),
    [
        ("cache=bogus", "readwrite"),
        ("cache_dtype=float8", "float16"),
        ("render_quality=ugly", "faithful"),
        ("workers=0", "auto"),
        ("workers=-2", "auto"),
        ("workers=lots", "auto"),
        ("eval_groups=3", "auto"),
        ("eval_groups=x", "auto"),
        ("policy=bc-transformer", "bc-mlp"),  # the table is small: every policy is listed
        ("policy=trifinger-mlp", "bc-mlp"),  # a real policy, for another suite
        ("encoder=thea", "theia"),
        ("task=metaworld-asembly", "metaworld-assembly"),
    ],
)
def test_choices_list_what_is_allowed(monkeypatch, capsys, tmp_path, override, allowed):
    err = refused(monkeypatch, capsys, tmp_path, override)
    assert override.split("=")[1] in err and allowed in err


def test_official_demos_that_are_not_on_disk_are_named_before_any_work(monkeypatch, capsys, tmp_path):
    err = refused(monkeypatch, capsys, tmp_path, "demos.source=official")
    assert "metaworld-assembly" in err and "nox -s demos -- metaworld" in err and "demos.source=scripted" in err


def test_a_sweep_checks_every_job_before_any_starts(monkeypatch, capsys, tmp_path):
    err = refused(monkeypatch, capsys, tmp_path, "-m", "seed=100,abc")
    assert "seed" in err


def test_a_missing_mandatory_setting_is_named(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(sys, "argv", ["eval"])
    with pytest.raises(SystemExit) as stop:
        eval_cli.entry(["task=metaworld-assembly", "protocol=smoke", f"results_dir={tmp_path}"])
    assert stop.value.code == 2 and "encoder" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
@pytest.mark.parametrize("device", ["cuda", "cuda:3", "tpu"])
def test_a_device_that_is_not_there_is_refused(monkeypatch, capsys, tmp_path, device):
    assert f"device='{device}'" in refused(monkeypatch, capsys, tmp_path, f"device={device}")


@pytest.fixture
def bad_checkpoints(tmp_path):
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    rng = __import__("random").Random(0)
    (folder / "empty.pth").write_bytes(b"")
    (folder / "noise.pth").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    (folder / "noise.safetensors").write_bytes(bytes(rng.randrange(256) for _ in range(4096)))
    torch.save({"w": torch.zeros(3)}, folder / "truncated.pth")
    data = (folder / "truncated.pth").read_bytes()
    (folder / "truncated.pth").write_bytes(data[: len(data) // 2])
    return folder


@pytest.mark.parametrize(
    ("encoder", "file", "problem"),
    [
        ("vc1-base", "empty.pth", "is empty"),
        ("vc1-base", "noise.pth", "neither a torch checkpoint"),
        ("vc1-base", "truncated.pth", "damaged zip archive"),
        ("theia-tiny", "noise.safetensors", "not a safetensors file"),
    ],
)
def test_unreadable_checkpoints_are_named_before_the_encoder_is_built(
    monkeypatch, capsys, tmp_path, bad_checkpoints, encoder, file, problem
):
    path = bad_checkpoints / file
    err = refused(monkeypatch, capsys, tmp_path, f"encoder={encoder}", f"weights={path}")
    assert str(path) in err and problem in err and "weights_only" not in err


def test_a_file_for_an_encoder_without_checkpoint_layout_is_refused(monkeypatch, capsys, tmp_path, bad_checkpoints):
    err = refused(monkeypatch, capsys, tmp_path, f"weights={bad_checkpoints / 'noise.pth'}")
    assert "random-vit-tiny" in err and "weights=random" in err


def test_a_results_dir_that_cannot_hold_records_fails_in_seconds(monkeypatch, capsys, tmp_path):
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("")
    assert str(a_file) in refused(monkeypatch, capsys, tmp_path, results=str(a_file))


def without_root_override() -> list[str]:
    """A command prefix under which folder permissions hold: root reads and writes anywhere, so as root the
    harness runs without CAP_DAC_OVERRIDE (util-linux's setpriv); other users need nothing."""
    if os.geteuid() != 0:
        return []
    drop = "-dac_override,-dac_read_search"
    return ["setpriv", f"--bounding-set={drop}", f"--inh-caps={drop}", "--"]


@pytest.mark.skipif(
    os.geteuid() == 0 and not shutil.which("setpriv"), reason="root without setpriv: no way to honour folder modes"
)
def test_a_results_dir_whose_runs_folder_is_read_only_fails_before_the_cell(tmp_path):
    results = tmp_path / "results"
    (results / "runs").mkdir(parents=True)
    (results / "runs").chmod(0o555)
    cache = tmp_path / "cache"
    proc = subprocess.run(
        [*without_root_override(), sys.executable, "-m", "experiments.eval", *SMOKE, f"results_dir={results}"],
        cwd=REPO,
        env=os.environ | {"CORTEXBENCH_CACHE": str(cache)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    (results / "runs").chmod(0o755)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and str(results / "runs") in proc.stderr and "cannot write" in proc.stderr
    assert "CORTEXBENCH_LOCKS" not in proc.stderr  # not the misleading lock warning
    assert not cache.exists()


def test_bad_input_through_nox_exits_2(tmp_path):
    """The exit-code contract holds through nox (which on its own exits 1 for any failed session)."""
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "eval", "--", *SMOKE, "encoder=thea", f"results_dir={tmp_path}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = proc.stdout + proc.stderr  # nox relays the command's output on its own streams
    assert proc.returncode == 2, output[-2000:]
    assert "Did you mean: theia" in output and "Traceback" not in output


# ---------------------------------------------------------------------------------------------------------
# Corrupt records: reported by path, kept aside, recomputed
# ---------------------------------------------------------------------------------------------------------
CORRUPT = {
    "non-utf8": b"\xff\xfe\x00garbage",
    "truncated": b'{"schema_version": 1, "status": "ok", "sc',
    "not-an-object": b"[1, 2, 3]",
    "empty": b"",
    "ok-missing-fields": json.dumps({"schema_version": SCHEMA_VERSION, "status": "ok"}).encode(),
}


@pytest.mark.parametrize("kind", CORRUPT)
def test_corrupt_records_are_recognised_and_shown_as_corrupt(tmp_path, capsys, kind):
    from experiments import status
    from experiments.plan import plan_sweep

    args = [*SMOKE, f"results_dir={tmp_path}"]
    (cell,) = plan_sweep(args)
    cell.path.parent.mkdir(parents=True)
    cell.path.write_bytes(CORRUPT[kind])
    record, problem = inspect_record(cell.path)
    assert record is None and problem
    assert status.main(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("corrupt") and str(cell.path) in out
    assert "1 corrupt" in out.splitlines()[-1]


def fixture_ok_record(seed: int = 100) -> dict:
    record = {field: None for field in REQUIRED_FIELDS}
    return record | {"schema_version": SCHEMA_VERSION, "status": "ok", "seed": seed, "scores": {"best": 1.0}}


@pytest.mark.slow
def test_a_corrupt_record_is_kept_aside_and_the_cell_runs_again(tmp_path):
    from experiments.plan import plan_sweep

    args = [*SMOKE, f"results_dir={tmp_path}"]
    (cell,) = plan_sweep(args)
    cell.path.parent.mkdir(parents=True)
    cell.path.write_bytes(CORRUPT["non-utf8"])
    proc = subprocess.run([sys.executable, "-m", "experiments.eval", *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "[repair]" in proc.stderr and str(cell.path) in proc.stderr
    kept = list(cell.path.parent.glob("seed=100.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == CORRUPT["non-utf8"]
    assert json.loads(cell.path.read_text())["status"] == "ok"


@pytest.mark.slow
def test_a_failed_rerun_never_replaces_an_ok_record(tmp_path):
    import tasks
    from experiments.plan import plan_sweep

    broken = tmp_path / "demos"  # a demo file that is there (so planning accepts it) but unreadable
    broken.mkdir()
    (broken / tasks.get("metaworld-assembly").official_demo_file).write_bytes(b"not a pickle")
    args = [*SMOKE, f"results_dir={tmp_path}", "overwrite=true", f"demos.source={broken}"]
    (cell,) = plan_sweep(args)
    write_record(cell.path, fixture_ok_record())
    before = cell.path.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "experiments.eval", *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode != 0
    assert cell.path.read_bytes() == before
    failed = json.loads(failed_rerun_path(cell.path).read_text())
    assert failed["status"] == "failed" and failed["error"]["type"] == "UnpicklingError"


# ---------------------------------------------------------------------------------------------------------
# Storage: one offline flag, shared-folder modes
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("ON", True), ("0", False), ("false", False), ("", False), ("no", False)],
)
def test_the_offline_flag_has_one_meaning(monkeypatch, value, expected):
    monkeypatch.delenv("CORTEXBENCH_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", value)
    assert storage.offline() is expected


def test_an_offline_flag_typo_is_refused(monkeypatch):
    monkeypatch.setenv("CORTEXBENCH_OFFLINE", "ture")
    with pytest.raises(ValueError, match="CORTEXBENCH_OFFLINE"):
        storage.offline()


def test_files_and_folders_get_the_modes_the_umask_allows(tmp_path):
    old = os.umask(0o022)
    try:
        storage.atomic_write_json(tmp_path / "a.json", {"x": 1})
        folder = storage.temp_dir(tmp_path / "entry")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert folder.stat().st_mode & 0o777 == 0o755


@pytest.mark.slow
def test_a_truncated_cached_demo_is_kept_aside_and_rendered_again(tmp_path, monkeypatch):
    import tasks

    monkeypatch.setenv("CORTEXBENCH_CACHE", str(tmp_path / "cache"))
    task = tasks.get("metaworld-assembly")
    first = task.demos(n=2, source="scripted", render_size=64, quality="fast", horizon=10, progress=False)
    (file,) = [f for f in (tmp_path / "cache").rglob("seed-10001.npz")]
    intact = file.read_bytes()
    file.write_bytes(intact[: len(intact) // 2])
    again = task.demos(n=2, source="scripted", render_size=64, quality="fast", horizon=10, progress=False)
    assert file.read_bytes() == intact  # rendered again, identically (seeded)
    assert again.content_sha256 == first.content_sha256
    kept = list(file.parent.glob("seed-10001.npz.corrupt-*"))
    assert len(kept) == 1 and len(kept[0].read_bytes()) == len(intact) // 2
