"""The embedding cache: round trips, modes, and damaged entries detected and rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from encoders.cache import EmbeddingCache


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "embeddings": rng.standard_normal((50, 8)).astype(np.float32),
        "norms": rng.random((4, 3)).astype(np.float32),
    }


def test_store_then_load_round_trips_memory_mapped(tmp_path, arrays):
    cache = EmbeddingCache(tmp_path)
    key = cache.key("enc", "demos", "vector", "float32")
    assert cache.load(key) is None
    stored = cache.store(key, arrays, {"note": "x"})
    assert not stored.hit
    loaded = cache.load(key)
    assert loaded.hit and isinstance(loaded.arrays["embeddings"], np.memmap)
    assert np.array_equal(loaded.arrays["embeddings"], arrays["embeddings"]) and loaded.meta["note"] == "x"
    assert not any(p.name.startswith(".") for p in (tmp_path / "enc").iterdir())  # no temp folders left


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_meta"])
def test_damaged_entries_are_detected_kept_aside_and_recomputed(tmp_path, arrays, damage):
    cache = EmbeddingCache(tmp_path)
    key = cache.key("enc", "demos", "vector", "float32")
    entry = cache.store(key, arrays, {})
    file = entry.path / "embeddings.npy"
    if damage == "truncate":
        file.write_bytes(file.read_bytes()[:-100])
    elif damage == "flip":
        data = bytearray(file.read_bytes())
        data[-1] ^= 0xFF
        file.write_bytes(bytes(data))
    else:
        (entry.path / "meta.json").unlink()
    assert cache.load(key) is None
    assert not entry.path.exists()
    assert len(list(entry.path.parent.glob(f"{entry.path.name}.corrupt-*"))) == 1  # kept for inspection
    assert cache.store(key, arrays, {}).path.exists() and cache.load(key).hit


def test_modes(tmp_path, arrays):
    key = EmbeddingCache.key("enc", "demos", "spatial", "float16")
    EmbeddingCache(tmp_path, "off").store(key, arrays, {})
    assert EmbeddingCache(tmp_path).load(key) is None  # off writes nothing
    EmbeddingCache(tmp_path, "read").store(key, arrays, {})
    assert EmbeddingCache(tmp_path).load(key) is None  # read never writes
    EmbeddingCache(tmp_path).store(key, arrays, {"v": 1})
    assert EmbeddingCache(tmp_path, "off").load(key) is None and EmbeddingCache(tmp_path, "read").load(key).hit
    assert EmbeddingCache(tmp_path, "refresh").load(key) is None  # refresh recomputes ...
    EmbeddingCache(tmp_path, "refresh").store(key, {k: v * 2 for k, v in arrays.items()}, {"v": 2})  # ... and replaces
    assert EmbeddingCache(tmp_path).load(key).meta["v"] == 2
    with pytest.raises(ValueError, match="cache mode"):
        EmbeddingCache(tmp_path, "sometimes")
