"""The five services. None imports another; they meet only on Kafka topics."""
