"""Run records: paths name what was evaluated, writes are atomic, and finished cells are recognised."""

from __future__ import annotations

import json

import pytest

from experiments.records import SCHEMA_VERSION, encoder_label, is_done, record_path, validate, write_record


def test_labels_mark_non_released_weights_and_non_default_policies():
    assert encoder_label("theia-base", "pretrained", "ab" * 32, "bc-conv", "bc-conv") == "theia-base"
    assert encoder_label("theia-base", "random", None, "bc-conv", "bc-conv") == "theia-base@random"
    assert encoder_label("vc1-large", "path", "0123456789" * 6, "bc-mlp", "bc-mlp") == "vc1-large@file-01234567"
    assert encoder_label("vc1-large", "pretrained", None, "bc-conv", "bc-mlp") == "vc1-large+bc-conv"
    assert encoder_label("random-vit-tiny", "spec-init", None, "bc-mlp", "bc-mlp") == "random-vit-tiny"
    path = record_path("results", "cortexbench", "vc1-large", "metaworld-hammer", 200)
    assert path.as_posix() == "results/runs/cortexbench/vc1-large/metaworld-hammer/seed=200.json"


def _record(status="ok"):
    keys = (
        "error",
        "encoder",
        "task",
        "protocol",
        "policy",
        "seed",
        "scores",
        "episodes",
        "feature_norm_entropy",
        "timing",
        "provenance",
    )
    return {"schema_version": SCHEMA_VERSION, "status": status} | dict.fromkeys(keys)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "runs" / "x" / "seed=1.json"
    write_record(path, _record())
    assert json.loads(path.read_text())["status"] == "ok"
    assert [p.name for p in path.parent.iterdir()] == ["seed=1.json"]
    with pytest.raises(ValueError):  # NaN is not JSON; the old record must survive a failed write
        write_record(path, _record() | {"scores": float("nan")})
    assert json.loads(path.read_text())["status"] == "ok"
    assert [p.name for p in path.parent.iterdir()] == ["seed=1.json"]


def test_only_ok_records_of_this_schema_count_as_done(tmp_path):
    ok, failed, old, broken = (tmp_path / f"{n}.json" for n in ("ok", "failed", "old", "broken"))
    write_record(ok, _record("ok"))
    write_record(failed, _record("failed"))
    write_record(old, _record("ok") | {"schema_version": 0})
    broken.write_text('{"status": "ok", ')
    assert is_done(ok) and not is_done(failed) and not is_done(old) and not is_done(broken)
    assert not is_done(tmp_path / "missing.json")
    assert validate(_record()) == [] and "missing field 'scores'" in validate({"schema_version": 1, "status": "ok"})
