"""Wiring of ingress: database, adapters per configured channel, routes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agentbus.blobs import open_blob_store
from agentbus.bus import Producer
from agentbus.channeltypes import ChannelBase
from agentbus.config import PlatformConfig
from agentbus.db import service_database
from agentbus.events import AuditRecorded, ReplayRequested, UserErased, UserErasureRequested
from agentbus.httpclient import async_client
from agentbus.liveconfig import channel_changes, live_of
from agentbus.logindex import Indexer, open_log_index
from agentbus.retention import Table, pruner
from agentbus.service import ServiceParts, keyring_of
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.api.eventlog import LogEntries
from agentbus.services.ingress.api.replay_runner import ReplayRunner
from agentbus.services.ingress.api.wiring import AuditRecorder, operator_api_mount
from agentbus.services.ingress.channels import ADAPTERS
from agentbus.services.ingress.channels.base import InboundAdapter
from agentbus.services.ingress.channelstate import ChannelActivity, ChannelStateWriter, PgChannelStates
from agentbus.services.ingress.chat.wiring import chat_api
from agentbus.services.ingress.confirmations import PgConfirmations
from agentbus.services.ingress.console.wiring import console_routes
from agentbus.services.ingress.dedupe import PgDedupe
from agentbus.services.ingress.erasure import IngressErasure
from agentbus.services.ingress.forgetme import ForgetMe
from agentbus.services.ingress.longconn.lease import PgLeases
from agentbus.services.ingress.longconn.supervisor import replica_name
from agentbus.services.ingress.longconn.wiring import LongConnections
from agentbus.services.ingress.media import Fetcher, MediaDownloader
from agentbus.services.ingress.media_dingtalk import fetch as dingtalk_fetch
from agentbus.services.ingress.media_feishu import fetch as feishu_fetch
from agentbus.services.ingress.media_slack import fetch as slack_fetch
from agentbus.services.ingress.media_telegram import fetch as telegram_fetch
from agentbus.services.ingress.media_wecom import fetch as wecom_fetch
from agentbus.services.ingress.quota import MessageQuota, PgWindow
from agentbus.services.ingress.routes import webhook_routes
from agentbus.settings import Settings


def media_fetchers() -> dict[str, Fetcher]:
    return {"telegram": telegram_fetch, "slack": slack_fetch, "feishu": feishu_fetch, "dingtalk": dingtalk_fetch,
            "wecom": wecom_fetch}


def build_adapters(config: PlatformConfig) -> dict[str, InboundAdapter]:
    adapters: dict[str, InboundAdapter] = {}
    refresh_adapters(adapters, config.channels, [])
    return adapters


def refresh_adapters(adapters: dict[str, InboundAdapter], changed: Sequence[ChannelBase],
                     removed: Sequence[str]) -> None:
    """Build the adapters of channels added or changed, drop those of channels removed (in place: the webhook
    routes read this dict per request)."""
    for ch in changed:
        if ch.type == "api":  # its way in is the chat API (chat/), not a webhook
            continue
        cls = ADAPTERS.get(ch.type)
        if cls is None:
            raise RuntimeError(f"no inbound adapter for channel type {ch.type!r} (channel {ch.id})")
        adapters[ch.id] = cls(ch)
    for cid in removed:
        adapters.pop(cid, None)


async def bootstrap(settings: Settings, config: PlatformConfig, producer: Producer) -> ServiceParts:
    # ingress writes only its de-duplication table, an optimisation (event ids are deterministic): it does
    # not wait for the WAL flush, which keeps the disk out of the webhook's answer time
    pool, database = await service_database(
        settings, "ingress", Path(__file__).parent / "migrations", synchronous_commit=False
    )
    dedupe = PgDedupe(pool)
    blobs, blob_pool = await open_blob_store(settings)
    keys = keyring_of(producer)
    # downloads follow the platform's redirects (Slack, DingTalk hand out signed URLs on other hosts)
    media_http = async_client(timeout=30.0, max_connections=32, follow_redirects=True)
    media = MediaDownloader(blobs, media_http, media_fetchers())
    acceptor = Acceptor(dedupe, producer, settings.ingress_publish_timeout_s, media,
                        MessageQuota(config, PgWindow(pool)), ForgetMe(PgConfirmations(pool)))

    async def watch_dead_letters() -> None:
        """Count the dead-letter topic's records into a gauge (ingress is the operator-facing service).

        It follows the topic from the beginning rather than asking for end offsets, which some brokers
        report short of the real end."""
        import structlog

        from agentbus import metrics
        from agentbus.eventlog import follow
        from agentbus.topics import dead_letter_topic

        count = 0
        try:
            async for _ in follow(settings, [dead_letter_topic(settings.topic_prefix)], from_beginning=True):
                count += 1
                metrics.DLQ_SIZE.set(count)
        except Exception as exc:  # the gauge stops moving; the service itself is unaffected
            structlog.get_logger("agentbus.ingress").warning("dlq_size_unavailable", error=str(exc)[:200])

    adapters = build_adapters(config)
    # long polls (Telegram) hold a request for up to a minute: per-request timeouts say how long
    http = async_client(timeout=30.0, max_connections=64)
    replica = replica_name()
    links = LongConnections(adapters, acceptor, PgLeases(pool), replica, http, settings.ingress_lease_ttl_s,
                            settings.ingress_reconnect_max_s)
    activity = ChannelActivity()
    channel_states = PgChannelStates(pool)
    states_writer = ChannelStateWriter(channel_states, replica, activity, links.describe,
                                       settings.ingress_channel_state_interval_s)

    async def channels_changed(old: PlatformConfig, new: PlatformConfig) -> None:
        changed, removed = channel_changes(old, new)
        refresh_adapters(adapters, changed, removed)
        await links.refresh(changed, removed)

    if (live := live_of(config)) is not None:
        live.on_change(channels_changed)
    index, index_pool = (await open_log_index(settings)) if settings.log_index else (None, None)
    api, audit_log, api_http = operator_api_mount(settings, config, pool, producer, index, channel_states)
    chat = chat_api(settings, config, pool, acceptor, keys)
    erasure = IngressErasure(keys, audit_log)
    parts = ServiceParts(
        routes={AuditRecorded: AuditRecorder(audit_log).keep_audit,
                ReplayRequested: ReplayRunner(LogEntries(settings, keys, index)).select_replay,
                UserErasureRequested: erasure.erase, UserErased: erasure.keep_erased},
        http_routes=[*webhook_routes(adapters, acceptor, settings.max_body_bytes, activity), *chat.routes, api,
                     *console_routes(settings, config, api.app, keys)],
        checks={"database": database, **chat.checks},
        on_stop=[dedupe.aclose, media_http.aclose, api_http.aclose, blob_pool.close, pool.close],
        background=[watch_dead_letters, states_writer.run, *chat.background],
    )
    parts.background.append(links.run)
    # platform event ids and processed records past the pruning horizon
    parts.background.append(pruner(pool, "ingress", [Table("inbound_dedupe", "received_at")], config, settings).run)
    if index is not None and index_pool is not None:
        indexer = Indexer(settings, index)
        parts.background.append(indexer.run)
        parts.on_stop.append(index_pool.close)
        parts.details["log_index"] = lambda: {"indexed": indexer.indexed, "archive": settings.log_archive}
    parts.on_stop.insert(0, http.aclose)
    parts.details["connections"] = links.describe
    return parts
