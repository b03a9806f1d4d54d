"""The password-file authenticator against files made by mosquitto_passwd."""

import shutil
import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface.verify import verifyObject

from mqttauth.auth.interfaces import (
    AuthenticationError,
    AuthRequest,
    IAuthenticator,
    IAuthenticatorPlugin,
)
from mqttauth.auth.passwords import (
    PasswordFileAuthenticator,
    PasswordFileError,
    PasswordFilePlugin,
    PasswordHash,
    parse_password_file,
)
from mqttauth.mqtt.constants import ReasonCode
from mqttauth.service.config import ConfigError

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
needs_mosquitto_passwd = pytest.mark.skipif(
    MOSQUITTO_PASSWD is None,
    reason="mosquitto_passwd (Debian package mosquitto) missing",
)


def mosquitto_passwd(*args):
    subprocess.run([MOSQUITTO_PASSWD, *args], check=True, capture_output=True)


def request(username="alice", password=b"secret", client_id="c1"):
    return AuthRequest(
        client_id=client_id,
        protocol_level=5,
        peer="127.0.0.1:1",
        username=username,
        password=password,
    )


def rejection(authenticator, req):
    with pytest.raises(AuthenticationError) as caught:
        authenticator.authenticate(req)
    return caught.value


@pytest.fixture
def mosquitto_file(tmp_path):
    path = tmp_path / "passwords"
    mosquitto_passwd("-c", "-b", str(path), "alice", "secret")
    mosquitto_passwd("-b", str(path), "bob", "p:w d")
    mosquitto_passwd("-H", "sha512", "-b", str(path), "old", "legacy")
    return str(path)


@needs_mosquitto_passwd
def test_mosquitto_pbkdf2_accepted(mosquitto_file):
    authenticator = PasswordFileAuthenticator(mosquitto_file)
    success = authenticator.authenticate(request())
    assert success.identity.principal == "alice"
    assert success.identity.client_id == "c1"


@needs_mosquitto_passwd
def test_mosquitto_password_with_colon(mosquitto_file):
    authenticator = PasswordFileAuthenticator(mosquitto_file)
    success = authenticator.authenticate(request("bob", b"p:w d"))
    assert success.identity.principal == "bob"


@needs_mosquitto_passwd
def test_mosquitto_sha512_accepted(mosquitto_file):
    authenticator = PasswordFileAuthenticator(mosquitto_file)
    assert (
        authenticator.authenticate(request("old", b"legacy")).identity.principal
        == "old"
    )


@needs_mosquitto_passwd
def test_mosquitto_formats_parsed(mosquitto_file):
    with open(mosquitto_file, encoding="utf-8") as file:
        entries = parse_password_file(file.read())
    assert entries["alice"].hash.scheme == "7"
    assert entries["old"].hash.scheme == "6"


@needs_mosquitto_passwd
@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        ("alice", b"wrong", "bad_password"),
        ("alice", b"", "bad_password"),
        ("old", b"legacy2", "bad_password"),
        ("nobody", b"secret", "unknown_user"),
        (None, None, "missing_username"),
        ("alice", None, "missing_password"),
    ],
)
def test_rejections(mosquitto_file, username, password, reason):
    authenticator = PasswordFileAuthenticator(mosquitto_file)
    error = rejection(authenticator, request(username, password))
    assert error.reason_code == ReasonCode.BAD_USER_NAME_OR_PASSWORD
    assert error.reason == reason
    assert error.reason_string == "bad user name or password"


def test_groups_field(tmp_path):
    path = tmp_path / "passwords"
    line = "carol:" + PasswordHash.create(b"pw", 5).encode() + ": ops , admin,\n"
    path.write_text(line, encoding="utf-8")
    authenticator = PasswordFileAuthenticator(str(path))
    identity = authenticator.authenticate(request("carol", b"pw")).identity
    assert identity.groups == ("ops", "admin")


def test_hash_round_trip():
    created = PasswordHash.create(b"pw", 10)
    parsed = PasswordHash.parse(created.encode())
    assert parsed == created
    assert parsed.verify(b"pw")
    assert not parsed.verify(b"pW")


GOOD = PasswordHash.create(b"x", 1).encode()


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("# c\nalice\n", 2, "expected 'username:hash'"),
        (f":{GOOD}", 1, "empty user name"),
        ("alice:secret", 1, "not in a mosquitto_passwd format"),
        ("alice:$5$abc$def", 1, "unknown hash type $5$"),
        ("alice:$7$x$AAAA$BBBB", 1, "invalid iteration count 'x'"),
        ("alice:$7$0$AAAA$BBBB", 1, "invalid iteration count '0'"),
        ("alice:$7$101$AAAA", 1, "$7$ITERATIONS$SALT$DIGEST"),
        ("alice:$6$AAAA", 1, "$6$SALT$DIGEST"),
        ("alice:$7$101$!!!!$BBBB", 1, "the salt is not valid Base64"),
        ("alice:$7$101$AAAA$BBBB", 1, "the salt is 3 bytes, expected 12"),
        (
            f"alice:{GOOD}\n\nalice:{GOOD}",
            3,
            "user 'alice' appears again (first at line 1)",
        ),
    ],
)
def test_file_errors(text, line, reason):
    with pytest.raises(PasswordFileError) as caught:
        parse_password_file(text, "pw")
    assert caught.value.line == line
    assert reason in caught.value.reason
    assert "BBBB" not in str(caught.value)


def test_reload_picks_up_users(tmp_path):
    path = tmp_path / "passwords"
    path.write_text(
        f"alice:{PasswordHash.create(b'a', 2).encode()}\n", encoding="utf-8"
    )
    authenticator = PasswordFileAuthenticator(str(path))
    authenticator.log = Logger(observer=lambda event: None)
    with path.open("a", encoding="utf-8") as file:
        file.write(f"bob:{PasswordHash.create(b'b', 2).encode()}\n")
    assert authenticator.reload() is True
    assert authenticator.authenticate(request("bob", b"b")).identity.principal == "bob"


def test_reload_broken_file_keeps_users(tmp_path):
    path = tmp_path / "passwords"
    path.write_text(
        f"alice:{PasswordHash.create(b'a', 2).encode()}\n", encoding="utf-8"
    )
    authenticator = PasswordFileAuthenticator(str(path))
    events = []
    authenticator.log = Logger(observer=events.append)
    path.write_text("alice:hunter2pass\n", encoding="utf-8")
    assert authenticator.reload() is False
    assert (
        authenticator.authenticate(request("alice", b"a")).identity.principal == "alice"
    )
    assert events[0]["line"] == 1
    assert "hunter2pass" not in repr(events[0])


@pytest_twisted.ensureDeferred
async def test_slow_hash_runs_in_thread(tmp_path):
    from twisted.internet import reactor

    path = tmp_path / "passwords"
    slow = PasswordHash.create(b"pw", 20_000).encode()
    path.write_text(f"alice:{slow}\n", encoding="utf-8")
    authenticator = PasswordFileAuthenticator(str(path), reactor)
    pending = authenticator.authenticate(request("alice", b"pw"))
    assert isinstance(pending, defer.Deferred)
    success = await pending
    assert success.identity.principal == "alice"


@pytest_twisted.ensureDeferred
async def test_slow_hash_rejects_in_thread(tmp_path):
    from twisted.internet import reactor

    path = tmp_path / "passwords"
    slow = PasswordHash.create(b"pw", 20_000).encode()
    path.write_text(f"alice:{slow}\n", encoding="utf-8")
    authenticator = PasswordFileAuthenticator(str(path), reactor)
    with pytest.raises(AuthenticationError) as caught:
        await authenticator.authenticate(request("alice", b"no"))
    assert caught.value.reason == "bad_password"


def test_authenticator_provides_interface(tmp_path):
    path = tmp_path / "passwords"
    path.write_text("", encoding="utf-8")
    assert verifyObject(IAuthenticator, PasswordFileAuthenticator(str(path)))


def test_plugin_provides_interface():
    assert verifyObject(IAuthenticatorPlugin, PasswordFilePlugin())


def test_plugin_needs_file():
    with pytest.raises(ConfigError) as caught:
        PasswordFilePlugin().build({}, None)
    assert caught.value.setting == "password-file"


def test_plugin_missing_file(tmp_path):
    with pytest.raises(ConfigError) as caught:
        PasswordFilePlugin().build({"password_file": str(tmp_path / "absent")}, None)
    assert caught.value.setting == "password-file"
    assert "No such file or directory" in str(caught.value)


def test_plugin_unparsable_file(tmp_path):
    path = tmp_path / "passwords"
    path.write_text("alice:plain\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        PasswordFilePlugin().build({"password_file": str(path)}, None)
    assert caught.value.setting == "password-file"
    assert "line 1" in str(caught.value)


@needs_mosquitto_passwd
def test_bom_and_crlf_file(mosquitto_file, tmp_path):
    # Windows editors may add a byte order mark and CRLF line ends.
    with open(mosquitto_file, encoding="utf-8") as file:
        lines = file.read().splitlines()
    path = tmp_path / "windows-passwords"
    text = "".join(f"{line}\r\n" for line in lines)
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    authenticator = PasswordFileAuthenticator(str(path))
    assert authenticator.usernames == {"alice", "bob", "old"}
    success = authenticator.authenticate(request())
    assert success.identity.principal == "alice"
