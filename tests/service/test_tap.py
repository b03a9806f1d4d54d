"""The generated twistd Options class: plugin options, repeats, help."""

from __future__ import annotations

import pytest
from twisted.python import usage

from mqttauth.auth.interfaces import PluginOption
from mqttauth.service.config import ConfigError
from mqttauth.service.plugins import catalog
from mqttauth.service.tap import build_options_class, collect_settings


class ExamplePlugin:
    name = "example"
    description = "An authenticator for these tests"
    options = (
        PluginOption("example-secret", "EXAMPLE_SECRET", "The shared secret."),
        PluginOption(
            "example-retries", "EXAMPLE_RETRIES", "Retries.", default="3", coerce=int
        ),
    )


class BrokenPlugin:
    name = "broken"
    description = "Options that are not PluginOption objects"
    options = ("not-an-option",)


def options_class(*plugins: object) -> type:
    return build_options_class(
        catalog("authenticator", plugins), catalog("authorizer", [])
    )


def test_plugin_option_on_command_line() -> None:
    options = options_class(ExamplePlugin())()
    options.parseOptions(["--example-secret", "s3", "--authenticator", "example"])
    assert options.command_line() == {
        "example_secret": "s3",
        "authenticator": "example",
    }


def test_repeated_options_collect() -> None:
    options = options_class()()
    options.parseOptions(
        ["--listen", "tcp:1", "--listen", "tcp:2", "--authorizer", "a"]
    )
    given = options.command_line()
    assert given["listen"] == ["tcp:1", "tcp:2"]
    assert given["authorizer"] == ["a"]


def test_flag_given() -> None:
    options = options_class()()
    options.parseOptions(["--tls-require-client-cert"])
    assert options.command_line() == {"tls_require_client_cert": True}


def test_unset_options_absent() -> None:
    options = options_class(ExamplePlugin())()
    options.parseOptions([])
    assert options.command_line() == {}


def test_resolve_merges_environment() -> None:
    options = options_class(ExamplePlugin())()
    options.parseOptions(["--example-secret", "cli"])
    resolved = options.resolve({"EXAMPLE_SECRET": "env", "EXAMPLE_RETRIES": "5"})
    assert resolved.values["example_secret"] == "cli"
    assert resolved.values["example_retries"] == 5


def test_help_shows_env_and_default() -> None:
    text = str(options_class(ExamplePlugin())())
    assert "--example-retries=" in text
    assert "[default: 3] [env: EXAMPLE_RETRIES]" in " ".join(text.split())


def test_help_plugins_exits(capsys: pytest.CaptureFixture[str]) -> None:
    options = options_class(ExamplePlugin())()
    with pytest.raises(SystemExit) as exited:
        options.parseOptions(["--help-plugins"])
    assert exited.value.code == 0
    assert (
        "example          An authenticator for these tests" in capsys.readouterr().out
    )


def test_unknown_option_rejected() -> None:
    with pytest.raises(usage.UsageError, match="--lisen"):
        options_class()().parseOptions(["--lisen", "tcp:1"])


def test_malformed_plugin_options_noted() -> None:
    authenticators = catalog("authenticator", [BrokenPlugin(), ExamplePlugin()])
    settings, notes = collect_settings(authenticators, catalog("authorizer", []))
    assert "example-secret" in {setting.name for setting in settings}
    assert notes[0].startswith("Plugin 'broken' has invalid options")


def test_same_plugin_twice_not_conflict() -> None:
    found = catalog("authenticator", [ExamplePlugin(), ExamplePlugin()])
    assert found.conflicts == {}


def test_two_plugins_one_name_conflict() -> None:
    class Other:
        name = "example"

    found = catalog("authenticator", [ExamplePlugin(), Other()])
    with pytest.raises(
        ConfigError, match="more than one authenticator plugin is named"
    ):
        found.get("example", "--authenticator")
