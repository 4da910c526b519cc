"""Every metric orderfast exports, declared once (README "Observability" lists them; the alert rules
and the dashboard in k8s/monitoring/ use these names, and a test scrapes a server to hold them
to it). Gauges that are cheaper to read than to track get their reading function where the thing
they read is built (bootstrap.py)."""

from __future__ import annotations

from orderfast.observability.metrics import REGISTRY

# -- RED, per route template (never a raw path)
HTTP_REQUESTS = REGISTRY.counter(
    "orderfast_http_requests", "HTTP requests answered, by method, route template and status class",
    ("method", "route", "status"),
)  # fmt: skip
GRPC_REQUESTS = REGISTRY.counter(
    "orderfast_grpc_requests",
    "gRPC calls answered by orderfast serve-grpc, by method and status code (OK, INVALID_ARGUMENT, ...)",
    ("method", "code"),
)
GRPC_DURATION = REGISTRY.histogram(
    "orderfast_grpc_request_duration_seconds", "Time from a gRPC call's arrival to its answer", ("method",)
)
HTTP_DURATION = REGISTRY.histogram(
    "orderfast_http_request_duration_seconds",
    "Time from the request's arrival in the app to its last response byte handed to the server",
    ("method", "route"),
)
HTTP_IN_FLIGHT = REGISTRY.gauge("orderfast_http_requests_in_flight", "Requests being handled now")

# -- business
ORDERS_CREATED = REGISTRY.counter("orderfast_orders_created", "Orders created", ("currency",))
ORDER_VALUE = REGISTRY.counter(
    "orderfast_order_value_minor", "Value of the orders created, in minor units of their currency", ("currency",)
)
ORDER_REFUSALS = REGISTRY.counter(
    "orderfast_order_refusals",
    "Create-order requests refused for the catalog's state: out_of_stock, price_changed, coupon, "
    "qualification (the customer's restrictions)",
    ("reason",),
)
IDEMPOTENCY = REGISTRY.counter(
    "orderfast_idempotency",
    "Create-order requests by what their Idempotency-Key did: replayed, reused (another body), in_use",
    ("outcome",),
)
ORDERS_CANCELED = REGISTRY.counter("orderfast_orders_canceled", "Orders canceled, by reason", ("reason",))
PAYMENTS = REGISTRY.counter(
    "orderfast_payments",
    "Payment notices, by outcome: paid, failed, mismatch (flagged for review), replayed",
    ("outcome",),
)
REFUNDS = REGISTRY.counter("orderfast_refunds", "Refunds made", ("currency",))
REFUNDED_VALUE = REGISTRY.counter("orderfast_refunded_minor", "Amount refunded, in minor units", ("currency",))

# -- internals
BATCH_SIZE = REGISTRY.histogram(
    "orderfast_group_commit_batch_size",
    "Create-orders written per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
BATCH_WAIT = REGISTRY.histogram(
    "orderfast_group_commit_wait_seconds", "Time a create-order waited for its batch to be written"
)
DB_POOL = REGISTRY.gauge(
    "orderfast_db_pool_connections", "PostgreSQL pool connections, by state: in_use, idle, max", ("state",)
)
DB_POOL_WAITING = REGISTRY.gauge("orderfast_db_pool_waiting", "Callers waiting for a pool connection")
RATELIMIT_REFUSALS = REGISTRY.counter(
    "orderfast_ratelimit_refusals", "Requests refused (429) by a rate-limit policy", ("policy",)
)
IDEMPOTENCY_MAP = REGISTRY.gauge(
    "orderfast_idempotency_map", "The in-process idempotency map: entries and bytes", ("measure",)
)
CATALOG_VERSION = REGISTRY.gauge(
    "orderfast_catalog_version", "The catalog version this process prices with", merge="max"
)
CATALOG_AGE = REGISTRY.gauge(
    "orderfast_catalog_refresh_age_seconds", "Seconds since this process last refreshed its catalog", merge="max"
)
OUTBOX_PENDING = REGISTRY.gauge("orderfast_outbox_pending", "Events not yet published", merge="max")
OUTBOX_OLDEST_AGE = REGISTRY.gauge(
    "orderfast_outbox_oldest_unpublished_age_seconds", "Age of the oldest unpublished event (relay lag)", merge="max"
)
OUTBOX_DEAD = REGISTRY.gauge("orderfast_outbox_dead", "Events the relay gave up on", merge="max")
RELAY_PUBLISHED = REGISTRY.counter("orderfast_relay_published", "Events published to the broker")
RELAY_FAILURES = REGISTRY.counter("orderfast_relay_failures", "Events whose publishing failed (retried later)")
RELAY_PUBLISH_DURATION = REGISTRY.histogram(
    "orderfast_relay_publish_duration_seconds", "Time to publish one batch to the broker"
)
RELAY_DEAD_LETTERED = REGISTRY.counter(
    "orderfast_relay_dead_lettered", "Events the relay dead-lettered (the broker refused them every time)"
)

# -- overload and failing dependencies
ADMISSION_SHED = REGISTRY.counter(
    "orderfast_admission_shed", "Requests refused (503 overloaded) by the adaptive concurrency limit", ("route",)
)
ADMISSION_LIMIT = REGISTRY.gauge(
    "orderfast_admission_limit", "The adaptive concurrency limit: requests the workers admit at once (summed)"
)
DEPENDENCY_TIMEOUTS = REGISTRY.counter(
    "orderfast_dependency_timeouts",
    "Calls to a dependency that ran out of the request budget, by dependency (postgresql, redis) and stage",
    ("dependency", "stage"),
)
DB_READS = REGISTRY.counter(
    "orderfast_db_reads",
    "With read replicas: reads a replica may serve (GET requests), by where they went (replica, primary)",
    ("target",),
)
for _target in ("replica", "primary"):  # exported from the start, at 0 (replicas or not)
    DB_READS.labels(_target)
READ_CACHE = REGISTRY.counter(
    "orderfast_read_cache",
    "With the shared order cache (ORDERFAST_READ_CACHE): order reads by result (hit, miss, error)",
    ("result",),
)
for _result in ("hit", "miss", "error"):  # exported from the start, at 0 (cache or not)
    READ_CACHE.labels(_result)
FEATURE_FLAG = REGISTRY.gauge(
    "orderfast_feature_flag",
    "Feature flags in force (ORDERFAST_FLAGS_FILE), 1 on, 0 off; the highest over the processes",
    ("flag",),
    merge="max",
)
CONFIG_RELOADS = REGISTRY.counter(
    "orderfast_config_reloads",
    "Changed configuration files read by a worker (flags, ratelimits, taxes), by result: applied, or "
    "refused (a bad file; what was in force kept)",
    ("file", "result"),
)
BREAKER_STATE = REGISTRY.gauge(
    "orderfast_circuit_breaker_state",
    "Circuit breaker state by dependency: 0 closed, 1 half-open (probing), 2 open (failing fast); the worst process",
    ("dependency",),
    merge="max",
)
BREAKER_TRANSITIONS = REGISTRY.counter(
    "orderfast_circuit_breaker_transitions", "Circuit breaker state changes, by dependency and new state",
    ("dependency", "state"),
)  # fmt: skip
RSS = REGISTRY.gauge("orderfast_process_resident_memory_bytes", "Resident memory of each process", ("pid",))
