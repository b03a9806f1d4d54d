"""Build the broker service from resolved settings: plugins, store, listeners."""

from __future__ import annotations

import dataclasses
import os
import re
import traceback
from collections.abc import Sequence
from typing import Any

from twisted.application.service import IService
from zope.interface.exceptions import Invalid
from zope.interface.verify import verifyObject

import mqttauth
from mqttauth.auth.interfaces import IAuthenticator, IAuthorizer
from mqttauth.broker.settings import BrokerSettings

from .broker_service import BrokerService
from .config import ConfigError
from .listeners import ListenerService, parse_listeners
from .plugins import PluginCatalog
from .settings import ResolvedSettings
from .tls import TLSPolicy, is_tls_description

#: Settings that ``--dev`` takes from the command line instead of replacing.
_DEV_HONOURED = frozenset({"listen", "data_dir", "acl_file"})


def _apply_dev_mode(
    resolved: ResolvedSettings, values: dict[str, Any], reactor: Any
) -> tuple[list[IService], str | None]:
    """Apply ``--dev``: development settings over ``values``, in place.

    A command-line option that development mode would replace, such as
    ``--authenticator``, stops start-up instead of being ignored.
    """
    try:
        from mqttauth.dev import prepare_dev_mode
    except ImportError as error:
        raise ConfigError(
            "--dev", f"development mode is not available: {error}"
        ) from None
    replaced = [
        setting.option
        for setting in resolved.settings
        if resolved.sources.get(setting.key) == "command line"
        and setting.key not in _DEV_HONOURED
        and (setting.key in ("authenticator", "authorizer") or setting.owner == "jwt")
    ]
    if replaced:
        raise ConfigError(
            "--dev",
            f"development mode sets its own jwt authenticator, keys and ACL, so "
            f"it cannot be combined with {', '.join(replaced)}; remove "
            f"{'that option' if len(replaced) == 1 else 'those options'} or "
            "--dev",
        )
    overrides, services, banner = prepare_dev_mode(values, reactor)
    for key, value in overrides.items():
        if key in ("listen", "authorizer") and isinstance(value, str):
            value = (value,)
        elif isinstance(value, list):
            value = tuple(value)
        values[key] = value
    return list(services), banner


def _check_dev_source(resolved: ResolvedSettings) -> None:
    """Reject development mode unless ``--dev`` itself is on the command line.

    A leftover ``MQTTAUTH_DEV`` or ``dev = true`` must not turn a broker into
    one that trusts a key anyone with the data directory can use.
    """
    source = resolved.sources.get("dev")
    if source == "command line":
        return
    if source == "environment":
        setting = "MQTTAUTH_DEV"
    else:
        setting = f"dev in {resolved.config_file}"
    raise ConfigError(
        setting,
        "development mode is turned on only by the --dev option on the command "
        "line; remove this setting",
    )


def prepare_data_dir(path: str) -> str:
    """Check the data directory, creating it (mode 0700) when only it is missing.

    A missing parent is an error rather than created, so that a mistyped
    path stops start-up instead of scattering state.
    """
    path = os.path.abspath(path)
    if os.path.isdir(path):
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigError(
                "--data-dir", f"directory {path!r} is not writable by this user"
            )
        return path
    if os.path.exists(path):
        raise ConfigError("--data-dir", f"{path!r} exists but is not a directory")
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise ConfigError(
            "--data-dir",
            f"parent directory {parent!r} of {path!r} not found; create it first",
        )
    try:
        os.mkdir(path, 0o700)
    except OSError as error:
        raise ConfigError(
            "--data-dir", f"cannot create {path!r}: {error.strerror}"
        ) from None
    return path


def build_store(data_dir: str | None, reactor: Any) -> tuple[Any, str]:
    """Return the session store and a line that describes it for the log."""
    if data_dir is None:
        from mqttauth.store.memory import MemoryStore

        return (
            MemoryStore(),
            "Store: in memory (sessions and retained messages end with the process)",
        )
    from mqttauth.store.sqlite import SQLiteStore

    return SQLiteStore(data_dir, reactor), f"Store: SQLite in {data_dir}"


def _build_plugin(
    catalog: PluginCatalog,
    name: str,
    setting: str,
    interface: Any,
    values: dict[str, Any],
    reactor: Any,
) -> Any:
    plugin = catalog.get(name, setting)
    try:
        built = plugin.build(dict(values), reactor)
    except ConfigError:
        raise
    except Exception as error:
        # Any other exception is a bug or an outage in the plugin. Start-up
        # stops with one line that names the plugin and where it raised.
        frame = traceback.extract_tb(error.__traceback__)[-1]
        raise ConfigError(
            setting,
            f"plugin {name!r} failed to build: {type(error).__name__}: {error} "
            f"(at {frame.filename}, line {frame.lineno}); fix the plugin's "
            "settings or remove the plugin",
        ) from None
    try:
        verifyObject(interface, built)
    except Invalid as error:
        raise ConfigError(
            setting,
            f"plugin {name!r} built an object that does not provide "
            f"{interface.__name__}: {error}; fix or remove the plugin",
        ) from None
    return built


_VARIABLE = re.compile(r"\b[A-Z][A-Z0-9_]*\b")


def _spell_as_given(error: ConfigError, resolved: ResolvedSettings) -> ConfigError:
    """Return ``error`` with each environment variable in its setting name
    replaced by the spelling in which that setting was given.

    Plugins name their settings by environment variable (``JWT_JWKS_URL``)
    whatever the source, so without this a value from the command line would
    be reported under a variable that is not set.
    """
    spellings = {
        setting.env: resolved.spelling(setting) for setting in resolved.settings
    }
    renamed = _VARIABLE.sub(
        lambda match: spellings.get(match.group(0), match.group(0)), error.setting
    )
    if renamed == error.setting:
        return error
    return ConfigError(renamed, error.message)


#: Settings that give the acl-file authorizer its rules.
ACL_RULE_SETTINGS = ("acl-file", "acl-rules")


def _check_acl_authorizer(
    resolved: ResolvedSettings, values: dict[str, Any], authorizers: PluginCatalog
) -> None:
    """Reject ACL rules that no authorizer of the chain reads.

    The chain defaults to allow-all, so an --acl-file without --authorizer
    acl-file would silently allow every request the file was meant to deny.
    """
    declared: set[str] = set()
    for name in values["authorizer"]:
        plugin = authorizers.plugins.get(name)
        declared.update(
            option.name for option in getattr(plugin, "options", None) or ()
        )
    unread = [
        setting
        for setting in resolved.settings
        if setting.name in ACL_RULE_SETTINGS
        and setting.name not in declared
        and resolved.sources.get(setting.key, "default") != "default"
    ]
    if not unread:
        return
    chain = " -> ".join(values["authorizer"])
    raise ConfigError(
        " and ".join(resolved.spelling(setting) for setting in unread),
        f"sets ACL rules, but no authorizer of the chain ({chain}) reads them, "
        "so every request would be decided without them. Add --authorizer "
        "acl-file, or remove the rules",
    )


def broker_settings_from(values: dict[str, Any]) -> BrokerSettings:
    """Return the BrokerSettings that ``values`` (keyed by field name) set."""
    fields = {
        field.name: values[field.name] for field in dataclasses.fields(BrokerSettings)
    }
    return BrokerSettings(**fields)


def _check_tls(values: dict[str, Any], descriptions: Sequence[str]) -> TLSPolicy:
    if values["tls_require_client_cert"] and values["tls_client_ca"] is None:
        raise ConfigError(
            "--tls-require-client-cert",
            "needs --tls-client-ca FILE, the CAs that sign the client certificates",
        )
    return TLSPolicy(
        min_version=values["tls_min_version"],
        client_ca=values["tls_client_ca"],
        require_client_cert=bool(values["tls_require_client_cert"]),
    )


def build_service(
    resolved: ResolvedSettings,
    reactor: Any,
    authenticators: PluginCatalog,
    authorizers: PluginCatalog,
    *,
    notes: Sequence[str] = (),
) -> BrokerService:
    """Build the broker service; raise :class:`ConfigError` for a bad setting."""
    values = dict(resolved.values)
    plugin_services: list[IService] = []
    banner = None
    if values.get("dev"):
        _check_dev_source(resolved)
        plugin_services, banner = _apply_dev_mode(resolved, values, reactor)

    if not values.get("authenticator"):
        raise ConfigError(
            "--authenticator",
            "no authenticator chosen; pass --authenticator NAME (installed: "
            f"{', '.join(authenticators.names()) or 'none'}), or --dev for a "
            "development broker. mqttauth does not let clients in by default: "
            "--authenticator anonymous admits everyone",
        )
    _check_acl_authorizer(resolved, values, authorizers)
    policy = _check_tls(values, values["listen"])
    listeners = parse_listeners(reactor, values["listen"], policy)
    if values["data_dir"] is not None:
        values["data_dir"] = prepare_data_dir(values["data_dir"])

    try:
        authenticator = _build_plugin(
            authenticators,
            values["authenticator"],
            "--authenticator",
            IAuthenticator,
            values,
            reactor,
        )
        chain = [
            _build_plugin(
                authorizers, name, "--authorizer", IAuthorizer, values, reactor
            )
            for name in values["authorizer"]
        ]
    except ConfigError as error:
        raise _spell_as_given(error, resolved) from None
    store, store_line = build_store(values["data_dir"], reactor)

    from mqttauth.broker.broker import Broker

    broker = Broker(reactor, broker_settings_from(values), authenticator, chain, store)

    service = BrokerService(
        reactor,
        broker,
        [],
        plugin_services=plugin_services
        + [plugin for plugin in [authenticator, *chain] if IService.providedBy(plugin)],
        reloadables=[(f"authenticator {values['authenticator']}", authenticator)]
        + [
            (f"authorizer {name}", plugin)
            for name, plugin in zip(values["authorizer"], chain, strict=True)
        ],
        startup_lines=startup_lines(resolved, values, store_line, policy, notes),
        banner=banner,
    )
    for listener in listeners:
        factory = broker.build_factory(tls=listener.tls)
        service.listeners.append(
            ListenerService(listener, factory, service.listen_failed)
        )
    return service


LogLine = tuple[str, dict[str, Any]]


def startup_lines(
    resolved: ResolvedSettings,
    values: dict[str, Any],
    store_line: str,
    policy: TLSPolicy,
    notes: Sequence[str],
) -> list[LogLine]:
    """Return the start-up log events: plugins, store, TLS and the settings in force.

    Each is a format string with its fields.  Secret settings are shown as
    ``<hidden>``.
    """
    lines: list[LogLine] = [
        ("mqttauth {version} starting", {"version": mqttauth.__version__}),
        (
            "Authenticator: {authenticator}; authorizer chain: {authorizers} "
            "(no decision means deny)",
            {
                "authenticator": values["authenticator"],
                "authorizers": " -> ".join(values["authorizer"]),
            },
        ),
        ("{store}", {"store": store_line}),
        (
            "TLS: minimum version {min_version}, client certificates: {client_ca}"
            "{required}",
            {
                "min_version": policy.min_version,
                "client_ca": policy.client_ca or "not requested",
                "required": " (required)" if policy.require_client_cert else "",
            },
        ),
    ]
    if policy.client_ca and not any(is_tls_description(d) for d in values["listen"]):
        lines.append(
            (
                "--tls-client-ca is set but no ssl: listener is configured, so no "
                "client certificate is checked",
                {},
            )
        )
    if resolved.config_file:
        lines.append(("Config file: {path}", {"path": resolved.config_file}))
    defaults = []
    for name, shown, source in resolved.describe(values):
        if source == "default":
            defaults.append(f"{name}={shown}")
        else:
            lines.append(
                (
                    "Setting {name} = {value} (from {source})",
                    {"name": name, "value": shown, "source": source},
                )
            )
    if defaults:
        lines.append(
            ("Defaults in force: {defaults}", {"defaults": " ".join(defaults)})
        )
    for name in resolved.unknown_environment:
        lines.append(
            (
                "Environment variable {name} names no setting and is ignored",
                {"name": name},
            )
        )
    for note in notes:
        lines.append(("{note}", {"note": note}))
    return lines
