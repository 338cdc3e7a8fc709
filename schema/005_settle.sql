-- 005_settle: metering and settlement state. Hours before settled_until are settled (NULL:
-- nothing yet, i.e. the start); spot runs carry the sub-micro-dollar remainder of their
-- per-second metering; SLA credits a provider could not pay are its debt to the buyer, taken
-- from its next earnings first.
ALTER TABLE contracts ADD COLUMN settled_until timestamptz;
ALTER TABLE orders ADD COLUMN spot_acc bigint NOT NULL DEFAULT 0 CHECK (spot_acc >= 0);

CREATE TABLE provider_debts (
    id           text PRIMARY KEY,
    provider_id  text NOT NULL REFERENCES accounts (id),
    buyer_id     text NOT NULL REFERENCES accounts (id),
    contract_id  text NOT NULL REFERENCES contracts (id),
    amount       bigint NOT NULL CHECK (amount > 0),
    remaining    bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    created_at   timestamptz NOT NULL
);
CREATE INDEX provider_debts_open ON provider_debts (provider_id, created_at) WHERE remaining > 0;
