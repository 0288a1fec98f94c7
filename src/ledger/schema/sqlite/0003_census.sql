-- dripgate ledger, version 3: the summary of the latest `dripgate legacy census` (counts only,
-- as JSON text) and when it was taken, for the status page. One row, replaced by each census.
CREATE TABLE ledger_census (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    summary  TEXT NOT NULL,
    taken_at BIGINT NOT NULL
);
