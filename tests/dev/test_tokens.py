"""The token command and the signing helpers behind it."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from joserfc import jwk, jwt

from mqttauth import tokens
from mqttauth.__main__ import main as dispatch


def write_pem(path: Path, private_key: Any) -> Path:
    path.write_bytes(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


def run_token(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = dispatch(["token", *argv])
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def decode(token: str, key: Any, algorithm: str) -> jwt.Token:
    return jwt.decode(token, key, algorithms=[algorithm])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "dev"
    assert tokens.create_dev_key(directory)
    return directory


def test_dev_key_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "fresh"
    assert tokens.create_dev_key(directory)
    mode = stat.S_IMODE(os.stat(tokens.dev_key_path(directory)).st_mode)
    assert mode == 0o600


def test_dev_key_never_overwritten(data_dir: Path) -> None:
    before = tokens.dev_key_path(data_dir).read_bytes()
    assert not tokens.create_dev_key(data_dir)
    assert tokens.dev_key_path(data_dir).read_bytes() == before


def test_dev_key_kid_is_thumbprint(data_dir: Path) -> None:
    signing_key = tokens.load_dev_key(data_dir)
    assert signing_key.key_id == signing_key.key.thumbprint()


def test_default_dev_data_dir_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", "/srv/data")
    assert tokens.default_dev_data_dir() == Path("/srv/data/mqttauth-dev")


def test_default_dev_data_dir_home(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.setenv("HOME", "/home/alice")
    assert tokens.default_dev_data_dir() == Path(
        "/home/alice/.local/share/mqttauth-dev"
    )


def test_command_dev_key_claims(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, _ = run_token(
        capsys,
        "--data-dir", str(data_dir),
        "--sub", "device-1",
        "--groups", "sensors",
        "--ttl", "3600",
        "--org", "acme",
    )  # fmt: skip
    assert code == 0
    token = decode(out, tokens.load_dev_key(data_dir).key, "ES256")
    assert token.header["kid"] == tokens.load_dev_key(data_dir).key_id
    assert token.header["typ"] == "JWT"
    assert token.claims["sub"] == "device-1"
    assert token.claims["groups"] == ["sensors"]
    assert token.claims["org"] == "acme"
    assert token.claims["iss"] == tokens.DEV_ISSUER
    assert token.claims["aud"] == tokens.DEV_AUDIENCE
    assert token.claims["exp"] - token.claims["iat"] == 3600


def test_command_groups_split(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    code, out, _ = run_token(
        capsys,
        "--data-dir",
        str(data_dir),
        "--sub",
        "d",
        "--groups",
        "a,b",
        "--groups",
        "c",
    )
    assert code == 0
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert claims["groups"] == ["a", "b", "c"]


def test_command_organization_alias(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys, "--data-dir", str(data_dir), "--sub", "d", "--organization", "acme"
    )
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert claims["org"] == "acme"


def test_command_no_groups_no_claim(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(capsys, "--data-dir", str(data_dir), "--sub", "d")
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert "groups" not in claims


def test_command_iss_aud_override(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys,
        "--data-dir", str(data_dir),
        "--sub", "d",
        "--iss", "https://issuer.example",
        "--aud", "a1",
        "--aud", "a2",
    )  # fmt: skip
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert claims["iss"] == "https://issuer.example"
    assert claims["aud"] == ["a1", "a2"]


def test_command_extra_claims(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys,
        "--data-dir", str(data_dir),
        "--sub", "d",
        "--claim", "tid=0000-1111",
        "--claim", "level=5",
        "--claim", 'roles=["r1", "r2"]',
        "--claim", "exp=1",
    )  # fmt: skip
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert claims["tid"] == "0000-1111"
    assert claims["level"] == 5
    assert claims["roles"] == ["r1", "r2"]
    assert claims["exp"] == 1


def test_command_claim_names(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys,
        "--data-dir", str(data_dir),
        "--sub", "d",
        "--groups", "g",
        "--org", "o",
        "--groups-claim", "roles",
        "--org-claim", "azp",
    )  # fmt: skip
    claims = decode(out, tokens.load_dev_key(data_dir).key, "ES256").claims
    assert claims["roles"] == ["g"]
    assert claims["azp"] == "o"


def test_command_kid_override(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys, "--data-dir", str(data_dir), "--sub", "d", "--kid", "k7"
    )
    header = decode(out, tokens.load_dev_key(data_dir).key, "ES256").header
    assert header["kid"] == "k7"


def test_command_kid_empty_omits(
    capsys: pytest.CaptureFixture[str], data_dir: Path
) -> None:
    _, out, _ = run_token(
        capsys, "--data-dir", str(data_dir), "--sub", "d", "--kid", ""
    )
    header = decode(out, tokens.load_dev_key(data_dir).key, "ES256").header
    assert "kid" not in header


def test_command_missing_dev_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = run_token(
        capsys, "--data-dir", str(tmp_path / "none"), "--sub", "d"
    )
    assert code == 1
    assert out == ""
    assert "no development key" in err


def test_command_rsa_key_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = write_pem(tmp_path / "rsa.pem", private_key)
    code, out, _ = run_token(capsys, "--key", str(path), "--sub", "d")
    assert code == 0
    public = jwk.RSAKey.import_key(path.read_bytes())
    token = decode(out, public, "RS256")
    assert token.header["alg"] == "RS256"
    assert token.header["kid"] == public.thumbprint()
    assert "iss" not in token.claims
    assert "aud" not in token.claims


def test_command_rsa_pss(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = write_pem(tmp_path / "rsa.pem", private_key)
    _, out, _ = run_token(capsys, "--key", str(path), "--alg", "PS256", "--sub", "d")
    token = decode(out, jwk.RSAKey.import_key(path.read_bytes()), "PS256")
    assert token.header["alg"] == "PS256"


@pytest.mark.parametrize(
    ("curve", "algorithm"),
    [(ec.SECP256R1(), "ES256"), (ec.SECP384R1(), "ES384"), (ec.SECP521R1(), "ES512")],
)
def test_command_ec_curve_alg(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    curve: ec.EllipticCurve,
    algorithm: str,
) -> None:
    path = write_pem(tmp_path / "ec.pem", ec.generate_private_key(curve))
    _, out, _ = run_token(capsys, "--key", str(path), "--sub", "d")
    token = decode(out, jwk.ECKey.import_key(path.read_bytes()), algorithm)
    assert token.header["alg"] == algorithm


def test_command_ed25519(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = write_pem(tmp_path / "ed.pem", ed25519.Ed25519PrivateKey.generate())
    _, out, _ = run_token(capsys, "--key", str(path), "--sub", "d")
    token = decode(out, jwk.OKPKey.import_key(path.read_bytes()), "Ed25519")
    assert token.header["alg"] == "Ed25519"


def test_command_hmac_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b"a-shared-secret-of-32-bytes-long\n")
    code, out, _ = run_token(capsys, "--key", str(path), "--alg", "HS256", "--sub", "d")
    assert code == 0
    token = decode(
        out, jwk.OctKey.import_key(b"a-shared-secret-of-32-bytes-long"), "HS256"
    )
    assert "kid" not in token.header


@pytest.mark.parametrize(
    ("algorithm", "length"), [("HS256", 31), ("HS384", 47), ("HS512", 63)]
)
def test_command_short_hmac_secret(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, algorithm: str, length: int
) -> None:
    # The broker rejects these secrets too (RFC 7518 3.2: at least the hash size).
    path = tmp_path / "secret"
    path.write_bytes(b"s" * length + b"\n")
    code, out, err = run_token(
        capsys, "--key", str(path), "--alg", algorithm, "--sub", "d"
    )
    assert code == 1
    assert out == ""
    assert f"{algorithm} needs a secret of at least {length + 1} bytes" in err


def test_command_alg_mismatch(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = write_pem(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1()))
    code, _, err = run_token(capsys, "--key", str(path), "--alg", "RS256", "--sub", "d")
    assert code == 1
    assert "does not fit" in err


def test_command_public_key_rejected(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "public.pem"
    path.write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    code, _, err = run_token(capsys, "--key", str(path), "--sub", "d")
    assert code == 1
    assert "not an unencrypted PEM private key" in err


def test_command_missing_key_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_token(
        capsys, "--key", str(tmp_path / "absent.pem"), "--sub", "d"
    )
    assert code == 1
    assert "cannot read key file" in err


@pytest.mark.parametrize("ttl", ["0", "-5", "soon"])
def test_command_bad_ttl(capsys: pytest.CaptureFixture[str], ttl: str) -> None:
    with pytest.raises(SystemExit) as raised:
        dispatch(["token", "--sub", "d", "--ttl", ttl])
    assert raised.value.code == 2


@pytest.mark.parametrize("subject", ["", "  "])
def test_command_empty_sub_rejected(
    capsys: pytest.CaptureFixture[str], subject: str
) -> None:
    with pytest.raises(SystemExit) as raised:
        dispatch(["token", "--sub", subject])
    assert raised.value.code == 2
    assert "argument --sub: expected a non-empty name" in capsys.readouterr().err


def test_command_bad_claim(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        dispatch(["token", "--sub", "d", "--claim", "novalue"])
    assert raised.value.code == 2


def test_public_jwk_fields(data_dir: Path) -> None:
    document = tokens.load_dev_key(data_dir).public_jwk()
    assert json.loads(json.dumps(document)) == document
    assert document["alg"] == "ES256"
    assert document["use"] == "sig"
    assert "d" not in document
