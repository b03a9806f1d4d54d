"""Merge settings from the command line, the environment and a TOML file.

The command line wins over the environment, which wins over the file, which
wins over the default.  Each value is coerced by its setting's coercer, and a
value that fails stops start-up with a :class:`ConfigError` naming the
setting the way it was given (``--max-connections``, ``MQTTAUTH_MAX_CONNECTIONS``
or ``max-connections in FILE``).
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import ConfigError
from .options import ENV_PREFIX, Setting

Source = Literal["command line", "environment", "config file", "default"]


@dataclass(slots=True)
class ResolvedSettings:
    """The value in force of every setting, and where each came from.

    ``values`` is keyed by :attr:`Setting.key` (dashes replaced by
    underscores), the form plugins receive.
    """

    settings: tuple[Setting, ...]
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    config_file: str | None = None
    #: Environment variables with the MQTTAUTH_ prefix that name no setting.
    unknown_environment: tuple[str, ...] = ()

    def spelling(self, setting: Setting) -> str:
        """Return ``setting`` as it was given: its option, its key in the
        config file, or its variable when the environment or the default set it."""
        source = self.sources.get(setting.key)
        if source == "command line":
            return setting.option
        if source == "config file":
            return _file_label(setting, self.config_file or "")
        return setting.env

    def explicit(self) -> frozenset[str]:
        """Return the keys that a source other than the default set."""
        return frozenset(
            key for key, source in self.sources.items() if source != "default"
        )

    def describe(
        self, values: Mapping[str, Any] | None = None
    ) -> list[tuple[str, str, str]]:
        """Return ``(name, shown value, source)`` for the start-up log.

        ``values`` are the values in force when something (development mode)
        changed them after resolution; a changed value's source is ``--dev``.
        Secret values are shown as ``<hidden>``, and settings that are unset
        and have no default are left out.
        """
        in_force = self.values if values is None else values
        rows = []
        for setting in self.settings:
            value = in_force.get(setting.key)
            if value is None:
                continue
            source: str = self.sources[setting.key]
            if value != self.values.get(setting.key):
                source = "--dev"
            shown = "<hidden>" if setting.secret else format_value(value)
            rows.append((setting.name, shown, source))
        return rows


def format_value(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(str(item) for item in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if hasattr(value, "value") and isinstance(value, int):
        return f"0x{int(value):02X}"
    return str(value)


def load_toml(path: str) -> dict[str, Any]:
    """Read a TOML settings file; raise :class:`ConfigError` on any problem."""
    try:
        with open(path, "rb") as stream:
            return tomllib.load(stream)
    except FileNotFoundError:
        raise ConfigError("--config", f"file {path!r} not found") from None
    except OSError as error:
        raise ConfigError(
            "--config", f"cannot read {path!r}: {error.strerror}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError("--config", f"{path!r} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(
            "--config",
            f"{path!r} is not UTF-8 text (invalid byte at offset {error.start}); "
            "save the file as UTF-8",
        ) from None


def _coerce(setting: Setting, raw: Any, label: str) -> Any:
    try:
        return setting.coerce(raw)
    except (ValueError, TypeError) as error:
        raise ConfigError(label, f"invalid value: {error}") from None


def _file_label(setting: Setting, path: str) -> str:
    return f"{setting.name} in {path}"


def _check_file_keys(
    file_values: Mapping[str, Any], by_name: Mapping[str, Setting], path: str
) -> None:
    for key in file_values:
        if key == "config":
            raise ConfigError(
                f"config in {path}",
                "a config file cannot name another config file; remove the key",
            )
        if key in by_name:
            continue
        close = difflib.get_close_matches(key, list(by_name), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{key} in {path}",
            f"unknown setting; {hint}the keys are the long option names that "
            "'twistd mqttauth --help' lists, without the leading dashes",
        )


def resolve(
    settings: Sequence[Setting],
    command_line: Mapping[str, Any],
    environ: Mapping[str, str],
) -> ResolvedSettings:
    """Merge the sources of every setting and coerce each value.

    ``command_line`` maps :attr:`Setting.key` to the raw value given on the
    command line (a list for list settings, ``True`` for a flag given); keys
    that were not given are absent or ``None``.  ``environ`` is the process
    environment; an empty variable counts as unset.  The TOML file is the one
    ``--config`` or ``MQTTAUTH_CONFIG`` names.
    """
    resolved = ResolvedSettings(settings=tuple(settings))
    by_name = {setting.name: setting for setting in settings}

    config_setting = by_name.get("config")
    file_values: Mapping[str, Any] = {}
    if config_setting is not None:
        path = _raw_from(config_setting, command_line, environ)
        if path is not None:
            label = "--config" if command_line.get("config") else config_setting.env
            resolved.config_file = _coerce(config_setting, path[0], label)
            file_values = load_toml(resolved.config_file)
            _check_file_keys(file_values, by_name, resolved.config_file)

    for setting in settings:
        _resolve_one(resolved, setting, command_line, environ, file_values)

    known_env = {setting.env for setting in settings}
    resolved.unknown_environment = tuple(
        sorted(
            name
            for name, value in environ.items()
            if name.startswith(ENV_PREFIX) and name not in known_env and value
        )
    )
    return resolved


def _raw_from(
    setting: Setting, command_line: Mapping[str, Any], environ: Mapping[str, str]
) -> tuple[Any, Source] | None:
    given = command_line.get(setting.key)
    if given is not None and given != [] and given is not False:
        return given, "command line"
    text = environ.get(setting.env)
    if text:
        return text, "environment"
    return None


def _resolve_one(
    resolved: ResolvedSettings,
    setting: Setting,
    command_line: Mapping[str, Any],
    environ: Mapping[str, str],
    file_values: Mapping[str, Any],
) -> None:
    found = _raw_from(setting, command_line, environ)
    if found is not None:
        raw, source = found
        label = setting.option if source == "command line" else setting.env
    elif setting.name in file_values:
        raw, source = file_values[setting.name], "config file"
        label = _file_label(setting, resolved.config_file or "")
    else:
        raw, source = setting.default, "default"
        label = f"default of {setting.option} ({setting.owner})"

    value = None if raw is None else _coerce(setting, raw, label)
    resolved.values[setting.key] = value
    resolved.sources[setting.key] = source
