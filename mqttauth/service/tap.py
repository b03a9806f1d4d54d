"""``twistd mqttauth``: the command-line options and the service they build.

The options are the service's own (listeners, plugins, files, TLS), one per
broker limit, and one per :class:`~mqttauth.auth.interfaces.PluginOption` of
every installed authenticator and authorizer plugin, found when this module
is imported.  Each can also be set by environment variable or in the TOML
file of ``--config``; see :mod:`mqttauth.service.settings` for the order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from .config import ConfigError
from .logfile import observer_for_twistd
from .options import (
    SERVICE_SETTINGS,
    Setting,
    broker_settings,
    combine,
    plugin_settings,
    to_endpoints,
)
from .plugins import PluginCatalog, describe, discover
from .settings import ResolvedSettings, format_value, resolve

#: Settings with their own ``opt_`` method below, because they repeat.
_REPEATED = ("listen", "authorizer")


def collect_settings(
    authenticators: PluginCatalog, authorizers: PluginCatalog
) -> tuple[tuple[Setting, ...], list[str]]:
    """Return every setting: the service's, the broker's, then each plugin's."""
    groups: list[Sequence[Setting]] = [SERVICE_SETTINGS, broker_settings()]
    broken = []
    for catalog in (authenticators, authorizers):
        for name in catalog.names():
            options = getattr(catalog.plugins[name], "options", ()) or ()
            try:
                groups.append(plugin_settings(name, options))
            except (AttributeError, TypeError) as error:
                # A plugin with a malformed options list must not break
                # 'twistd mqttauth' for every other plugin.
                broken.append(f"Plugin {name!r} has invalid options ({error}); ignored")
    settings, notes = combine(groups)
    return settings, broken + notes


def _help(setting: Setting) -> str:
    parts = [setting.help]
    if setting.default is not None and setting.default is not False:
        parts.append(f"[default: {format_value(setting.default)}]")
    if setting.kind == "list":
        separator = "spaces" if setting.coerce is to_endpoints else "commas"
        parts.append(f"[env: {setting.env}, separated by {separator}]")
    else:
        parts.append(f"[env: {setting.env}]")
    return " ".join(parts)


def _repeatable(name: str, doc: str) -> Any:
    def add(self: BaseOptions, value: str) -> None:
        self.repeated[name].append(value)

    add.__doc__ = doc
    return add


class BaseOptions(usage.Options):
    """The options that need code; the generated subclass adds the rest."""

    synopsis = "[options]"
    longdesc = (
        "Run the mqttauth MQTT broker. Every option can also be set by its "
        "environment variable or as a key of the --config TOML file; the "
        "command line wins over the environment, which wins over the file."
    )

    #: Filled in by :func:`build_options_class`.
    settings: tuple[Setting, ...] = ()
    setting_notes: list[str] = []
    authenticators = PluginCatalog(kind="authenticator")
    authorizers = PluginCatalog(kind="authorizer")

    def __init__(self) -> None:
        super().__init__()
        self.repeated: dict[str, list[str]] = {name: [] for name in _REPEATED}

    def opt_help_plugins(self) -> None:
        """List the installed authenticator and authorizer plugins and exit."""
        sys.stdout.write(describe(self.authenticators, self.authorizers))
        sys.exit(0)

    def command_line(self) -> dict[str, Any]:
        """Return the settings given on the command line, keyed like plugin settings."""
        given: dict[str, Any] = {}
        for setting in self.settings:
            if setting.name in _REPEATED:
                value: Any = self.repeated[setting.name] or None
            elif setting.kind == "flag":
                value = True if self.get(setting.name) else None
            else:
                value = self.get(setting.name)
            if value is not None:
                given[setting.key] = value
        return given

    def resolve(self, environ: Mapping[str, str]) -> ResolvedSettings:
        """Merge the command line with ``environ`` and the config file."""
        return resolve(self.settings, self.command_line(), environ)


def build_options_class(
    authenticators: PluginCatalog, authorizers: PluginCatalog
) -> type[BaseOptions]:
    """Return an Options class with an option for every setting of these plugins."""
    settings, notes = collect_settings(authenticators, authorizers)
    parameters = []
    flags = []
    repeatable = {}
    for setting in settings:
        if setting.name in _REPEATED:
            repeatable[f"opt_{setting.key}"] = _repeatable(setting.name, _help(setting))
            continue
        if setting.kind == "flag":
            flags.append([setting.name, None, _help(setting)])
        else:
            parameters.append([setting.name, None, None, _help(setting)])
    namespace: dict[str, Any] = {
        "optParameters": parameters,
        "optFlags": flags,
        "settings": settings,
        "setting_notes": notes,
        "authenticators": authenticators,
        "authorizers": authorizers,
        **repeatable,
    }
    return type("Options", (BaseOptions,), namespace)


Options = build_options_class(*discover())


def makeService(options: BaseOptions) -> IService:
    """Build the broker service for twistd; exit with status 1 on a bad setting."""
    from twisted.internet import reactor

    from .build import build_service

    try:
        resolved = options.resolve(os.environ)
        service = build_service(
            resolved,
            reactor,
            options.authenticators,
            options.authorizers,
            notes=options.setting_notes,
        )
    except ConfigError as error:
        sys.stderr.write(f"twistd mqttauth: error: {error}\n")
        raise SystemExit(1) from None
    # Under twistd, the parent is twistd's own ServerOptions.
    server_options = getattr(options, "parent", None)
    if server_options is not None:
        service.log_observer = observer_for_twistd(
            server_options, resolved.values["log_level"]
        )
    return service
