-- 004_sched: the scheduler's state inside capxd (server/sched.c). Where each contract's, job's
-- and running spot bid's GPUs are, buyers' jobs and their queue, failed nodes and GPUs, the
-- GPU-hours contracts lost to failures, and the seeded failure process. capxd writes these in
-- the same group-commit transaction as the market objects and rebuilds its scheduler from
-- them at start and after a failed commit. No foreign keys to the market tables: rows of one
-- turn are written before that turn's market objects (the same transaction checks nothing in
-- between), and the ids are checked by capxd.

-- GPUs held: one row per (holder, node), gpu_mask bit g = GPU g of the node. A holder is a
-- contract (ctr_), a job (job_, on its contract's GPUs) or a running spot bid (ord_); `host`
-- is the contract whose idle lent GPUs a spot bid runs on (NULL: the pool's unsold GPUs).
CREATE TABLE placements (
    holder_id   text NOT NULL,
    pool_id     text NOT NULL,
    node        int NOT NULL CHECK (node >= 0),
    gpu_mask    int NOT NULL CHECK (gpu_mask > 0),
    host        text,
    PRIMARY KEY (holder_id, node)
);

-- Buyers' jobs inside contracts. `seq` orders the queue (first come, first served).
CREATE TABLE jobs (
    id           text PRIMARY KEY CHECK (id ~ '^job_[a-z2-7]{20}$'),
    seq          bigint NOT NULL UNIQUE CHECK (seq > 0),
    contract_id  text NOT NULL,
    account_id   text NOT NULL,
    gpus         int NOT NULL CHECK (gpus > 0),
    gang         boolean NOT NULL,
    hours        int CHECK (hours > 0),
    status       text NOT NULL CHECK (status IN ('running', 'queued', 'completed', 'stopped',
                                                 'failed')),
    reason       text,
    created_at   timestamptz NOT NULL,
    started_at   timestamptz,
    ended_at     timestamptz
);
CREATE INDEX jobs_contract ON jobs (contract_id, seq);

-- Failed hardware: gpu = -1 is the whole node. repair_at: when the failure process repairs
-- it (NULL: failed by an operator, repaired by an operator).
CREATE TABLE node_health (
    pool_id    text NOT NULL,
    node       int NOT NULL CHECK (node >= 0),
    gpu        int NOT NULL CHECK (gpu >= -1 AND gpu < 16),
    failed_at  timestamptz NOT NULL,
    repair_at  timestamptz,
    PRIMARY KEY (pool_id, node, gpu)
);

-- GPUs of a contract that were not delivered in the hour starting at `hour` (failed and not
-- re-placed). Settlement turns them into refunds.
CREATE TABLE contract_losses (
    contract_id  text NOT NULL,
    hour         timestamptz NOT NULL,
    gpus         int NOT NULL CHECK (gpus > 0),
    PRIMARY KEY (contract_id, hour)
);

-- The seeded failure process: its generator state and the last hour it drew.
CREATE TABLE sched_state (
    one        boolean PRIMARY KEY DEFAULT true CHECK (one),
    rng        bigint NOT NULL,
    last_hour  bigint NOT NULL
);
