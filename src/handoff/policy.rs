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
