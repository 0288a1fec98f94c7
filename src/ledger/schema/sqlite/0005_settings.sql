-- dripgate ledger, version 5: the run-time migration settings every replica applies (one row,
-- written by `POST /phase`, a config reload, or the first replica from its file), with a
-- version bumped by every change so replicas poll one number; and the marker of a completed
-- hand-off, which the switch to phase `complete` requires. Times are ms since the Unix epoch.
CREATE TABLE ledger_settings (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    version         INTEGER NOT NULL,
    phase           TEXT    NOT NULL,
    canary_percent  REAL NOT NULL,
    source          TEXT    NOT NULL,
    changed_by      TEXT,
    changed_at      INTEGER NOT NULL
);
CREATE TABLE ledger_handoff_completed (
    id            INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    run_id        TEXT    NOT NULL,
    completed_at  INTEGER NOT NULL
);
