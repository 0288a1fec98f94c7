//! Which users a hand-off selects: email domains, created before a date (where the store has a
//! creation column), a list of legacy ids or user keys.

use std::collections::HashSet;

use crate::legacy::LegacyUser;

/// The selection; empty parts select everyone.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// Lower-cased email domains (`example.com`); a user matches one of them exactly.
    pub domains: Vec<String>,
    /// `YYYY-MM-DD`: users created strictly before this day.
    pub created_before: Option<String>,
    /// Legacy ids or user keys; a user matches when either is listed.
    pub ids: Option<HashSet<String>>,
}

/// Why a user was not selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Excluded {
    /// Outside the domains, the date or the id list.
    Filtered,
    /// `--created-before` is set and the user's creation time is empty or unreadable.
    CreatedUnknown,
}

impl Filters {
    /// Checks the date's shape.
    pub fn check(&self) -> Result<(), String> {
        if let Some(d) = &self.created_before
            && date_prefix(d).is_none_or(|p| p.len() != d.len())
        {
            return Err(format!("--created-before {d:?}: expected YYYY-MM-DD"));
        }
        Ok(())
    }

    /// Whether `user` (created at `created`, as the store holds it) is selected.
    pub fn select(&self, user: &LegacyUser, created: Option<&str>) -> Result<(), Excluded> {
        if !self.domains.is_empty() {
            let domain = user
                .email
                .rsplit_once('@')
                .map(|(_, d)| d.trim().to_ascii_lowercase());
            if !domain.is_some_and(|d| self.domains.contains(&d)) {
                return Err(Excluded::Filtered);
            }
        }
        if let Some(ids) = &self.ids
            && !ids.contains(&user.legacy_id)
            && !ids.contains(&user.key)
        {
            return Err(Excluded::Filtered);
        }
        if let Some(before) = &self.created_before {
            let day = created
                .and_then(creation_day)
                .ok_or(Excluded::CreatedUnknown)?;
            if day.as_str() >= before.as_str() {
                return Err(Excluded::Filtered);
            }
        }
        Ok(())
    }
}

/// The `YYYY-MM-DD` a creation time starts with.
fn date_prefix(s: &str) -> Option<&str> {
    let p = s.get(..10)?;
    let b = p.as_bytes();
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-' && digits(8..10)).then_some(p)
}

/// The day of a creation time: a date/time text (`2019-03-04 10:11:12`, `2019-03-04T…`), or
/// Unix seconds (Drupal's `created`), as `YYYY-MM-DD` (UTC for Unix seconds; as stored for text).
pub fn creation_day(created: &str) -> Option<String> {
    let created = created.trim();
    if !created.is_empty() && created.bytes().all(|b| b.is_ascii_digit()) {
        let secs: i64 = created.parse().ok()?;
        return Some(civil_day(secs.div_euclid(86_400)));
    }
    date_prefix(created).map(str::to_owned)
}

/// Days since 1970-01-01 → `YYYY-MM-DD` (Howard Hinnant's `civil_from_days`).
fn civil_day(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Reads an ids file: one legacy id or user key per line; blank lines and `#` comments skipped.
pub fn read_ids(text: &str) -> HashSet<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creation_days() {
        assert_eq!(creation_day("0").as_deref(), Some("1970-01-01"));
        assert_eq!(creation_day("951782400").as_deref(), Some("2000-02-29"));
        assert_eq!(creation_day("1700000000").as_deref(), Some("2023-11-14"));
        assert_eq!(
            creation_day("2019-03-04 10:11:12").as_deref(),
            Some("2019-03-04")
        );
        assert_eq!(
            creation_day("2019-03-04T10:11:12+00").as_deref(),
            Some("2019-03-04")
        );
        assert_eq!(creation_day("yesterday"), None);
        assert_eq!(creation_day(""), None);
    }

    #[test]
    fn date_is_checked() {
        let f = |d: &str| Filters {
            created_before: Some(d.into()),
            ..Filters::default()
        };
        assert!(f("2024-01-31").check().is_ok());
        assert!(f("2024-1-31").check().is_err());
        assert!(f("2024-01-31 10:00").check().is_err());
    }
}
