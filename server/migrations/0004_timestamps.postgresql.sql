-- Timestamps become TIMESTAMPTZ (they were Unix seconds as DOUBLE PRECISION); the code keeps
-- working in Unix seconds through the {ts} fragment (to_timestamp) and server.db's row conversion.

ALTER TABLE users
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at);

ALTER TABLE api_keys
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at),
        ALTER COLUMN revoked_at TYPE TIMESTAMPTZ USING to_timestamp(revoked_at);

ALTER TABLE artworks
        ALTER COLUMN lease_expires TYPE TIMESTAMPTZ USING to_timestamp(lease_expires),
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at),
        ALTER COLUMN started_at TYPE TIMESTAMPTZ USING to_timestamp(started_at),
        ALTER COLUMN finished_at TYPE TIMESTAMPTZ USING to_timestamp(finished_at),
        ALTER COLUMN claimed_at TYPE TIMESTAMPTZ USING to_timestamp(claimed_at),
        ALTER COLUMN results_expired_at TYPE TIMESTAMPTZ USING to_timestamp(results_expired_at);

ALTER TABLE ledger
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at);

ALTER TABLE idempotency_keys
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at);

ALTER TABLE webhook_events
        ALTER COLUMN next_attempt_at TYPE TIMESTAMPTZ USING to_timestamp(next_attempt_at),
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at),
        ALTER COLUMN delivered_at TYPE TIMESTAMPTZ USING to_timestamp(delivered_at);

ALTER TABLE webhook_attempts
        ALTER COLUMN started_at TYPE TIMESTAMPTZ USING to_timestamp(started_at);

ALTER TABLE processes
        ALTER COLUMN started_at TYPE TIMESTAMPTZ USING to_timestamp(started_at),
        ALTER COLUMN seen_at TYPE TIMESTAMPTZ USING to_timestamp(seen_at);

ALTER TABLE rate_limits
        ALTER COLUMN updated_at TYPE TIMESTAMPTZ USING to_timestamp(updated_at);

ALTER TABLE stored_files
        ALTER COLUMN created_at TYPE TIMESTAMPTZ USING to_timestamp(created_at);
