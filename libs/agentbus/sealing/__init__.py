"""Crypto-shredding: a person's text is sealed with their own data key wherever it is written into an event,
and forgetting the person deletes the key, so every copy of that text in the log (and in processed-event
records) reads ``[forgotten]`` from then on. See docs/decisions/0006-erasure-by-crypto-shredding.md."""

from agentbus.sealing.envelope import FORGOTTEN, DataKey, SealError, is_sealed, seal, unseal
from agentbus.sealing.keyring import Keyring, KeyStore

__all__ = ["FORGOTTEN", "DataKey", "KeyStore", "Keyring", "SealError", "is_sealed", "seal", "unseal"]
