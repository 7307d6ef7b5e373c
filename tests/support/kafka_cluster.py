"""The three-node Apache Kafka cluster of ``make test-kafka``; it lives in ``agentbus.stack.kafka_cluster`` so the
bench (``make bench KAFKA=1``) starts the same one."""

from agentbus.stack.kafka_cluster import (
    BROKER_SETTINGS,
    LIBS_ENV,
    PLATFORM_ENV,
    KafkaCluster,
    Node,
    kafka_libs,
)

__all__ = ["BROKER_SETTINGS", "LIBS_ENV", "PLATFORM_ENV", "KafkaCluster", "Node", "kafka_libs"]
