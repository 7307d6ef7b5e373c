"""Feishu / Lark event subscription crypto: the request signature and the AES-256-CBC event envelope.

Signature: ``X-Lark-Signature`` = hex(SHA256(timestamp + nonce + encrypt_key + raw body)), the first three
UTF-8 encoded, the body as received. Envelope: ``{"encrypt": base64(IV(16) + AES-256-CBC(PKCS#7(json)))}``
with the key SHA256(encrypt_key).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 16


class DecryptError(ValueError):
    pass


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def signature_ok(timestamp: str, nonce: str, encrypt_key: str, body: bytes, given: str) -> bool:
    expected = signature(timestamp, nonce, encrypt_key, body)
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace"))


def decrypt(encrypt_key: str, data: str) -> bytes:
    """The plaintext bytes of an ``encrypt`` field; ``DecryptError`` for anything malformed."""
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise DecryptError("encrypt is not valid base64") from None
    if len(raw) < 2 * BLOCK or len(raw) % BLOCK:
        raise DecryptError("ciphertext has an invalid length")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:BLOCK])).decryptor()
    padded = dec.update(raw[BLOCK:]) + dec.finalize()
    pad = padded[-1]
    if not 1 <= pad <= BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise DecryptError("invalid padding (wrong encrypt_key?)")
    return padded[:-pad]
