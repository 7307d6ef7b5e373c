"""Client options shared by producers, consumers and the admin client (security, bootstrap), and the one
place topics are created (by a service at start-up, and by ``agentbus init``)."""

from __future__ import annotations

from typing import Any

import structlog
from tenacity import AsyncRetrying, RetryCallState, RetryError, retry_if_exception_type, stop_after_delay, wait_fixed

from agentbus.retrying import failure
from agentbus.settings import Settings

log = structlog.get_logger("agentbus.kafka")


def client_options(s: Settings) -> dict[str, Any]:
    opts: dict[str, Any] = {
        "bootstrap_servers": s.kafka_bootstrap_servers,
        "security_protocol": s.kafka_security_protocol,
    }
    if s.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        opts["ssl_context"] = create_ssl_context(
            cafile=s.kafka_ssl_cafile, certfile=s.kafka_ssl_certfile, keyfile=s.kafka_ssl_keyfile
        )
    if s.kafka_sasl_mechanism:
        opts["sasl_mechanism"] = s.kafka_sasl_mechanism
        opts["sasl_plain_username"] = s.kafka_sasl_username
        opts["sasl_plain_password"] = (
            s.kafka_sasl_password.get_secret_value() if s.kafka_sasl_password is not None else None
        )
    return opts


def settings_topic_configs(s: Settings) -> dict[str, str]:
    """The topic configs every topic the platform creates gets from the settings (none: the broker's defaults)."""
    if s.topic_min_insync_replicas is None:
        return {}
    return {"min.insync.replicas": str(s.topic_min_insync_replicas)}


TOPIC_ALREADY_EXISTS = 36  # Kafka error code: created by someone else (a racing replica, an earlier init)


async def admin_client(s: Settings, wait_s: float = 0.0) -> Any:
    """A started admin client that has answered once; retries every 2 s until the broker answers or ``wait_s``
    has passed (``agentbus init`` may start before the broker does)."""
    from aiokafka.admin import AIOKafkaAdminClient

    def waiting(rs: RetryCallState) -> None:
        log.info("kafka_waiting", bootstrap=s.kafka_bootstrap_servers, error=type(failure(rs)).__name__)

    try:
        async for attempt in AsyncRetrying(stop=stop_after_delay(wait_s), wait=wait_fixed(2), before_sleep=waiting,
                                           retry=retry_if_exception_type(Exception)):
            with attempt:
                admin = AIOKafkaAdminClient(**client_options(s), request_timeout_ms=15000)
                try:
                    await admin.start()
                    await admin.list_topics()
                except BaseException:
                    await admin.close()
                    raise
                return admin
    except RetryError as err:
        exc = err.last_attempt.exception()
        raise RuntimeError(f"Kafka at {s.kafka_bootstrap_servers} not reachable: {exc!r}") from exc
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


async def create_topics(
    s: Settings,
    topics: list[str],
    partitions: int | None = None,
    replication_factor: int | None = None,
    configs: dict[str, str] | None = None,
    wait_s: float = 0.0,
) -> dict[str, str]:
    """Create the missing topics (partitions, replication and min.insync.replicas from the settings unless
    given); returns ``{topic: "created" | "exists"}``. Existing topics are left as they are."""
    from aiokafka.admin import NewTopic

    replication_factor = replication_factor or s.topic_replication_factor
    configs = {**settings_topic_configs(s), **(configs or {})}
    min_isr = int(configs.get("min.insync.replicas", 1))
    if min_isr > replication_factor:
        raise ValueError(f"min.insync.replicas {min_isr} is more than the replication factor {replication_factor}: "
                         "no write could ever be acknowledged")
    admin = await admin_client(s, wait_s)
    try:
        existing = set(await admin.list_topics())
        result = {t: "exists" for t in topics if t in existing}
        missing = [t for t in topics if t not in existing]
        if missing:
            resp = await admin.create_topics([
                NewTopic(t, partitions or s.topic_partitions, replication_factor, topic_configs=dict(configs))
                for t in missing
            ])
            for err in getattr(resp, "topic_errors", ()):
                name, code = err[0], err[1]
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"could not create topic {name}: error code {code} {err[2:]}")
                result[name] = "created" if code == 0 else "exists"
        return {t: result.get(t, "created") for t in topics}
    finally:
        await admin.close()


CONFIG_TOPIC_CONFIGS = {"cleanup.policy": "compact"}


async def ensure_config_topic(s: Settings, replication_factor: int | None = None, wait_s: float = 0.0,
                              min_insync_replicas: int | None = None) -> str:
    """The configuration's topic: one partition (one key, in order) and compacted (only the newest version of
    the document needs to stay); ``min_insync_replicas`` over the settings' (what ``agentbus init
    --min-insync-replicas`` gives every topic it creates). Returns "created" or "exists"."""
    from agentbus.topics import config_topic

    name = config_topic(s.topic_prefix)
    configs = dict(CONFIG_TOPIC_CONFIGS)
    if min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(min_insync_replicas)
    return (await create_topics(s, [name], 1, replication_factor, configs, wait_s))[name]


async def ensure_topics(s: Settings, topics: list[str]) -> list[str]:
    """Create missing topics with the settings' partitions and replication; returns the ones created."""
    return [t for t, state in (await create_topics(s, topics)).items() if state == "created"]
