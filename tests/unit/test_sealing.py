"""Sealed text (AES-256-GCM under a person's data key) and the keyring that caches the keys."""

from __future__ import annotations

import asyncio
import os

import orjson
import pytest

from agentbus.sealing import FORGOTTEN, DataKey, Keyring, SealError, is_sealed, seal, unseal
from tests.unit.fakes_keys import MemoryKeyStore

SECRET = "my locker code is 4417 zebra-quartz"


def key(kid: str = "k1", user: str = "u1") -> DataKey:
    return DataKey(kid, "acme", user, os.urandom(32))


def test_sealed_text_opens_with_its_key_only_and_carries_no_plaintext() -> None:
    k = key()
    sealed = seal(k, SECRET, "event-1/data.text")
    assert is_sealed(sealed) and sealed["kid"] == "k1" and sealed["alg"] == "A256GCM"
    raw = orjson.dumps(sealed)
    assert b"4417" not in raw and b"zebra" not in raw and b"locker" not in raw
    assert unseal(k, sealed) == SECRET
    with pytest.raises(SealError):  # another person's key, even under the same id
        unseal(DataKey("k1", "acme", "u2", os.urandom(32)), sealed)
    with pytest.raises(SealError):  # another id
        unseal(key("k2"), sealed)
    assert seal(k, "", "e/x") != seal(k, "", "e/y") and unseal(k, seal(k, "", "e/x")) == ""
    assert unseal(k, seal(k, "长城 🧱 zebra", "e")) == "长城 🧱 zebra"


def test_an_altered_or_moved_value_is_refused() -> None:
    k = key()
    sealed = seal(k, SECRET, "e/data.text")
    ct = bytearray(sealed["ct"], "ascii")
    ct[3] = ord("A") if ct[3] != ord("A") else ord("B")
    with pytest.raises(SealError):
        unseal(k, {**sealed, "ct": ct.decode()})
    with pytest.raises(SealError):  # the key id is bound: relabelled under the same secret, it does not open
        unseal(DataKey("k9", "acme", "u1", k.secret), {**sealed, "kid": "k9"})
    assert not is_sealed({**sealed, "alg": "none"}) and not is_sealed(SECRET) and not is_sealed({"kid": "k1"})


def test_the_same_text_at_the_same_place_seals_to_the_same_bytes() -> None:
    """A redelivered event's recorded outputs sealed again are byte-identical; another place or text is not."""
    k = key()
    assert seal(k, SECRET, "e1/data.text") == seal(k, SECRET, "e1/data.text")
    assert seal(k, SECRET, "e1/data.text")["iv"] != seal(k, SECRET, "e2/data.text")["iv"]
    assert seal(k, SECRET, "e1/data.text")["iv"] != seal(k, SECRET + ".", "e1/data.text")["iv"]


def test_a_data_key_is_256_bits() -> None:
    with pytest.raises(ValueError):
        DataKey("k", "t", "u", b"short")


async def test_keyring_makes_one_key_per_person_and_caches_it() -> None:
    store = MemoryKeyStore()
    ring = Keyring(store, ttl_s=60)
    a, b = await asyncio.gather(ring.key_for("acme", "u1"), ring.key_for("acme", "u1"))
    assert a is b and store.reads == 1  # asked at the same moment: one read
    assert (await ring.key_for("acme", "u1")) is a and store.reads == 1
    other = await ring.key_for("acme", "u2")
    assert other.kid != a.kid and (await ring.key_for("globex", "u1")).kid != a.kid
    sealed = await ring.seal_text("acme", "u1", SECRET, "e/data.text")
    assert await ring.open_text(sealed) == SECRET and store.reads == 3
    assert await ring.open_text("plain words") == "plain words"
    with pytest.raises(ValueError):
        await ring.open_text({"not": "sealed"})


async def test_a_key_read_by_id_is_cached_and_expires() -> None:
    now = [0.0]
    store = MemoryKeyStore()
    writer = Keyring(store, ttl_s=10)
    sealed = await writer.seal_text("acme", "u1", SECRET, "e")
    reader = Keyring(store, ttl_s=10, clock=lambda: now[0])
    reads = store.reads
    assert await reader.open_text(sealed) == SECRET and store.reads == reads + 1
    assert await reader.open_text(sealed) == SECRET and store.reads == reads + 1
    await store.forget("acme", "u1")  # by another process: this one's copy serves until it expires
    assert await reader.open_text(sealed) == SECRET
    now[0] = 11.0
    assert await reader.open_text(sealed) == FORGOTTEN and store.reads == reads + 2


async def test_forgetting_shreds_at_once_in_this_process_and_a_new_key_follows() -> None:
    store = MemoryKeyStore()
    ring = Keyring(store, ttl_s=3600)
    before = await ring.seal_text("acme", "u1", SECRET, "e1")
    kept = await ring.seal_text("acme", "u2", "not forgotten", "e2")
    assert await ring.open_text(before) == SECRET
    deleted = await ring.forget("acme", "u1")
    assert deleted == [before["kid"]] and store.forgotten == deleted
    assert await ring.open_text(before) == FORGOTTEN  # not served from the cache
    assert await ring.open_text(kept) == "not forgotten"
    assert await ring.forget("acme", "u1") == []  # nothing left: harmless
    after = await ring.seal_text("acme", "u1", "written after", "e3")
    assert after["kid"] != before["kid"] and await ring.open_text(after) == "written after"
    assert await ring.open_text(before) == FORGOTTEN
