-- Failed artworks name a stable error code; each claim records when it began (the time limit).
ALTER TABLE artworks ADD COLUMN error_code TEXT;

ALTER TABLE artworks ADD COLUMN claimed_at {real};

-- The queue and the reaper read only these rows: partial indexes keep them small.
CREATE INDEX artworks_waiting ON artworks (created_at) WHERE status = 'starting';

CREATE INDEX artworks_leased ON artworks (lease_expires) WHERE status = 'processing';

-- The purge of expired Idempotency-Keys.
CREATE INDEX idempotency_keys_age ON idempotency_keys (created_at);

-- The webhook outbox (server/outbox.py): one event per artwork final state, written in its transaction.
CREATE TABLE webhook_events (
        id TEXT PRIMARY KEY,
        artwork_id TEXT NOT NULL REFERENCES artworks(id),
        user_id BIGINT NOT NULL REFERENCES users(id),
        event_type TEXT NOT NULL,
        url TEXT NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at {real} NOT NULL,
        claimed_by TEXT,
        last_status INTEGER,
        last_error TEXT,
        created_at {real} NOT NULL,
        delivered_at {real});

CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE status = 'pending';

CREATE TABLE webhook_attempts (
        id {pk},
        event_id TEXT NOT NULL REFERENCES webhook_events(id),
        attempt INTEGER NOT NULL,
        worker TEXT NOT NULL,
        started_at {real} NOT NULL,
        seconds {real} NOT NULL,
        http_status INTEGER,
        error TEXT);

CREATE INDEX webhook_attempts_event ON webhook_attempts (event_id, id);

-- Running processes (API and workers): who may hold leases, and whether anyone takes jobs at all.
CREATE TABLE processes (
        name TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        threads INTEGER NOT NULL,
        started_at {real} NOT NULL,
        seen_at {real} NOT NULL);

-- Token buckets of the per-key submission rate limit, shared by every API process.
CREATE TABLE rate_limits (
        bucket TEXT PRIMARY KEY,
        tokens {real} NOT NULL,
        updated_at {real} NOT NULL);
