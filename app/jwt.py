"""JSON Web Tokens, as far as perpterm needs them (RFC 7519, HS256 only).

The client only *reads* a token's claims (``exp``: when to fetch the next one, or to say "token
expired" instead of dialling with it); it never verifies a venue's signature, which it could not
(the key is the venue's). The emulators *sign* and *verify* their own tokens with HMAC-SHA256.
Hand-written rather than PyJWT: three functions over stdlib ``hmac`` and ``base64``, and one
dependency fewer for a user who installs perpterm to watch books.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import orjson

_HEADER = {"alg": "HS256", "typ": "JWT"}


class TokenError(ValueError):
    """The text is no token we accept; the message says why and never contains the token."""


def _encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _decode(part: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (ValueError, TypeError):
        raise TokenError("token is not base64url") from None


def sign(claims: dict[str, Any], secret: bytes) -> str:
    """A compact HS256 token carrying ``claims``."""
    head = _encode(orjson.dumps(_HEADER)) + "." + _encode(orjson.dumps(claims))
    return head + "." + _encode(hmac.new(secret, head.encode("ascii"), hashlib.sha256).digest())


def claims(token: str) -> dict[str, Any]:
    """The payload of a compact token, unverified (raises :class:`TokenError` if it has no such
    shape)."""
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise TokenError("token is not a JWT (three dot-separated parts)")
    try:
        payload = orjson.loads(_decode(parts[1]))
    except orjson.JSONDecodeError:
        raise TokenError("token payload is not JSON") from None
    if not isinstance(payload, dict):
        raise TokenError("token payload is not an object")
    return payload


def expires_at(token: str) -> float | None:
    """The token's ``exp`` (Unix seconds), or ``None`` if it states none or is no JWT at all."""
    try:
        exp = claims(token).get("exp")
    except TokenError:
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def verify(token: str, secret: bytes, now: float) -> dict[str, Any]:
    """The claims of a token signed with ``secret`` and not expired at ``now`` (Unix seconds)."""
    payload = claims(token)
    head, _, signature = token.rpartition(".")
    expected = hmac.new(secret, head.encode("ascii"), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _decode(signature)):
        raise TokenError("token signature does not verify")
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenError("token has no expiry")
    if exp <= now:
        raise TokenError("token expired")
    return payload
