//! What the hand-off does with a user, per legacy hash format: import the legacy hash
//! (`legacy_hash`, only where the provider imports the format, else the fallback), create the
//! user without a password and require a change (`reset`), or leave the user (`skip`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::hash::Format;
use crate::legacy::LegacyUser;
use crate::migrate::HandOff;
use crate::migrate::transfer::importable;
use crate::provider::Capabilities;

/// A policy for one format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Send the legacy hash where the provider imports its format; the user keeps the password.
    LegacyHash,
    /// Create the user without a usable password; a change is required at the next sign-in.
    Reset,
    /// Leave the user alone.
    Skip,
}

impl Policy {
    /// The name in config, on the command line, in reports and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::LegacyHash => "legacy_hash",
            Self::Reset => "reset",
            Self::Skip => "skip",
        }
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Policy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "legacy_hash" => Ok(Self::LegacyHash),
            "reset" => Ok(Self::Reset),
            "skip" => Ok(Self::Skip),
            _ => Err(format!(
                "unknown hand-off policy {s:?} (legacy_hash, reset or skip)"
            )),
        }
    }
}

/// The `[handoff]` section: policies per format and the run's concurrency. Command-line flags
/// override it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HandoffConfig {
    /// The policy of a format not listed in `policy`.
    pub default_policy: Policy,
    /// What a `legacy_hash` user gets when the provider does not import the hash's format
    /// (or variant): `reset` or `skip`.
    pub fallback: Policy,
    /// Policy per legacy hash format name (`bcrypt = "legacy_hash"`, `sha1 = "reset"`).
    pub policy: BTreeMap<String, Policy>,
    /// Users handed off at once (the provider client's own limits still apply).
    pub concurrency: usize,
}

impl Default for HandoffConfig {
    fn default() -> Self {
        Self {
            default_policy: Policy::LegacyHash,
            fallback: Policy::Reset,
            policy: BTreeMap::new(),
            concurrency: 4,
        }
    }
}

/// The policies, checked: every format name known, the fallback not `legacy_hash`.
#[derive(Debug, Clone)]
pub struct Policies {
    default: Policy,
    fallback: Policy,
    by_format: BTreeMap<Format, Policy>,
}

impl Policies {
    /// Checks `config`'s policies.
    pub fn new(config: &HandoffConfig) -> Result<Self, String> {
        if config.fallback == Policy::LegacyHash {
            return Err("handoff.fallback must be reset or skip".into());
        }
        let mut by_format = BTreeMap::new();
        for (name, policy) in &config.policy {
            let format: Format = name
                .parse()
                .map_err(|_| format!("handoff.policy: unknown hash format {name:?}"))?;
            by_format.insert(format, *policy);
        }
        Ok(Self {
            default: config.default_policy,
            fallback: config.fallback,
            by_format,
        })
    }

    /// The configured policy for a format.
    pub fn of(&self, format: Format) -> Policy {
        self.by_format.get(&format).copied().unwrap_or(self.default)
    }

    /// What to do with `user` at a provider with `capabilities`: the action taken (after any
    /// fallback), whether it is a fallback, and the hand-off (none for `skip`).
    pub fn decide(&self, user: &LegacyUser, capabilities: &Capabilities) -> Decision {
        match self.of(user.format) {
            Policy::Skip => Decision::new(Policy::Skip, false, None),
            Policy::Reset => Decision::new(Policy::Reset, false, Some(HandOff::Reset)),
            Policy::LegacyHash => match importable(&user.hash, user.format) {
                Ok(hash) if capabilities.imports(hash.method) => {
                    Decision::new(Policy::LegacyHash, false, Some(HandOff::LegacyHash(hash)))
                }
                _ => match self.fallback {
                    Policy::Reset => Decision::new(Policy::Reset, true, Some(HandOff::Reset)),
                    _ => Decision::new(Policy::Skip, true, None),
                },
            },
        }
    }
}

/// The action chosen for one user.
#[derive(Debug)]
pub struct Decision {
    /// What is done.
    pub action: Policy,
    /// Whether `legacy_hash` was configured but the provider does not import the hash.
    pub fallback: bool,
    /// The hand-off to run (`None`: skip).
    pub hand_off: Option<HandOff>,
}

impl Decision {
    fn new(action: Policy, fallback: bool, hand_off: Option<HandOff>) -> Self {
        Self {
            action,
            fallback,
            hand_off,
        }
    }
}

/// Parses `FORMAT=POLICY` (a `--policy` value).
pub fn parse_assignment(s: &str) -> Result<(String, Policy), String> {
    let (format, policy) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected FORMAT=POLICY, e.g. sha1=reset"))?;
    Ok((format.trim().to_owned(), policy.trim().parse()?))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use crate::hash::LegacyHash;
    use crate::provider::HashingMethod;

    fn user(format: Format, hash: &str) -> LegacyUser {
        LegacyUser {
            key: "a@example.com".into(),
            legacy_id: "1".into(),
            login: None,
            email: "a@example.com".into(),
            given_name: None,
            family_name: None,
            hash: LegacyHash::new(format, hash.to_owned()),
            format,
            params: None,
        }
    }

    fn caps(imports: &'static [HashingMethod]) -> Capabilities {
        Capabilities {
            atomic_create_with_password: false,
            imports,
            prefers_legacy_hash: false,
            stores_legacy_id: true,
        }
    }

    const BCRYPT: &str = "$2y$04$abcdefghijklmnopqrstuuW5iJ8ZPy6YjlzNqW3RbBxz5q6nEnd6a";

    #[test]
    fn legacy_hash_only_where_the_provider_imports_it() {
        let policies = Policies::new(&HandoffConfig::default()).unwrap();
        let d = policies.decide(&user(Format::Bcrypt, BCRYPT), &caps(&HashingMethod::KINDE));
        assert_eq!((d.action, d.fallback), (Policy::LegacyHash, false));
        assert!(matches!(d.hand_off, Some(HandOff::LegacyHash(_))));
        // Authgear imports nothing: the fallback (reset), counted as one.
        let d = policies.decide(&user(Format::Bcrypt, BCRYPT), &caps(&[]));
        assert_eq!((d.action, d.fallback), (Policy::Reset, true));
        assert!(matches!(d.hand_off, Some(HandOff::Reset)));
        // No method computes sha1.
        let sha1 = user(Format::Sha1, &"a".repeat(40));
        let d = policies.decide(&sha1, &caps(&HashingMethod::KINDE));
        assert_eq!((d.action, d.fallback), (Policy::Reset, true));
    }

    #[test]
    fn per_format_policies_and_skip_fallback() {
        let config = HandoffConfig {
            fallback: Policy::Skip,
            policy: [("bcrypt".to_owned(), Policy::Reset)].into(),
            ..HandoffConfig::default()
        };
        let policies = Policies::new(&config).unwrap();
        let d = policies.decide(&user(Format::Bcrypt, BCRYPT), &caps(&HashingMethod::KINDE));
        assert_eq!((d.action, d.fallback), (Policy::Reset, false));
        let sha1 = user(Format::Sha1, &"a".repeat(40));
        let d = policies.decide(&sha1, &caps(&HashingMethod::KINDE));
        assert_eq!((d.action, d.fallback), (Policy::Skip, true));
        assert!(d.hand_off.is_none());
    }

    #[test]
    fn bad_policies_are_refused() {
        let unknown = HandoffConfig {
            policy: [("bcrypt2".to_owned(), Policy::Reset)].into(),
            ..HandoffConfig::default()
        };
        assert!(Policies::new(&unknown).is_err());
        let fallback = HandoffConfig {
            fallback: Policy::LegacyHash,
            ..HandoffConfig::default()
        };
        assert!(Policies::new(&fallback).is_err());
        assert_eq!(
            parse_assignment("sha1=reset").unwrap(),
            ("sha1".to_owned(), Policy::Reset)
        );
        assert!(parse_assignment("sha1").is_err());
        assert!(parse_assignment("sha1=later").is_err());
    }
}
