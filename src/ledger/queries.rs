//! The ledger's SQL, written once for both backends.
//!
//! Every statement is a single statement (no transaction spans two calls). The only difference
//! between SQLite and PostgreSQL is the expression for "now" in milliseconds since the Unix
//! epoch: on PostgreSQL it is computed by the server, so the clocks of several replicas never
//! decide who holds a lease; on SQLite (one host by definition) by SQLite itself. `$n`
//! placeholders work on both. Columns are listed explicitly; none holds a password or a hash.

/// Defines the statement constants in the calling module, with `$now` as the expression for the
/// current time in milliseconds.
macro_rules! ledger_queries {
    ($now:literal) => {
        /// Takes the lease of a user: inserts the row, or re-takes a `claimed`/`created` row whose
        /// lease has expired, bumping the epoch. Returns the row only to the winner.
        /// `$1` user key, `$2` owner, `$3` lease ms, `$4` legacy format.
        pub(super) const CLAIM: &str = concat!(
            "INSERT INTO ledger_users (user_key, state, epoch, lease_owner, lease_expires_at, \
             attempts, legacy_format, created_at, updated_at) \
             VALUES ($1, 'claimed', 1, $2, ",
            $now,
            " + $3, 1, $4, ",
            $now,
            ", ",
            $now,
            ") \
             ON CONFLICT (user_key) DO UPDATE SET \
               epoch = ledger_users.epoch + 1, \
               lease_owner = excluded.lease_owner, \
               lease_expires_at = excluded.lease_expires_at, \
               attempts = ledger_users.attempts + 1, \
               legacy_format = excluded.legacy_format, \
               updated_at = excluded.updated_at \
             WHERE ledger_users.state IN ('claimed', 'created') \
               AND ledger_users.lease_expires_at <= excluded.updated_at \
             RETURNING user_key, epoch, state, provider_user_id, attempts"
        );

        /// Takes the lease of a `migrated` (or `blocked_policy`) user whose recorded fingerprint
        /// differs from `$4`, for re-syncing a changed password. The state is kept.
        /// `$1` user key, `$2` owner, `$3` lease ms, `$4` fingerprint.
        pub(super) const CLAIM_RESYNC: &str = concat!(
            "UPDATE ledger_users SET epoch = epoch + 1, lease_owner = $2, lease_expires_at = ",
            $now,
            " + $3, attempts = attempts + 1, updated_at = ",
            $now,
            " WHERE user_key = $1 AND state IN ('migrated', 'blocked_policy') \
               AND hash_fingerprint IS NOT NULL AND hash_fingerprint <> $4 \
               AND lease_expires_at <= ",
            $now,
            " RETURNING user_key, epoch, state, provider_user_id, attempts"
        );

        /// Records the provider user id. `$1` user key, `$2` epoch, `$3` provider user id.
        pub(super) const MARK_CREATED: &str = concat!(
            "UPDATE ledger_users SET \
               state = CASE WHEN state = 'claimed' THEN 'created' ELSE state END, \
               provider_user_id = $3, updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2"
        );

        /// Records a finished migration and releases the lease. `$1` user key, `$2` epoch,
        /// `$3` provider user id, `$4` fingerprint, `$5` method (`live`, `handoff_hash`, …).
        pub(super) const MARK_MIGRATED: &str = concat!(
            "UPDATE ledger_users SET state = 'migrated', provider_user_id = $3, \
               hash_fingerprint = $4, method = $5, last_error = NULL, lease_owner = NULL, \
               lease_expires_at = 0, migrated_at = COALESCE(migrated_at, ",
            $now,
            "), updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2 RETURNING migrated_at"
        );

        /// Records a failure reason and releases the lease. `$1` user key, `$2` epoch, `$3` reason.
        pub(super) const MARK_FAILED: &str = concat!(
            "UPDATE ledger_users SET last_error = $3, lease_owner = NULL, lease_expires_at = 0, \
               updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2"
        );

        /// Demotes a row whose `$2`-epoch holder wrote a password at the provider after it was
        /// superseded: `created` (not routable), fingerprint cleared, epoch bumped (fencing the
        /// newer holder's pending writes). The lease is kept. `$1` user key, `$2` stale epoch.
        pub(super) const MARK_SUPERSEDED: &str = concat!(
            "UPDATE ledger_users SET state = 'created', epoch = epoch + 1, \
               hash_fingerprint = NULL, last_error = 'superseded_password_write', updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch > $2 AND provider_user_id IS NOT NULL \
               AND state IN ('claimed', 'created', 'migrated')"
        );

        /// Moves to a terminal state and releases the lease; records the fingerprint when given.
        /// `$1` user key, `$2` epoch, `$3` state, `$4` reason, `$5` fingerprint or NULL.
        pub(super) const MARK_TERMINAL: &str = concat!(
            "UPDATE ledger_users SET state = $3, last_error = $4, lease_owner = NULL, \
               lease_expires_at = 0, hash_fingerprint = COALESCE($5, hash_fingerprint), \
               updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2"
        );

        /// An operator forgets a user: back to `claimed` with nothing of the provider's, lease
        /// released, epoch bumped (fencing any holder). `$1` user key, `$2` epoch read, `$3`
        /// reason.
        pub(super) const FORGET: &str = concat!(
            "UPDATE ledger_users SET state = 'claimed', provider_user_id = NULL, \
               hash_fingerprint = NULL, migrated_at = NULL, last_error = $3, \
               lease_owner = NULL, lease_expires_at = 0, epoch = epoch + 1, updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2"
        );

        /// The holder found the recorded provider user gone: back to `claimed` with nothing of
        /// the provider's; lease and epoch kept. `$1` user key, `$2` epoch, `$3` reason.
        pub(super) const CLEAR_PROVIDER_USER: &str = concat!(
            "UPDATE ledger_users SET state = 'claimed', provider_user_id = NULL, \
               hash_fingerprint = NULL, migrated_at = NULL, last_error = $3, updated_at = ",
            $now,
            " WHERE user_key = $1 AND epoch = $2"
        );

        /// One user's row. `$1` user key.
        pub(super) const GET: &str = "SELECT user_key, state, provider_user_id, attempts, \
             last_error, legacy_format, hash_fingerprint, lease_owner, lease_expires_at, epoch, \
             created_at, updated_at, migrated_at, method FROM ledger_users WHERE user_key = $1";

        /// A migrated user's routing data. `$1` user key.
        pub(super) const GET_MIGRATED: &str = "SELECT user_key, provider_user_id, \
             hash_fingerprint, migrated_at FROM ledger_users \
             WHERE user_key = $1 AND state = 'migrated'";

        /// Users per state.
        pub(super) const COUNTS: &str =
            "SELECT state, COUNT(*) AS n FROM ledger_users GROUP BY state";

        /// Migrated users per hour since `$1` (ms): the hour (ms since the epoch ÷ 3 600 000)
        /// and the users whose first migration fell in it, oldest first.
        pub(super) const HOURLY_MIGRATIONS: &str = "SELECT migrated_at / 3600000 AS hour, \
             COUNT(*) AS n FROM ledger_users WHERE state = 'migrated' AND migrated_at >= $1 \
             GROUP BY migrated_at / 3600000 ORDER BY migrated_at / 3600000";

        /// Migrated users since `$1` and since `$2` (ms; `$1` >= `$2`).
        pub(super) const MIGRATED_SINCE: &str = "SELECT \
             COUNT(CASE WHEN migrated_at >= $1 THEN 1 END) AS recent, COUNT(*) AS n \
             FROM ledger_users WHERE state = 'migrated' AND migrated_at >= $2";

        /// Users not migrated whose last attempt failed, per reason (a bounded label).
        pub(super) const FAILURES: &str = "SELECT last_error, COUNT(*) AS n FROM ledger_users \
             WHERE state <> 'migrated' AND last_error IS NOT NULL GROUP BY last_error";

        /// Replaces the census summary (one row). `$1` summary JSON; returns the time stamped.
        pub(super) const CENSUS_RECORD: &str = concat!(
            "INSERT INTO ledger_census (id, summary, taken_at) VALUES (1, $1, ",
            $now,
            ") ON CONFLICT (id) DO UPDATE SET summary = excluded.summary, \
               taken_at = excluded.taken_at RETURNING taken_at"
        );

        /// The latest census summary and when it was taken.
        pub(super) const CENSUS_LATEST: &str =
            "SELECT summary, taken_at FROM ledger_census WHERE id = 1";

        /// Migrated users per method (schema version 4).
        pub(super) const METHOD_COUNTS: &str = "SELECT method, COUNT(*) AS n FROM ledger_users \
             WHERE state = 'migrated' GROUP BY method";

        /// Starts a hand-off run. `$1` run id, `$2` owner; returns the time stamped.
        pub(super) const HANDOFF_RUN_START: &str = concat!(
            "INSERT INTO ledger_handoff_runs (run_id, owner, started_at) VALUES ($1, $2, ",
            $now,
            ") RETURNING started_at"
        );

        /// Records a running hand-off's counts. `$1` run id, `$2` counts JSON.
        pub(super) const HANDOFF_RUN_PROGRESS: &str =
            "UPDATE ledger_handoff_runs SET counts = $2 WHERE run_id = $1 AND finished_at IS NULL";

        /// Ends a hand-off run. `$1` run id, `$2` completed (0/1), `$3` counts JSON.
        pub(super) const HANDOFF_RUN_FINISH: &str = concat!(
            "UPDATE ledger_handoff_runs SET finished_at = ",
            $now,
            ", completed = $2, counts = $3 WHERE run_id = $1"
        );

        /// The latest hand-off run that processed every selected user.
        pub(super) const HANDOFF_RUN_LAST_COMPLETED: &str = "SELECT run_id, owner, started_at, \
             finished_at, completed, counts FROM ledger_handoff_runs WHERE completed = 1 \
             ORDER BY finished_at DESC, run_id DESC LIMIT 1";

        /// The latest hand-off run, finished or not.
        pub(super) const HANDOFF_RUN_LATEST: &str = "SELECT run_id, owner, started_at, \
             finished_at, completed, counts FROM ledger_handoff_runs \
             ORDER BY started_at DESC, run_id DESC LIMIT 1";

        /// Stores the first run-time settings unless some are stored (version 1).
        /// `$1` phase, `$2` canary percent, `$3` source, `$4` changed by (or NULL).
        pub(super) const SETTINGS_INIT: &str = concat!(
            "INSERT INTO ledger_settings (id, version, phase, canary_percent, source, \
               changed_by, changed_at) VALUES (1, 1, $1, $2, $3, $4, ",
            $now,
            ") ON CONFLICT (id) DO NOTHING"
        );

        /// Stores new run-time settings, bumping the version. Same parameters as
        /// `SETTINGS_INIT`; returns the stored row.
        pub(super) const SETTINGS_WRITE: &str = concat!(
            "INSERT INTO ledger_settings (id, version, phase, canary_percent, source, \
               changed_by, changed_at) VALUES (1, 1, $1, $2, $3, $4, ",
            $now,
            ") ON CONFLICT (id) DO UPDATE SET version = ledger_settings.version + 1, \
               phase = excluded.phase, canary_percent = excluded.canary_percent, \
               source = excluded.source, changed_by = excluded.changed_by, \
               changed_at = excluded.changed_at \
             RETURNING version, phase, canary_percent, source, changed_by, changed_at"
        );

        /// The stored run-time settings.
        pub(super) const SETTINGS_GET: &str = "SELECT version, phase, canary_percent, source, \
             changed_by, changed_at FROM ledger_settings WHERE id = 1";

        /// The stored settings' version only: what replicas poll.
        pub(super) const SETTINGS_VERSION: &str =
            "SELECT version FROM ledger_settings WHERE id = 1";

        /// Records a completed hand-off run (one row, the latest). `$1` run id; returns the
        /// time stamped.
        pub(super) const HANDOFF_RECORD: &str = concat!(
            "INSERT INTO ledger_handoff_completed (id, run_id, completed_at) VALUES (1, $1, ",
            $now,
            ") ON CONFLICT (id) DO UPDATE SET run_id = excluded.run_id, \
               completed_at = excluded.completed_at RETURNING completed_at"
        );

        /// When the latest hand-off run completed.
        pub(super) const HANDOFF_GET: &str =
            "SELECT completed_at FROM ledger_handoff_completed WHERE id = 1";

        /// The ledger's clock in ms since the Unix epoch.
        pub(super) const NOW: &str = concat!("SELECT ", $now, " AS now_ms");

        /// Dependency check.
        pub(super) const PING: &str = "SELECT 1";

        /// Stores a meta value unless one is there. `$1` key, `$2` value.
        pub(super) const META_INSERT: &str =
            "INSERT INTO ledger_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING";

        /// Reads a meta value. `$1` key.
        pub(super) const META_GET: &str = "SELECT value FROM ledger_meta WHERE key = $1";

        /// The table of applied schema versions.
        pub(super) const VERSIONS_TABLE: &str = "CREATE TABLE IF NOT EXISTS \
             ledger_schema_migrations (version BIGINT NOT NULL PRIMARY KEY, \
             name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

        /// Applied schema versions.
        pub(super) const VERSIONS: &str =
            "SELECT version FROM ledger_schema_migrations ORDER BY version";

        /// Records an applied version. `$1` version, `$2` name.
        pub(super) const VERSION_INSERT: &str = concat!(
            "INSERT INTO ledger_schema_migrations (version, name, applied_at) VALUES ($1, $2, ",
            $now,
            ")"
        );
    };
}

pub(super) use ledger_queries;

/// One schema migration: version, name, SQL (possibly several statements).
pub(super) type Migration = (i64, &'static str, &'static str);
