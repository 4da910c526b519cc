"""Events leaving the service: the relay, its publishers and the consumer-side helper."""
