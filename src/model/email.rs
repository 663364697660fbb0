//! `EmailAddress`: a parsed, normalised mailbox address.

use std::fmt;
use std::str::FromStr;

/// An email address that has been parsed per RFC 5322 `addr-spec` (via the `email_address`
/// crate, not a regular expression) and normalised: surrounding white space trimmed, the domain
/// lower-cased. The local part keeps its case because RFC 5321 lets servers treat it as
/// case-sensitive; in practice nobody does, so it is lower-cased too when it is plain ASCII, which
/// makes `Ada@Example.org` and `ada@example.org` one subscriber.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct EmailAddress(String);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EmailError {
    #[error("the email address is empty")]
    Empty,
    #[error("`{input}` is not a valid email address ({reason}); write it as name@example.org")]
    Invalid { input: String, reason: String },
    #[error(
        "`{input}` has no dot in its domain; paperboy only mails addresses on public domains such as name@example.org"
    )]
    NoDotInDomain { input: String },
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        // Display names ("Ada <ada@x.org>") are not addresses; refuse them rather than guess.
        let options = email_address::Options::default().without_display_text();
        let parsed =
            email_address::EmailAddress::parse_with_options(trimmed, options).map_err(|e| {
                EmailError::Invalid {
                    input: trimmed.to_string(),
                    reason: e.to_string(),
                }
            })?;
        let local = parsed.local_part();
        let domain = parsed.domain().to_ascii_lowercase();
        if domain.starts_with('[') || !domain.contains('.') {
            return Err(EmailError::NoDotInDomain {
                input: trimmed.to_string(),
            });
        }
        let local = if local.is_ascii() {
            local.to_ascii_lowercase()
        } else {
            local.to_string()
        };
        Ok(EmailAddress(format!("{local}@{domain}")))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map(|(_, d)| d).unwrap_or("")
    }
}

impl FromStr for EmailAddress {
    type Err = EmailError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EmailAddress {
    // Addresses are personal data: keep them out of `{:?}` in logs by default.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EmailAddress(***@{})", self.domain())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_case_and_space() {
        let e = EmailAddress::parse("  Ada.Lovelace@Example.ORG ").unwrap();
        assert_eq!(e.as_str(), "ada.lovelace@example.org");
        assert_eq!(e.domain(), "example.org");
    }

    #[test]
    fn refuses_garbage_with_a_reason() {
        for bad in [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.org",
            "a b@example.org",
            "ada@localhost",
        ] {
            let err = EmailAddress::parse(bad).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad}");
        }
        let err = EmailAddress::parse("ada@@example.org").unwrap_err();
        assert!(err.to_string().contains("ada@@example.org"));
    }

    #[test]
    fn refuses_display_names_and_header_injection() {
        assert!(EmailAddress::parse("Ada <ada@example.org>").is_err());
        assert!(EmailAddress::parse("ada@example.org\r\nBcc: x@y.org").is_err());
    }

    #[test]
    fn debug_hides_the_local_part() {
        let e = EmailAddress::parse("secret@example.org").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }
}
