//! SQL for each preset, in the dialect of the connected database.
//!
//! Results are aliased to fixed names (`dg_id`, `dg_login`, …) so one row reader serves every
//! preset. Only the identifier is ever bound; table and column names come from config and are
//! checked to be plain SQL identifiers before they are put into a query.

use crate::hash::Format;

use super::LegacyError;
use super::config::{Columns, LegacyConfig, Preset};
use super::normalize::NormalizeConfig;

/// The SQL dialect, from the URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite: `?` placeholders, case-sensitive `=`.
    Sqlite,
    /// PostgreSQL: `$1` placeholders, case-sensitive `=`.
    Postgres,
    /// MySQL/MariaDB: `?` placeholders, `=` follows the column collation (`_ci` by default).
    MySql,
}

impl Dialect {
    /// The backend label used in errors and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// The dialect of a database URL.
    pub fn from_url(url: &str) -> Result<Self, LegacyError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => Ok(Dialect::Sqlite),
            "postgres" | "postgresql" => Ok(Dialect::Postgres),
            "mysql" | "mariadb" => Ok(Dialect::MySql),
            _ => Err(LegacyError::Config(format!(
                "database_url scheme {scheme:?} is not sqlite, postgres or mysql"
            ))),
        }
    }
}

/// Result column names of the queries.
#[derive(Debug, Clone)]
pub(crate) struct ResultColumns {
    pub id: String,
    pub login: Option<String>,
    pub email: String,
    pub hash: String,
    pub format: Option<String>,
    pub salt: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
}

impl ResultColumns {
    /// The fixed aliases used by generated queries.
    fn aliases(login: bool, format: bool, salt: bool, names: (bool, bool)) -> Self {
        let opt = |on: bool, name: &str| on.then(|| name.to_owned());
        ResultColumns {
            id: "dg_id".into(),
            login: opt(login, "dg_login"),
            email: "dg_email".into(),
            hash: "dg_hash".into(),
            format: opt(format, "dg_format"),
            salt: opt(salt, "dg_salt"),
            given_name: opt(names.0, "dg_given_name"),
            family_name: opt(names.1, "dg_family_name"),
        }
    }

    /// The configured names as they are (custom queries and exports).
    pub fn from_columns(c: &Columns) -> Self {
        ResultColumns {
            id: c.id.clone(),
            login: Some(c.login.clone()).filter(|l| !l.is_empty()),
            email: c.email.clone(),
            hash: c.hash.clone(),
            format: c.format.clone(),
            salt: c.salt.clone(),
            given_name: c.given_name.clone(),
            family_name: c.family_name.clone(),
        }
    }
}

/// Rows per page of an enumeration ([`Paging`]).
pub(crate) const PAGE_ROWS: usize = 500;

/// Keyset pagination over every user, ordered by the store's id: each page is one short query
/// (`WHERE id > last ORDER BY id LIMIT n`), so an enumeration holds no cursor or connection
/// between pages and never runs into `query_timeout`.
#[derive(Debug, Clone)]
pub(crate) struct Paging {
    /// The first page.
    pub first: String,
    /// The page after a key (one bound value).
    pub next: String,
    /// Whether rows carry `dg_created` (the user's creation time, as text).
    pub created: bool,
}

/// The queries a SQL store runs.
#[derive(Debug, Clone)]
pub(crate) struct Queries {
    /// Finds users by identifier.
    pub lookup: String,
    /// How many times the identifier is bound.
    pub binds: usize,
    /// Lists every user (census), if known.
    pub census: Option<String>,
    /// Counts users, if known.
    pub count: Option<String>,
    /// Enumerates users page by page, if the id column is known.
    pub paging: Option<Paging>,
    /// Result columns of `lookup` and `census`.
    pub columns: ResultColumns,
    /// Whether rows returned by `lookup` are re-checked against the identifier in Rust (presets:
    /// yes, so MySQL collations and `lower()` agree with the configured rule; custom: no).
    pub recheck: bool,
}

/// The preset's hash format (`None` = detect).
pub(crate) fn default_format(preset: Preset) -> Option<Format> {
    match preset {
        Preset::Wordpress => Some(Format::Wordpress),
        Preset::Drupal7 => Some(Format::Drupal),
        Preset::Django => Some(Format::Django),
        Preset::Generic | Preset::Custom => None,
    }
}

/// The preset's identifier rule: WordPress and Drupal compare logins case-insensitively (MySQL
/// `_ci` collations), Django compares usernames exactly.
pub(crate) fn default_normalize(preset: Preset) -> NormalizeConfig {
    match preset {
        Preset::Wordpress | Preset::Drupal7 => NormalizeConfig::case_insensitive(),
        _ => NormalizeConfig::default(),
    }
}

/// A table or column name from config: letters, digits and `_`, optionally `schema.name`.
fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').count() <= 2
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

/// Checks every table and column name that may be put into generated SQL.
pub(crate) fn check_identifiers(c: &LegacyConfig) -> Result<(), LegacyError> {
    if c.preset == Preset::Custom || c.export.is_some() {
        return Ok(());
    }
    let mut names: Vec<(&str, &str)> = Vec::new();
    if let Some(p) = &c.table_prefix
        && !p.is_empty()
        && !is_identifier(p)
    {
        return Err(LegacyError::Config(format!(
            "table_prefix {p:?} must be letters, digits and _"
        )));
    }
    if c.preset == Preset::Generic {
        names.push(("table", c.table.as_deref().unwrap_or("users")));
        let cols = &c.columns;
        names.extend([
            ("columns.id", cols.id.as_str()),
            ("columns.email", cols.email.as_str()),
            ("columns.hash", cols.hash.as_str()),
        ]);
        if !cols.login.is_empty() {
            names.push(("columns.login", &cols.login));
        }
        for (k, v) in [
            ("columns.format", &cols.format),
            ("columns.salt", &cols.salt),
            ("columns.given_name", &cols.given_name),
            ("columns.family_name", &cols.family_name),
            ("columns.created", &cols.created),
        ] {
            if let Some(v) = v {
                names.push((k, v));
            }
        }
    }
    for (key, name) in names {
        if !is_identifier(name) {
            return Err(LegacyError::Config(format!(
                "{key} {name:?} must be a plain SQL identifier (letters, digits, _)"
            )));
        }
    }
    if c.columns.salt.is_some() && c.salt_position.is_none() {
        return Err(LegacyError::Config(
            "columns.salt needs salt_position = \"prefix\" or \"suffix\"".into(),
        ));
    }
    Ok(())
}

/// Builds a `col = <param>` comparison that agrees with the normalization rule.
struct Cmp {
    dialect: Dialect,
}

impl Cmp {
    fn param(&self) -> &'static str {
        match self.dialect {
            Dialect::Postgres => "$1",
            _ => "?",
        }
    }

    /// `fold`: the identifier arrives lower-cased, so compare with the column lower-cased.
    /// MySQL's default `_ci` collations already compare case-insensitively (and keep the index).
    fn eq(&self, col: &str, fold: bool) -> String {
        if fold && self.dialect != Dialect::MySql {
            format!("lower({col}) = {}", self.param())
        } else {
            format!("{col} = {}", self.param())
        }
    }

    fn binds(&self, n: usize) -> usize {
        if self.dialect == Dialect::Postgres {
            1
        } else {
            n
        }
    }
}

impl Dialect {
    /// A column or expression as text (dates and times in the database's own text form).
    fn as_text(self, expr: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    fn param(self) -> &'static str {
        match self {
            Dialect::Postgres => "$1",
            _ => "?",
        }
    }
}

/// Paging for a preset's `SELECT <cols> FROM <from> [WHERE <filter>]`, ordered by `id` (a column
/// of `from`); `created` is the creation-time column, if the store has one.
fn paging(
    dialect: Dialect,
    select: &str,
    filter: Option<&str>,
    id: &str,
    created: Option<&str>,
) -> Paging {
    let select = match created {
        Some(c) => select.replacen(
            " AS dg_id,",
            &format!(" AS dg_id, {} AS dg_created,", dialect.as_text(c)),
            1,
        ),
        None => select.to_owned(),
    };
    let keyset = format!("{id} > {}", dialect.param());
    let (first_where, next_where) = match filter {
        Some(f) => (format!(" WHERE {f}"), format!(" WHERE {f} AND {keyset}")),
        None => (String::new(), format!(" WHERE {keyset}")),
    };
    let tail = format!(" ORDER BY {id} LIMIT {PAGE_ROWS}");
    Paging {
        first: format!("{select}{first_where}{tail}"),
        next: format!("{select}{next_where}{tail}"),
        created: created.is_some(),
    }
}

/// Paging for an operator's `census_query`, wrapped as a subquery ordered by the `id` result
/// column (which must be a plain name to be put into SQL).
fn custom_paging(dialect: Dialect, census: &str, c: &Columns) -> Option<Paging> {
    if !is_identifier(&c.id) || c.created.as_deref().is_some_and(|n| !is_identifier(n)) {
        return None;
    }
    let inner = format!("SELECT * FROM ({census}) AS dg_page");
    let id = format!("dg_page.{}", c.id);
    let tail = format!(" ORDER BY {id} LIMIT {PAGE_ROWS}");
    Some(Paging {
        first: format!("{inner}{tail}"),
        next: format!("{inner} WHERE {id} > {}{tail}", dialect.param()),
        created: c.created.is_some(),
    })
}

/// The queries for `config` on `dialect`, with the identifier rule `norm`.
pub(crate) fn build(
    config: &LegacyConfig,
    dialect: Dialect,
    norm: &NormalizeConfig,
) -> Result<Queries, LegacyError> {
    let cmp = Cmp { dialect };
    let (fl, fe) = (norm.folds_login(), norm.folds_email());
    match config.preset {
        Preset::Wordpress => {
            let p = config.table_prefix.as_deref().unwrap_or("wp_");
            let meta = |key: &str| {
                format!(
                    "(SELECT m.meta_value FROM {p}usermeta m WHERE m.user_id = u.ID AND m.meta_key = '{key}' LIMIT 1)"
                )
            };
            let select = format!(
                "SELECT u.ID AS dg_id, u.user_login AS dg_login, u.user_email AS dg_email, u.user_pass AS dg_hash, {} AS dg_given_name, {} AS dg_family_name FROM {p}users u",
                meta("first_name"),
                meta("last_name")
            );
            Ok(Queries {
                lookup: format!(
                    "{select} WHERE {} OR {}",
                    cmp.eq("u.user_login", fl),
                    cmp.eq("u.user_email", fe)
                ),
                binds: cmp.binds(2),
                paging: Some(paging(
                    dialect,
                    &select,
                    None,
                    "u.ID",
                    Some("u.user_registered"),
                )),
                census: Some(select),
                count: Some(format!("SELECT COUNT(*) FROM {p}users")),
                columns: ResultColumns::aliases(true, false, false, (true, true)),
                recheck: true,
            })
        }
        Preset::Drupal7 => {
            let p = config.table_prefix.as_deref().unwrap_or("");
            let from = format!(
                "SELECT uid AS dg_id, name AS dg_login, mail AS dg_email, pass AS dg_hash FROM {p}users"
            );
            let select = format!("{from} WHERE uid <> 0");
            Ok(Queries {
                lookup: format!(
                    "{select} AND ({} OR {})",
                    cmp.eq("name", fl),
                    cmp.eq("mail", fe)
                ),
                binds: cmp.binds(2),
                paging: Some(paging(
                    dialect,
                    &from,
                    Some("uid <> 0"),
                    "uid",
                    Some("created"),
                )),
                census: Some(select),
                count: Some(format!("SELECT COUNT(*) FROM {p}users WHERE uid <> 0")),
                columns: ResultColumns::aliases(true, false, false, (false, false)),
                recheck: true,
            })
        }
        Preset::Django => {
            let p = config.table_prefix.as_deref().unwrap_or("");
            let select = format!(
                "SELECT id AS dg_id, username AS dg_login, email AS dg_email, password AS dg_hash, first_name AS dg_given_name, last_name AS dg_family_name FROM {p}auth_user"
            );
            Ok(Queries {
                lookup: format!(
                    "{select} WHERE {} OR {}",
                    cmp.eq("username", fl),
                    cmp.eq("email", fe)
                ),
                binds: cmp.binds(2),
                paging: Some(paging(dialect, &select, None, "id", Some("date_joined"))),
                census: Some(select),
                count: Some(format!("SELECT COUNT(*) FROM {p}auth_user")),
                columns: ResultColumns::aliases(true, false, false, (true, true)),
                recheck: true,
            })
        }
        Preset::Generic => Ok(generic(config, dialect, &cmp, fl, fe)),
        Preset::Custom => {
            let lookup = config
                .query
                .clone()
                .ok_or_else(|| LegacyError::Config("preset = \"custom\" needs query".into()))?;
            let binds = count_placeholders(&lookup, dialect);
            if binds == 0 {
                return Err(LegacyError::Config(
                    "query must have a placeholder for the identifier ($1 on PostgreSQL, ? elsewhere)"
                        .into(),
                ));
            }
            let count = config
                .census_query
                .as_ref()
                .map(|q| format!("SELECT COUNT(*) FROM ({q}) AS dripgate_census"));
            Ok(Queries {
                lookup,
                binds,
                paging: config
                    .census_query
                    .as_deref()
                    .and_then(|q| custom_paging(dialect, q, &config.columns)),
                census: config.census_query.clone(),
                count,
                columns: ResultColumns::from_columns(&config.columns),
                recheck: false,
            })
        }
    }
}

fn generic(config: &LegacyConfig, dialect: Dialect, cmp: &Cmp, fl: bool, fe: bool) -> Queries {
    let c = &config.columns;
    let table = config.table.as_deref().unwrap_or("users");
    let has_login = !c.login.is_empty();
    let mut select = format!("SELECT {} AS dg_id", c.id);
    if has_login {
        select.push_str(&format!(", {} AS dg_login", c.login));
    }
    select.push_str(&format!(", {} AS dg_email, {} AS dg_hash", c.email, c.hash));
    for (col, alias) in [
        (&c.format, "dg_format"),
        (&c.salt, "dg_salt"),
        (&c.given_name, "dg_given_name"),
        (&c.family_name, "dg_family_name"),
    ] {
        if let Some(col) = col {
            select.push_str(&format!(", {col} AS {alias}"));
        }
    }
    select.push_str(&format!(" FROM {table}"));
    let (lookup, n) = if has_login {
        (
            format!(
                "{select} WHERE {} OR {}",
                cmp.eq(&c.login, fl),
                cmp.eq(&c.email, fe)
            ),
            2,
        )
    } else {
        (format!("{select} WHERE {}", cmp.eq(&c.email, fe)), 1)
    };
    Queries {
        lookup,
        binds: cmp.binds(n),
        paging: Some(paging(dialect, &select, None, &c.id, c.created.as_deref())),
        census: Some(select),
        count: Some(format!("SELECT COUNT(*) FROM {table}")),
        columns: ResultColumns::aliases(
            has_login,
            c.format.is_some(),
            c.salt.is_some(),
            (c.given_name.is_some(), c.family_name.is_some()),
        ),
        recheck: true,
    }
}

/// How many values to bind to an operator's query: the number of `?` placeholders (each gets
/// the identifier), or the highest `$N`/`?N`. Quoted strings and comments are skipped.
pub(crate) fn count_placeholders(sql: &str, dialect: Dialect) -> usize {
    let b = sql.as_bytes();
    let (mut plain, mut numbered, mut i) = (0usize, 0usize, 0usize);
    while let Some(&c) = b.get(i) {
        match c {
            b'\'' | b'"' | b'`' => {
                i += 1;
                while b.get(i).is_some_and(|&d| d != c) {
                    i += 1;
                }
            }
            b'-' if b.get(i + 1) == Some(&b'-') => {
                while b.get(i).is_some_and(|&d| d != b'\n') {
                    i += 1;
                }
            }
            b'?' | b'$' => {
                let start = i + 1;
                let mut j = start;
                while b.get(j).is_some_and(u8::is_ascii_digit) {
                    j += 1;
                }
                let digits = sql.get(start..j).and_then(|d| d.parse::<usize>().ok());
                match (c, digits) {
                    (_, Some(n)) => numbered = numbered.max(n),
                    (b'?', None) if dialect != Dialect::Postgres => plain += 1,
                    _ => {}
                }
                i = j.max(i + 1) - 1;
            }
            _ => {}
        }
        i += 1;
    }
    plain.max(numbered)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn placeholders() {
        assert_eq!(
            count_placeholders("SELECT 1 WHERE a = ? OR b = ?", Dialect::MySql),
            2
        );
        assert_eq!(
            count_placeholders("SELECT 1 WHERE a = $1 OR b = $1", Dialect::Postgres),
            1
        );
        assert_eq!(
            count_placeholders("SELECT '?' WHERE a = ?1 OR b = ?1", Dialect::Sqlite),
            1
        );
        assert_eq!(
            count_placeholders("SELECT 1 -- ?\nWHERE a = ?", Dialect::Sqlite),
            1
        );
        assert_eq!(count_placeholders("SELECT 1", Dialect::Sqlite), 0);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("wp_users"));
        assert!(is_identifier("legacy.users"));
        assert!(!is_identifier("users; DROP TABLE x"));
        assert!(!is_identifier("1abc"));
        assert!(!is_identifier("a.b.c"));
    }

    #[test]
    fn wordpress_sql_per_dialect() {
        let c = LegacyConfig::sql(Preset::Wordpress, "mysql://x");
        let n = default_normalize(Preset::Wordpress);
        let my = build(&c, Dialect::MySql, &n).unwrap();
        assert!(
            my.lookup.contains("u.user_login = ? OR u.user_email = ?"),
            "{}",
            my.lookup
        );
        assert_eq!(my.binds, 2);
        let pg = build(&c, Dialect::Postgres, &n).unwrap();
        assert!(
            pg.lookup.contains("lower(u.user_login) = $1"),
            "{}",
            pg.lookup
        );
        assert_eq!(pg.binds, 1);
    }
}
