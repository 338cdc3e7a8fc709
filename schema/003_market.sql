-- 003_market: pools, offers, orders, contracts, the simulated clock, and the guard that
-- makes a ledger batch all-or-nothing inside capxd's group-commit transaction.
-- Every market object has a text id (pool_…, ofr_…, ord_…, ctr_…) and a number, `num`, the
-- matching engine's 64-bit id for it; `seq` is the engine's entry sequence (time priority).

CREATE TABLE pools (
    id              text PRIMARY KEY CHECK (id ~ '^pool_[a-z2-7]{20}$'),
    num             bigint NOT NULL UNIQUE CHECK (num > 0),
    account_id      text NOT NULL REFERENCES accounts (id),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 64),
    gpu_model       text NOT NULL CHECK (gpu_model ~ '^[A-Za-z0-9._-]{1,32}$'),
    region          text NOT NULL CHECK (region ~ '^[A-Za-z0-9._-]{1,32}$'),
    nodes           int NOT NULL CHECK (nodes BETWEEN 1 AND 100000),
    gpus_per_node   int NOT NULL CHECK (gpus_per_node BETWEEN 1 AND 16),
    nodes_per_rack  int NOT NULL CHECK (nodes_per_rack BETWEEN 1 AND 100000),
    created_at      timestamptz NOT NULL
);
CREATE INDEX pools_account ON pools (account_id, num);

CREATE TABLE offers (
    id              text PRIMARY KEY CHECK (id ~ '^ofr_[a-z2-7]{20}$'),
    num             bigint NOT NULL UNIQUE CHECK (num > 0),
    pool_id         text NOT NULL REFERENCES pools (id),
    account_id      text NOT NULL REFERENCES accounts (id),
    kind            text NOT NULL CHECK (kind IN ('reservation', 'spot')),
    gpus            int NOT NULL CHECK (gpus > 0),
    start_at        timestamptz,
    end_at          timestamptz,
    price           bigint NOT NULL CHECK (price BETWEEN 1 AND 1000000000),
    status          text NOT NULL CHECK (status IN ('open', 'cancelled', 'expired')),
    seq             bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    CHECK ((kind = 'spot') = (start_at IS NULL) AND (start_at IS NULL) = (end_at IS NULL)),
    CHECK (end_at > start_at)
);
CREATE INDEX offers_account ON offers (account_id, num);
CREATE INDEX offers_open ON offers (status) WHERE status = 'open';

CREATE TABLE orders (
    id              text PRIMARY KEY CHECK (id ~ '^ord_[a-z2-7]{20}$'),
    num             bigint NOT NULL UNIQUE CHECK (num > 0),
    account_id      text NOT NULL REFERENCES accounts (id),
    kind            text NOT NULL CHECK (kind IN ('reservation', 'spot')),
    gpu_model       text NOT NULL,
    region          text,
    gpus            int NOT NULL CHECK (gpus BETWEEN 1 AND 100000),
    filled_gpus     int NOT NULL DEFAULT 0 CHECK (filled_gpus BETWEEN 0 AND gpus),
    start_at        timestamptz,
    latest_start    timestamptz,
    fixed_start     timestamptz,
    hours           int CHECK (hours BETWEEN 1 AND 8784),
    limit_price     bigint NOT NULL CHECK (limit_price BETWEEN 1 AND 1000000000),
    all_or_none     boolean NOT NULL DEFAULT true,
    single_pool     boolean NOT NULL DEFAULT false,
    time_in_force   text NOT NULL DEFAULT 'gtc' CHECK (time_in_force IN ('gtc', 'ioc')),
    lend_idle       boolean NOT NULL DEFAULT false,
    status          text NOT NULL CHECK (status IN ('open', 'filled', 'partially_filled',
                        'cancelled', 'expired', 'pending', 'running', 'preempted', 'stopped')),
    hold_id         text,             -- the ledger hold now reserving the unfilled part
    hold_amount     bigint NOT NULL DEFAULT 0 CHECK (hold_amount >= 0),
    hold_count      int NOT NULL DEFAULT 0,
    running_pool    text REFERENCES pools (id),
    spot_price      bigint,
    preempt_at      timestamptz,
    seq             bigint NOT NULL,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX orders_account ON orders (account_id, num);
CREATE INDEX orders_open ON orders (status) WHERE status IN ('open', 'partially_filled',
    'pending', 'running', 'preempted');

CREATE TABLE contracts (
    id              text PRIMARY KEY CHECK (id ~ '^ctr_[a-z2-7]{20}$'),
    num             bigint NOT NULL UNIQUE CHECK (num > 0),
    order_id        text NOT NULL REFERENCES orders (id),
    offer_id        text NOT NULL REFERENCES offers (id),
    pool_id         text NOT NULL REFERENCES pools (id),
    buyer_id        text NOT NULL REFERENCES accounts (id),
    provider_id     text NOT NULL REFERENCES accounts (id),
    gpus            int NOT NULL CHECK (gpus > 0),
    start_at        timestamptz NOT NULL,
    end_at          timestamptz NOT NULL CHECK (end_at > start_at),
    price           bigint NOT NULL CHECK (price > 0),
    amount          bigint NOT NULL CHECK (amount > 0),
    status          text NOT NULL CHECK (status IN ('scheduled', 'active', 'completed', 'cancelled')),
    trade_seq       bigint NOT NULL,
    lend_idle       boolean NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    CHECK (amount = price * gpus * (extract(epoch FROM end_at - start_at)::bigint / 3600))
);
CREATE INDEX contracts_buyer ON contracts (buyer_id, num);
CREATE INDEX contracts_provider ON contracts (provider_id, num);
CREATE INDEX contracts_pool ON contracts (pool_id, start_at);

-- The simulated clock survives a restart; one row.
CREATE TABLE clock_state (
    one       boolean PRIMARY KEY DEFAULT true CHECK (one),
    sim_now   bigint NOT NULL
);

-- Inside capxd's group commit a ledger batch must succeed whole: any transfer that is not
-- `ok` aborts the transaction (capxd then rebuilds from the database and answers 503).
CREATE FUNCTION capx_require_ok(results int[]) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM unnest(results) r WHERE r <> 0) THEN
        RAISE EXCEPTION 'a ledger transfer was refused: results %', results
            USING ERRCODE = 'P0C01';
    END IF;
    RETURN coalesce(cardinality(results), 0);
END
$$;

-- What settlement has moved out of escrow for a contract (delivered, fees, refunds).
ALTER TABLE contracts ADD COLUMN settled bigint NOT NULL DEFAULT 0
    CHECK (settled >= 0 AND settled <= amount);
