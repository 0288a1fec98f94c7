//! The pre-flight census: every row classified, streamed, nothing but fingerprints kept.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::hash::{DefaultHasher, Hash, Hasher};

use serde::Serialize;

use super::record::{RawRow, Reason, Rules};
use super::shape;

/// Example legacy ids kept per reason.
const EXAMPLES: usize = 5;

/// What the census found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Census {
    /// `postgres`, `mysql`, `sqlite` or `export`.
    pub backend: String,
    /// The preset (or `export`).
    pub preset: String,
    /// Rows read.
    pub users: u64,
    /// Users dripgate can migrate as configured.
    pub migratable: u64,
    /// Users that cannot be migrated, by reason.
    pub not_migratable: BTreeMap<Reason, u64>,
    /// Up to five legacy ids per reason (ids only: no emails or hashes).
    pub examples: BTreeMap<Reason, Vec<String>>,
    /// Well-formed hashes by format.
    pub formats: BTreeMap<String, u64>,
    /// Well-formed hashes by format and work factor (`bcrypt cost=10`, `wordpress count_log2=13`).
    pub work_factors: BTreeMap<String, u64>,
    /// Rows whose normalized login equals an earlier row's (those logins are ambiguous;
    /// the users can still sign in by email).
    pub login_collisions: u64,
    /// Rows counted under `unverifiable_hash`, by what the stored value looks like
    /// (`des_crypt`, `bsdi_crypt`, `md5_crypt`, `md5_uppercase`, `truncated`, `placeholder`).
    pub unverifiable: BTreeMap<String, u64>,
}

/// State of a key seen before.
#[derive(Clone, Copy)]
enum Seen {
    /// The first row with this key was counted as migratable.
    Migratable,
    /// Otherwise (or already moved to duplicates).
    Other,
}

/// Accumulates a census row by row.
pub(crate) struct Tally<'a> {
    rules: &'a Rules,
    census: Census,
    keys: HashMap<u64, Seen>,
    logins: HashSet<u64>,
}

fn fp(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl<'a> Tally<'a> {
    /// Starts an empty census.
    pub fn new(rules: &'a Rules, backend: &str, preset: &str) -> Self {
        Tally {
            rules,
            census: Census {
                backend: backend.to_owned(),
                preset: preset.to_owned(),
                ..Census::default()
            },
            keys: HashMap::new(),
            logins: HashSet::new(),
        }
    }

    fn not_migratable(&mut self, reason: Reason, id: Option<&str>) {
        *self.census.not_migratable.entry(reason).or_default() += 1;
        let ex = self.census.examples.entry(reason).or_default();
        if ex.len() < EXAMPLES
            && let Some(id) = id
        {
            ex.push(id.to_owned());
        }
    }

    /// Adds one row.
    pub fn add(&mut self, row: &RawRow) {
        self.census.users += 1;
        if let Some(login) = row
            .login
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            && !self.logins.insert(fp(&self.rules.normalize.login(login)))
        {
            self.census.login_collisions += 1;
        }
        if let Ok(h) = self.rules.hash_of(row)
            && let Ok((format, params)) = shape::inspect(&h, &self.rules.caps)
        {
            *self
                .census
                .formats
                .entry(format.as_str().to_owned())
                .or_default() += 1;
            if let Some(p) = params {
                *self
                    .census
                    .work_factors
                    .entry(format!("{format} {p}"))
                    .or_default() += 1;
            }
        }
        let outcome = self.rules.classify(row);
        if outcome.as_ref().err() == Some(&Reason::UnverifiableHash)
            && let Ok(h) = self.rules.hash_of(row)
        {
            let kind = shape::unverifiable_at_wordpress(h.hash()).unwrap_or("placeholder");
            *self.census.unverifiable.entry(kind.to_owned()).or_default() += 1;
        }
        let id = row.id.as_deref();
        let Some(key) = self.rules.key_of(row) else {
            match outcome {
                Ok(_) => self.census.migratable += 1,
                Err(r) => self.not_migratable(r, id),
            }
            return;
        };
        match (self.keys.get(&fp(&key)).copied(), outcome) {
            (None, Ok(_)) => {
                self.keys.insert(fp(&key), Seen::Migratable);
                self.census.migratable += 1;
            }
            (None, Err(r)) => {
                self.keys.insert(fp(&key), Seen::Other);
                self.not_migratable(r, id);
            }
            (Some(seen), _) => {
                if let Seen::Migratable = seen {
                    // The earlier row is a duplicate too.
                    self.census.migratable = self.census.migratable.saturating_sub(1);
                    *self
                        .census
                        .not_migratable
                        .entry(Reason::DuplicateKey)
                        .or_default() += 1;
                    self.keys.insert(fp(&key), Seen::Other);
                }
                self.not_migratable(Reason::DuplicateKey, id);
            }
        }
    }

    /// The result.
    pub fn finish(self) -> Census {
        self.census
    }
}

/// What the census recorded in the ledger for the status page: counts and labels only (no
/// example ids, so no login, email, key or hash can appear in it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CensusSummary {
    /// `postgres`, `mysql`, `sqlite` or `export`.
    pub backend: String,
    /// The preset (or `export`).
    pub preset: String,
    /// Rows read.
    pub users: u64,
    /// Users dripgate can migrate as configured.
    pub migratable: u64,
    /// Users that cannot be migrated.
    pub not_migratable_total: u64,
    /// Users that cannot be migrated, by reason.
    pub not_migratable: BTreeMap<Reason, u64>,
    /// Well-formed hashes by format.
    pub formats: BTreeMap<String, u64>,
    /// Well-formed hashes by format and work factor.
    pub work_factors: BTreeMap<String, u64>,
    /// Rows whose normalized login equals an earlier row's.
    pub login_collisions: u64,
    /// `unverifiable_hash` rows by what the stored value looks like.
    pub unverifiable: BTreeMap<String, u64>,
}

impl Census {
    /// The counts-only summary recorded in the ledger.
    pub fn summary(&self) -> CensusSummary {
        CensusSummary {
            backend: self.backend.clone(),
            preset: self.preset.clone(),
            users: self.users,
            migratable: self.migratable,
            not_migratable_total: self.not_migratable_total(),
            not_migratable: self.not_migratable.clone(),
            formats: self.formats.clone(),
            work_factors: self.work_factors.clone(),
            login_collisions: self.login_collisions,
            unverifiable: self.unverifiable.clone(),
        }
    }

    /// Rows that cannot be migrated.
    pub fn not_migratable_total(&self) -> u64 {
        self.not_migratable.values().sum()
    }

    /// A human-readable report.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let pct = |n: u64| {
            if self.users == 0 {
                0.0
            } else {
                n as f64 * 100.0 / self.users as f64
            }
        };
        let _ = writeln!(s, "legacy store: {} (preset {})", self.backend, self.preset);
        let _ = writeln!(s, "users:          {:>10}", self.users);
        let _ = writeln!(
            s,
            "can migrate:    {:>10}  ({:.1}%)",
            self.migratable,
            pct(self.migratable)
        );
        let total_bad = self.not_migratable_total();
        let _ = writeln!(
            s,
            "cannot migrate: {:>10}  ({:.1}%)",
            total_bad,
            pct(total_bad)
        );
        for (reason, n) in &self.not_migratable {
            let ex = self
                .examples
                .get(reason)
                .filter(|e| !e.is_empty())
                .map(|e| format!("  e.g. ids {}", e.join(", ")))
                .unwrap_or_default();
            let _ = writeln!(s, "  {:<18} {:>10}{ex}", reason.as_str(), n);
            if *reason == Reason::UnverifiableHash {
                for (kind, m) in &self.unverifiable {
                    let _ = writeln!(s, "    {kind:<16} {m:>10}");
                }
            }
        }
        let _ = writeln!(s, "hash formats:");
        for (format, n) in &self.formats {
            let _ = writeln!(s, "  {format:<18} {n:>10}");
            let prefix = format!("{format} ");
            for (wf, m) in self
                .work_factors
                .iter()
                .filter(|(k, _)| k.starts_with(&prefix))
            {
                let _ = writeln!(s, "    {:<16} {m:>10}", wf.trim_start_matches(&prefix));
            }
        }
        if self.login_collisions > 0 {
            let _ = writeln!(
                s,
                "note: {} logins collide with another row's after normalization; those users must sign in by email",
                self.login_collisions
            );
        }
        s
    }
}
