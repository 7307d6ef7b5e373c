"""The state of a tenant's channels: webhook requests and long connections, as every ingress replica sees them.

Each replica writes its own view every few seconds (``agentbus.services.ingress.channelstate``) to a table
they share, so the answer is the same on any replica: the counters summed over the replicas (each counts from
its start), the last request and the last refusal with its reason, the long connection as the replica holding
its lease reports it, and each replica's own view with its age. A replica not heard from for ``FRESH_S`` is
shown, marked not fresh, until its rows are a day old.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field

from agentbus.channeltypes import ChannelBase
from agentbus.services.ingress.api.app import Access, allow
from agentbus.services.ingress.api.config_routes import TenantPath, tenant_channels
from agentbus.services.ingress.api.ports import ChannelStateRow

router = APIRouter(tags=["channels"])
FRESH_S = 30.0


class WebhookState(BaseModel):
    hits: int = 0
    accepted: int = Field(default=0, description="answered 2xx")
    refused: int = Field(default=0, description="answered 4xx (a bad signature, an old timestamp, ...)")
    failed: int = Field(default=0, description="answered 5xx (the platform retries)")
    last_at: datetime | None = None
    last_status: int | None = None
    last_error: str | None = Field(default=None, description="status and reason of the last 4xx or 5xx answer")
    last_error_at: datetime | None = None


class ConnectionState(BaseModel):
    status: Literal["connected", "down", "unheld", "unknown"] = Field(
        description="connected or down as the replica holding the lease says; unheld: no fresh replica holds "
                    "it; unknown: no replica heard from lately")
    holder: str | None = None
    since: datetime | None = Field(default=None, description="when the holder's connection last went up or down")
    last_error: str | None = None
    reconnects: int = 0
    events: int = Field(default=0, description="platform events received over it")


class ReplicaView(BaseModel):
    replica: str
    updated_at: datetime
    age_s: float
    fresh: bool
    webhook: WebhookState | None
    connection: dict[str, Any] | None = Field(description="the replica's /readyz entry of the connection")


class ChannelState(BaseModel):
    id: str
    type: str
    mode: str
    webhook: WebhookState
    connection: ConnectionState | None = Field(description="mode stream only")
    replicas: list[ReplicaView]


class ChannelStates(BaseModel):
    channels: list[ChannelState]
    replicas: list[str] = Field(description="the replicas heard from in the last FRESH_S seconds")
    fresh_s: float
    as_of: datetime


def _time(unix: Any) -> datetime | None:
    return datetime.fromtimestamp(float(unix), UTC) if unix else None


def _webhook(raw: dict[str, Any] | None) -> WebhookState | None:
    if not raw:
        return None
    return WebhookState(**{**raw, "last_at": _time(raw.get("last_at")),
                           "last_error_at": _time(raw.get("last_error_at"))})


def _summed(views: Sequence[WebhookState]) -> WebhookState:
    out = WebhookState(hits=sum(v.hits for v in views), accepted=sum(v.accepted for v in views),
                       refused=sum(v.refused for v in views), failed=sum(v.failed for v in views))
    last = max((v for v in views if v.last_at), key=lambda v: v.last_at or datetime.min, default=None)
    if last is not None:
        out.last_at, out.last_status = last.last_at, last.last_status
    error = max((v for v in views if v.last_error_at), key=lambda v: v.last_error_at or datetime.min, default=None)
    if error is not None:
        out.last_error, out.last_error_at = error.last_error, error.last_error_at
    return out


def _connection(rows: Sequence[ChannelStateRow]) -> ConnectionState:
    seen = [(r, r.view["connection"]) for r in rows if r.view.get("connection")]
    fresh = [(r, c) for r, c in seen if r.age_s <= FRESH_S]
    reconnects = sum(int(c.get("reconnects", 0)) for _, c in seen)
    events = sum(int(c.get("events", 0)) for _, c in seen)
    errors = [c["last_error"] for _, c in seen if c.get("last_error")]  # rows come newest first
    holder = next(((r, c) for r, c in fresh if c.get("held_here")), None)
    if holder is not None:
        r, c = holder
        return ConnectionState(status="connected" if c.get("status") == "connected" else "down", holder=r.replica,
                               since=_time(c.get("since")), last_error=c.get("last_error"), reconnects=reconnects,
                               events=events)
    return ConnectionState(status="unheld" if fresh else "unknown", last_error=errors[0] if errors else None,
                           reconnects=reconnects, events=events)


def channel_state(channel: ChannelBase, rows: Sequence[ChannelStateRow]) -> ChannelState:
    views = [ReplicaView(replica=r.replica, updated_at=r.updated_at, age_s=round(r.age_s, 1), fresh=r.age_s <= FRESH_S,
                         webhook=_webhook(r.view.get("webhook")), connection=r.view.get("connection"))
             for r in rows]
    return ChannelState(id=channel.id, type=channel.type, mode=channel.mode,
                        webhook=_summed([v.webhook for v in views if v.webhook is not None]),
                        connection=_connection(rows) if channel.mode == "stream" else None, replicas=views)


@router.get("/tenants/{tenant}/channel-states", name="channels.states", response_model=ChannelStates,
            description="What every ingress replica sees of the tenant's channels: webhook requests (counted by "
                        "each replica from its start) and long connections (as the replica holding the lease "
                        "reports them), read from the table the replicas write every few seconds.")
async def channel_states(tenant: TenantPath, access: Access = Depends(allow("viewer"))) -> ChannelStates:
    if access.deps.channel_states is None:
        raise HTTPException(503, "channel states are not served by this ingress")
    channels = tenant_channels(access.deps.config, tenant)
    rows = await access.deps.channel_states.states([c.id for c in channels])
    by_channel: dict[str, list[ChannelStateRow]] = {}
    for r in rows:
        by_channel.setdefault(r.channel, []).append(r)
    replicas = sorted({r.replica for r in rows if r.age_s <= FRESH_S})
    return ChannelStates(channels=[channel_state(c, by_channel.get(c.id, [])) for c in channels], replicas=replicas,
                         fresh_s=FRESH_S, as_of=datetime.now(UTC))
