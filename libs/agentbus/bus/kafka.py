"""Client options shared by producers, consumers and the admin client (security, bootstrap)."""

from __future__ import annotations

from typing import Any

from agentbus.settings import Settings


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


async def ensure_topics(s: Settings, topics: list[str]) -> list[str]:
    """Create missing topics; returns the ones created. Existing topics are left as they are."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**client_options(s), request_timeout_ms=15000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        resp = await admin.create_topics(
            [NewTopic(t, s.topic_partitions, s.topic_replication_factor) for t in missing]
        )
        created = []
        for err in getattr(resp, "topic_errors", ()):
            name, code = err[0], err[1]
            if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a racing replica created it)
                raise RuntimeError(f"could not create topic {name}: error code {code} {err[2:]}")
            if code == 0:
                created.append(name)
        return created
    finally:
        await admin.close()
