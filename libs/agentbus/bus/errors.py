"""How a handler failure is classified decides what the consumer does with the event.

- transient (infrastructure unavailable: database, broker, network, an upstream 5xx): retried with backoff
  without using up the event's attempts, because the event is not at fault; bounded by a deadline;
- permanent (the event can never succeed, e.g. it does not parse): dead-lettered at once;
- anything else: retried up to the configured attempts, then dead-lettered.
"""

from __future__ import annotations

import httpx


class TransientError(Exception):
    """Something the event depends on is unavailable; try again later."""


class PermanentError(Exception):
    """The event cannot be processed, however often it is retried."""


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, TransientError):
        return True
    if isinstance(exc, (ConnectionError, TimeoutError, httpx.TransportError)):
        return True
    try:
        import psycopg
        import psycopg_pool

        if isinstance(exc, (psycopg.OperationalError, psycopg_pool.PoolTimeout)):
            return True
    except ImportError:  # pragma: no cover
        pass
    from aiokafka.errors import KafkaError

    if isinstance(exc, KafkaError) and getattr(exc, "retriable", True):
        return True
    return isinstance(exc, OSError)
