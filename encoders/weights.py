"""Find the checkpoint file behind `weights=pretrained | random | <path>`.

Resolution order for `pretrained`: the harness cache (`$CORTEXBENCH_WEIGHTS/<encoder>/<file>`,
default `~/.cache/cortexbench/weights`), the Hugging Face cache, then a download (Hugging Face
first, then the URL). With no network and no cached copy the error names the missing file and the
three ways to provide it. A known sha256 is enforced on every load.
"""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from encoders.checkpoints import check_format
from encoders.spec import EncoderSpec, Weights
from encoders.storage import file_lock, offline, sha256_file, temp_path, weights_root


@dataclass(frozen=True)
class ResolvedWeights:
    """What was loaded, for the run record.

    `kind`: pretrained (the released checkpoint), path (a user file), random (a seeded random init
    instead of the released weights), spec-init (an encoder defined as its seeded random init), or none (the
    state reference, which has no weights).
    """

    kind: str
    path: Path | None
    origin: str
    sha256: str | None

    def as_record(self) -> dict:
        return {
            "kind": self.kind,
            "origin": self.origin,
            "path": str(self.path) if self.path else None,
            "sha256": self.sha256,
        }


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are neither cached nor downloadable; the message says how to provide them."""


class WeightsNotSupportedError(ValueError):
    """A weights file was given for an encoder that has no checkpoint layout."""


class ChecksumMismatchError(ValueError):
    """A checkpoint file's sha256 differs from the one pinned in the spec."""


def _reachable(url: str, timeout: float = 3.0) -> bool:
    """A quick DNS + TCP probe, so an offline machine fails in seconds, not after a minute of retries."""
    host = urlparse(url).hostname or ""
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def hf_cached(w: Weights) -> Path | None:
    if not w.hf_repo:
        return None
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(w.hf_repo, w.filename, revision=w.hf_revision)
    return Path(found) if isinstance(found, str) else None


def _sources(w: Weights) -> list[str]:
    out = []
    if w.hf_repo:
        out.append(f"Hugging Face {w.hf_repo} (revision {w.hf_revision or 'main'})")
    if w.url:
        out.append(w.url)
    return out


def _missing_message(spec: EncoderSpec, cache_file: Path, reason: str) -> str:
    w = spec.weights
    assert w is not None
    hf_hint = (
        f" or `huggingface-cli download {w.hf_repo} {w.filename}"
        + (f" --revision {w.hf_revision}" if w.hf_revision else "")
        + "` to fill the Hugging Face cache"
        if w.hf_repo
        else ""
    )
    url_hint = f" (e.g. `curl -L -o {cache_file} {w.url}`)" if w.url else ""
    return (
        f"Pretrained weights for encoder {spec.name!r} are missing: {reason}\n"
        f"  missing file: {w.filename} from {' or '.join(_sources(w))}\n"
        f"  looked in:    {cache_file} and the Hugging Face cache\n"
        f"Provide them in one of three ways:\n"
        f"  1. weights=<path>   point at a local copy of {w.filename} (file or folder holding it)\n"
        f"  2. fill the cache   put {w.filename} at {cache_file}{url_hint}{hf_hint}\n"
        f"  3. weights=random   the same architecture with a seeded random init (a frozen-random baseline)"
    )


def _download(spec: EncoderSpec, cache_file: Path) -> tuple[Path, str]:
    """Download under a lock, so concurrent jobs fetch a checkpoint once: the others wait, then find it."""
    lock_path = cache_file.with_name(f".{cache_file.name}.lock")
    with file_lock(lock_path, waiting="waiting for another job downloading") as lock:
        if lock.held:  # partial downloads of killed jobs (possibly gigabytes)
            for leftover in cache_file.parent.glob(f".{cache_file.name}.*.partial"):
                leftover.unlink(missing_ok=True)
        if cache_file.is_file():
            return cache_file, f"cache:{cache_file}"
        if (hf := hf_cached(spec.weights)) is not None:
            return hf, f"hf-cache:{spec.weights.hf_repo}@{spec.weights.hf_revision or 'main'}"
        return _download_unlocked(spec, cache_file)


def _download_unlocked(spec: EncoderSpec, cache_file: Path) -> tuple[Path, str]:
    w = spec.weights
    assert w is not None
    errors = []
    if w.hf_repo and _reachable("https://huggingface.co"):
        try:
            from huggingface_hub import hf_hub_download

            path = hf_hub_download(w.hf_repo, w.filename, revision=w.hf_revision)
            return Path(path), f"hf:{w.hf_repo}@{w.hf_revision or 'main'}"
        except Exception as err:  # network or auth failure: fall through to the URL
            errors.append(f"Hugging Face: {err}")
    elif w.hf_repo:
        errors.append("huggingface.co is not reachable")
    if w.url and _reachable(w.url):
        import torch.hub

        # A name of its own per download (never a shared `<file>.partial` two jobs could write at once);
        # a killed download leaves only this hidden temp file, never a truncated `<file>`.
        partial = temp_path(cache_file, ".partial")
        try:
            torch.hub.download_url_to_file(w.url, str(partial), progress=True)
            os.replace(partial, cache_file)
            return cache_file, f"url:{w.url}"
        except Exception as err:
            errors.append(f"{w.url}: {err}")
        finally:
            partial.unlink(missing_ok=True)
    elif w.url:
        errors.append(f"{urlparse(w.url).hostname} is not reachable")
    raise WeightsNotFoundError(
        _missing_message(spec, cache_file, "no cached copy, and the download failed (" + "; ".join(errors) + ")")
    )


@functools.lru_cache(maxsize=64)
def _sha256_once(path: Path, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def checkpoint_sha256(path: Path) -> str:
    """sha256 of a checkpoint, computed once per process for an unchanged file (checkpoints are GBs, and a
    run resolves the same weights when planning, when loading and in every job of a sweep)."""
    stat = path.stat()
    return _sha256_once(path.resolve(), stat.st_size, stat.st_mtime_ns)


def _checked(spec: EncoderSpec, path: Path, origin: str, kind: str) -> ResolvedWeights:
    digest = checkpoint_sha256(path)
    expected = spec.weights.sha256 if spec.weights else None
    if expected and kind == "pretrained" and digest != expected:
        raise ChecksumMismatchError(
            f"{path} does not match the pinned checkpoint of {spec.name!r}: sha256 {digest} != {expected}. "
            "Delete the file to re-download it, or pass it explicitly with weights=<path> to use it anyway."
        )
    check_format(path)  # an empty, truncated or foreign file is named now, not after building the model
    return ResolvedWeights(kind=kind, path=path, origin=origin, sha256=digest)


def resolve_weights(spec: EncoderSpec, weights: str) -> ResolvedWeights:
    """Map the user's `weights=` value to a concrete file (or to a seeded random init)."""
    if spec.input == "state":
        if weights != "pretrained":
            raise WeightsNotSupportedError(
                f"weights={weights!r}: encoder {spec.name!r} is the simulator's state and has no weights; drop weights="
            )
        return ResolvedWeights(kind="none", path=None, origin="no weights: the simulator's state", sha256=None)
    if spec.weights is None and weights in ("pretrained", "random"):
        return ResolvedWeights(kind="spec-init", path=None, origin=f"random-init(seed={spec.random_seed})", sha256=None)
    if weights == "random":
        return ResolvedWeights(kind="random", path=None, origin=f"random-init(seed={spec.random_seed})", sha256=None)
    if weights == "pretrained":
        w = spec.weights
        assert w is not None
        cache_file = weights_root() / spec.name / w.filename
        if cache_file.is_file():
            return _checked(spec, cache_file, f"cache:{cache_file}", "pretrained")
        if (hf := hf_cached(w)) is not None:
            return _checked(spec, hf, f"hf-cache:{w.hf_repo}@{w.hf_revision or 'main'}", "pretrained")
        if offline():
            raise WeightsNotFoundError(
                _missing_message(spec, cache_file, "not cached, and downloads are off (offline mode)")
            )
        path, origin = _download(spec, cache_file)
        return _checked(spec, path, origin, "pretrained")
    if spec.weights is None:
        raise WeightsNotSupportedError(
            f"weights={weights!r}: encoder {spec.name!r} is defined as its seeded random init and has no checkpoint "
            "layout to load a file into; use weights=random (or pretrained, the same init), or an encoder with "
            "released weights (`nox -s list -- encoders`)"
        )
    path = Path(weights).expanduser()
    if path.is_dir():
        path = path / spec.weights.filename
    if not path.is_file():
        expected = f" (expected the file {spec.weights.filename})" if spec.weights else ""
        raise WeightsNotFoundError(
            f"weights={weights!r} for encoder {spec.name!r}: no such file{expected}. "
            "Use weights=pretrained, weights=random, or a path to a checkpoint file."
        )
    return _checked(spec, path.resolve(), f"file:{path.resolve()}", "path")
