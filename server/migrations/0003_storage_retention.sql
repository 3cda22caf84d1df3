-- Results (and a processing job's picture) in the database, for deployments without shared files.
CREATE TABLE stored_files (
        artwork_id TEXT NOT NULL REFERENCES artworks(id),
        name TEXT NOT NULL,
        data {blob} NOT NULL,
        created_at {real} NOT NULL,
        PRIMARY KEY (artwork_id, name));

-- When the results of a succeeded artwork were removed at the end of the retention period.
ALTER TABLE artworks ADD COLUMN results_expired_at {real};

CREATE INDEX artworks_retention ON artworks (finished_at) WHERE status = 'succeeded' AND results_expired_at IS NULL;
