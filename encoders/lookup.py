"""Name lookups shared by the encoder and task registries: lazy references, plug-ins and did-you-mean errors."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import Any


def resolve(reference: str) -> Any:
    """Import "package.module:attr" and return the attribute; the error names the reference."""
    module_name, _, attr = reference.partition(":")
    if not attr:
        raise ValueError(f"expected 'module:attr', got {reference!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportError(f"cannot import {module_name!r} (needed for {reference!r}): {err}") from err
    try:
        return getattr(module, attr)
    except AttributeError as err:
        raise AttributeError(f"{module_name!r} has no attribute {attr!r} ({reference!r})") from err


def plugin_objects(points: Iterable[EntryPoint], cls: type, kind: str) -> list:
    """The `cls` instances that installed packages declare through entry points (each value "module:attr",
    an instance or a sequence of them), in entry-point name order. A plug-in that fails to load or holds
    no `cls` fails loudly, naming itself, rather than vanishing from the registry."""
    found: list = []
    for ep in sorted(points, key=lambda e: e.name):
        try:
            loaded = ep.load()
        except Exception as err:  # a broken plug-in must not hide the built-in entries
            raise ImportError(
                f"{kind} plug-in {ep.name!r} ({ep.value}) from group {ep.group!r} failed to load: {err}"
            ) from err
        if isinstance(loaded, cls):
            items = [loaded]
        elif isinstance(loaded, Iterable) and not isinstance(loaded, str | bytes):
            items = [item for item in loaded if isinstance(item, cls)]
        else:
            items = []
        if not items:
            raise TypeError(
                f"{kind} plug-in {ep.name!r} ({ep.value}) holds no {cls.__name__} (expected one or a list of them)"
            )
        found += items
    return found


class UnknownNameError(KeyError):
    """An unknown registry name; the message lists close matches and where to see all names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unknown_name(kind: str, name: str, known: Iterable[str], listing_hint: str) -> UnknownNameError:
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=5, cutoff=0.5)
    if not close:  # prefix matches catch "vc" -> "vc1", "theia" sizes, ...
        close = [k for k in known if k.startswith(name) or name.startswith(k)][:5]
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(f"Unknown {kind} {name!r}.{hint} See all with `{listing_hint}`.")
