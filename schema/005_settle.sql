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

-- What each provider earned (net of fees) for each delivered hour, so payouts and reports
-- can say "earnings up to T" whatever the order in which hours were settled.
CREATE TABLE provider_earnings (
    provider_id  text NOT NULL REFERENCES accounts (id),
    hour         timestamptz NOT NULL,
    gpu_hours    bigint NOT NULL DEFAULT 0 CHECK (gpu_hours >= 0),
    gross        bigint NOT NULL DEFAULT 0 CHECK (gross >= 0),
    fees         bigint NOT NULL DEFAULT 0 CHECK (fees >= 0),
    PRIMARY KEY (provider_id, hour)
);

-- One payout per provider and period end; the transfer id is derived from both.
CREATE TABLE payouts (
    provider_id  text NOT NULL REFERENCES accounts (id),
    until        timestamptz NOT NULL,
    amount       bigint NOT NULL CHECK (amount >= 0),
    transfer_id  text,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (provider_id, until)
);

-- One row per settled range (a contract's consecutive hours, or a spot bid's hour): which
-- hours were delivered and which were lost, what moved, and the ledger transfers that moved
-- it (their ids are `<kind prefix>:<id>`: dlv, fee, rfd, sla for reservations; spot, spotfee
-- for spot; debt for a debt_payment: an SLA credit repaid later from the provider's earnings).
-- settled_at is the market clock when it settled. Reports read this table.
CREATE TABLE settlements (
    id              text PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ('reservation', 'spot', 'debt_payment')),
    ref             text NOT NULL,
    provider_id     text NOT NULL REFERENCES accounts (id),
    buyer_id        text NOT NULL REFERENCES accounts (id),
    hours_from      timestamptz NOT NULL,
    hours_to        timestamptz NOT NULL CHECK (hours_to > hours_from),
    gpu_hours       bigint NOT NULL CHECK (gpu_hours >= 0),
    lost_gpu_hours  bigint NOT NULL CHECK (lost_gpu_hours >= 0),
    gross           bigint NOT NULL CHECK (gross >= 0),
    fee             bigint NOT NULL CHECK (fee >= 0 AND fee <= gross),
    refund          bigint NOT NULL CHECK (refund >= 0),
    sla_paid        bigint NOT NULL CHECK (sla_paid >= 0),
    sla_debt        bigint NOT NULL CHECK (sla_debt >= 0),
    settled_at      timestamptz NOT NULL
);
CREATE INDEX settlements_at ON settlements (settled_at);
