-- dripgate ledger, version 4: the end-of-window hand-off (`dripgate handoff`).
-- `method` says how the migrated user's password last reached the provider: `live` (a sign-in
-- proved it; every row migrated before this version), `handoff_hash` (the legacy hash was
-- imported) or `handoff_reset` (no password; a change is required at the next sign-in).
ALTER TABLE ledger_users ADD COLUMN method TEXT NOT NULL DEFAULT 'live'
    CHECK (method IN ('live', 'handoff_hash', 'handoff_reset'));
-- One row per real hand-off run: when it started and finished, whether it processed every
-- selected user (`completed`), and its counts (JSON; never a user key or a hash).
CREATE TABLE ledger_handoff_runs (
    run_id      TEXT   NOT NULL PRIMARY KEY,
    owner       TEXT   NOT NULL,
    started_at  BIGINT NOT NULL,
    finished_at BIGINT,
    completed   BIGINT NOT NULL DEFAULT 0 CHECK (completed IN (0, 1)),
    counts      TEXT
);
CREATE INDEX ledger_handoff_runs_started_at ON ledger_handoff_runs (started_at);
