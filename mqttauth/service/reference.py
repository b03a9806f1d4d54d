"""Print the settings reference of docs/configuration.md from the installed plugins.

Run ``python -m mqttauth.service.reference`` and paste its output between the
``BEGIN SETTINGS`` and ``END SETTINGS`` markers of docs/configuration.md.
"""

from __future__ import annotations

from collections.abc import Sequence

from .options import Setting
from .plugins import discover
from .settings import format_value
from .tap import collect_settings

_GROUP_TITLES = {"service": "Service", "broker": "Broker limits"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(setting: Setting) -> str:
    if setting.default is None:
        return "(unset)"
    if setting.kind == "flag" and setting.default is False:
        return "off"
    return f"`{format_value(setting.default)}`"


def render_reference(settings: Sequence[Setting]) -> str:
    """Return Markdown tables of ``settings``, one per owner, in order."""
    owners: list[str] = []
    for setting in settings:
        if setting.owner not in owners:
            owners.append(setting.owner)
    lines: list[str] = []
    for owner in owners:
        title = _GROUP_TITLES.get(owner, f"Plugin `{owner}`")
        lines += [
            f"### {title}",
            "",
            "| option and TOML key | environment | default | meaning |",
        ]
        lines.append("|---|---|---|---|")
        for setting in settings:
            if setting.owner != owner:
                continue
            option = (
                f"`--{setting.name}`"
                if setting.kind == "flag"
                else f"`--{setting.name} {setting.metavar}`"
            )
            meaning = _cell(setting.help)
            lines.append(
                f"| {option} | `{setting.env}` | {_default(setting)} | {meaning} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Print the reference for the plugins installed here."""
    settings, _ = collect_settings(*discover())
    print(render_reference(settings), end="")


if __name__ == "__main__":
    main()
