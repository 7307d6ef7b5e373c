"""The Kafka bus: a producer that waits for acks=all, and a consumer runner with at-least-once delivery,
key-ordered concurrency, low-watermark commits, retries and dead-lettering."""

from agentbus.bus.consumer import ConsumerRunner, Handler, Routes
from agentbus.bus.errors import PermanentError, TransientError
from agentbus.bus.producer import Producer

__all__ = ["ConsumerRunner", "Handler", "PermanentError", "Producer", "Routes", "TransientError"]
