"""Who may use the console: sign-in by token or by user list, signed sessions, CSRF tokens.

The console shows campaign results to marketing ops and, on one page, a customer's
history to support, so every page but ``/healthz`` and ``/login`` needs a signed-in user.
Two ways to sign in, either or both configured:

* ``KAIROS_CONSOLE_TOKEN``: one shared token, compared in constant time. The person signing
  in also gives a name, which the audit trail records as ``<name> (token)``: a shared token
  cannot say who used it, so the name is their word, and the users file is the way to have
  each person prove who they are.
* ``KAIROS_CONSOLE_USERS_FILE``: ``user:hash`` lines, each hash made by
  :func:`hash_password` (``kairos console hash-password``): scrypt from the standard
  library, salted, so a leaked file does not give the passwords away.

A session is a cookie holding who signed in, when, and a random nonce, signed with
HMAC-SHA256 (:class:`Sessions`); nothing is stored on the server but the nonces of
sessions signed out before they expired. Every form that changes something (sign-out,
rollback, a customer look-up) carries a CSRF token derived from the session's nonce, so
another site cannot submit it with the user's cookie; the sign-in form, which has no session
yet, has its own from a short-lived cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from app.errors import ConfigurationError

#: scrypt's cost: 16 MiB of memory and about 50 ms per check; a guess costs an attacker that.
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAX_N = 2**20
_SCHEME = "scrypt"
#: How long a sign-in lasts; a working day, after which one signs in again.
SESSION_TTL_S = 8 * 3600.0
#: How long a sign-in form may be left open before it is submitted.
LOGIN_FORM_TTL_S = 3600.0

SignInMethod = Literal["token", "password"]


# --------------------------------------------------------------------------- passwords


def hash_password(password: str, *, n: int = SCRYPT_N, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64): one users-file entry's hash.

    The parameters travel with the hash, so raising the cost later leaves old entries valid.
    """
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = _scrypt(password, salt, n, SCRYPT_R, SCRYPT_P)
    return "$".join((_SCHEME, str(n), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(digest)))


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a :func:`hash_password` string; False if it is malformed."""
    try:
        scheme, n, r, p, salt, digest = encoded.split("$")
        if scheme != _SCHEME or not 1 < int(n) <= _SCRYPT_MAX_N:
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, length: int = 32) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=length, maxmem=256 * n * r + 2**20
    )


def read_users(path: Path) -> dict[str, str]:
    """The users file: ``user:hash`` per line; blank lines and ``#`` comments are skipped.

    Raises:
        ConfigurationError: the file cannot be read, or a line is not ``user:scrypt$...``
            (named by its line number; the line itself is not repeated, it holds a hash).

    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"KAIROS_CONSOLE_USERS_FILE: cannot read {path}: {exc}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, _, encoded = line.partition(":")
        user = user.strip()
        if not user or not encoded.startswith(f"{_SCHEME}$") or encoded.count("$") != 5:
            raise ConfigurationError(
                f"KAIROS_CONSOLE_USERS_FILE: {path}:{number} is not 'user:scrypt$...' "
                "(make entries with `kairos console hash-password USER`)"
            )
        if user in users:
            raise ConfigurationError(
                f"KAIROS_CONSOLE_USERS_FILE: {path}:{number} repeats the user {user!r}"
            )
        users[user] = encoded.strip()
    return users


class Credentials:
    """What sign-in is checked against: the shared token, the users file, or both."""

    def __init__(self, token: SecretStr | None, users: dict[str, str] | None = None) -> None:
        if token is None and not users:
            raise ConfigurationError(
                "the console needs a way to sign in: set KAIROS_CONSOLE_TOKEN or "
                "KAIROS_CONSOLE_USERS_FILE (see docs/console.md)"
            )
        self._token = token
        self._users = dict(users or {})
        # Checked when the user is unknown, so that "no such user" takes as long as
        # "wrong password" and the time does not tell which names exist.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    @property
    def accepts_token(self) -> bool:
        return self._token is not None

    @property
    def accepts_passwords(self) -> bool:
        return bool(self._users)

    def token_matches(self, presented: str) -> bool:
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(presented.encode(), self._token.get_secret_value().encode())

    def password_matches(self, user: str, password: str) -> bool:
        encoded = self._users.get(user)
        ok = verify_password(password, encoded or self._decoy)
        return ok and encoded is not None


# --------------------------------------------------------------------------- sessions


@dataclass(frozen=True)
class Session:
    """A signed-in user, as their cookie says."""

    user: str
    method: SignInMethod
    issued_at: float
    nonce: str

    @property
    def who(self) -> str:
        """The name the audit trail and the deploy history record."""
        return f"{self.user} (token)" if self.method == "token" else self.user


class Sessions:
    """Signs and checks session cookies and CSRF tokens with one HMAC key.

    Stateless but for sign-outs: a signed-out session's nonce is remembered until the
    session would have expired anyway, so a copied cookie stops working at sign-out.
    """

    def __init__(self, key: bytes, ttl_s: float = SESSION_TTL_S) -> None:
        if len(key) < 16:
            raise ValueError("a session key needs at least 16 bytes")
        self._key = key
        self.ttl_s = ttl_s
        self._revoked: dict[str, float] = {}
        self._lock = threading.Lock()

    def _mac(self, purpose: str, payload: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + payload, hashlib.sha256).digest()

    def issue(self, user: str, method: SignInMethod, now: float | None = None) -> str:
        """A new session's cookie value: ``payload.signature``, both base64."""
        body = {
            "u": user,
            "m": method,
            "t": time.time() if now is None else now,
            "n": secrets.token_urlsafe(16),
        }
        payload = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._mac('session', payload))}"

    def read(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session a cookie holds, or None if it is absent, forged, expired or signed out."""
        if not cookie or cookie.count(".") != 1:
            return None
        now = time.time() if now is None else now
        encoded, signature = cookie.split(".")
        try:
            payload = _unb64(encoded)
            if not hmac.compare_digest(_unb64(signature), self._mac("session", payload)):
                return None
            body = json.loads(payload)
            session = Session(
                user=str(body["u"]),
                method="token" if body["m"] == "token" else "password",
                issued_at=float(body["t"]),
                nonce=str(body["n"]),
            )
        except (ValueError, binascii.Error, KeyError, TypeError):
            return None
        if not session.issued_at <= now < session.issued_at + self.ttl_s:
            return None
        with self._lock:
            if session.nonce in self._revoked:
                return None
        return session

    def revoke(self, session: Session, now: float | None = None) -> None:
        """Sign a session out: its cookie is refused from now on, even if a copy was kept."""
        now = time.time() if now is None else now
        with self._lock:
            self._revoked = {n: t for n, t in self._revoked.items() if t > now}
            self._revoked[session.nonce] = session.issued_at + self.ttl_s

    def csrf_token(self, session: Session) -> str:
        """The token every state-changing form of this session must carry."""
        return _b64(self._mac("csrf", session.nonce.encode()))

    def csrf_matches(self, session: Session, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(
            str(presented).encode(), self.csrf_token(session).encode()
        )

    # The sign-in form has no session yet: its token is bound to a random cookie instead,
    # so a page on another site cannot sign a browser in under the attacker's account.

    def login_nonce(self, now: float | None = None) -> str:
        """A fresh value for the sign-in form's cookie: ``time:random``."""
        return f"{int(time.time() if now is None else now)}:{secrets.token_urlsafe(16)}"

    def login_nonce_fresh(self, nonce: str, now: float | None = None) -> bool:
        """Whether a sign-in cookie's nonce has at least half of its time left."""
        issued, _, rest = nonce.partition(":")
        now = time.time() if now is None else now
        try:
            return bool(rest) and 0 <= now - int(issued) < LOGIN_FORM_TTL_S / 2
        except ValueError:
            return False

    def login_csrf_token(self, nonce: str) -> str:
        return _b64(self._mac("login", nonce.encode()))

    def login_csrf_matches(
        self, nonce: str | None, presented: str | None, now: float | None = None
    ) -> bool:
        if not nonce or not presented:
            return False
        issued, _, _ = nonce.partition(":")
        now = time.time() if now is None else now
        try:
            fresh = 0 <= now - int(issued) < LOGIN_FORM_TTL_S
        except ValueError:
            return False
        return fresh and hmac.compare_digest(
            presented.encode(), self.login_csrf_token(nonce).encode()
        )


def session_key(secret: SecretStr | None) -> bytes:
    """The key sessions are signed with: the configured secret, else a random one.

    A random key is the safe default for one console: nothing to configure or leak, at the
    cost of signing everyone out on a restart. Consoles behind one address share a
    configured key, so a session started on one is valid on the others.
    """
    if secret is None:
        return secrets.token_bytes(32)
    return hashlib.sha256(b"kairos-console-session\0" + secret.get_secret_value().encode()).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
