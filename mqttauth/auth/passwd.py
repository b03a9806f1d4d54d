"""``python -m mqttauth passwd``: add, update and remove users in a password file.

The file keeps the format ``mosquitto_passwd`` reads and writes (see
:mod:`mqttauth.auth.passwords`); new hashes are ``$7$`` PBKDF2-SHA512.
Other lines, comments included, are kept as they are.  The file is replaced
atomically (written beside it, then renamed), and keeps its mode, owner and
group; a new file is created readable by its owner only.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
import tempfile

from .passwords import DEFAULT_ITERATIONS, PasswordHash

_DESCRIPTION = """\
Add a user to a password file or change the user's password (the default),
or remove the user with --delete.  Without --password or --password-stdin,
the password is asked for twice on the terminal.
"""


def build_parser() -> argparse.ArgumentParser:
    """Return the command's argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m mqttauth passwd", description=_DESCRIPTION
    )
    parser.add_argument("file", metavar="FILE", help="the password file")
    parser.add_argument("username", metavar="USERNAME", help="the user to change")

    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "-c",
        "--create",
        action="store_true",
        help="create FILE, which must not exist yet, with this one user",
    )
    action.add_argument(
        "-D", "--delete", action="store_true", help="remove the user from FILE"
    )

    secret = parser.add_mutually_exclusive_group()
    secret.add_argument(
        "--password",
        metavar="PASSWORD",
        help="the new password (visible to other local users in the process list; "
        "prefer --password-stdin in scripts)",
    )
    secret.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the new password from the first line of standard input",
    )

    parser.add_argument(
        "--groups",
        metavar="G1,G2",
        help="set the user's groups (comma-separated; an empty value clears "
        "them); without it, an existing user keeps their groups",
    )
    parser.add_argument(
        "--iterations",
        type=int,
        default=DEFAULT_ITERATIONS,
        metavar="N",
        help=f"PBKDF2-SHA512 iterations of the new hash (default {DEFAULT_ITERATIONS})",
    )
    return parser


class PasswdError(Exception):
    """A request the command cannot carry out; the message gives the reason."""


def main(argv: list[str]) -> int:
    """Run the command; return the exit status (0 done, 1 failed, 2 usage)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _run(args)
    except PasswdError as error:
        print(f"passwd: {error}", file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> None:
    username: str = args.username
    if not username or ":" in username or username != username.strip():
        raise PasswdError(
            f"invalid user name {username!r}: it must be non-empty, contain no ':' "
            "and have no surrounding spaces"
        )
    if args.iterations < 1:
        raise PasswdError(f"--iterations must be at least 1, not {args.iterations}")

    if args.create and os.path.lexists(args.file):
        raise PasswdError(
            f"{args.file} exists already; leave out --create to change it"
        )
    lines = [] if args.create else _read_lines(args.file)
    index = _find_user(lines, username)

    if args.delete:
        if index is None:
            raise PasswdError(f"user {username!r} is not in {args.file}")
        del lines[index]
        _write_lines(args.file, lines)
        return

    password = _new_password(args)
    groups = _groups(args.groups, lines[index] if index is not None else None)
    entry = f"{username}:{PasswordHash.create(password, args.iterations).encode()}"
    if groups:
        entry += ":" + ",".join(groups)
    if index is None:
        lines.append(entry)
    else:
        lines[index] = entry
    _write_lines(args.file, lines)


def _read_lines(path: str) -> list[str]:
    try:
        # Without the byte order mark, the first user's name matches, and the
        # rewritten file has none.
        with open(path, encoding="utf-8-sig") as file:
            return file.read().splitlines()
    except FileNotFoundError:
        raise PasswdError(f"{path} does not exist; add --create to create it") from None
    except (OSError, UnicodeDecodeError) as error:
        raise PasswdError(f"cannot read {path}: {error}") from None


def _find_user(lines: list[str], username: str) -> int | None:
    """Return the index of the user's line, or None."""
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#") or ":" not in stripped:
            continue
        if stripped.split(":", 1)[0].strip() == username:
            return index
    return None


def _groups(option: str | None, old_line: str | None) -> list[str]:
    if option is not None:
        return [g.strip() for g in option.split(",") if g.strip()]
    if old_line is None:
        return []
    fields = old_line.strip().split(":", 2)
    if len(fields) < 3:
        return []
    return [g.strip() for g in fields[2].split(",") if g.strip()]


def _new_password(args: argparse.Namespace) -> bytes:
    if args.password is not None:
        password: str = args.password
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = _prompt()
    if not password:
        raise PasswdError("the password is empty")
    return password.encode("utf-8")


def _prompt() -> str:
    try:
        first = getpass.getpass("Password: ")
        second = getpass.getpass("Reenter password: ")
    except (EOFError, KeyboardInterrupt):
        raise PasswdError("no password given") from None
    if first != second:
        raise PasswdError("the passwords do not match")
    return first


def _write_lines(path: str, lines: list[str]) -> None:
    """Replace the file atomically, keeping its mode (0600 for a new file),
    owner and group."""
    folder = os.path.dirname(os.path.abspath(path))
    owner: tuple[int, int] | None = None
    try:
        status = os.stat(path)
    except FileNotFoundError:
        mode = 0o600
    else:
        mode = status.st_mode & 0o7777
        owner = (status.st_uid, status.st_gid)
    text = "".join(line + "\n" for line in lines)
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=".passwd-", dir=folder)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            # The replacement is owned by the user who ran this command, so a
            # broker that reads the file through its group (mode 0640) would
            # lose access unless the old owner and group are restored.
            created = os.stat(temporary)
            if owner is not None and owner != (created.st_uid, created.st_gid):
                try:
                    os.chown(temporary, *owner)
                except PermissionError:
                    raise PasswdError(
                        f"cannot keep the owner and group of {path} "
                        f"(uid {owner[0]}, gid {owner[1]}); run the command as "
                        "the file's owner or as root"
                    ) from None
            os.chmod(temporary, mode)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as error:
        raise PasswdError(f"cannot write {path}: {error}") from None
