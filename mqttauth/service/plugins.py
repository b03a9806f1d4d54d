"""Find authenticator and authorizer plugins and choose them by name.

Plugins are module-level objects in ``twisted/plugins/*.py`` files that
provide :class:`IAuthenticatorPlugin` or :class:`IAuthorizerPlugin`.  Twisted
searches the ``twisted/plugins`` folder of every ``sys.path`` entry (the
folder must not contain ``__init__.py``), so a third party adds a plugin by
installing a package that ships such a file or by putting one in a folder on
``PYTHONPATH``.
"""

from __future__ import annotations

import types
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.plugin import getPlugins

from mqttauth.auth.interfaces import IAuthenticatorPlugin, IAuthorizerPlugin

from .config import ConfigError


@dataclass(slots=True)
class PluginCatalog:
    """The installed plugins of one kind, by name.

    ``conflicts`` maps a name that more than one plugin claims to the modules
    that claim it; such a name cannot be chosen until one is removed.
    """

    kind: str
    plugins: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, list[str]] = field(default_factory=dict)

    def names(self) -> list[str]:
        """Return the installed plugin names, sorted."""
        return sorted(self.plugins)

    def get(self, name: str, setting: str) -> Any:
        """Return the plugin ``name``; raise a ConfigError naming ``setting``."""
        if name in self.conflicts:
            modules = ", ".join(self.conflicts[name])
            raise ConfigError(
                setting,
                f"more than one {self.kind} plugin is named {name!r} "
                f"(modules {modules}); remove all but one",
            )
        plugin = self.plugins.get(name)
        if plugin is None:
            available = ", ".join(self.names()) or "none"
            raise ConfigError(
                setting,
                f"no {self.kind} plugin named {name!r}; installed {self.kind}s: "
                f"{available} (see 'twistd mqttauth --help-plugins')",
            )
        return plugin


def _module_of(plugin: Any) -> str:
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return type(plugin).__module__


def _same_plugin(first: Any, second: Any) -> bool:
    # A plugin module that imports another module's plugin object, or makes
    # its own instance of the same class, offers the same plugin twice.
    if first is second:
        return True
    return not isinstance(first, types.ModuleType) and type(first) is type(second)


def catalog(kind: str, plugins: Iterable[Any]) -> PluginCatalog:
    """Index ``plugins`` by name, recording names that two plugins claim."""
    result = PluginCatalog(kind=kind)
    modules: dict[str, str] = {}
    for plugin in plugins:
        name = getattr(plugin, "name", None)
        if not isinstance(name, str) or not name:
            continue
        if name in result.plugins:
            if _same_plugin(result.plugins[name], plugin):
                continue
            claimants = result.conflicts.setdefault(name, [modules[name]])
            claimants.append(_module_of(plugin))
            continue
        result.plugins[name] = plugin
        modules[name] = _module_of(plugin)
    return result


def discover() -> tuple[PluginCatalog, PluginCatalog]:
    """Return the installed authenticator and authorizer plugins."""
    import twisted.plugins

    authenticators = catalog(
        "authenticator",
        getPlugins(IAuthenticatorPlugin, twisted.plugins),
    )
    authorizers = catalog(
        "authorizer",
        getPlugins(IAuthorizerPlugin, twisted.plugins),
    )
    return authenticators, authorizers


def describe(authenticators: PluginCatalog, authorizers: PluginCatalog) -> str:
    """Return the text ``--help-plugins`` prints: each plugin with its options."""
    lines = []
    for group, title in (
        (authenticators, "Authenticators"),
        (authorizers, "Authorizers"),
    ):
        lines.append(f"{title} (--{group.kind} NAME):")
        if not group.plugins:
            lines.append("  (none installed)")
        for name in group.names():
            plugin = group.plugins[name]
            description = getattr(plugin, "description", "") or ""
            lines.append(f"  {name:16} {description}")
            for option in getattr(plugin, "options", ()) or ():
                lines.append(f"  {'':16}   --{option.name} (env {option.env})")
        for name, modules in sorted(group.conflicts.items()):
            lines.append(f"  {name:16} CONFLICT: claimed by {', '.join(modules)}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
