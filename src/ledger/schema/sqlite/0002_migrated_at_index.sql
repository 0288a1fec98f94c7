-- dripgate ledger, version 2: the status page's hourly migration series and trailing rates
-- read migrated users by `migrated_at` (one range scan, no table scan on large ledgers).
CREATE INDEX ledger_users_migrated_at ON ledger_users (migrated_at);
