"""Sealed text: one string encrypted with a person's data key, as a JSON object that names the key.

``{"alg": "A256GCM", "kid": <key id>, "iv": <base64url 96-bit nonce>, "ct": <base64url ciphertext + tag>}``

The nonce is synthetic (as in SIV): an HMAC of the place the text sits in (event id and field) and of the text,
under a key derived from the data key apart from the encryption key. Sealing the same text at the same place
twice (a redelivered event whose recorded outputs are published again) gives the same bytes, and two different
texts never share a nonce under one key. The key id is bound as associated data, so a sealed value cannot be
moved under another key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

ALG = "A256GCM"
FORGOTTEN = "[forgotten]"  # what a reader sees of text sealed with a key that was deleted
SEALED_FIELDS = frozenset({"alg", "kid", "iv", "ct"})


class SealError(ValueError):
    """A sealed value that cannot be opened with the key it names (altered, or not made by this key)."""


def _derive(secret: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)


@dataclass(frozen=True)
class DataKey:
    """A person's 256-bit data key and its id."""

    kid: str
    tenant: str
    user: str
    secret: bytes = field(repr=False)
    _aead: AESGCM = field(init=False, repr=False, compare=False)
    _iv: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.secret) != 32:
            raise ValueError("a data key is 32 bytes")
        object.__setattr__(self, "_aead", AESGCM(_derive(self.secret, b"agentbus text encryption")))
        object.__setattr__(self, "_iv", _derive(self.secret, b"agentbus text nonce"))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def is_sealed(value: Any) -> bool:
    return isinstance(value, dict) and value.keys() == SEALED_FIELDS and value.get("alg") == ALG


def seal(key: DataKey, text: str, where: str) -> dict[str, str]:
    """``text`` sealed with ``key``; ``where`` (event id and field) makes the nonce of this place."""
    data = text.encode()
    iv = hmac.new(key._iv, where.encode() + b"\x00" + data, hashlib.sha256).digest()[:12]
    ct = key._aead.encrypt(iv, data, key.kid.encode())
    return {"alg": ALG, "kid": key.kid, "iv": _b64(iv), "ct": _b64(ct)}


def unseal(key: DataKey, sealed: dict[str, str]) -> str:
    if not is_sealed(sealed) or sealed["kid"] != key.kid:
        raise SealError("not a value sealed with this key")
    try:
        return key._aead.decrypt(_unb64(sealed["iv"]), _unb64(sealed["ct"]), key.kid.encode()).decode()
    except (InvalidTag, ValueError) as exc:
        raise SealError("sealed text does not open with its key (altered?)") from exc
