//! The fake's database-connection password policy, as Auth0 documents its levels (`none` ≥ 1
//! character, `low` ≥ 6, `fair` ≥ 8 with lower case, upper case and digits, `good` ≥ 8 with
//! three of lower, upper, digits and special characters, `excellent` ≥ 10 like `good` and no
//! character more than twice in a row), an optional minimum length, a dictionary and a history.

use serde_json::{Value, json};

/// A connection's password policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePasswordPolicy {
    /// `passwordPolicy`: `none`, `low`, `fair`, `good` or `excellent`.
    pub level: String,
    /// `password_complexity_options.min_length` (overrides the level's length).
    pub min_length: Option<usize>,
    /// `password_dictionary` entries (refused case-insensitively; empty: off).
    pub dictionary: Vec<String>,
    /// `password_history.size` (0: off): the current and this many earlier passwords are refused.
    pub history: usize,
}

impl Default for FakePasswordPolicy {
    fn default() -> Self {
        Self {
            level: "good".into(),
            min_length: None,
            dictionary: Vec::new(),
            history: 0,
        }
    }
}

fn kinds(password: &str) -> (bool, bool, bool, bool) {
    let has = |f: fn(&char) -> bool| password.chars().any(|c| f(&c));
    (
        has(char::is_ascii_lowercase),
        has(char::is_ascii_uppercase),
        has(char::is_ascii_digit),
        has(|c| !c.is_ascii_alphanumeric()),
    )
}

fn three_in_a_row(password: &str) -> bool {
    let chars: Vec<char> = password.chars().collect();
    chars.windows(3).any(|w| w[0] == w[1] && w[1] == w[2])
}

impl FakePasswordPolicy {
    /// The connection `options` that describe this policy (as `GET /api/v2/connections` shows).
    pub fn options(&self) -> Value {
        let mut o = json!({
            "passwordPolicy": self.level,
            "password_dictionary": {"enable": !self.dictionary.is_empty(), "dictionary": self.dictionary},
            "password_history": {"enable": self.history > 0, "size": self.history},
        });
        if let Some(n) = self.min_length {
            o["password_complexity_options"] = json!({ "min_length": n });
        }
        o
    }

    /// The Auth0 error name for a password this policy refuses on create or update.
    pub fn refuse(&self, password: &str) -> Option<&'static str> {
        let (lower, upper, digit, special) = kinds(password);
        let three_of_four = [lower, upper, digit, special]
            .iter()
            .filter(|b| **b)
            .count()
            >= 3;
        let (len, ok) = match self.level.as_str() {
            "none" => (1, true),
            "low" => (6, true),
            "fair" => (8, lower && upper && digit),
            "excellent" => (10, three_of_four && !three_in_a_row(password)),
            _ => (8, three_of_four),
        };
        let len = self.min_length.unwrap_or(len);
        if password.chars().count() < len || !ok {
            return Some("PasswordStrengthError");
        }
        if self
            .dictionary
            .iter()
            .any(|w| w.eq_ignore_ascii_case(password))
        {
            return Some("PasswordDictionaryError");
        }
        None
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_auth0s_descriptions() {
        let p = |level: &str| FakePasswordPolicy {
            level: level.into(),
            ..Default::default()
        };
        assert_eq!(p("none").refuse("a"), None);
        assert!(p("low").refuse("abcde").is_some());
        assert_eq!(p("fair").refuse("abcdEF12"), None);
        assert!(p("fair").refuse("abcdefg!").is_some());
        assert_eq!(p("good").refuse("abcdef1!"), None);
        assert!(p("good").refuse("abcdefgh").is_some());
        assert!(p("excellent").refuse("aaabcD1!xy").is_some());
        assert_eq!(p("excellent").refuse("abcD1!xyzw"), None);
        let dict = FakePasswordPolicy {
            dictionary: vec!["Summer2024!".into()],
            ..Default::default()
        };
        assert_eq!(dict.refuse("summer2024!"), Some("PasswordDictionaryError"));
    }
}
