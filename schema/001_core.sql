-- 001_core: accounts, API keys and idempotency records.
-- Ids are text with a type prefix (acct_, key_); keys are stored only as SHA-256 hashes.

CREATE TABLE accounts (
    id          text PRIMARY KEY CHECK (id ~ '^acct_[a-z2-7]{16,32}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    roles       text[] NOT NULL CHECK (roles <@ ARRAY['buyer', 'provider', 'admin']::text[]
                                       AND cardinality(roles) >= 1),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id          text PRIMARY KEY CHECK (id ~ '^key_[a-z2-7]{16,32}$'),
    account_id  text NOT NULL REFERENCES accounts (id),
    key_hash    bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_account ON api_keys (account_id);

-- A saved 2xx answer for (account, key). request_hash covers method, path and body.
CREATE TABLE idempotency_keys (
    account_id    text NOT NULL REFERENCES accounts (id),
    key           text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash  bytea NOT NULL,
    status        int NOT NULL CHECK (status BETWEEN 200 AND 299),
    body          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
