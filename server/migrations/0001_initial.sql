-- The first schema (what server/schema.py created before migrations existed): IF NOT EXISTS, so
-- a database made by that version is adopted as it is.
-- The ledger is append-only: every change of a balance is one ledger row written in the same
-- transaction, so SUM(ledger.delta) = balances.tokens for every user (`admin reconcile` checks it).
-- UNIQUE (artwork_id, kind) makes "one charge and at most one refund per artwork" structural.

CREATE TABLE IF NOT EXISTS users (
        id {pk},
        name TEXT NOT NULL UNIQUE,
        webhook_secret TEXT NOT NULL,
        created_at {real} NOT NULL);

CREATE TABLE IF NOT EXISTS api_keys (
        id {pk},
        user_id BIGINT NOT NULL REFERENCES users(id),
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        created_at {real} NOT NULL,
        revoked_at {real});

CREATE TABLE IF NOT EXISTS balances (
        user_id BIGINT PRIMARY KEY REFERENCES users(id),
        tokens BIGINT NOT NULL CHECK (tokens >= 0));

CREATE TABLE IF NOT EXISTS artworks (
        id TEXT PRIMARY KEY,
        user_id BIGINT NOT NULL REFERENCES users(id),
        status TEXT NOT NULL,
        parameters TEXT NOT NULL,
        model_id TEXT NOT NULL,
        cost BIGINT NOT NULL,
        webhook TEXT,
        results TEXT NOT NULL DEFAULT '[]',
        error TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_expires {real},
        created_at {real} NOT NULL,
        started_at {real},
        finished_at {real});

CREATE INDEX IF NOT EXISTS artworks_queue ON artworks (status, created_at);

CREATE INDEX IF NOT EXISTS artworks_owner ON artworks (user_id, created_at);

CREATE TABLE IF NOT EXISTS artwork_inputs (
        artwork_id TEXT PRIMARY KEY REFERENCES artworks(id),
        data {blob} NOT NULL);

CREATE TABLE IF NOT EXISTS ledger (
        id {pk},
        user_id BIGINT NOT NULL REFERENCES users(id),
        delta BIGINT NOT NULL,
        kind TEXT NOT NULL,
        artwork_id TEXT REFERENCES artworks(id),
        note TEXT NOT NULL DEFAULT '',
        balance_after BIGINT NOT NULL,
        created_at {real} NOT NULL,
        UNIQUE (artwork_id, kind));

CREATE INDEX IF NOT EXISTS ledger_user ON ledger (user_id, id);

CREATE TABLE IF NOT EXISTS idempotency_keys (
        user_id BIGINT NOT NULL REFERENCES users(id),
        key TEXT NOT NULL,
        request_hash TEXT NOT NULL,
        artwork_id TEXT NOT NULL,  -- claimed before the artwork row exists, in the same transaction
        created_at {real} NOT NULL,
        PRIMARY KEY (user_id, key));
