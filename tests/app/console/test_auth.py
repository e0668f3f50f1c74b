"""Sign-in pieces on their own: password hashes, the users file, sessions, CSRF tokens."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from pydantic import SecretStr

from app.cli import main
from app.console.auth import (
    Credentials,
    Sessions,
    hash_password,
    read_users,
    session_key,
    verify_password,
)
from app.errors import ConfigurationError

CHEAP = 2**4  # scrypt's cost in tests: the format is the point, not the slowness


def test_a_password_hash_verifies_its_password_only() -> None:
    encoded = hash_password("s3cret-enough", n=CHEAP)
    assert encoded.startswith(f"scrypt${CHEAP}$8$1$")
    assert "s3cret-enough" not in encoded
    assert verify_password("s3cret-enough", encoded)
    assert not verify_password("s3cret-enougH", encoded)
    assert hash_password("s3cret-enough", n=CHEAP) != encoded, "salted: never the same twice"


@pytest.mark.parametrize(
    "encoded",
    ["", "plain", "scrypt$16$8$1$AAAA", "bcrypt$16$8$1$AAAA$AAAA", "scrypt$99999999$8$1$AA$AA"],
)
def test_a_malformed_hash_never_verifies(encoded: str) -> None:
    assert not verify_password("anything", encoded)


def test_the_users_file_is_read_and_its_mistakes_are_named_by_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    entry = hash_password("pw-pw-pw-pw-pw", n=CHEAP)
    path.write_text(f"# ops\n\ncarol:{entry}\ndave:{entry}\n")
    assert read_users(path) == {"carol": entry, "dave": entry}
    path.write_text(f"carol:{entry}\nerin:hunter2\n")
    with pytest.raises(ConfigurationError, match=r"users:2 is not") as caught:
        read_users(path)
    assert "hunter2" not in str(caught.value)
    path.write_text(f"carol:{entry}\ncarol:{entry}\n")
    with pytest.raises(ConfigurationError, match="repeats the user 'carol'"):
        read_users(path)
    with pytest.raises(ConfigurationError, match="cannot read"):
        read_users(tmp_path / "absent")


def test_the_console_refuses_to_start_with_no_way_to_sign_in() -> None:
    with pytest.raises(ConfigurationError, match="KAIROS_CONSOLE_TOKEN or KAIROS_CONSOLE_USERS"):
        Credentials(None, {})


def test_credentials_compare_the_token_and_the_passwords() -> None:
    credentials = Credentials(
        SecretStr("t" * 20), {"carol": hash_password("pw-pw-pw-pw-pw", n=CHEAP)}
    )
    assert credentials.token_matches("t" * 20)
    assert not credentials.token_matches("t" * 19) and not credentials.token_matches("")
    assert credentials.password_matches("carol", "pw-pw-pw-pw-pw")
    assert not credentials.password_matches("carol", "pw")
    assert not credentials.password_matches("mallory", "pw-pw-pw-pw-pw")


def test_a_session_expires_and_a_signed_out_one_stays_out() -> None:
    sessions = Sessions(b"k" * 32, ttl_s=100)
    cookie = sessions.issue("alice", "token", now=1000.0)
    session = sessions.read(cookie, now=1050.0)
    assert session is not None and session.who == "alice (token)"
    assert sessions.read(cookie, now=1100.0) is None, "expired"
    assert sessions.read(cookie, now=999.0) is None, "from the future"
    sessions.revoke(session, now=1050.0)
    assert sessions.read(cookie, now=1051.0) is None
    assert Sessions(b"j" * 32).read(cookie, now=1050.0) is None, "another key"


def test_csrf_tokens_belong_to_their_session() -> None:
    sessions = Sessions(b"k" * 32)
    one = sessions.read(sessions.issue("alice", "password"))
    two = sessions.read(sessions.issue("alice", "password"))
    assert one is not None and two is not None and one.who == "alice"
    assert sessions.csrf_matches(one, sessions.csrf_token(one))
    assert not sessions.csrf_matches(one, sessions.csrf_token(two))
    assert not sessions.csrf_matches(one, None) and not sessions.csrf_matches(one, "")


def test_the_sign_in_forms_token_expires_within_the_hour() -> None:
    sessions = Sessions(b"k" * 32)
    nonce = sessions.login_nonce(now=1000.0)
    token = sessions.login_csrf_token(nonce)
    assert sessions.login_csrf_matches(nonce, token, now=1001.0)
    assert not sessions.login_csrf_matches(nonce, token, now=1000.0 + 3601)
    assert not sessions.login_csrf_matches(sessions.login_nonce(now=1000.0), token, now=1001.0)
    assert not sessions.login_csrf_matches(None, token)


def test_a_configured_session_secret_gives_every_console_the_same_key() -> None:
    secret = SecretStr("a-shared-session-secret")
    assert session_key(secret) == session_key(secret)
    assert session_key(None) != session_key(None), "random when not configured"


def test_hash_password_prints_a_users_file_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password-1\n"))
    assert main(["console", "hash-password", "carol", "--stdin"]) == 0
    line = capsys.readouterr().out.strip()
    user, _, encoded = line.partition(":")
    assert user == "carol" and verify_password("a-long-password-1", encoded)
    (tmp_path / "users").write_text(line + "\n")
    assert read_users(tmp_path / "users") == {"carol": encoded}


@pytest.mark.parametrize(("user", "password"), [("bad:name", "a-long-password-1"), ("ok", "short")])
def test_hash_password_refuses_a_bad_user_or_a_short_password(
    user: str, password: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(password + "\n"))
    assert main(["console", "hash-password", user, "--stdin"]) == 2
    assert capsys.readouterr().out == ""
