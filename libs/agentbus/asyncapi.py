"""The AsyncAPI 3.0 document of the bus: every topic, its messages (the committed JSON Schemas), and which
service sends and receives each, generated from the services' contracts into ``schemas/asyncapi.json``.

The contracts are the ones the services run with: ``serve`` refuses to start a service whose handler table
differs from its contract's ``SUBSCRIBES``, and the end-to-end test checks every event's source against
``PUBLISHES``. Besides the five services, every consuming service sends dead letters, and the command line
sends the events of replays (message, job, context), job commands and redrives (any topic).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from agentbus import __version__
from agentbus.events import CATALOGUE, DeadLettered, Event
from agentbus.settings import SERVICES

CLI = "cli"
CLI_SENDS = {("message.received", 1), ("job.triggered", 1), ("context.assembled", 1)}  # replay entry points
CLI_COMMANDS = {("job.requested", 2)}  # agentbus jobs create|pause|resume|cancel
CLI_AUDITS = {("audit.recorded", 1)}  # agentbus tokens create|revoke
CLI_CONFIG = {("config.changed", 1)}  # agentbus config apply
CLI_ERASURES = {("user.erasure_requested", 1)}  # agentbus forget


@dataclass(frozen=True)
class Contract:
    service: str
    subscribes: tuple[type[Event], ...]
    publishes: tuple[type[Event], ...]
    follows: tuple[type[Event], ...] = ()


def contract(service: str) -> Contract:
    module = importlib.import_module(f"agentbus.services.{service}.contract")
    return Contract(service, tuple(module.SUBSCRIBES), tuple(module.PUBLISHES), tuple(getattr(module, "FOLLOWS", ())))


def contracts() -> list[Contract]:
    return [contract(s) for s in SERVICES]


def channel_id(type_: str, version: int) -> str:
    head, *rest = type_.split(".")
    return head + "".join(p.capitalize() for p in rest) + f"V{version}"


def _versions(cls: type[Event]) -> list[tuple[str, int]]:
    """A subscription to a type reads every version's topic of it (older versions are upcast on read)."""
    return sorted(k for k in CATALOGUE if k[0] == cls.TYPE)


def document() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for (t, v), cls in sorted(CATALOGUE.items()):
        cid = channel_id(t, v)
        messages[cid] = {
            "name": t,
            "title": f"{t} v{v}",
            "summary": (cls.__doc__ or "").strip().splitlines()[0],
            "contentType": "application/json",
            "payload": {"schemaFormat": "application/schema+json;version=draft-07",
                        "schema": {"$ref": f"./{t}.v{v}.json"}},
            "headers": {"type": "object", "properties": {
                "traceparent": {"type": "string", "description": "W3C trace context of the producing span"},
                "replay": {"type": "string", "description": "the replay run id, on events of a shadow run"},
            }},
            "bindings": {"kafka": {"key": {"type": "string", "description": "the conversation key "
                                           "tenant/channel/chat: one conversation stays in order"},
                                   "bindingVersion": "0.5.0"}},
        }
        channels[cid] = {
            "address": "{prefix}." + f"{t}.v{v}",
            "title": f"{t} v{v}",
            "parameters": {"prefix": {"default": "agentbus", "description": "topic prefix of the environment "
                                      "(AGENTBUS_TOPIC_PREFIX)"}},
            "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
        }
    operations: dict[str, Any] = {}

    def op(service: str, action: str, key: tuple[str, int], description: str) -> None:
        cid = channel_id(*key)
        operations[f"{service}.{action}.{cid}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{cid}"},
            "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}"}],
            "description": description,
            "x-agentbus-service": service,
        }

    dead = (DeadLettered.TYPE, DeadLettered.VERSION)
    for c in contracts():
        group = f"consumer group <prefix>.{c.service}"
        for cls in c.subscribes:
            for key in _versions(cls):
                op(c.service, "receive", key, f"{c.service} handles it ({group}; read at the newest version)")
        for cls in c.follows:
            op(c.service, "receive", (cls.TYPE, cls.VERSION), f"{c.service} follows it without a consumer group")
        for cls in c.publishes:
            op(c.service, "send", (cls.TYPE, cls.VERSION), f"{c.service} publishes it (acks=all)")
        if c.subscribes:
            op(c.service, "send", dead, f"{c.service} dead-letters an event it gave up on")
    for key in sorted(CLI_SENDS):
        op(CLI, "send", key, "agentbus replay publishes the entry events of a shadow run (envelope `replay` set)")
    for key in sorted(CLI_COMMANDS):
        op(CLI, "send", key, "agentbus jobs publishes job commands (acks=all)")
    for key in sorted(CLI_AUDITS):
        op(CLI, "send", key, "agentbus tokens audits each token it creates or revokes (acks=all)")
    for key in sorted(CLI_CONFIG):
        op(CLI, "send", key, "agentbus config apply publishes a new version of the configuration (acks=all)")
    for key in sorted(CLI_ERASURES):
        op(CLI, "send", key, "agentbus forget publishes the erasure of a person (acks=all), with its audit event")
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "agentbus event bus",
            "version": __version__,
            "description": "Topics <prefix>.<type>.v<version>, keyed by conversation. Transport is "
                           "at-least-once; every consumer de-duplicates by event id, so effects are exactly-once. "
                           "`agentbus dlq redrive` may send a dead-lettered event back to its original topic.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka",
                              "description": "any Kafka-protocol cluster (AGENTBUS_KAFKA_BOOTSTRAP_SERVERS)"}},
        "channels": channels,
        "operations": dict(sorted(operations.items())),
        "components": {"messages": messages},
    }
