"""The ``password-file`` authenticator, reading the files ``mosquitto_passwd`` writes.

A password file has one ``username:hash`` line per user.  Blank lines and
lines starting with ``#`` are skipped.  The hash formats are Mosquitto's
(as read by its broker, ``src/security_default.c`` in Mosquitto 2.0):

- ``$7$ITERATIONS$SALT$DIGEST``: PBKDF2-HMAC-SHA512 of the password with
  that many iterations, what ``mosquitto_passwd`` 2.x writes by default;
- ``$6$SALT$DIGEST``: SHA-512 of the password followed by the salt, what
  Mosquitto 1.6 and earlier wrote.

SALT is 12 bytes and DIGEST 64 bytes, both in padded standard Base64.  A line
may carry a third field, ``username:hash:group1,group2``, that gives the
user's groups for ``{group}`` rules and ``group`` ACL sections; Mosquitto's
broker ignores it.  Unlike Mosquitto, which drops entries it cannot read,
this module rejects the whole file and names the bad line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.plugin import IPlugin
from zope.interface import implementer

from mqttauth.mqtt.constants import ReasonCode
from mqttauth.service.config import ConfigError

from .interfaces import (
    AuthenticationError,
    AuthRequest,
    AuthSuccess,
    IAuthenticator,
    IAuthenticatorPlugin,
    Identity,
    PluginOption,
)

PBKDF2 = "7"
SHA512 = "6"
SALT_LENGTH = 12
DIGEST_LENGTH = 64
#: PBKDF2 iterations the passwd command uses without ``--iterations``.  More
#: iterations slow an attacker who has the file, and every CONNECT as well.
DEFAULT_ITERATIONS = 1000
#: Checks with more PBKDF2 iterations than this run in the reactor's thread
#: pool, so that a slow hash does not stall every other connection.
INLINE_ITERATIONS = 1000


@dataclass(frozen=True, slots=True)
class PasswordHash:
    """A salted password hash in one of Mosquitto's two formats."""

    scheme: str
    salt: bytes
    digest: bytes
    #: PBKDF2 iterations; 1 for the ``$6$`` scheme, which has none.
    iterations: int = 1

    @classmethod
    def create(
        cls,
        password: bytes,
        iterations: int = DEFAULT_ITERATIONS,
        salt: bytes | None = None,
    ) -> PasswordHash:
        """Hash a password with PBKDF2-HMAC-SHA512 and a random 12-byte salt."""
        if iterations < 1:
            raise ValueError(f"iterations must be at least 1, not {iterations}")
        salt = os.urandom(SALT_LENGTH) if salt is None else salt
        digest = hashlib.pbkdf2_hmac(
            "sha512", password, salt, iterations, DIGEST_LENGTH
        )
        return cls(PBKDF2, salt, digest, iterations)

    @classmethod
    def parse(cls, text: str) -> PasswordHash:
        """Parse ``$7$...`` or ``$6$...``; raise ``ValueError`` saying what is wrong."""
        fields = text.split("$")
        if len(fields) < 2 or fields[0] != "":
            raise ValueError(
                "the hash is not in a mosquitto_passwd format ($7$ or $6$); plain "
                "text passwords are not accepted, hash them with mosquitto_passwd -U "
                "or 'python -m mqttauth passwd'"
            )
        scheme = fields[1]
        if scheme == PBKDF2:
            if len(fields) != 5:
                raise ValueError("a $7$ hash has the form $7$ITERATIONS$SALT$DIGEST")
            try:
                iterations = int(fields[2])
            except ValueError:
                raise ValueError(f"invalid iteration count {fields[2]!r}") from None
            if iterations < 1:
                raise ValueError(f"invalid iteration count {fields[2]!r}")
            salt_text, digest_text = fields[3], fields[4]
        elif scheme == SHA512:
            if len(fields) != 4:
                raise ValueError("a $6$ hash has the form $6$SALT$DIGEST")
            iterations = 1
            salt_text, digest_text = fields[2], fields[3]
        else:
            raise ValueError(f"unknown hash type ${scheme}$; expected $7$ or $6$")

        salt = _decode(salt_text, "salt", SALT_LENGTH)
        digest = _decode(digest_text, "digest", DIGEST_LENGTH)
        return cls(scheme, salt, digest, iterations)

    def encode(self) -> str:
        """Return the hash as it appears in a password file."""
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        if self.scheme == SHA512:
            return f"${SHA512}${salt}${digest}"
        return f"${PBKDF2}${self.iterations}${salt}${digest}"

    def verify(self, password: bytes) -> bool:
        """Return whether ``password`` hashes to this digest (constant-time compare)."""
        if self.scheme == SHA512:
            computed = hashlib.sha512(password + self.salt).digest()
        else:
            computed = hashlib.pbkdf2_hmac(
                "sha512", password, self.salt, self.iterations, DIGEST_LENGTH
            )
        return hmac.compare_digest(computed, self.digest)


def _decode(text: str, what: str, length: int) -> bytes:
    try:
        value = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not valid Base64") from None
    if len(value) != length:
        raise ValueError(f"the {what} is {len(value)} bytes, expected {length}")
    return value


@dataclass(frozen=True, slots=True)
class PasswordEntry:
    """One user of a password file."""

    username: str
    hash: PasswordHash
    groups: tuple[str, ...] = ()


class PasswordFileError(ValueError):
    """A password file line that cannot be read; the message never has the hash."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}, line {line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


def parse_password_file(
    text: str, source: str = "<passwords>"
) -> dict[str, PasswordEntry]:
    """Parse password file text into entries by user name.

    Raises :class:`PasswordFileError` for a line without ``:``, an empty user
    name, an unreadable hash or a user name that appears twice.
    """
    entries: dict[str, PasswordEntry] = {}
    first_lines: dict[str, int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        username, colon, rest = line.partition(":")
        username = username.strip()
        if not colon:
            raise PasswordFileError(source, number, "expected 'username:hash'")
        if not username:
            raise PasswordFileError(source, number, "empty user name")
        if username in first_lines:
            raise PasswordFileError(
                source,
                number,
                f"user {username!r} appears again "
                f"(first at line {first_lines[username]})",
            )

        hash_text, _, groups_text = rest.partition(":")
        try:
            password_hash = PasswordHash.parse(hash_text.strip())
        except ValueError as error:
            raise PasswordFileError(
                source, number, f"user {username!r}: {error}"
            ) from None
        groups = tuple(g.strip() for g in groups_text.split(",") if g.strip())
        entries[username] = PasswordEntry(username, password_hash, groups)
        first_lines[username] = number
    return entries


def read_password_file(path: str) -> dict[str, PasswordEntry]:
    """Read and parse a password file.

    Raises ``OSError`` or :class:`PasswordFileError`.
    """
    # utf-8-sig drops the byte order mark that some Windows editors write.
    with open(path, encoding="utf-8-sig") as file:
        return parse_password_file(file.read(), path)


_REJECTION = "bad user name or password"


@implementer(IAuthenticator)
class PasswordFileAuthenticator:
    """Check the CONNECT User Name and Password against a password file.

    Every failure gets 0x86 Bad User Name or Password with the same Reason
    String, so a client cannot tell an unknown user from a wrong password.
    For the same reason an unknown user costs one hash computation too.
    """

    methods: tuple[str, ...] = ()
    log = Logger()

    def __init__(self, path: str, reactor: Any = None) -> None:
        """Read the file; raise ``OSError`` or :class:`PasswordFileError`."""
        self.path = path
        self._reactor = reactor
        self._entries = read_password_file(path)
        self._decoy = PasswordHash.create(b"", DEFAULT_ITERATIONS)

    @property
    def usernames(self) -> frozenset[str]:
        """The user names in force."""
        return frozenset(self._entries)

    def reload(self) -> bool:
        """Re-read the file; on an error keep the old entries and log it.

        Connected clients are not checked again.  Returns whether the new
        entries are in force.
        """
        try:
            entries = read_password_file(self.path)
        except PasswordFileError as error:
            self.log.error(
                "Password file reload failed at {path}, line {line}: {reason}; "
                "keeping the {count} users in force",
                path=self.path,
                line=error.line,
                reason=error.reason,
                count=len(self._entries),
            )
            return False
        except (OSError, UnicodeDecodeError) as error:
            self.log.error(
                "Password file reload failed, cannot read {path}: {error}; keeping "
                "the {count} users in force",
                path=self.path,
                error=error,
                count=len(self._entries),
            )
            return False
        self._entries = entries
        self.log.info(
            "Password file reloaded: {count} users from {path}",
            count=len(entries),
            path=self.path,
        )
        return True

    def authenticate(self, request: AuthRequest) -> Any:
        """Verify the password; return an AuthSuccess, or a Deferred of one.

        Raises (or fails with) :class:`AuthenticationError` 0x86 when the
        User Name or Password is missing, the user is unknown or the password
        does not match.
        """
        if request.username is None:
            raise AuthenticationError(
                ReasonCode.BAD_USER_NAME_OR_PASSWORD, _REJECTION, "missing_username"
            )
        if request.password is None:
            raise AuthenticationError(
                ReasonCode.BAD_USER_NAME_OR_PASSWORD, _REJECTION, "missing_password"
            )

        entry = self._entries.get(request.username)
        password_hash = self._decoy if entry is None else entry.hash
        if password_hash.iterations <= INLINE_ITERATIONS or not hasattr(
            self._reactor, "getThreadPool"
        ):
            matched = password_hash.verify(request.password)
            return _decide(request, entry, matched)

        verifying = deferToThreadPool(
            self._reactor,
            self._reactor.getThreadPool(),
            password_hash.verify,
            request.password,
        )
        return verifying.addCallback(lambda matched: _decide(request, entry, matched))


def _decide(
    request: AuthRequest, entry: PasswordEntry | None, matched: bool
) -> AuthSuccess:
    if entry is None:
        raise AuthenticationError(
            ReasonCode.BAD_USER_NAME_OR_PASSWORD, _REJECTION, "unknown_user"
        )
    if not matched:
        raise AuthenticationError(
            ReasonCode.BAD_USER_NAME_OR_PASSWORD, _REJECTION, "bad_password"
        )
    return AuthSuccess(Identity(entry.username, request.client_id, groups=entry.groups))


@implementer(IPlugin, IAuthenticatorPlugin)
class PasswordFilePlugin:
    """The ``password-file`` authenticator plugin."""

    name = "password-file"
    description = "User Name and Password checked against a mosquitto_passwd file"
    options = (
        PluginOption(
            "password-file",
            "MQTTAUTH_PASSWORD_FILE",
            "Path of the password file, in the format mosquitto_passwd writes.",
        ),
    )

    def build(
        self, settings: Mapping[str, Any], reactor: Any
    ) -> PasswordFileAuthenticator:
        """Read the file; raise :class:`ConfigError` naming ``password-file``."""
        path = settings.get("password_file")
        if not path:
            raise ConfigError(
                "password-file",
                "the password-file authenticator needs --password-file FILE "
                "(or MQTTAUTH_PASSWORD_FILE); create one with "
                "'python -m mqttauth passwd --create FILE USERNAME'",
            )
        try:
            authenticator = PasswordFileAuthenticator(str(path), reactor)
        except PasswordFileError as error:
            raise ConfigError(
                "password-file", f"invalid password file: {error}"
            ) from None
        except (OSError, UnicodeDecodeError) as error:
            reason = (
                "not UTF-8 text"
                if isinstance(error, UnicodeDecodeError)
                else error.strerror or str(error)
            )
            raise ConfigError(
                "password-file", f"cannot read the password file {path!r}: {reason}"
            ) from None
        PasswordFileAuthenticator.log.info(
            "Password file {path}: {count} users",
            path=path,
            count=len(authenticator.usernames),
        )
        return authenticator
