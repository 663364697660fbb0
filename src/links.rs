//! Signed tokens for the links in emails.
//!
//! A token is `base64url(claims) "." base64url(HMAC-SHA256(key, claims))`. The claims name the
//! purpose (so an unsubscribe token cannot be replayed as a manage token), the subscriber, the
//! subscriber's token version (bumping it revokes the links mailed so far, but for unsubscribe:
//! `Purpose::revocable`), an optional expiry and an optional extra value (a paper id, a delivery
//! id). Verification compares MACs in constant time and tries the current key, then the
//! previous one, so `secret_key` can be rotated without breaking the links already in people's
//! inboxes.
//! A delivery's bounce tag is the short sibling of a token, for an envelope sender's local
//! part (`bounces+TAG@…`, VERP): `DELIVERY-MAC` with the MAC cut to 80 bits in lowercase hex,
//! since a local part is at most 64 characters and some servers fold its case.
//! This module knows nothing about routes or the database: `web` decides what a valid token
//! allows, `bounces` what a valid tag does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Confirm,
    Manage,
    Unsubscribe,
    /// "View in browser" for one delivery.
    Digest,
    /// A vote on one paper.
    Feedback,
}

impl Purpose {
    fn code(self) -> &'static str {
        match self {
            Purpose::Confirm => "c",
            Purpose::Manage => "m",
            Purpose::Unsubscribe => "u",
            Purpose::Digest => "d",
            Purpose::Feedback => "f",
        }
    }

    fn from_code(s: &str) -> Option<Self> {
        Some(match s {
            "c" => Purpose::Confirm,
            "m" => Purpose::Manage,
            "u" => Purpose::Unsubscribe,
            "d" => Purpose::Digest,
            "f" => Purpose::Feedback,
            _ => return None,
        })
    }

    /// Whether links of this purpose stop working once the subscriber's token version is bumped
    /// ("revoke all my links"). Unsubscribe links never do: RFC 8058 and the law expect the link
    /// in any old email to keep working. A confirmation is ruled by its one-time nonce instead.
    pub fn revocable(self) -> bool {
        matches!(self, Purpose::Manage | Purpose::Feedback | Purpose::Digest)
    }

    /// The path segment the link uses.
    pub fn route(self) -> &'static str {
        match self {
            Purpose::Confirm => "confirm",
            Purpose::Manage => "manage",
            Purpose::Unsubscribe => "unsubscribe",
            Purpose::Digest => "digest",
            Purpose::Feedback => "feedback",
        }
    }
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub purpose: Purpose,
    pub subscriber_id: i64,
    pub token_version: i64,
    /// Unix seconds after which the token is refused; `None` never expires.
    pub expires_at: Option<i64>,
    /// What the purpose needs beyond the subscriber (paper id, delivery id…).
    pub extra: Option<String>,
}

impl Claims {
    /// Whether the link still works for a subscriber whose token version is now
    /// `current_version`: always for a purpose that cannot be revoked, otherwise only while the
    /// version it was signed with is the current one.
    pub fn is_current(&self, current_version: i64) -> bool {
        !self.purpose.revocable() || self.token_version == current_version
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the link is incomplete or damaged")]
    Malformed,
    #[error("the link's signature does not match")]
    BadSignature,
    #[error("the link has expired")]
    Expired,
    #[error("the link is for another page")]
    WrongPurpose,
}

/// Signs and verifies tokens with the current key and, optionally, the previous one.
#[derive(Clone)]
pub struct Signer {
    current: Vec<u8>,
    previous: Option<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    pub fn new(current: &str, previous: Option<&str>) -> Self {
        Signer {
            current: current.as_bytes().to_vec(),
            previous: previous.map(|p| p.as_bytes().to_vec()),
        }
    }

    pub fn sign(&self, claims: &Claims) -> String {
        let payload = encode_claims(claims);
        let mac = mac(&self.current, payload.as_bytes());
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload.as_bytes()),
            URL_SAFE_NO_PAD.encode(mac)
        )
    }

    /// Checks the signature, the purpose and the expiry. The caller still checks the token
    /// version against the subscriber where the purpose calls for it.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<Claims, TokenError> {
        let (payload_b64, mac_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let given = URL_SAFE_NO_PAD
            .decode(mac_b64)
            .map_err(|_| TokenError::Malformed)?;
        let ok = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .any(|key| verify_mac(key, &payload, &given));
        if !ok {
            return Err(TokenError::BadSignature);
        }
        let text = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
        let claims = decode_claims(text).ok_or(TokenError::Malformed)?;
        if claims.purpose != purpose {
            return Err(TokenError::WrongPurpose);
        }
        if let Some(exp) = claims.expires_at
            && now.timestamp() > exp
        {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    /// The full URL for a token: `{base}/{route}/{token}`.
    pub fn url(&self, base: &url::Url, claims: &Claims) -> String {
        format!(
            "{}/{}/{}",
            base.as_str().trim_end_matches('/'),
            claims.purpose.route(),
            self.sign(claims)
        )
    }
}

/// Bytes of the MAC a bounce tag keeps: 80 bits, far beyond guessing by sending forged bounces.
const BOUNCE_TAG_MAC_BYTES: usize = 10;

impl Signer {
    /// The tag that names `delivery` in its envelope sender: `DELIVERY-MAC`.
    pub fn bounce_tag(&self, delivery: i64) -> String {
        let mac = mac(&self.current, bounce_payload(delivery).as_bytes());
        format!("{delivery}-{}", hex(&mac[..BOUNCE_TAG_MAC_BYTES]))
    }

    /// The delivery a bounce tag names, when its MAC is right under the current or the
    /// previous key (in any letter case); `None` for a forged or damaged tag.
    pub fn verify_bounce_tag(&self, tag: &str) -> Option<i64> {
        let (delivery, given) = tag.split_once('-')?;
        let delivery: i64 = delivery.parse().ok()?;
        if given.len() != 2 * BOUNCE_TAG_MAC_BYTES || !given.is_ascii() {
            return None;
        }
        let given = (0..given.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&given[i..i + 2], 16).ok())
            .collect::<Option<Vec<u8>>>()?;
        let payload = bounce_payload(delivery);
        std::iter::once(&self.current)
            .chain(self.previous.iter())
            .any(|key| {
                let mut m =
                    HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
                m.update(payload.as_bytes());
                // Constant time, as for link tokens.
                m.verify_truncated_left(&given).is_ok()
            })
            .then_some(delivery)
    }
}

/// What a bounce tag signs: its own purpose code, so no link token's MAC is ever a tag's.
fn bounce_payload(delivery: i64) -> String {
    format!("b|{delivery}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn mac(key: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(payload);
    m.finalize().into_bytes().to_vec()
}

fn verify_mac(key: &[u8], payload: &[u8], given: &[u8]) -> bool {
    let mut m = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    m.update(payload);
    // `verify_slice` compares in constant time.
    m.verify_slice(given).is_ok()
}

// Claims as `purpose|subscriber|version|expiry|extra`; `|` cannot occur in the numeric fields
// and the extra value is last, so it may contain anything.
fn encode_claims(c: &Claims) -> String {
    format!(
        "{}|{}|{}|{}|{}",
        c.purpose.code(),
        c.subscriber_id,
        c.token_version,
        c.expires_at.map(|e| e.to_string()).unwrap_or_default(),
        c.extra.as_deref().unwrap_or("")
    )
}

fn decode_claims(s: &str) -> Option<Claims> {
    let mut parts = s.splitn(5, '|');
    let purpose = Purpose::from_code(parts.next()?)?;
    let subscriber_id = parts.next()?.parse().ok()?;
    let token_version = parts.next()?.parse().ok()?;
    let exp = parts.next()?;
    let expires_at = if exp.is_empty() {
        None
    } else {
        Some(exp.parse().ok()?)
    };
    let extra = parts.next()?;
    Some(Claims {
        purpose,
        subscriber_id,
        token_version,
        expires_at,
        extra: (!extra.is_empty()).then(|| extra.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(purpose: Purpose) -> Claims {
        Claims {
            purpose,
            subscriber_id: 42,
            token_version: 3,
            expires_at: None,
            extra: Some("2410.17243".into()),
        }
    }

    #[test]
    fn round_trip() {
        let s = Signer::new("k".repeat(32).as_str(), None);
        let t = s.sign(&claims(Purpose::Feedback));
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        );
        assert_eq!(
            s.verify(&t, Purpose::Feedback, Utc::now()).unwrap(),
            claims(Purpose::Feedback)
        );
    }

    #[test]
    fn forged_truncated_or_repurposed_tokens_fail() {
        let s = Signer::new("k".repeat(32).as_str(), None);
        let t = s.sign(&claims(Purpose::Unsubscribe));
        let other = Signer::new("x".repeat(32).as_str(), None);
        assert_eq!(
            other.verify(&t, Purpose::Unsubscribe, Utc::now()),
            Err(TokenError::BadSignature)
        );
        assert!(
            s.verify(&t[..t.len() - 2], Purpose::Unsubscribe, Utc::now())
                .is_err()
        );
        assert_eq!(
            s.verify(&t, Purpose::Manage, Utc::now()),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            s.verify("nonsense", Purpose::Manage, Utc::now()),
            Err(TokenError::Malformed)
        );

        // Someone edits the subscriber id in the payload and keeps the MAC.
        let (_, mac) = t.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("u|43|3||2410.17243");
        let forged = format!("{forged_payload}.{mac}");
        assert_eq!(
            s.verify(&forged, Purpose::Unsubscribe, Utc::now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn expiry_is_enforced() {
        let s = Signer::new("k".repeat(32).as_str(), None);
        let now = Utc::now();
        let mut c = claims(Purpose::Confirm);
        c.expires_at = Some(now.timestamp() - 1);
        assert_eq!(
            s.verify(&s.sign(&c), Purpose::Confirm, now),
            Err(TokenError::Expired)
        );
        c.expires_at = Some(now.timestamp() + 60);
        assert!(s.verify(&s.sign(&c), Purpose::Confirm, now).is_ok());
    }

    #[test]
    fn previous_key_still_verifies_after_rotation() {
        let old = Signer::new("old-key-old-key-old-key-old-key-", None);
        let t = old.sign(&claims(Purpose::Unsubscribe));
        let rotated = Signer::new(
            "new-key-new-key-new-key-new-key-",
            Some("old-key-old-key-old-key-old-key-"),
        );
        assert!(rotated.verify(&t, Purpose::Unsubscribe, Utc::now()).is_ok());
        let forgotten = Signer::new("new-key-new-key-new-key-new-key-", None);
        assert!(
            forgotten
                .verify(&t, Purpose::Unsubscribe, Utc::now())
                .is_err()
        );
    }

    #[test]
    fn a_bumped_version_revokes_every_link_but_unsubscribe_and_confirm() {
        for (purpose, survives) in [
            (Purpose::Manage, false),
            (Purpose::Feedback, false),
            (Purpose::Digest, false),
            (Purpose::Unsubscribe, true),
            (Purpose::Confirm, true),
        ] {
            let c = claims(purpose);
            assert!(c.is_current(3), "{purpose:?} at its own version");
            assert_eq!(c.is_current(4), survives, "{purpose:?} after a bump");
        }
    }

    #[test]
    fn url_joins_base_route_and_token() {
        let s = Signer::new("k".repeat(32).as_str(), None);
        let base = url::Url::parse("https://paperboy.example.org/").unwrap();
        let u = s.url(&base, &claims(Purpose::Manage));
        assert!(u.starts_with("https://paperboy.example.org/manage/"), "{u}");
    }

    #[test]
    fn bounce_tags_name_their_delivery_and_refuse_forgeries() {
        let signer = Signer::new("current-key-0123456789abcdef0123456789", None);
        let tag = signer.bounce_tag(4711);
        assert!(tag.starts_with("4711-") && tag.len() == 5 + 20, "{tag}");
        assert_eq!(signer.verify_bounce_tag(&tag), Some(4711));
        assert_eq!(signer.verify_bounce_tag(&tag.to_uppercase()), Some(4711));
        // Another delivery's number with this MAC, a changed MAC, a cut one: refused.
        let mac = tag.split_once('-').unwrap().1;
        assert_eq!(signer.verify_bounce_tag(&format!("4712-{mac}")), None);
        let mut flipped = tag.clone();
        let last = flipped.pop().unwrap();
        flipped.push(if last == '0' { '1' } else { '0' });
        assert_eq!(signer.verify_bounce_tag(&flipped), None);
        assert_eq!(signer.verify_bounce_tag(&tag[..tag.len() - 2]), None);
        assert_eq!(signer.verify_bounce_tag("4711"), None);
        // A rotated key still reads the tags mailed before the rotation.
        let rotated = Signer::new(
            "next-key-0123456789abcdef0123456789abc",
            Some("current-key-0123456789abcdef0123456789"),
        );
        assert_eq!(rotated.verify_bounce_tag(&tag), Some(4711));
        let other = Signer::new("another-key-0123456789abcdef012345678", None);
        assert_eq!(other.verify_bounce_tag(&tag), None);
    }
}
