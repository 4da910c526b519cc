-- API keys for service integrations: shown once, stored as SHA-256 hashes, found by prefix.
CREATE TABLE api_keys (
    prefix     TEXT    PRIMARY KEY,
    key_hash   BLOB    NOT NULL,
    name       TEXT    NOT NULL,
    roles      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;
