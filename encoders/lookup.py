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


def parse_key_values(argv: list[str], defaults: dict[str, Any], program: str) -> dict[str, Any]:
    """`key=value` arguments of a session, with eval's names (`render_quality=`, not `quality=`): unknown
    keys fail with close matches, values take the type of their default (int, float, bool), so every nox
    session reads its settings the same way. A default of None keeps the value as a string."""
    args = dict(defaults)
    for token in argv:
        key, sep, value = token.partition("=")
        if not sep:
            raise SystemExit(f"error: expected key=value, got {token!r} (keys: {', '.join(defaults)})")
        if key not in defaults:
            raise SystemExit(f"error: {unknown_name(f'{program} setting', key, defaults, f'{program} --help')}")
        default = defaults[key]
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                args[key] = value.lower() in ("true", "1", "yes")
            elif isinstance(default, int):
                args[key] = int(value)
            elif isinstance(default, float):
                args[key] = float(value)
            else:
                args[key] = value
        except ValueError:
            kind = type(default).__name__
            raise SystemExit(f"error: {key}={value!r} is not a valid {kind} (default: {default})") from None
    return args
