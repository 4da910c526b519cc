-- The outbox gauges (every few seconds, in every worker) count dead events and find the oldest
-- pending one. Both used to scan every unpublished row: during a broker outage the backlog grows by
-- the order rate and so did the cost of watching it (120 ms a query at a million events). Dead
-- events are few: a partial index of them makes their count an index-only scan; the oldest pending
-- event is the first entry of outbox_unpublished_idx that is not dead.
CREATE INDEX outbox_dead_idx ON outbox (position) WHERE dead_at IS NOT NULL AND published_at IS NULL;
