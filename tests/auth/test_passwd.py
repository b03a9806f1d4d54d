"""The passwd command, round trips with mosquitto_passwd and the Mosquitto broker."""

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import termios
import time

import pytest

from mqttauth.__main__ import main as mqttauth_main
from mqttauth.auth.interfaces import AuthenticationError, AuthRequest
from mqttauth.auth.passwd import main
from mqttauth.auth.passwords import PasswordFileAuthenticator, parse_password_file

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")
MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)
MOSQUITTO_PUB = shutil.which("mosquitto_pub")
needs_mosquitto_passwd = pytest.mark.skipif(
    MOSQUITTO_PASSWD is None,
    reason="mosquitto_passwd (Debian package mosquitto) missing",
)
needs_mosquitto = pytest.mark.skipif(
    MOSQUITTO is None or MOSQUITTO_PUB is None,
    reason="mosquitto and mosquitto_pub (Debian mosquitto, mosquitto-clients) missing",
)


def accepts(path, username, password):
    authenticator = PasswordFileAuthenticator(str(path))
    request = AuthRequest("c", 4, "127.0.0.1:1", username, password.encode())
    try:
        authenticator.authenticate(request)
    except AuthenticationError:
        return False
    return True


def test_create_then_update(tmp_path):
    path = tmp_path / "pw"
    assert main(["--create", str(path), "alice", "--password", "one"]) == 0
    assert main([str(path), "bob", "--password", "two", "--iterations", "7"]) == 0
    assert main([str(path), "alice", "--password", "three"]) == 0
    assert accepts(path, "alice", "three")
    assert not accepts(path, "alice", "one")
    assert accepts(path, "bob", "two")
    assert parse_password_file(path.read_text())["bob"].hash.iterations == 7


def test_new_file_is_private(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x"])
    assert path.stat().st_mode & 0o777 == 0o600


def test_update_keeps_mode(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x"])
    path.chmod(0o640)
    main([str(path), "alice", "--password", "y"])
    assert path.stat().st_mode & 0o777 == 0o640


def test_create_refuses_existing_file(tmp_path, capsys):
    path = tmp_path / "pw"
    path.write_text("keep\n")
    assert main(["--create", str(path), "alice", "--password", "x"]) == 1
    assert "exists already" in capsys.readouterr().err
    assert path.read_text() == "keep\n"


def test_missing_file_needs_create(tmp_path, capsys):
    assert main([str(tmp_path / "pw"), "alice", "--password", "x"]) == 1
    assert "add --create" in capsys.readouterr().err


def test_delete(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x"])
    main([str(path), "bob", "--password", "y"])
    assert main(["-D", str(path), "alice"]) == 0
    assert set(parse_password_file(path.read_text())) == {"bob"}


def test_delete_unknown_user(tmp_path, capsys):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x"])
    assert main(["--delete", str(path), "bob"]) == 1
    assert "user 'bob' is not in" in capsys.readouterr().err


def test_comments_and_other_lines_kept(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x"])
    original = path.read_text()
    path.write_text("# fleet users\n" + original + "\n# end\n")
    main([str(path), "bob", "--password", "y"])
    lines = path.read_text().splitlines()
    assert lines[0] == "# fleet users"
    assert lines[1] == original.strip()
    assert lines[3] == "# end"
    assert lines[4].startswith("bob:$7$")


def test_groups_set_kept_cleared(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "x", "--groups", "ops, admin"])
    assert parse_password_file(path.read_text())["alice"].groups == ("ops", "admin")
    main([str(path), "alice", "--password", "y"])
    assert parse_password_file(path.read_text())["alice"].groups == ("ops", "admin")
    main([str(path), "alice", "--password", "z", "--groups", ""])
    assert parse_password_file(path.read_text())["alice"].groups == ()


def test_password_stdin(tmp_path, monkeypatch):
    import io

    path = tmp_path / "pw"
    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\n"))
    assert main(["-c", str(path), "alice", "--password-stdin"]) == 0
    assert accepts(path, "alice", "from stdin")


@pytest.mark.parametrize("username", ["", "a:b", " alice"])
def test_invalid_user_name(tmp_path, capsys, username):
    assert main(["-c", str(tmp_path / "pw"), username, "--password", "x"]) == 1
    assert "invalid user name" in capsys.readouterr().err


def test_empty_password(tmp_path, capsys):
    assert main(["-c", str(tmp_path / "pw"), "alice", "--password", ""]) == 1
    assert "the password is empty" in capsys.readouterr().err


def test_dispatcher_runs_passwd(tmp_path):
    path = tmp_path / "pw"
    assert mqttauth_main(["passwd", "-c", str(path), "alice", "--password", "x"]) == 0
    assert accepts(path, "alice", "x")


def run_with_terminal(args, typed):
    """Run the command on a new pseudo-terminal and type ``typed`` into it."""
    master, slave = os.openpty()

    def take_terminal():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    process = subprocess.Popen(
        [sys.executable, "-m", "mqttauth", "passwd", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=take_terminal,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    os.close(slave)
    output = b""
    for line in typed:
        output += read_until(master, b"assword: ")
        os.write(master, line.encode() + b"\n")
    status = process.wait(timeout=30)
    os.close(master)
    return status, output


def read_until(descriptor, marker, timeout=30):
    deadline = time.monotonic() + timeout
    data = b""
    while marker not in data:
        assert time.monotonic() < deadline, f"no prompt, got {data!r}"
        data += os.read(descriptor, 1024)
    return data


def test_prompt_asks_twice(tmp_path):
    path = tmp_path / "pw"
    status, output = run_with_terminal(["-c", str(path), "alice"], ["typed", "typed"])
    assert status == 0
    assert b"Reenter password: " in output
    assert accepts(path, "alice", "typed")


def test_prompt_mismatch(tmp_path):
    path = tmp_path / "pw"
    status, _ = run_with_terminal(["-c", str(path), "alice"], ["one", "two"])
    assert status == 1
    assert not path.exists()


@needs_mosquitto_passwd
def test_mosquitto_passwd_reads_our_file(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "ours"])
    subprocess.run(
        [MOSQUITTO_PASSWD, "-b", str(path), "bob", "theirs"],
        check=True,
        capture_output=True,
    )
    assert accepts(path, "alice", "ours")
    assert accepts(path, "bob", "theirs")


@needs_mosquitto_passwd
def test_we_update_mosquitto_passwd_file(tmp_path):
    path = tmp_path / "pw"
    subprocess.run(
        [MOSQUITTO_PASSWD, "-c", "-b", str(path), "alice", "theirs"],
        check=True,
        capture_output=True,
    )
    main([str(path), "bob", "--password", "ours"])
    assert accepts(path, "alice", "theirs")
    assert accepts(path, "bob", "ours")


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mosquitto(tmp_path, password_file):
    """Start Mosquitto on a free loopback port; return (process, port)."""
    for _ in range(5):
        port = free_port()
        config = tmp_path / f"mosquitto-{port}.conf"
        # Run as root, Mosquitto switches to the 'mosquitto' user, which could
        # not read the 0600 password file; 'user root' keeps it as it is.
        stay = "user root\n" if os.geteuid() == 0 else ""
        config.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous false\n"
            f"password_file {password_file}\n"
            f"persistence false\n{stay}"
        )
        process = subprocess.Popen(
            [MOSQUITTO, "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return process, port
            except OSError:
                time.sleep(0.05)
        process.kill()
        process.wait()
    pytest.fail("mosquitto did not start")


@needs_mosquitto
def test_mosquitto_broker_accepts_our_hash(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "ours", "--groups", "ops"])
    process, port = start_mosquitto(tmp_path, path)
    try:
        publish = [
            MOSQUITTO_PUB,
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-t",
            "t",
            "-m",
            "x",
        ]
        good = subprocess.run(
            [*publish, "-u", "alice", "-P", "ours"], capture_output=True, timeout=30
        )
        bad = subprocess.run(
            [*publish, "-u", "alice", "-P", "wrong"], capture_output=True, timeout=30
        )
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert good.returncode == 0, good.stderr
    assert bad.returncode != 0


def test_update_file_with_bom(tmp_path):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "one"])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert main([str(path), "alice", "--password", "two"]) == 0
    assert list(parse_password_file(path.read_text())) == ["alice"]
    assert accepts(path, "alice", "two")


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_update_keeps_owner(tmp_path):
    # A file of the broker's user or group, edited by root, must stay readable
    # by the broker.
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "one"])
    os.chown(path, 65534, 65534)
    assert main([str(path), "bob", "--password", "two"]) == 0
    assert path.stat().st_uid == 65534
    assert path.stat().st_gid == 65534


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's owner needs root")
def test_owner_not_kept_leaves_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "pw"
    main(["-c", str(path), "alice", "--password", "one"])
    os.chown(path, 65534, 65534)
    before = path.read_bytes()

    def chown_not_permitted(*args):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chown", chown_not_permitted)
    assert main([str(path), "bob", "--password", "two"]) == 1
    assert "cannot keep the owner and group" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert [entry.name for entry in tmp_path.iterdir()] == ["pw"]
