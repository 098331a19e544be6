"""The encoder registry: every `EncoderSpec` constant in `encoders/zoo/*.py`, plus plug-ins.

Discovery follows mteb: a spec is registered by existing as a module-level constant, so adding an
encoder is adding one constant. Other installed packages add specs through the entry-point group
`cortexbench.encoders` (value: "package.module:attr", an `EncoderSpec` or a sequence of them).
Zoo modules import nothing heavy, so listing encoders never imports torch.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable
from importlib.metadata import entry_points

from encoders import zoo
from encoders.lookup import plugin_objects, unknown_name
from encoders.spec import EncoderSpec

ENTRY_POINT_GROUP = "cortexbench.encoders"


def _zoo_specs() -> list[EncoderSpec]:
    specs = []
    for info in sorted(pkgutil.iter_modules(zoo.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{zoo.__name__}.{info.name}")
        specs += [v for v in vars(module).values() if isinstance(v, EncoderSpec)]
    return specs


class Registry:
    """Names and aliases -> specs; duplicates fail loudly, unknown names suggest close matches."""

    def __init__(self, specs: Iterable[EncoderSpec]):
        self._specs: dict[str, EncoderSpec] = {}
        self._aliases: dict[str, str] = {}
        for spec in specs:
            self.add(spec)

    def add(self, spec: EncoderSpec) -> None:
        for key in (spec.name, *spec.aliases):
            if key in self._specs or key in self._aliases:
                raise ValueError(f"encoder name {key!r} is registered twice (second: {spec.name})")
        self._specs[spec.name] = spec
        for alias in spec.aliases:
            self._aliases[alias] = spec.name

    def get(self, name: str) -> EncoderSpec:
        canonical = self._aliases.get(name, name)
        if canonical not in self._specs:
            raise unknown_name("encoder", name, self.names(with_aliases=True), "nox -s list -- encoders")
        return self._specs[canonical]

    def names(self, with_aliases: bool = False) -> list[str]:
        names = list(self._specs)
        return sorted(names + list(self._aliases)) if with_aliases else sorted(names)

    def specs(self) -> list[EncoderSpec]:
        return [self._specs[n] for n in self.names()]


@functools.cache
def registry() -> Registry:
    return Registry(_zoo_specs() + plugin_objects(entry_points(group=ENTRY_POINT_GROUP), EncoderSpec, "encoder"))
