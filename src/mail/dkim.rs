//! DKIM signing of outgoing mail (`mail.dkim_key_file`, `mail.dkim_selector`,
//! `mail.dkim_domain`).
//!
//! What for: loading the private key once at start (RSA or Ed25519, in the PEM forms `openssl`
//! writes) and signing each message with the header list a mailing list needs.
//! Not for: publishing the public key (that is a DNS record the operator adds).
//!
//! Why our own header list: lettre's default `DkimConfig` signs only From, Subject, To and
//! Date. An unsigned `List-Unsubscribe` could be rewritten in transit without breaking the
//! signature, and Gmail and Yahoo require the one-click headers to be covered by DKIM.

use base64::Engine;
use lettre::Message;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
    DkimSigningKey,
};
use lettre::message::header::HeaderName;
use std::path::Path;
use std::sync::Arc;

/// The headers every digest is signed over, in this order.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
];

/// A loaded signing key and where it is published.
#[derive(Clone)]
pub struct DkimSigner {
    config: Arc<DkimConfig>,
    algorithm: &'static str,
}

impl std::fmt::Debug for DkimSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DkimSigner({})", self.algorithm)
    }
}

/// The DER prefix of a PKCS#8 Ed25519 private key (RFC 8410): the 32-byte seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl DkimSigner {
    /// Reads the key file. Accepted: RSA as PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
    /// (`BEGIN PRIVATE KEY`, what `openssl genrsa` writes today), Ed25519 as PKCS#8
    /// (`openssl genpkey -algorithm ed25519`) or as the bare base64 32-byte seed.
    pub fn load(path: &Path, selector: &str, domain: &str) -> Result<DkimSigner, String> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            format!(
                "cannot read config key `mail.dkim_key_file` ({}): {e}",
                path.display()
            )
        })?;
        let bad = |why: String| {
            format!(
                "config key `mail.dkim_key_file` ({}) holds no usable key: {why}; use an RSA or \
                 Ed25519 private key in PEM, e.g. from `openssl genpkey -algorithm ed25519`",
                path.display()
            )
        };
        let (key, algorithm) = parse_key(&text).map_err(bad)?;
        let headers = SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect();
        let config = DkimConfig::new(
            selector.to_string(),
            domain.to_string(),
            key,
            headers,
            // Relaxed/relaxed survives the re-folding and whitespace changes relays make.
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        );
        Ok(DkimSigner {
            config: Arc::new(config),
            algorithm,
        })
    }

    /// Adds a `DKIM-Signature` header.
    pub fn sign(&self, message: &mut Message) {
        message.sign(&self.config);
    }

    pub fn algorithm(&self) -> &'static str {
        self.algorithm
    }
}

fn pem_body(text: &str) -> Result<Vec<u8>, String> {
    let b64: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.trim().chars())
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64 ({e})"))
}

fn parse_key(text: &str) -> Result<(DkimSigningKey, &'static str), String> {
    let text = text.trim();
    if text.contains("BEGIN RSA PRIVATE KEY") {
        let key = DkimSigningKey::new(text, DkimSigningAlgorithm::Rsa)
            .map_err(|e| format!("not an RSA key ({e})"))?;
        return Ok((key, "rsa-sha256"));
    }
    if text.contains("BEGIN PRIVATE KEY") {
        let der = pem_body(text)?;
        if der.len() == 48 && der.starts_with(&ED25519_PKCS8_PREFIX) {
            let seed = base64::engine::general_purpose::STANDARD.encode(&der[16..]);
            let key = DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519)
                .map_err(|e| format!("not an Ed25519 key ({e})"))?;
            return Ok((key, "ed25519-sha256"));
        }
        // lettre reads RSA keys as PKCS#1 only: convert PKCS#8 to it.
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let rsa = rsa::RsaPrivateKey::from_pkcs8_der(&der)
            .map_err(|e| format!("a PKCS#8 key that is neither Ed25519 nor RSA ({e})"))?;
        let pkcs1 = rsa
            .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
            .map_err(|e| e.to_string())?;
        let key = DkimSigningKey::new(&pkcs1, DkimSigningAlgorithm::Rsa)
            .map_err(|e| format!("not an RSA key ({e})"))?;
        return Ok((key, "rsa-sha256"));
    }
    // A bare base64 Ed25519 seed, as lettre's own docs use.
    let key = DkimSigningKey::new(text, DkimSigningAlgorithm::Ed25519)
        .map_err(|e| format!("neither PEM nor a base64 Ed25519 seed ({e})"))?;
    Ok((key, "ed25519-sha256"))
}
