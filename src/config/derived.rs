//! Settings whose default depends on another section, and the warnings `check-config` prints
//! about a valid config: an email verification asserted to the provider that nobody stated or
//! that the legacy application contradicts.

use super::Config;

impl Config {
    /// Fills in the defaults that depend on another section: an unset
    /// `provider.<kind>.mark_email_verified` takes the legacy preset's answer
    /// ([`crate::legacy::Preset::emails_verified`]) where the preset has one.
    pub fn with_preset_defaults(mut self) -> Self {
        let known = self
            .legacy
            .as_ref()
            .filter(|l| l.export.is_none())
            .and_then(|l| l.preset.emails_verified());
        if let Some(verified) = self
            .provider
            .as_mut()
            .and_then(|p| p.email_verification_mut())
            && verified.is_none()
        {
            *verified = known;
        }
        self
    }

    /// What an operator should look at although the config is valid (`check-config` prints
    /// them, `serve` logs them): an email verification nobody stated, or one the legacy preset
    /// contradicts.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let Some((section, verified)) = self.provider.as_ref().and_then(|p| p.email_verification())
        else {
            return warnings;
        };
        let legacy = self.legacy.as_ref();
        let preset = legacy.map_or("none", |l| {
            if l.export.is_some() {
                "export"
            } else {
                l.preset.as_str()
            }
        });
        match verified {
            None => warnings.push(format!(
                "provider.{section}.mark_email_verified is not set and the legacy store ({preset}) does not say whether its application verified emails: users are created with the email unverified. Set it to true only if the legacy application verified every user's email, or to false to silence this warning"
            )),
            Some(true)
                if legacy
                    .filter(|l| l.export.is_none())
                    .and_then(|l| l.preset.emails_verified())
                    == Some(false) =>
            {
                warnings.push(format!(
                    "provider.{section}.mark_email_verified = true asserts to the provider that every migrated email was verified, but {preset} does not verify emails: anyone who registered there with someone else's address gets it as verified"
                ));
            }
            _ => {}
        }
        warnings
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn config(legacy: &str, verified: Option<bool>) -> Config {
        let verified = verified.map_or(String::new(), |v| format!("mark_email_verified = {v}\n"));
        let text = format!(
            "[legacy]\n{legacy}\n[provider]\nkind = \"kinde\"\n[provider.kinde]\n\
             base_url = \"https://x.kinde.com\"\nclient_id = \"id\"\nclient_secret = \"s\"\n{verified}"
        );
        super::super::parse_str(&text, "test", std::iter::empty()).unwrap()
    }

    fn verified(c: &Config) -> Option<bool> {
        c.provider
            .as_ref()
            .unwrap()
            .kinde
            .as_ref()
            .unwrap()
            .mark_email_verified
    }

    const WORDPRESS: &str = "preset = \"wordpress\"\ndatabase_url = \"sqlite://wp.db\"";
    const GENERIC: &str = "preset = \"generic\"\ndatabase_url = \"sqlite://u.db\"";

    #[test]
    fn email_verification_follows_the_preset_unless_stated() {
        for preset in ["wordpress", "drupal7", "django"] {
            let c = config(
                &format!("preset = \"{preset}\"\ndatabase_url = \"sqlite://x.db\""),
                None,
            );
            assert_eq!(verified(&c), Some(false), "{preset}");
            assert!(c.warnings().is_empty(), "{preset}: {:?}", c.warnings());
            // What check-config prints is the effective value.
            assert!(
                c.to_redacted_toml()
                    .unwrap()
                    .contains("mark_email_verified = false"),
                "{preset}"
            );
        }
        // A generic store: nobody knows; sent as false, with a warning until stated.
        let c = config(GENERIC, None);
        assert_eq!(verified(&c), None);
        assert!(
            !c.provider
                .as_ref()
                .unwrap()
                .kinde
                .as_ref()
                .unwrap()
                .email_verified()
        );
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("mark_email_verified is not set"),
            "{warnings:?}"
        );
        for stated in [true, false] {
            let c = config(GENERIC, Some(stated));
            assert_eq!(verified(&c), Some(stated));
            assert!(c.warnings().is_empty());
        }
    }

    #[test]
    fn an_assertion_the_preset_contradicts_is_kept_and_warned_about() {
        let c = config(WORDPRESS, Some(true));
        assert_eq!(verified(&c), Some(true));
        assert!(
            c.provider
                .as_ref()
                .unwrap()
                .kinde
                .as_ref()
                .unwrap()
                .email_verified()
        );
        let warnings = c.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains("wordpress does not verify"),
            "{warnings:?}"
        );
        assert!(config(WORDPRESS, Some(false)).warnings().is_empty());
    }

    #[test]
    fn every_provider_section_follows_the_same_rule() {
        let sections = [
            "[provider]\nkind = \"keycloak\"\n[provider.keycloak]\nbase_url = \"https://sso.example.com\"\n\
             realm = \"r\"\nclient_id = \"id\"\nclient_secret = \"s\"\n",
            "[provider]\nkind = \"http\"\n[provider.http_provider]\nbase_url = \"https://idp.example.com\"\n\
             key_id = \"k\"\nsigning_key = \"0123456789abcdef0123456789abcdef\"\n",
        ];
        for section in sections {
            let wordpress = format!("[legacy]\n{WORDPRESS}\n{section}");
            let c = crate::config::parse_str(&wordpress, "test", std::iter::empty()).unwrap();
            let provider = c.provider.as_ref().unwrap();
            assert_eq!(
                provider.email_verification().unwrap().1,
                Some(false),
                "{section}"
            );
            assert!(c.warnings().is_empty(), "{:?}", c.warnings());
            let generic = format!("[legacy]\n{GENERIC}\n{section}");
            let c = crate::config::parse_str(&generic, "test", std::iter::empty()).unwrap();
            let (name, verified) = c.provider.as_ref().unwrap().email_verification().unwrap();
            assert_eq!(verified, None);
            let warnings = c.warnings();
            assert!(
                warnings.len() == 1
                    && warnings[0]
                        .contains(&format!("provider.{name}.mark_email_verified is not set")),
                "{warnings:?}"
            );
        }
    }
}
