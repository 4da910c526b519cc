-- API keys for service integrations: shown once, stored as SHA-256 hashes, found by prefix.
CREATE TABLE api_keys (
    prefix     text        PRIMARY KEY,
    key_hash   bytea       NOT NULL,
    name       text        NOT NULL,
    roles      text        NOT NULL,  -- comma-separated
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz
);
