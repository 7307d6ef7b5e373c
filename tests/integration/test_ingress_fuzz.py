"""Property-based fuzzing of a running ingress: whatever arrives, never a 5xx, a JSON reason for every 4xx,
and nothing published for a request that was not accepted.

Hypothesis builds requests from valid ones outwards: right or wrong secrets, missing, malformed, stale
headers, bodies that are valid messages, messages with wrong types, arbitrary JSON, deep nesting, bytes that
are not UTF-8, other encodings, empty and huge bodies (declared or streamed), and every method. After the
run, the ``message.received`` topic must hold exactly the events that ingress answered 2xx "published" for.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import string
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentbus.cli.dlq import read_topic
from agentbus.sealing.wire import open_event
from agentbus.settings import Settings
from agentbus.topics import topic_for
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for

pytestmark = [pytest.mark.integration, pytest.mark.broker]

MAX_BODY = 1_048_576
SECRETS = {"acme": secret_for("acme"), "globex": secret_for("globex")}


def sign(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    """A Standard Webhooks signature over raw bytes (the library only signs text)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


# ---------------------------------------------------------------- strategies

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=15,
)
good_message = st.fixed_dictionaries(
    {
        "conversation": st.text(min_size=1, max_size=40),
        "sender": st.fixed_dictionaries({"id": st.text(min_size=1, max_size=20)},
                                        optional={"name": st.none() | st.text(max_size=20)}),
        "text": st.text(min_size=1, max_size=200),
    },
    optional={
        "chat_type": st.sampled_from(["direct", "group", "channel", ""]),
        "mentioned": st.booleans(),
        "message_id": st.none() | st.text(max_size=300),
        "extra": json_values,
    },
)


def _mutate(msg: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    out = dict(msg)
    if value is ...:
        out.pop(key, None)
    else:
        out[key] = value
    return out


wrong_types = st.builds(
    _mutate, good_message, st.sampled_from(["conversation", "sender", "text", "chat_type", "mentioned", "message_id"]),
    json_values | st.just(...),
)


def dumps(value: Any) -> bytes:
    """JSON as a platform would send it; big integers and Infinity included (orjson refuses them)."""
    return json.dumps(value, ensure_ascii=False).encode()


def _nested(depth: int, kind: str) -> bytes:
    return (b"[" * depth + b"]" * depth) if kind == "list" else (b'{"a":' * depth + b"1" + b"}" * depth)


bodies = st.one_of(
    good_message.map(dumps),
    wrong_types.map(dumps),
    json_values.map(dumps),
    st.binary(max_size=2000),
    st.just(b""),
    good_message.map(lambda m: dumps(m).decode().encode("utf-16")),
    st.tuples(good_message, st.sampled_from(["latin-1", "gb18030", "shift_jis", "cp1252"])).map(
        lambda t: dumps(t[0]).decode().encode(t[1], "replace")),
    st.builds(_nested, st.integers(1, 5000), st.sampled_from(["list", "dict"])),
    st.integers(60_000, 70_000).map(lambda n: dumps({"conversation": "c", "sender": {"id": "u"},
                                                            "text": "x" * n})),
    st.integers(MAX_BODY - 100, MAX_BODY + 100_000).map(lambda n: b'{"text":"' + b"y" * n + b'"}'),
    st.binary(min_size=1, max_size=50).map(lambda b: b'{"conversation":"c","sender":{"id":"u"},"text":"' + b + b'"}'),
)

header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"),
                      max_size=60).map(lambda v: v.strip(" \t"))  # HTTP/1.1 trims these: h11 refuses them
header_names = st.text(alphabet=string.ascii_lowercase + string.digits + "-", min_size=1, max_size=20).filter(
    lambda n: n not in {"content-length", "transfer-encoding", "host", "connection", "expect", "upgrade",
                        "webhook-id", "webhook-timestamp", "webhook-signature"})
channel_ids = st.integers(0, 9).flatmap(
    lambda n: st.sampled_from(["acme", "globex"]) if n < 8 else st.sampled_from(["nope", "ACME", "acme "]) if n < 9
    # other paths too (no dot segments: the client would normalise them away, e.g. onto /healthz)
    else st.text(alphabet=string.ascii_letters + string.digits + "-_~/", min_size=1, max_size=300)
)
webhook_ids = st.one_of(
    st.builds(lambda: f"msg_{uuid.uuid4().hex}"),
    st.sampled_from(["msg_dup_1", "msg_dup_2"]),  # platform retries: published once
    header_text,
    st.text(alphabet=string.ascii_letters, min_size=257, max_size=400),
)
auth_modes = st.sampled_from(["valid", "valid", "valid", "wrong-secret", "none", "partial", "garbage", "stale",
                              "future", "bad-timestamp", "multi"])


@dataclass
class Req:
    method: str
    channel: str
    body: bytes
    headers: dict[str, str]
    stream: bool

    def __repr__(self) -> str:  # hypothesis prints the failing example: keep huge bodies readable
        body = self.body if len(self.body) < 300 else self.body[:300] + f"...({len(self.body)} bytes)".encode()
        return f"Req({self.method} {self.channel[:60]!r} headers={self.headers!r} stream={self.stream} body={body!r})"


@st.composite
def requests(draw: st.DrawFn) -> Req:
    method = draw(st.sampled_from(["POST"] * 12 + ["GET", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]))
    channel = draw(channel_ids)
    body = draw(bodies)
    msg_id = draw(webhook_ids)
    now = int(time.time())
    ts = str(now)
    mode = draw(auth_modes)
    secret = SECRETS.get(channel, SECRETS["acme"])
    headers: dict[str, str] = {}
    if mode in ("stale", "future"):
        ts = str(now + (-1 if mode == "stale" else 1) * draw(st.integers(301, 10**6)))
    if mode == "bad-timestamp":
        ts = draw(st.sampled_from(["", "abc", "-1", "9" * 40, "1e9", "1.5", "0x10"]) | header_text)
    if mode != "none":
        headers["webhook-id"] = msg_id
        headers["webhook-timestamp"] = ts
        if mode == "wrong-secret":
            headers["webhook-signature"] = sign(secret_for("someone-else"), msg_id, ts, body)
        elif mode == "garbage":
            headers["webhook-signature"] = draw(header_text | st.just("v1,") | st.just("v1,!!!notbase64") |
                                                st.just("v2," + base64.b64encode(b"x" * 32).decode()))
        elif mode == "multi":
            headers["webhook-signature"] = "v1,AAAA " + sign(secret, msg_id, ts, body)
        else:
            headers["webhook-signature"] = sign(secret, msg_id, ts, body)
        if mode == "partial":
            headers.pop(draw(st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature"])))
    headers["content-type"] = draw(st.sampled_from(
        ["application/json", "text/plain", "application/json; charset=utf-16", "", "multipart/form-data"]))
    headers.update(draw(st.dictionaries(header_names, header_text, max_size=3)))
    return Req(method, channel, body, headers, draw(st.booleans()))


# ---------------------------------------------------------------- the run


@dataclass
class Tally:
    answers: list[tuple[int, str]] = field(default_factory=list)  # (status, outcome)
    published: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)


@pytest.fixture(scope="module")
async def ingress(infra: Infra) -> AsyncIterator[Platform]:
    async with run_platform(infra, base_config(), services=("ingress",)) as p:
        yield p


def _chunks(body: bytes) -> Iterator[bytes]:
    for i in range(0, len(body), 65536):
        yield body[i:i + 65536]


def fuzz(base_url: str, tally: Tally) -> None:
    """Runs in a worker thread (hypothesis is synchronous); the event loop keeps pumping the service's logs."""
    with httpx.Client(base_url=base_url, timeout=30) as client:

        @settings(max_examples=150, deadline=None, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
        @given(requests())
        def one(req: Req) -> None:
            content: Any = _chunks(req.body) if req.stream else req.body
            headers = [(k.encode(), v.encode("latin-1")) for k, v in req.headers.items()]  # bytes as sent
            r = client.request(req.method, f"/v1/webhooks/{req.channel}", content=content, headers=headers)
            tally.statuses[r.status_code] += 1
            assert r.status_code < 500, f"{r.status_code} {r.text[:300]}"
            assert 200 <= r.status_code < 300 or 400 <= r.status_code < 500, r.status_code
            if r.status_code >= 400:
                assert r.headers.get("content-type", "").startswith("application/json"), (r.status_code, r.text[:200])
                reason = r.json().get("error")
                assert isinstance(reason, str) and reason, r.text[:200]
                return
            outcome = r.headers.get("x-agentbus-outcome", "")
            assert outcome in ("published", "duplicate", "ignored"), outcome
            tally.answers.append((r.status_code, outcome))
            if outcome == "published":
                event_id = r.headers["x-agentbus-event-id"]
                assert event_id not in tally.published, "published twice for one webhook-id"
                tally.published.add(event_id)

        one()


async def test_fuzzed_requests_never_5xx_and_publish_only_what_was_accepted(infra: Infra, ingress: Platform) -> None:
    tally = Tally()
    started = time.monotonic()
    await asyncio.to_thread(fuzz, ingress.ingress_url, tally)
    assert time.monotonic() - started < 120
    print("statuses", dict(tally.statuses))
    assert any(outcome == "published" for _, outcome in tally.answers), "the fuzzer reached the publish path"

    s = Settings(kafka_bootstrap_servers=infra.bootstrap, topic_prefix=ingress.prefix)
    records = await read_topic(s, topic_for(ingress.prefix, "message.received", 2))
    ids = [str((await open_event(None, r.value)).id) for r in records]  # the ids only: no keys needed
    assert len(ids) == len(set(ids)), "an event was published more than once"
    assert set(ids) == tally.published, "exactly the events answered 2xx 'published' are on the topic"
    accepted = sum(1 for status, _ in tally.answers if 200 <= status < 300)
    assert len(ids) <= accepted


async def test_other_methods_get_a_json_reason(ingress: Platform) -> None:
    async with httpx.AsyncClient(base_url=ingress.ingress_url) as c:
        for method in ("OPTIONS", "TRACE"):
            r = await c.request(method, "/v1/webhooks/acme")
            assert r.status_code == 405
            assert r.headers["content-type"].startswith("application/json"), r.text
            assert r.json()["error"]
