//! `EmailAddress`: a parsed, normalised mailbox address.

use std::fmt;
use std::str::FromStr;

/// An email address that has been parsed per RFC 5322 `addr-spec` (via the `email_address`
/// crate, not a regular expression) and normalised, so that one mailbox has one spelling:
/// - surrounding white space trimmed;
/// - the domain in its ASCII form (UTS 46: IDNA mapping, lower case, punycode), so
///   `ann@EXÄMPLE.org` and `ann@xn--exmple-cua.org` are one subscriber, and messages go out to
///   servers that do not speak SMTPUTF8;
/// - the local part lower-cased when it is plain ASCII. RFC 5321 lets servers treat it as
///   case-sensitive; in practice nobody does, which makes `Ada@Example.org` and
///   `ada@example.org` one subscriber. A non-ASCII local part is kept as typed.
///
/// Refused, because they cannot be mailed or hide their real form: quoted local parts
/// (`"john doe"@example.org`, which many servers and lettre's header parser refuse),
/// invisible characters (bidi controls, zero-width and other format characters, non-ASCII
/// spaces: two addresses that look the same must be the same), domain literals and domains
/// without a dot.
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
    #[error(
        "`{input}` has a quoted local part (the part before @ in double quotes), which many mail \
         servers refuse; write the address without quotes, such as john.doe@example.org"
    )]
    Quoted { input: String },
    /// `shown` is the input with each invisible character written as `<U+XXXX>`.
    #[error(
        "`{shown}` contains {what} ({code}), which cannot be seen and can make one address look \
         like another; type the address again without it"
    )]
    Invisible {
        shown: String,
        what: &'static str,
        code: String,
    },
    #[error(
        "`{input}` has a domain (the part after @) that is not a valid domain name; check its spelling"
    )]
    BadDomain { input: String },
}

impl EmailError {
    /// What is wrong, without the address itself: for logs, where addresses do not belong.
    pub fn problem(&self) -> &'static str {
        match self {
            EmailError::Empty => "empty",
            EmailError::Invalid { .. } => "not an address",
            EmailError::NoDotInDomain { .. } => "no dot in the domain",
            EmailError::Quoted { .. } => "quoted local part",
            EmailError::Invisible { what, .. } => what,
            EmailError::BadDomain { .. } => "invalid domain name",
        }
    }
}

/// What kind of invisible character `c` is, if it is one an address must not contain: the
/// unseen characters of `model::text` outside ASCII. ASCII controls and spaces are refused by
/// the address grammar itself, with its reason.
fn invisible(c: char) -> Option<&'static str> {
    if c.is_ascii() {
        return None;
    }
    super::text::unseen(c).map(super::text::Unseen::what)
}

/// The domain in its ASCII form: UTS 46 mapping (lower case, compatibility forms), punycode,
/// only letters, digits and hyphens (STD3), DNS lengths checked.
fn ascii_domain(domain: &str) -> Option<String> {
    use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
    Uts46::new()
        .to_ascii(
            domain.as_bytes(),
            AsciiDenyList::STD3,
            Hyphens::Allow,
            DnsLength::Verify,
        )
        .ok()
        .map(|d| d.into_owned())
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(EmailError::Empty);
        }
        if let Some((what, c)) = trimmed.chars().find_map(|c| invisible(c).map(|w| (w, c))) {
            let shown = trimmed
                .chars()
                .map(|c| match invisible(c) {
                    Some(_) => format!("<U+{:04X}>", c as u32),
                    None => c.to_string(),
                })
                .collect();
            return Err(EmailError::Invisible {
                shown,
                what,
                code: format!("U+{:04X}", c as u32),
            });
        }
        // A double quote can only be part of a quoted local part; say so rather than quote the
        // grammar's complaint.
        if trimmed
            .rsplit_once('@')
            .is_some_and(|(local, _)| local.contains('"'))
        {
            return Err(EmailError::Quoted {
                input: trimmed.to_string(),
            });
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
        let domain = parsed.domain();
        if domain.starts_with('[') {
            return Err(EmailError::NoDotInDomain {
                input: trimmed.to_string(),
            });
        }
        let domain = ascii_domain(domain).ok_or_else(|| EmailError::BadDomain {
            input: trimmed.to_string(),
        })?;
        if !domain.contains('.') {
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
    fn ordinary_addresses_are_unchanged() {
        for ok in [
            "ada@example.org",
            "ada.lovelace+digest@mail.example.co.uk",
            "o'brien@example.org",
            "x_y-z@sub-domain.example.org",
        ] {
            assert_eq!(EmailAddress::parse(ok).unwrap().as_str(), ok);
        }
        // A non-ASCII local part is kept as typed (no case folding outside ASCII).
        assert_eq!(
            EmailAddress::parse("José@example.org").unwrap().as_str(),
            "José@example.org"
        );
    }

    #[test]
    fn an_internationalised_domain_is_stored_in_ascii_lower_case() {
        let e = EmailAddress::parse("Ann@EXÄMPLE.org").unwrap();
        assert_eq!(e.as_str(), "ann@xn--exmple-cua.org");
        assert_eq!(e.domain(), "xn--exmple-cua.org");
        let e = EmailAddress::parse("ann@bücher.例え.jp").unwrap();
        assert!(e.as_str().is_ascii(), "{e}");
        assert_eq!(e.as_str(), "ann@xn--bcher-kva.xn--r8jz45g.jp");
    }

    #[test]
    fn the_punycode_and_unicode_forms_are_one_address() {
        let forms = [
            "ann@EXÄMPLE.org",
            "ann@exämple.org",
            "ann@xn--exmple-cua.org",
            "ANN@XN--EXMPLE-CUA.ORG",
        ];
        for form in forms {
            assert_eq!(
                EmailAddress::parse(form).unwrap(),
                EmailAddress::parse(forms[0]).unwrap(),
                "{form}"
            );
        }
        // Punycode that does not decode is no domain.
        let err = EmailAddress::parse("ann@xn--55555577.org").unwrap_err();
        assert!(matches!(err, EmailError::BadDomain { .. }), "{err}");
    }

    #[test]
    fn quoted_local_parts_are_refused_with_a_reason() {
        for bad in [
            "\"john doe\"@example.org",
            "\"john\"@example.org",
            "\"a@b\"@example.org",
        ] {
            let err = EmailAddress::parse(bad).unwrap_err();
            assert!(matches!(err, EmailError::Quoted { .. }), "{bad}: {err}");
            let message = err.to_string();
            assert!(message.contains("quoted local part"), "{message}");
            assert!(message.contains("without quotes"), "{message}");
        }
    }

    #[test]
    fn bidi_overrides_are_refused_and_shown_escaped() {
        let err = EmailAddress::parse("ann\u{202E}gro.elpmaxe@example.org").unwrap_err();
        assert_eq!(err.problem(), "a bidirectional text control");
        let message = err.to_string();
        assert!(
            message.contains("ann<U+202E>gro.elpmaxe@example.org"),
            "{message}"
        );
        assert!(
            !message.contains('\u{202E}'),
            "the message itself must not reorder text"
        );
        for c in ['\u{200E}', '\u{200F}', '\u{2066}', '\u{2069}', '\u{061C}'] {
            let err = EmailAddress::parse(&format!("ann@exa{c}mple.org")).unwrap_err();
            assert_eq!(err.problem(), "a bidirectional text control", "{c:?}");
        }
    }

    #[test]
    fn zero_width_and_other_invisible_characters_are_refused() {
        for c in ['\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}'] {
            // In the local part, and in the domain (where IDNA would silently drop it).
            for input in [format!("an{c}n@example.org"), format!("ann@exam{c}ple.org")] {
                let err = EmailAddress::parse(&input).unwrap_err();
                assert_eq!(err.problem(), "a zero-width character", "{input:?}");
                assert!(err.to_string().contains(&format!("<U+{:04X}>", c as u32)));
            }
        }
        for (c, problem) in [
            ('\u{00AD}', "an invisible formatting character"),
            ('\u{E0041}', "an invisible formatting character"),
            ('\u{0085}', "an invisible formatting character"),
            ('\u{FE0F}', "an invisible character"),
            ('\u{3164}', "an invisible character"),
            ('\u{00A0}', "a non-ASCII space"),
            ('\u{2028}', "a non-ASCII space"),
        ] {
            let err = EmailAddress::parse(&format!("an{c}n@example.org")).unwrap_err();
            assert_eq!(err.problem(), problem, "{c:?}");
        }
    }

    #[test]
    fn domains_that_are_no_host_names_are_refused() {
        for bad in ["ann@exa_mple.org", "ann@ex!ample.org", "ann@[192.0.2.1]"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        let long_label = format!("ann@{}.org", "a".repeat(64));
        assert!(EmailAddress::parse(&long_label).is_err());
    }

    #[test]
    fn debug_hides_the_local_part() {
        let e = EmailAddress::parse("secret@example.org").unwrap();
        assert!(!format!("{e:?}").contains("secret"));
    }
}
