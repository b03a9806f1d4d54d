"""docs/configuration.md documents every setting of the built-in plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from mqttauth.service.options import Setting
from mqttauth.service.plugins import discover
from mqttauth.service.tap import collect_settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
BUILT_IN = {
    "service",
    "broker",
    "anonymous",
    "password-file",
    "jwt",
    "allow-all",
    "acl-file",
}


def built_in_settings() -> list[Setting]:
    settings, _ = collect_settings(*discover())
    return [setting for setting in settings if setting.owner in BUILT_IN]


@pytest.mark.parametrize(
    "setting", built_in_settings(), ids=lambda setting: setting.name
)
def test_setting_documented(setting: Setting) -> None:
    text = DOC.read_text()
    assert f"`--{setting.name}" in text
    assert f"`{setting.env}`" in text
