"""Which fields of which event versions hold a person's text, and the one place they are sealed and opened.

Inside a process an event always holds text. On the wire (the topics, and the outputs kept in processed-event
records) each such field of a version listed here holds its text sealed with the data key of the field's owner
(the sender of a message, the person a reply answers, the owner of each turn and memory of a context), or
plain text where nobody owns it (a job's prompt). The producer seals when it serialises; the consumer opens
before it validates, so handlers never see a sealed value and never need a key.

Opened with a deleted key, a field reads ``[forgotten]``. A reader without a keyring (a command line with no
database) sees ``[sealed]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import orjson

from agentbus.events import Event, parse_event
from agentbus.sealing.envelope import FORGOTTEN, is_sealed, seal, unseal
from agentbus.sealing.keyring import Keyring

SEALED = "[sealed]"  # what a reader without a keyring sees of sealed text
MEMO = 512  # records of recently sealed events kept (a handler's outputs: recorded, then published)


class Place(NamedTuple):
    container: dict[str, Any]
    key: str
    owner: str | None
    path: str
    json: bool = False  # the value is any JSON (sealed as its serialisation), not only a string


def _owner(d: dict[str, Any], field: str) -> str | None:
    who = d.get(field)
    return who.get("id") if isinstance(who, dict) else None


def _message(d: dict[str, Any]) -> Iterator[Place]:
    yield Place(d, "text", _owner(d, "sender"), "text")


def _context(d: dict[str, Any]) -> Iterator[Place]:
    if isinstance(d.get("input"), dict):
        yield Place(d["input"], "text", d["input"].get("owner"), "input.text")
    for name in ("history", "memories", "earlier"):
        for i, item in enumerate(d.get(name) or ()):
            if isinstance(item, dict):
                yield Place(item, "text", item.get("owner"), f"{name}.{i}.text")


def _answer(d: dict[str, Any]) -> Iterator[Place]:
    yield Place(d, "text", _owner(d, "asker"), "text")


def _inference(d: dict[str, Any]) -> Iterator[Place]:
    yield Place(d, "output_text", d.get("owner"), "output_text")


def _tool(d: dict[str, Any]) -> Iterator[Place]:
    yield Place(d, "arguments", d.get("owner"), "arguments", json=True)
    yield Place(d, "result", d.get("owner"), "result")


def _memory(d: dict[str, Any]) -> Iterator[Place]:
    yield Place(d, "text", d.get("subject"), "text")


PLACES: dict[tuple[str, int], Callable[[dict[str, Any]], Iterator[Place]]] = {
    ("message.received", 2): _message,
    ("context.assembled", 2): _context,
    ("reply.generated", 3): _answer,
    ("reply.progress", 2): _answer,
    ("inference.completed", 3): _inference,
    ("tool.called", 2): _tool,
    ("memory.requested", 2): _memory,
}


def places_of(doc: dict[str, Any]) -> list[Place]:
    find = PLACES.get((doc.get("type"), doc.get("version")))  # type: ignore[arg-type]  # unvalidated JSON
    data = doc.get("data")
    return list(find(data)) if find is not None and isinstance(data, dict) else []


async def seal_event(keys: Keyring | None, event: Event) -> bytes:
    """The event's record value: each person's text sealed with their key (made now if they have none)."""
    if keys is None or (event.TYPE, event.VERSION) not in PLACES:
        return event.to_bytes()
    memo = keys.sealed.get(id(event))
    if memo is not None and memo[0] is event:
        return memo[1]
    doc = event.model_dump(mode="json")
    run = event.replay.run if event.replay is not None else ""
    for p in places_of(doc):
        value = p.container.get(p.key)
        if value is None or not p.owner or value == FORGOTTEN:
            continue
        text = orjson.dumps(value).decode() if p.json else value
        if isinstance(text, str):
            key = await keys.key_for(event.tenant, p.owner)
            p.container[p.key] = seal(key, text, f"{event.id}:{run}:{p.path}")
    raw = orjson.dumps(doc)
    keys.sealed[id(event)] = (event, raw)  # holds the event, so its id is not reused while it is here
    if len(keys.sealed) > MEMO:
        keys.sealed.popitem(last=False)
    return raw


async def open_event(keys: Keyring | None, raw: bytes | str | dict[str, Any], upcast: bool = True) -> Event:
    """A record value parsed into its event with every sealed text opened (``[forgotten]`` when its key was
    deleted, ``[sealed]`` without a keyring). A value that does not open with its key is refused (ValueError)."""
    doc = orjson.loads(raw) if isinstance(raw, (bytes, str)) else raw
    if not isinstance(doc, dict):
        return parse_event(doc)  # refused there, with its reason
    sealed = [p for p in places_of(doc) if is_sealed(p.container.get(p.key))]
    if sealed:
        doc = orjson.loads(orjson.dumps(doc)) if not isinstance(raw, (bytes, str)) else doc  # not the caller's
        sealed = [p for p in places_of(doc) if is_sealed(p.container.get(p.key))]
        found = await keys.keys({p.container[p.key]["kid"] for p in sealed}) if keys is not None else {}
        for p in sealed:
            value = p.container[p.key]
            if keys is None:
                p.container[p.key] = SEALED
                continue
            key = found.get(value["kid"])
            if key is None:
                p.container[p.key] = FORGOTTEN
                continue
            text = unseal(key, value)
            p.container[p.key] = orjson.loads(text) if p.json else text
    return parse_event(doc, upcast=upcast)
