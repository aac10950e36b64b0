"""Provider discovery through the `lockgate.providers` entry-point group.

Built-in providers are registered in Lockgate's own pyproject.toml exactly like third-party
ones: a package adds `[project.entry-points."lockgate.providers"] NAME = "module:Class"`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import cast

from lockgate.decide.task import ModelSpec
from lockgate.errors import ConfigError
from lockgate.providers.base import Provider, ProviderContext, ProviderFactory, artifact_files

GROUP = "lockgate.providers"


class ProviderRegistry:
    """Provider factories by name; from entry points, or from a mapping in tests.

    A plugin is imported only when a task uses it, so one broken plugin (or a heavy import such
    as scikit-learn) costs nothing to tasks that do not use it.
    """

    def __init__(self, factories: Mapping[str, ProviderFactory | EntryPoint]) -> None:
        self._entries = dict(factories)

    @classmethod
    def discover(cls) -> ProviderRegistry:
        return cls({ep.name: ep for ep in entry_points(group=GROUP)})

    def names(self) -> list[str]:
        return sorted(self._entries)

    def factory(self, name: str) -> ProviderFactory:
        try:
            entry = self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown provider {name!r}", hint=f"installed: {', '.join(self.names())}"
            ) from None
        if not isinstance(entry, EntryPoint):
            return entry
        try:
            loaded = cast(ProviderFactory, entry.load())
        except Exception as exc:
            raise ConfigError(
                f"provider plugin {name!r} ({entry.value}) failed to load: {type(exc).__name__}",
                hint="reinstall the package that provides it, or uninstall it",
            ) from None
        self._entries[name] = loaded
        return loaded

    def build(self, spec: ModelSpec, context: ProviderContext) -> Provider:
        return self.factory(spec.provider).from_spec(spec, context)

    def pinned_artifacts(self, spec: ModelSpec, context: ProviderContext) -> dict[str, str]:
        return dict(self.factory(spec.provider).pinned_artifacts(spec, context))

    def artifact_files(self, spec: ModelSpec, context: ProviderContext) -> dict[str, Path]:
        """The local files of the artifacts the model pins (see `base.artifact_files`)."""
        return artifact_files(self.factory(spec.provider), spec, context)
