-- 002_ledger: the double-entry ledger (after TigerBeetle, on PostgreSQL).
--
-- Ledger accounts carry four maintained totals (micro-USD): debits_pending, debits_posted,
-- credits_pending, credits_posted. Transfers are immutable rows; a two-phase transfer is a
-- pending transfer (a hold) that one later transfer posts (fully or partly; the rest is
-- released) or voids, exactly once. Everything that writes money goes through
-- ledger_submit(), one statement per batch; see docs/ledger.md for the model, the result
-- codes and how capx's API balances map onto these accounts.

-- Ledger account ids are text and derived from the owner, so a caller never needs a round
-- trip to learn one: '<capx account id>:cash', '<capx account id>:escrow' for participants,
-- 'capx:fees' and 'capx:world' (the outside world: deposits debit it, payouts credit it).
CREATE TABLE ledger_accounts (
    id               text PRIMARY KEY,
    kind             text NOT NULL, -- cash, escrow, fees, world
    owner            text REFERENCES accounts (id),
    -- 1: debits (pending + posted) must not exceed credits posted;
    -- 2: credits (pending + posted) must not exceed debits posted.
    flags            int NOT NULL DEFAULT 0,
    debits_pending   bigint NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted    bigint NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending  bigint NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted   bigint NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    created_at       timestamptz NOT NULL DEFAULT now(),
    -- The balance rules, checked on every change of a total. debits_pending + debits_posted
    -- <= credits_posted is written so that it cannot overflow (the difference of two
    -- non-negative bigints always fits).
    CHECK (flags & 1 = 0 OR debits_pending <= credits_posted - debits_posted),
    CHECK (flags & 2 = 0 OR credits_pending <= debits_posted - credits_posted)
) WITH (fillfactor = 70); -- room for HOT updates of the balance columns

-- What an account is (id, kind, owner, flags) is checked by a trigger that fires only when one
-- of those columns is written, not on each balance update: PostgreSQL re-reads every CHECK
-- expression of a table for each statement, which a one-transfer batch pays for in full.
CREATE FUNCTION ledger_accounts_shape() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IS NULL OR NEW.kind NOT IN ('cash', 'escrow', 'fees', 'world')
       OR NEW.flags NOT IN (0, 1, 2)
       OR NEW.id IS DISTINCT FROM coalesce(NEW.owner, 'capx') || ':' || NEW.kind
       OR (NEW.owner IS NULL) <> (NEW.kind IN ('fees', 'world'))
       -- a participant's cash and escrow, and the fees, can never go below zero
       OR (NEW.kind IN ('cash', 'escrow', 'fees') AND NEW.flags <> 1) THEN
        RAISE EXCEPTION 'ledger account % (kind %, owner %, flags %) is malformed', NEW.id,
            NEW.kind, NEW.owner, NEW.flags USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER ledger_accounts_shape BEFORE INSERT OR UPDATE OF id, kind, owner, flags
    ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION ledger_accounts_shape();

INSERT INTO ledger_accounts (id, kind, owner, flags) VALUES
    ('capx:world', 'world', NULL, 0),
    ('capx:fees', 'fees', NULL, 1);

-- Transfer flags: 0 posted at once, 1 pending (a hold), 2 posts pending_id, 4 voids pending_id.
-- A post or void carries the pending transfer's accounts; a post's amount is what was posted,
-- a void's amount is the pending amount it released.
CREATE TABLE ledger_transfers (
    seq             bigint GENERATED ALWAYS AS IDENTITY, -- insertion order, the list cursor
    id              text PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 128),
    debit_account   text NOT NULL,
    credit_account  text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    kind            text NOT NULL CHECK (kind ~ '^[a-z_]{1,32}$'),
    ref             text CHECK (length(ref) <= 128),
    flags           smallint NOT NULL CHECK (flags IN (0, 1, 2, 4)),
    pending_id      text,
    expires_at      timestamptz,
    created_at      timestamptz NOT NULL,
    CHECK (debit_account <> credit_account),
    CHECK ((flags IN (2, 4)) = (pending_id IS NOT NULL)),
    CHECK (expires_at IS NULL OR flags = 1)
);
-- A hold is resolved (posted or voided) at most once: the database itself says so.
CREATE UNIQUE INDEX ledger_transfers_resolves ON ledger_transfers (pending_id)
    WHERE pending_id IS NOT NULL;
CREATE INDEX ledger_transfers_debit ON ledger_transfers (debit_account, seq);
CREATE INDEX ledger_transfers_credit ON ledger_transfers (credit_account, seq);
CREATE INDEX ledger_transfers_expiring ON ledger_transfers (expires_at)
    WHERE expires_at IS NOT NULL;

-- Transfers are never updated or deleted; a correction is a new transfer.
CREATE FUNCTION ledger_transfers_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger transfers are immutable (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER ledger_transfers_no_update BEFORE UPDATE OR DELETE ON ledger_transfers
    FOR EACH ROW EXECUTE FUNCTION ledger_transfers_immutable();
CREATE TRIGGER ledger_transfers_no_truncate BEFORE TRUNCATE ON ledger_transfers
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_transfers_immutable();

-- A participant's two ledger accounts; idempotent.
CREATE FUNCTION ledger_open_participant(p_owner text) RETURNS void LANGUAGE sql AS $$
    INSERT INTO ledger_accounts (id, kind, owner, flags)
    VALUES (p_owner || ':cash', 'cash', p_owner, 1), (p_owner || ':escrow', 'escrow', p_owner, 1)
    ON CONFLICT (id) DO NOTHING;
$$;

-- Result codes (ledger/ledger.h enum ledger_result has the same numbers).
--  0 ok                          1 exists                       2 exists_with_different_fields
--  3 exceeds_credits             4 exceeds_debits               5 pending_not_found
--  6 pending_already_resolved    7 pending_expired              8 exceeds_pending_amount
--  9 debit_account_not_found    10 credit_account_not_found    11 accounts_must_be_different
-- 12 invalid_amount             13 invalid_fields              14 pending_accounts_mismatch
-- 15 linked_event_failed        16 overflow

-- Same content as a stored transfer? (the idempotency comparison; created_at is not content)
CREATE FUNCTION ledger_same(e ledger_transfers, p_debit text, p_credit text, p_amount bigint,
                            p_kind text, p_ref text, p_flags int, p_pending text,
                            p_expires timestamptz) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN e.flags = p_flags
       AND e.pending_id IS NOT DISTINCT FROM p_pending
       AND (e.debit_account = p_debit OR (p_debit IS NULL AND p_flags IN (2, 4)))
       AND (e.credit_account = p_credit OR (p_credit IS NULL AND p_flags IN (2, 4)))
       AND (e.amount = p_amount OR (p_amount IS NULL AND p_flags IN (2, 4)))
       AND e.kind = p_kind
       AND e.ref IS NOT DISTINCT FROM p_ref
       AND e.expires_at IS NOT DISTINCT FROM p_expires;
END $$;

-- One transfer, validated and applied on its own: the sequential path of ledger_submit.
-- The caller holds the row locks of every account involved. Returns the result code; only
-- a 0 changed anything.
CREATE FUNCTION ledger_apply_one(p_id text, p_debit text, p_credit text, p_amount bigint,
                                 p_kind text, p_ref text, p_flags int, p_pending text,
                                 p_expires timestamptz, p_ts timestamptz) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    e ledger_transfers;
    p ledger_transfers;
    ad ledger_accounts;
    ac ledger_accounts;
    dr text := p_debit;
    cr text := p_credit;
    amt bigint := p_amount;
    released bigint := 0; -- the pending amount a post or void takes off the pending totals
    big numeric := 9223372036854775807;
BEGIN
    SELECT * INTO e FROM ledger_transfers t WHERE t.id = p_id;
    IF FOUND THEN
        RETURN CASE WHEN ledger_same(e, p_debit, p_credit, p_amount, p_kind, p_ref, p_flags,
                                     p_pending, p_expires) THEN 1 ELSE 2 END;
    END IF;
    IF p_id IS NULL OR length(p_id) NOT BETWEEN 1 AND 128 OR p_kind IS NULL
       OR p_kind !~ '^[a-z_]{1,32}$' OR length(p_ref) > 128 OR p_flags IS NULL
       OR p_flags NOT IN (0, 1, 2, 4)
       OR (p_flags IN (0, 1) AND (p_pending IS NOT NULL OR p_debit IS NULL OR p_credit IS NULL))
       OR (p_flags IN (2, 4) AND p_pending IS NULL)
       OR (p_expires IS NOT NULL AND p_flags <> 1) THEN
        RETURN 13;
    END IF;
    IF (p_flags IN (0, 1) AND (p_amount IS NULL OR p_amount <= 0)) OR p_amount <= 0 THEN
        RETURN 12;
    END IF;
    IF p_flags IN (2, 4) THEN
        SELECT * INTO p FROM ledger_transfers t WHERE t.id = p_pending;
        IF NOT FOUND OR p.flags <> 1 THEN
            RETURN 5;
        END IF;
        IF (p_debit IS NOT NULL AND p_debit <> p.debit_account)
           OR (p_credit IS NOT NULL AND p_credit <> p.credit_account) THEN
            RETURN 14;
        END IF;
        IF EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p_pending) THEN
            RETURN 6;
        END IF;
        IF p_flags = 2 AND p.expires_at IS NOT NULL AND p.expires_at <= p_ts THEN
            RETURN 7;
        END IF;
        IF p_amount > p.amount OR (p_flags = 4 AND p_amount <> p.amount) THEN
            RETURN 8;
        END IF;
        dr := p.debit_account;
        cr := p.credit_account;
        amt := coalesce(p_amount, p.amount);
        released := p.amount;
    END IF;
    IF dr = cr THEN
        RETURN 11;
    END IF;
    -- Row locks in id order, like every other path (a lone transfer comes here unlocked).
    IF dr < cr THEN
        SELECT * INTO ad FROM ledger_accounts a WHERE a.id = dr FOR NO KEY UPDATE;
        SELECT * INTO ac FROM ledger_accounts a WHERE a.id = cr FOR NO KEY UPDATE;
    ELSE
        SELECT * INTO ac FROM ledger_accounts a WHERE a.id = cr FOR NO KEY UPDATE;
        SELECT * INTO ad FROM ledger_accounts a WHERE a.id = dr FOR NO KEY UPDATE;
    END IF;
    IF ad.id IS NULL THEN
        RETURN 9;
    END IF;
    IF ac.id IS NULL THEN
        RETURN 10;
    END IF;
    -- Under the locks, with a fresh snapshot: a concurrent writer may have committed this id
    -- or a resolution of this hold while we waited (then report it, instead of failing the
    -- statement on the unique index).
    SELECT * INTO e FROM ledger_transfers t WHERE t.id = p_id;
    IF FOUND THEN
        RETURN CASE WHEN ledger_same(e, p_debit, p_credit, p_amount, p_kind, p_ref, p_flags,
                                     p_pending, p_expires) THEN 1 ELSE 2 END;
    END IF;
    IF p_flags IN (2, 4)
       AND EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p_pending) THEN
        RETURN 6;
    END IF;
    IF p_flags IN (0, 1) THEN
        IF ad.flags & 1 <> 0
           AND ad.debits_pending::numeric + ad.debits_posted + amt > ad.credits_posted THEN
            RETURN 3;
        END IF;
        IF ac.flags & 2 <> 0
           AND ac.credits_pending::numeric + ac.credits_posted + amt > ac.debits_posted THEN
            RETURN 4;
        END IF;
        IF greatest(ad.debits_pending, ad.debits_posted)::numeric + amt > big
           OR greatest(ac.credits_pending, ac.credits_posted)::numeric + amt > big THEN
            RETURN 16;
        END IF;
    ELSIF p_flags = 2 AND (ad.debits_posted::numeric + amt > big
                           OR ac.credits_posted::numeric + amt > big) THEN
        RETURN 16;
    END IF;
    UPDATE ledger_accounts a
       SET debits_pending = a.debits_pending + CASE p_flags WHEN 1 THEN amt WHEN 0 THEN 0
                                                            ELSE -released END,
           debits_posted = a.debits_posted + CASE WHEN p_flags IN (0, 2) THEN amt ELSE 0 END
     WHERE a.id = dr;
    UPDATE ledger_accounts a
       SET credits_pending = a.credits_pending + CASE p_flags WHEN 1 THEN amt WHEN 0 THEN 0
                                                              ELSE -released END,
           credits_posted = a.credits_posted + CASE WHEN p_flags IN (0, 2) THEN amt ELSE 0 END
     WHERE a.id = cr;
    INSERT INTO ledger_transfers (id, debit_account, credit_account, amount, kind, ref, flags,
                                  pending_id, expires_at, created_at)
    VALUES (p_id, dr, cr, CASE WHEN p_flags = 4 THEN released ELSE amt END, p_kind, p_ref,
            p_flags, p_pending, p_expires, p_ts);
    RETURN 0;
END $$;

-- ledger_submit: a batch of transfers in one statement. Arrays are parallel, one element
-- per transfer; p_chain groups contiguous transfers that succeed or fail together (0: none);
-- p_expires and p_ts are Unix seconds (NULL: none / the database's clock).
-- Returns a row (idx 1-based, result) for each transfer whose result is not 0; no row means
-- every transfer was applied. Per-transfer failures never raise: the caller's transaction
-- stays usable. It raises only when the batch as a whole cannot run (malformed arrays, a
-- serialization failure or deadlock, a constraint the checks above missed).
--
-- How: lock every account involved, in id order (so concurrent batches cannot deadlock on
-- each other), reading their balances. Then the fast path: one set-based query validates
-- every transfer on its own and, per account, checks that the batch fits even if every
-- debit came before every credit (then the batch order cannot matter: each prefix fits);
-- when every transfer is ok or an exact retry, one INSERT adds the transfers and one UPDATE
-- changes each account once. Any other outcome (a refusal, an account the batch brings near
-- its limit, a duplicate id or a second resolution of one hold inside the batch, a hold
-- posted in the batch that created it) takes the sequential path, transfer by transfer in
-- batch order, chains in subtransactions: exactly TigerBeetle's semantics.
CREATE FUNCTION ledger_submit(p_id text[], p_debit text[], p_credit text[], p_amount bigint[],
                              p_kind text[], p_ref text[], p_flags int[], p_pending text[],
                              p_expires bigint[], p_chain int[], p_ts bigint DEFAULT NULL)
RETURNS TABLE (idx int, result int)
LANGUAGE plpgsql
-- A batch touches a few rows of large tables: always by index (the planner would otherwise
-- hash whole tables while they are small).
SET enable_seqscan = off
-- The accounts are updated (and so locked) in the order of the sorted id array: never
-- through a hash or a merge over the whole table.
SET enable_hashjoin = off
SET enable_mergejoin = off
-- Plans are made once per session and reused whatever the batch size: with nested loops
-- only (above), a generic plan is linear in the batch, and planning the validation query for
-- each call would cost more than running it for small batches.
SET plan_cache_mode = force_generic_plan
-- Big batches have big cost estimates, which would trigger JIT compilation: 0.1-1 s spent
-- compiling a query that runs in milliseconds.
SET jit = off
AS $$
DECLARE
    n int := coalesce(cardinality(p_id), 0);
    ts timestamptz := coalesce(to_timestamp(p_ts), now());
    exp timestamptz[];
    res int[];
    rdr text[];
    rcr text[];
    ramt bigint[];
    fast boolean;
    rel bigint[];
    k int;
    s int;
    failed int;
    all_exist boolean;
    accts text[];
    n_upd bigint;
    n_near bigint;
BEGIN
    IF n = 0 THEN
        RETURN;
    END IF;
    IF coalesce(cardinality(p_debit), 0) <> n OR coalesce(cardinality(p_credit), 0) <> n
       OR coalesce(cardinality(p_amount), 0) <> n OR coalesce(cardinality(p_kind), 0) <> n
       OR coalesce(cardinality(p_ref), 0) <> n OR coalesce(cardinality(p_flags), 0) <> n
       OR coalesce(cardinality(p_pending), 0) <> n OR coalesce(cardinality(p_expires), 0) <> n
       OR coalesce(cardinality(p_chain), 0) <> n THEN
        RAISE EXCEPTION 'ledger_submit: the arrays must all have % elements', n
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF cardinality(array_remove(p_expires, NULL)) = 0 THEN -- no expiry (a simple expression)
        exp := array_fill(NULL::timestamptz, ARRAY[n]);
    ELSE
        SELECT array_agg(CASE WHEN x IS NULL THEN NULL ELSE to_timestamp(x) END ORDER BY o)
          INTO exp FROM unnest(p_expires) WITH ORDINALITY AS u(x, o);
    END IF;

    -- A single transfer takes the sequential path: its few simple statements cost less than
    -- the set-based ones.
    fast := n > 1;

    -- Fast path: validate the whole batch in one query.
    IF fast THEN
    WITH b AS (
        SELECT u.o::int AS i, u.id, u.dr, u.cr, u.amt, u.kind, u.ref, u.fl, u.pid, u.ex,
               coalesce(u.ch, 0) AS ch
          FROM unnest(p_id, p_debit, p_credit, p_amount, p_kind, p_ref, p_flags, p_pending, exp,
                      p_chain) WITH ORDINALITY AS u(id, dr, cr, amt, kind, ref, fl, pid, ex, ch, o)
    ), x AS ( -- one index probe each (OFFSET 0 keeps them probes, not a merge over the index)
        -- A post or void of a hold created earlier in this batch (an order held and filled in
        -- one turn of capxd's loop) finds it in the arrays; the sequential path is not needed
        -- for that. Only such rows pay array_position's scan.
        SELECT b.*, e.e_row, e.e_id IS NOT NULL AS e_found,
               p.p_fl IS NOT NULL OR q.j < b.i AS p_found,
               coalesce(p.p_fl, CASE WHEN q.j < b.i THEN p_flags[q.j] END) AS p_fl,
               coalesce(p.p_dr, CASE WHEN q.j < b.i THEN p_debit[q.j] END) AS p_dr,
               coalesce(p.p_cr, CASE WHEN q.j < b.i THEN p_credit[q.j] END) AS p_cr,
               coalesce(p.p_amt, CASE WHEN q.j < b.i THEN p_amount[q.j] END) AS p_amt,
               CASE WHEN p.p_fl IS NOT NULL THEN p.p_exp WHEN q.j < b.i THEN exp[q.j] END AS p_exp,
               coalesce(p.p_resolved, false) AS p_resolved
          FROM b
          LEFT JOIN LATERAL (SELECT t AS e_row, t.id AS e_id FROM ledger_transfers t
                              WHERE t.id = b.id OFFSET 0) e ON true
          LEFT JOIN LATERAL (SELECT t.flags AS p_fl, t.debit_account AS p_dr,
                                    t.credit_account AS p_cr, t.amount AS p_amt,
                                    t.expires_at AS p_exp,
                                    EXISTS (SELECT 1 FROM ledger_transfers r
                                             WHERE r.pending_id = t.id) AS p_resolved
                               FROM ledger_transfers t
                              WHERE b.fl IN (2, 4) AND t.id = b.pid OFFSET 0) p ON true
          LEFT JOIN LATERAL (SELECT array_position(p_id, b.pid)::int AS j
                              WHERE b.fl IN (2, 4) AND p.p_fl IS NULL OFFSET 0) q ON true
    ), c AS (
        SELECT x.i, x.ch, x.fl,
               coalesce(x.dr, x.p_dr) AS rdr, coalesce(x.cr, x.p_cr) AS rcr,
               CASE WHEN x.fl = 2 THEN coalesce(x.amt, x.p_amt) WHEN x.fl = 4 THEN x.p_amt
                    ELSE x.amt END AS ramt,
               CASE WHEN x.fl IN (2, 4) THEN x.p_amt ELSE 0 END AS rel,
               CASE
                 WHEN x.e_found THEN
                   CASE WHEN ledger_same(x.e_row, x.dr, x.cr, x.amt, x.kind, x.ref, x.fl, x.pid,
                                         x.ex) THEN 1 ELSE 2 END
                 -- (a malformed kind is left to the table's CHECK: the INSERT fails, and the
                 -- sequential path names it; a regular expression per row costs 4 % here)
                 WHEN x.id IS NULL OR length(x.id) NOT BETWEEN 1 AND 128 OR x.kind IS NULL
                      OR length(x.ref) > 128 OR x.fl IS NULL
                      OR x.fl NOT IN (0, 1, 2, 4)
                      OR (x.fl IN (0, 1) AND (x.pid IS NOT NULL OR x.dr IS NULL OR x.cr IS NULL))
                      OR (x.fl IN (2, 4) AND x.pid IS NULL)
                      OR (x.ex IS NOT NULL AND x.fl <> 1) THEN 13
                 WHEN (x.fl IN (0, 1) AND (x.amt IS NULL OR x.amt <= 0)) OR x.amt <= 0 THEN 12
                 WHEN x.fl IN (2, 4) AND (NOT x.p_found OR x.p_fl <> 1) THEN 5
                 WHEN x.fl IN (2, 4) AND ((x.dr IS NOT NULL AND x.dr <> x.p_dr)
                                          OR (x.cr IS NOT NULL AND x.cr <> x.p_cr)) THEN 14
                 WHEN x.p_resolved THEN 6
                 WHEN x.fl = 2 AND x.p_exp IS NOT NULL AND x.p_exp <= ts THEN 7
                 WHEN x.amt > x.p_amt OR (x.fl = 4 AND x.amt <> x.p_amt) THEN 8
                 WHEN x.fl IN (0, 1) AND x.dr = x.cr THEN 11
                 ELSE 0
               END AS r0
          FROM x
    ), c2 AS (
        SELECT c.i, c.ch, c.fl, c.rdr, c.rcr, c.ramt, c.rel, c.r0 FROM c
    )
    SELECT array_agg(c.r0), array_agg(c.rdr), array_agg(c.rcr), array_agg(c.ramt),
           array_agg(c.rel),
           bool_and(c.r0 IN (0, 1, 2))
           AND NOT EXISTS (SELECT 1 FROM c2 h WHERE h.ch <> 0 GROUP BY h.ch
                            HAVING bool_or(h.r0 = 0) AND bool_or(h.r0 <> 0))
           -- a transfer id, or a hold to resolve, twice in the batch: the sequential path
           AND (SELECT count(DISTINCT x) = n FROM unnest(p_id) x)
           AND (SELECT count(x) = count(DISTINCT x) FROM unnest(p_pending) x)
      INTO res, rdr, rcr, ramt, rel, fast
      FROM (SELECT * FROM c2 ORDER BY c2.i) c;
    END IF;

    -- Apply: each account updated once, in id order (its row lock taken there), then the
    -- transfers inserted. Should an account be missing, the batch bring one near its limit,
    -- a constraint object or a concurrent writer have taken an id or resolved a hold since
    -- the validation read, all of it is undone and the sequential path decides.
    IF fast THEN
        BEGIN
            WITH v AS ( -- what each applied transfer adds to each side's totals
                SELECT u.dr AS acct,
                       CASE u.fl WHEN 1 THEN u.amt WHEN 0 THEN 0 ELSE -u.rel END AS dpend,
                       CASE WHEN u.fl IN (0, 2) THEN u.amt ELSE 0 END AS dpost,
                       0::bigint AS cpend, 0::bigint AS cpost,
                       CASE WHEN u.fl IN (0, 1) THEN u.amt ELSE 0 END AS dgrow, 0::bigint AS cgrow
                  FROM unnest(rdr, ramt, rel, p_flags, res) AS u(dr, amt, rel, fl, r)
                 WHERE u.r = 0
                UNION ALL
                SELECT u.cr, 0, 0,
                       CASE u.fl WHEN 1 THEN u.amt WHEN 0 THEN 0 ELSE -u.rel END,
                       CASE WHEN u.fl IN (0, 2) THEN u.amt ELSE 0 END,
                       0, CASE WHEN u.fl IN (0, 1) THEN u.amt ELSE 0 END
                  FROM unnest(rcr, ramt, rel, p_flags, res) AS u(cr, amt, rel, fl, r)
                 WHERE u.r = 0
            ), g AS ( -- per account, in id order: the net change, how much each limit can grow
                SELECT v.acct, sum(v.dpend)::bigint AS dpend, sum(v.dpost)::bigint AS dpost,
                       sum(v.cpend)::bigint AS cpend, sum(v.cpost)::bigint AS cpost,
                       sum(v.dgrow) AS dgrow, sum(v.cgrow) AS cgrow
                  FROM v GROUP BY v.acct ORDER BY v.acct
            ), upd AS (
                UPDATE ledger_accounts a
                   SET debits_pending = a.debits_pending + g.dpend,
                       debits_posted = a.debits_posted + g.dpost,
                       credits_pending = a.credits_pending + g.cpend,
                       credits_posted = a.credits_posted + g.cpost
                  FROM g
                 WHERE a.id = g.acct
             RETURNING a.flags, a.debits_pending - g.dpend AS dpend,
                       a.debits_posted - g.dpost AS dpost, a.credits_pending - g.cpend AS cpend,
                       a.credits_posted - g.cpost AS cpost, g.dgrow, g.cgrow
            )
            SELECT count(*) - (SELECT count(*) FROM g),
                   count(*) FILTER (
                     WHERE (flags & 1 <> 0 AND dpend::numeric + dpost - cpost + dgrow > 0)
                        OR (flags & 2 <> 0 AND cpend::numeric + cpost - dpost + cgrow > 0)
                        OR dpend::numeric + dgrow > 9223372036854775807
                        OR dpost::numeric + dgrow > 9223372036854775807
                        OR cpend::numeric + cgrow > 9223372036854775807
                        OR cpost::numeric + cgrow > 9223372036854775807)
              INTO n_upd, n_near
              FROM upd;
            IF n_upd <> 0 OR n_near > 0 THEN -- an account missing, or one near its limit
                RAISE EXCEPTION USING ERRCODE = 'P0L02';
            END IF;
            INSERT INTO ledger_transfers (id, debit_account, credit_account, amount, kind, ref,
                                          flags, pending_id, expires_at, created_at)
            SELECT u.id, u.dr, u.cr, u.amt, u.kind, u.ref, u.fl, u.pid, u.ex, ts
              FROM unnest(p_id, rdr, rcr, ramt, p_kind, p_ref, p_flags, p_pending, exp, res)
                   AS u(id, dr, cr, amt, kind, ref, fl, pid, ex, r)
             WHERE u.r = 0;
        EXCEPTION WHEN SQLSTATE 'P0L02' OR check_violation OR unique_violation
                       OR numeric_value_out_of_range THEN
            fast := false;
        END;
        IF fast THEN
            RETURN QUERY SELECT u.o::int, u.r FROM unnest(res) WITH ORDINALITY AS u(r, o)
                          WHERE u.r <> 0;
            RETURN;
        END IF;
    END IF;

    -- Sequential path: lock every account the batch touches, in id order, first (a lone
    -- transfer takes its two locks in order itself).
    IF n > 1 THEN
    SELECT array_agg(DISTINCT v.x) INTO accts
      FROM (SELECT unnest(p_debit || p_credit) AS x
            UNION ALL
            SELECT unnest(ARRAY[t.debit_account, t.credit_account])
              FROM ledger_transfers t WHERE t.id = ANY (p_pending)) v
     WHERE v.x IS NOT NULL;
    PERFORM 1 FROM ledger_accounts a WHERE a.id = ANY (accts) ORDER BY a.id FOR NO KEY UPDATE;
    END IF;

    k := 1;
    WHILE k <= n LOOP
        IF coalesce(p_chain[k], 0) = 0 THEN
            res[k] := ledger_apply_one(p_id[k], p_debit[k], p_credit[k], p_amount[k], p_kind[k],
                                       p_ref[k], p_flags[k], p_pending[k], exp[k], ts);
            k := k + 1;
            CONTINUE;
        END IF;
        s := k; -- a chain: k .. the last contiguous transfer with the same chain id
        failed := 0;
        BEGIN
            WHILE k <= n AND p_chain[k] IS NOT DISTINCT FROM p_chain[s] LOOP
                res[k] := ledger_apply_one(p_id[k], p_debit[k], p_credit[k], p_amount[k],
                                           p_kind[k], p_ref[k], p_flags[k], p_pending[k],
                                           exp[k], ts);
                IF res[k] <> 0 AND failed = 0 THEN
                    failed := k;
                END IF;
                k := k + 1;
            END LOOP;
            IF failed <> 0 THEN
                RAISE EXCEPTION USING ERRCODE = 'P0L01'; -- undo the chain
            END IF;
        EXCEPTION WHEN SQLSTATE 'P0L01' THEN
            -- An exact retry of a whole chain reports exists for each; any other failure
            -- fails the chain, each other member reporting linked_event_failed.
            all_exist := true;
            FOR j IN s .. k - 1 LOOP
                IF res[j] <> 1 THEN
                    all_exist := false;
                END IF;
            END LOOP;
            IF NOT all_exist THEN
                FOR j IN s .. k - 1 LOOP
                    IF j <> failed THEN
                        res[j] := 15;
                    END IF;
                END LOOP;
            END IF;
        END;
    END LOOP;
    RETURN QUERY SELECT u.o::int, u.r FROM unnest(res) WITH ORDINALITY AS u(r, o)
                  WHERE u.r <> 0;
END $$;

-- Voids every hold whose expiry is at or before p_now (Unix seconds; NULL: the database's
-- clock), at most p_limit of them, each by a transfer with id 'expire:<hold id>' and kind
-- 'expiry'. Returns how many it voided.
CREATE FUNCTION ledger_expire(p_now bigint DEFAULT NULL, p_limit int DEFAULT 10000)
RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    ids text[];
    m int;
    bad int;
BEGIN
    SELECT array_agg(t.id ORDER BY t.expires_at, t.id) INTO ids
      FROM (SELECT p.id, p.expires_at FROM ledger_transfers p
             WHERE p.expires_at <= coalesce(to_timestamp(p_now), now())
               AND NOT EXISTS (SELECT 1 FROM ledger_transfers r WHERE r.pending_id = p.id)
             ORDER BY p.expires_at, p.id LIMIT p_limit) t;
    m := coalesce(cardinality(ids), 0);
    IF m = 0 THEN
        RETURN 0;
    END IF;
    SELECT count(*) INTO bad
      FROM ledger_submit(array(SELECT 'expire:' || x FROM unnest(ids) x),
                         array_fill(NULL::text, ARRAY[m]), array_fill(NULL::text, ARRAY[m]),
                         array_fill(NULL::bigint, ARRAY[m]), array_fill('expiry'::text, ARRAY[m]),
                         array_fill(NULL::text, ARRAY[m]), array_fill(4, ARRAY[m]), ids,
                         array_fill(NULL::bigint, ARRAY[m]), array_fill(0, ARRAY[m]), p_now);
    RETURN m - bad;
END $$;

-- Recomputes every balance from the transfers and checks the money invariants of api.md;
-- one row per violation (none: the ledger is sound). See docs/ledger.md.
CREATE FUNCTION ledger_check() RETURNS TABLE (code text, account text, detail text)
LANGUAGE sql STABLE AS $$
    WITH eff AS ( -- what each transfer does to the totals (posts and voids release their hold)
        SELECT t.debit_account AS acct,
               CASE WHEN t.flags = 1 AND r.id IS NULL THEN t.amount ELSE 0 END AS dpend,
               CASE WHEN t.flags IN (0, 2) THEN t.amount ELSE 0 END AS dpost,
               0::bigint AS cpend, 0::bigint AS cpost
          FROM ledger_transfers t LEFT JOIN ledger_transfers r ON r.pending_id = t.id
        UNION ALL
        SELECT t.credit_account, 0, 0,
               CASE WHEN t.flags = 1 AND r.id IS NULL THEN t.amount ELSE 0 END,
               CASE WHEN t.flags IN (0, 2) THEN t.amount ELSE 0 END
          FROM ledger_transfers t LEFT JOIN ledger_transfers r ON r.pending_id = t.id
    ), re AS (
        SELECT acct, sum(dpend) AS dpend, sum(dpost) AS dpost, sum(cpend) AS cpend,
               sum(cpost) AS cpost
          FROM eff GROUP BY acct
    ), cmp AS (
        SELECT coalesce(a.id, re.acct) AS acct, a.id IS NULL AS unknown,
               coalesce(a.debits_pending, 0) AS m_dpend, coalesce(a.debits_posted, 0) AS m_dpost,
               coalesce(a.credits_pending, 0) AS m_cpend, coalesce(a.credits_posted, 0) AS m_cpost,
               coalesce(re.dpend, 0) AS dpend, coalesce(re.dpost, 0) AS dpost,
               coalesce(re.cpend, 0) AS cpend, coalesce(re.cpost, 0) AS cpost
          FROM ledger_accounts a FULL JOIN re ON re.acct = a.id
    ), part AS ( -- participants' balances as the API shows them, maintained and recomputed
        SELECT a.owner,
               sum(CASE WHEN a.kind = 'cash' THEN a.credits_posted::numeric - a.debits_posted
                                                  - a.debits_pending ELSE 0 END) AS available,
               sum(CASE WHEN a.kind = 'cash' THEN a.debits_pending::numeric
                        ELSE a.credits_posted::numeric - a.debits_posted END) AS held
          FROM ledger_accounts a WHERE a.owner IS NOT NULL GROUP BY a.owner
    ), flows AS ( -- money that crossed each participant's boundary, from the transfers
        SELECT o.owner, sum(o.delta) AS net
          FROM (SELECT ad.owner, -t.amount::numeric AS delta
                  FROM ledger_transfers t
                  JOIN ledger_accounts ad ON ad.id = t.debit_account
                  LEFT JOIN ledger_accounts ac ON ac.id = t.credit_account
                 WHERE t.flags IN (0, 2) AND ad.owner IS NOT NULL
                   AND ac.owner IS DISTINCT FROM ad.owner
                UNION ALL
                SELECT ac.owner, t.amount::numeric
                  FROM ledger_transfers t
                  JOIN ledger_accounts ac ON ac.id = t.credit_account
                  LEFT JOIN ledger_accounts ad ON ad.id = t.debit_account
                 WHERE t.flags IN (0, 2) AND ac.owner IS NOT NULL
                   AND ad.owner IS DISTINCT FROM ac.owner) o
         GROUP BY o.owner
    ), holds AS ( -- per participant: unreleased holds on its cash, posted net of its escrow
        SELECT a.owner, sum(CASE WHEN a.kind = 'cash' THEN re.dpend ELSE 0 END) AS pending,
               sum(CASE WHEN a.kind = 'escrow' THEN re.cpost - re.dpost ELSE 0 END) AS escrow
          FROM re JOIN ledger_accounts a ON a.id = re.acct
         WHERE a.owner IS NOT NULL
         GROUP BY a.owner
    )
    -- 1. every transfer moves one amount between two accounts: debits = credits
    SELECT 'unbalanced', NULL,
           format('sum of debits posted %s, of credits posted %s; pending %s / %s',
                  sum(m_dpost), sum(m_cpost), sum(m_dpend), sum(m_cpend))
      FROM cmp HAVING sum(m_dpost) <> sum(m_cpost) OR sum(m_dpend) <> sum(m_cpend)
    UNION ALL
    SELECT 'unknown_account', acct, 'transfers name a ledger account that does not exist'
      FROM cmp WHERE unknown
    UNION ALL
    SELECT 'recompute_mismatch', acct,
           format('maintained dpend=%s dpost=%s cpend=%s cpost=%s, recomputed %s %s %s %s',
                  m_dpend, m_dpost, m_cpend, m_cpost, dpend, dpost, cpend, cpost)
      FROM cmp
     WHERE NOT unknown AND (m_dpend <> dpend OR m_dpost <> dpost OR m_cpend <> cpend
                            OR m_cpost <> cpost)
    UNION ALL
    SELECT 'debits_exceed_credits', a.id,
           format('debits %s + %s > credits posted %s', a.debits_pending, a.debits_posted,
                  a.credits_posted)
      FROM ledger_accounts a
     WHERE a.flags & 1 <> 0 AND a.debits_pending::numeric + a.debits_posted > a.credits_posted
    UNION ALL
    SELECT 'credits_exceed_debits', a.id,
           format('credits %s + %s > debits posted %s', a.credits_pending, a.credits_posted,
                  a.debits_posted)
      FROM ledger_accounts a
     WHERE a.flags & 2 <> 0 AND a.credits_pending::numeric + a.credits_posted > a.debits_posted
    -- 2. no participant's available or held below zero
    UNION ALL
    SELECT 'negative_available', p.owner, format('available %s', p.available)
      FROM part p WHERE p.available < 0
    UNION ALL
    SELECT 'negative_held', p.owner, format('held %s', p.held) FROM part p WHERE p.held < 0
    -- 3. available + held = deposits + received - paid - payouts
    UNION ALL
    SELECT 'participant_equation', p.owner,
           format('available %s + held %s <> net inflow %s', p.available, p.held,
                  coalesce(f.net, 0))
      FROM part p LEFT JOIN flows f ON f.owner = p.owner
     WHERE p.available + p.held <> coalesce(f.net, 0)
    -- 4. held = the unreleased holds + what sits in escrow, both recomputed from transfers
    UNION ALL
    SELECT 'held_mismatch', p.owner,
           format('held %s <> unreleased holds %s + escrow %s', p.held, coalesce(h.pending, 0),
                  coalesce(h.escrow, 0))
      FROM part p LEFT JOIN holds h ON h.owner = p.owner
     WHERE p.held <> coalesce(h.pending, 0) + coalesce(h.escrow, 0)
    -- holds: each resolved once (a unique index), by a transfer of the same accounts
    UNION ALL
    SELECT 'bad_resolution', r.id,
           format('resolves %s: %s', r.pending_id,
                  CASE WHEN p.id IS NULL THEN 'no such transfer'
                       WHEN p.flags <> 1 THEN 'not a pending transfer'
                       WHEN p.debit_account <> r.debit_account
                            OR p.credit_account <> r.credit_account THEN 'different accounts'
                       ELSE 'amount above the hold' END)
      FROM ledger_transfers r LEFT JOIN ledger_transfers p ON p.id = r.pending_id
     WHERE r.pending_id IS NOT NULL
       AND (p.id IS NULL OR p.flags <> 1 OR p.debit_account <> r.debit_account
            OR p.credit_account <> r.credit_account OR r.amount > p.amount
            OR (r.flags = 4 AND r.amount <> p.amount))
    -- 5. transfers are never updated or deleted: the guard triggers are in place
    UNION ALL
    SELECT 'transfers_mutable', NULL, 'trigger ' || g.name || ' is missing or disabled'
      FROM (VALUES ('ledger_transfers_no_update'), ('ledger_transfers_no_truncate')) g(name)
     WHERE NOT EXISTS (SELECT 1 FROM pg_trigger tg
                        WHERE tg.tgrelid = 'ledger_transfers'::regclass
                          AND tg.tgname = g.name AND tg.tgenabled <> 'D')
$$;
