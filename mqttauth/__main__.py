"""Command-line tools: ``python -m mqttauth COMMAND`` (or ``mqttauth COMMAND``).

Each command is a module with a ``main(argv) -> int`` function, imported only
when it is run.
"""

from __future__ import annotations

import importlib
import sys

#: Command name to (module, one-line description).
COMMANDS: dict[str, tuple[str, str]] = {
    "token": (
        "mqttauth.tokens",
        "sign a JWT for a device with a development or key file",
    ),
    "passwd": ("mqttauth.auth.passwd", "add or remove users in a password file"),
}


def usage() -> str:
    lines = ["usage: python -m mqttauth COMMAND [OPTIONS]", "", "commands:"]
    for name, (_, description) in COMMANDS.items():
        lines.append(f"  {name:8} {description}")
    lines.append("")
    lines.append("Run the broker itself with: twistd -n mqttauth --help")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    command = COMMANDS.get(args[0])
    if command is None:
        print(f"unknown command {args[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(command[0])
    return int(module.main(args[1:]))


if __name__ == "__main__":
    sys.exit(main())
