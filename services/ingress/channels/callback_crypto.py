"""The callback encryption that WeCom and DingTalk share (the "WXBizMsgCrypt" scheme).

Both platforms encrypt callback bodies with AES-256-CBC under the EncodingAESKey (43 characters of base64:
key = b64decode(aes_key + "="), IV = the key's first 16 bytes, PKCS#7 padding to 32-byte blocks). The
plaintext is random(16) + msg_len(4 bytes, network order) + msg + receive id (WeCom: the corp id; DingTalk:
the app key or corp id), and ``msg_signature`` is the SHA-1 hex of the sorted, concatenated token,
timestamp, nonce and ciphertext. Everything works on bytes, so Chinese text survives byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

BLOCK = 32


class CryptoError(ValueError):
    """The ciphertext is not a genuine message for this key and receive id."""


def msg_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    return hashlib.sha1("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def aes_key_bytes(encoding_aes_key: str) -> bytes:
    if len(encoding_aes_key) != 43:
        raise ValueError("the EncodingAESKey must be 43 characters")
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except binascii.Error:
        raise ValueError("the EncodingAESKey is not base64") from None
    if len(key) != 32:
        raise ValueError("the EncodingAESKey must decode to 32 bytes")
    return key


class CallbackCrypto:
    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self.token = token
        self._key = aes_key_bytes(encoding_aes_key)
        self.receive_id = receive_id.encode()

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16]))

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return msg_signature(self.token, timestamp, nonce, encrypt)

    def verify(self, signature: str, timestamp: str, nonce: str, encrypt: str) -> bool:
        expected = self.signature(timestamp, nonce, encrypt)
        return hmac.compare_digest(expected.encode(), signature.lower().encode())

    def decrypt(self, encrypt: str) -> bytes:
        try:
            raw = base64.b64decode(encrypt.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            raise CryptoError("ciphertext is not base64") from None
        if len(raw) < 32 or len(raw) % 16:
            raise CryptoError("ciphertext length is not a whole number of AES blocks")
        dec = self._cipher().decryptor()
        plain = dec.update(raw) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise CryptoError("bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise CryptoError("message too short")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise CryptoError("message length out of range")
        msg, rid = content[4 : 4 + length], content[4 + length :]
        if not hmac.compare_digest(rid, self.receive_id):
            raise CryptoError("receive id does not match")
        return msg

    def encrypt(self, msg: bytes, random16: bytes | None = None) -> str:
        prefix = random16 if random16 is not None else base64.b32encode(os.urandom(10)).decode()[:16].encode()
        body = prefix + struct.pack(">I", len(msg)) + msg + self.receive_id
        pad = BLOCK - len(body) % BLOCK
        body += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(body) + enc.finalize()).decode("ascii")
