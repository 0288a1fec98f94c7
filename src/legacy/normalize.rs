//! Identifier normalization: the legacy app's rule for when two identifiers are the same user.
//!
//! Applied in this order: trim surrounding whitespace, lower-case (all identifiers, only emails,
//! or none), Unicode NFC. The same rule is applied to what the user typed and to the store's
//! values, so a lookup matches the row the legacy app would have matched.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::is_nfc_quick;

/// Which identifiers are compared case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Lowercase {
    /// Case matters everywhere.
    None,
    /// Emails (and typed identifiers containing `@`) are lower-cased; login names keep case.
    Email,
    /// Every identifier is lower-cased (WordPress and Drupal on MySQL's `_ci` collations).
    All,
}

/// `[legacy.normalize]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NormalizeConfig {
    /// Remove leading and trailing whitespace.
    pub trim: bool,
    /// Which identifiers are lower-cased.
    pub lowercase: Lowercase,
    /// Compose to Unicode NFC, so `é` typed as `e` + U+0301 matches a stored `é`.
    pub nfc: bool,
}

impl Default for NormalizeConfig {
    fn default() -> Self {
        NormalizeConfig {
            trim: true,
            lowercase: Lowercase::Email,
            nfc: true,
        }
    }
}

impl NormalizeConfig {
    /// The rule with every identifier lower-cased.
    pub const fn case_insensitive() -> Self {
        NormalizeConfig {
            trim: true,
            lowercase: Lowercase::All,
            nfc: true,
        }
    }

    /// Whether login names are lower-cased.
    pub fn folds_login(&self) -> bool {
        self.lowercase == Lowercase::All
    }

    /// Whether emails are lower-cased.
    pub fn folds_email(&self) -> bool {
        self.lowercase != Lowercase::None
    }

    /// Normalizes what a user typed (an email or a login).
    pub fn identifier(&self, s: &str) -> String {
        let fold = match self.lowercase {
            Lowercase::None => false,
            Lowercase::Email => s.contains('@'),
            Lowercase::All => true,
        };
        self.apply(s, fold)
    }

    /// Normalizes a stored email.
    pub fn email(&self, s: &str) -> String {
        self.apply(s, self.folds_email())
    }

    /// Normalizes a stored login name.
    pub fn login(&self, s: &str) -> String {
        self.apply(s, self.folds_login())
    }

    fn apply(&self, s: &str, fold: bool) -> String {
        let s = if self.trim { s.trim() } else { s };
        let s = if fold && s.chars().any(char::is_uppercase) {
            s.to_lowercase()
        } else {
            s.to_owned()
        };
        if self.nfc && is_nfc_quick(s.chars()) != unicode_normalization::IsNormalized::Yes {
            s.nfc().collect()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_rule() {
        let n = NormalizeConfig::default();
        assert_eq!(n.identifier("  Alice@Example.COM "), "alice@example.com");
        assert_eq!(n.identifier("Alice"), "Alice");
        assert_eq!(n.login("Alice"), "Alice");
        assert_eq!(n.email("Bob@X.org"), "bob@x.org");
    }

    #[test]
    fn all_and_none() {
        let all = NormalizeConfig::case_insensitive();
        assert_eq!(all.identifier("Alice"), "alice");
        let none = NormalizeConfig {
            trim: false,
            lowercase: Lowercase::None,
            nfc: false,
        };
        assert_eq!(none.identifier(" A@B "), " A@B ");
    }

    #[test]
    fn nfc_composes() {
        let n = NormalizeConfig::default();
        assert_eq!(n.identifier("re\u{301}my@x.fr"), "r\u{e9}my@x.fr");
        assert_eq!(n.identifier("R\u{c9}MY@X.FR"), "r\u{e9}my@x.fr");
    }

    #[test]
    fn never_panics_and_is_idempotent() {
        let n = NormalizeConfig::case_insensitive();
        for s in [
            "",
            " ",
            "\u{130}",
            "ß",
            "ǅ",
            "\u{0}",
            "a\u{301}\u{301}",
            "İSTANBUL@x",
        ] {
            let once = n.identifier(s);
            assert_eq!(n.identifier(&once), once, "{s:?}");
        }
    }
}
