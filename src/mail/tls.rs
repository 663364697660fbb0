//! Which mail servers paperboy trusts (SMTP, and the bounce mailbox over IMAPS), and what a
//! refused certificate means, in words.
//!
//! What for: one set of roots for both ways of securing a session (implicit TLS, which the
//! pool does with tokio-rustls, and STARTTLS, which lettre does): the operating system's trust
//! store (`rustls-native-certs`: `/etc/ssl/certs` on Debian, or what `SSL_CERT_FILE` /
//! `SSL_CERT_DIR` name), the built-in webpki roots where the system has none, and the CAs of
//! `mail.tls_ca_file`. The host name in `mail.smtp_url` is always checked; nothing here turns
//! a check off. When a handshake fails, [`Trust::explain`] turns rustls's verdict into one line
//! that says what to change; for an unknown issuer it names the issuer, which it reads from
//! the certificate fetched again without checks (and then only looked at: nothing is sent on
//! that session).
//! Not for: deciding when to use TLS (`config::SmtpTls`, the pool).

use crate::config::CaFile;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, CertificateStore, TlsParameters, TlsParametersBuilder,
};
use std::sync::Arc;
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

/// The roots a server certificate must chain to, built once per mailer.
#[derive(Clone)]
pub struct Trust {
    /// For implicit TLS.
    config: Arc<rustls::ClientConfig>,
    /// Every root that parsed, for lettre's STARTTLS parameters.
    roots: Vec<CertificateDer<'static>>,
    /// The system store was empty, so the webpki roots stand in for it.
    builtin: bool,
    /// Where the roots came from, for `paperboy check`.
    summary: String,
    /// `mail.tls_ca_file`, named in the advice for an unknown issuer.
    ca_file: Option<std::path::PathBuf>,
}

impl Trust {
    /// The system's roots (or the webpki roots where it has none) and `mail.tls_ca_file`'s.
    pub fn load(ca_file: Option<&CaFile>) -> Trust {
        let native = rustls_native_certs::load_native_certs();
        if !native.errors.is_empty() {
            tracing::warn!(
                errors = ?native.errors,
                "some of the system's CA certificates could not be read; the rest are used"
            );
        }
        let mut store = rustls::RootCertStore::empty();
        let mut roots = Vec::new();
        let system = add_roots(&mut store, &mut roots, &native.certs);
        let builtin = system == 0;
        let mut summary = if !builtin {
            format!("{system} roots from the system's trust store")
        } else {
            let builtin = webpki_roots::TLS_SERVER_ROOTS.len();
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            format!("the system's trust store is empty: {builtin} built-in web roots")
        };
        if let Some(file) = ca_file {
            let extra = add_roots(&mut store, &mut roots, &file.certificates);
            summary.push_str(&format!(
                " + {extra} from {} (mail.tls_ca_file)",
                file.path.display()
            ));
        }
        let config = client_config(store, None);
        Trust {
            config,
            roots,
            builtin,
            summary,
            ca_file: ca_file.map(|f| f.path.clone()),
        }
    }

    /// Where the trusted roots come from, in words.
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The connector for implicit TLS (`smtps://`).
    pub fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.config.clone())
    }

    /// lettre's parameters for STARTTLS to `host`, with the same roots. When the system store
    /// was empty (so `roots` holds only the CA file's), the webpki roots are lettre's own.
    pub fn starttls_parameters(&self, host: &str) -> Result<TlsParameters, String> {
        let store = if self.builtin {
            CertificateStore::WebpkiRoots
        } else {
            CertificateStore::None
        };
        let mut builder = TlsParametersBuilder::new(host.to_string()).certificate_store(store);
        for root in &self.roots {
            let certificate = lettre::transport::smtp::client::Certificate::from_der(root.to_vec())
                .map_err(|e| e.to_string())?;
            builder = builder.add_root_certificate(certificate);
        }
        builder.build_rustls().map_err(|e| e.to_string())
    }

    /// One line for a failed TLS handshake with `host`: what was wrong and what to change.
    /// `None` when `error` holds no TLS verdict (a reset connection, say).
    pub fn explain(
        &self,
        host: &str,
        error: &(dyn std::error::Error + 'static),
        issuer: Option<&str>,
    ) -> Option<String> {
        let verdict = rustls_error(error)?;
        Some(match verdict {
            rustls::Error::InvalidCertificate(problem) => {
                self.explain_certificate(host, problem, issuer)
            }
            other => format!("TLS with {host} failed: {other}"),
        })
    }

    /// Whether `error` carries a TLS verdict that [`Trust::explain`] can put in words.
    pub fn has_verdict(error: &(dyn std::error::Error + 'static)) -> bool {
        rustls_error(error).is_some()
    }

    /// Whether `error` is a certificate signed by an authority not in the roots: the case
    /// whose explanation names the issuer, which needs the certificate fetched again.
    pub fn is_unknown_issuer(error: &(dyn std::error::Error + 'static)) -> bool {
        matches!(
            rustls_error(error),
            Some(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer
            ))
        )
    }

    fn explain_certificate(
        &self,
        host: &str,
        problem: &CertificateError,
        issuer: Option<&str>,
    ) -> String {
        let ca_file = match &self.ca_file {
            Some(path) => format!(
                "add that CA's certificate (PEM) to {} (`mail.tls_ca_file`)",
                path.display()
            ),
            None => "set `mail.tls_ca_file` to that CA's certificate (PEM)".to_string(),
        };
        match problem {
            CertificateError::UnknownIssuer => format!(
                "the certificate of {host} is issued by {}, which this machine does not \
                 trust: {ca_file}, or install it in the system's trust store \
                 (update-ca-certificates)",
                issuer.map_or("an authority".to_string(), |i| format!("\"{i}\"")),
            ),
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "the certificate of {host} is for {}, not for {host}: put a name the \
                 certificate holds in `mail.smtp_url`, or have the server's certificate \
                 include {host}",
                if presented.is_empty() {
                    "no host name".to_string()
                } else {
                    presented
                        .iter()
                        .map(|name| readable_name(name))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ),
            CertificateError::NotValidForName => format!(
                "the certificate of {host} is not for {host}: put a name the certificate \
                 holds in `mail.smtp_url`, or have the server's certificate include {host}"
            ),
            CertificateError::ExpiredContext { not_after, .. } => format!(
                "the certificate of {host} expired on {}: the server's operator must renew it",
                date(*not_after)
            ),
            CertificateError::Expired => format!(
                "the certificate of {host} has expired: the server's operator must renew it"
            ),
            CertificateError::NotValidYetContext { not_before, .. } => format!(
                "the certificate of {host} is valid only from {}: check this machine's clock",
                date(*not_before)
            ),
            CertificateError::NotValidYet => {
                format!("the certificate of {host} is not valid yet: check this machine's clock")
            }
            other => format!("the certificate of {host} is refused: {other:?}"),
        }
    }
}

/// Adds the certificates that parse as trust anchors to `store` and `kept`; how many did.
fn add_roots(
    store: &mut rustls::RootCertStore,
    kept: &mut Vec<CertificateDer<'static>>,
    certificates: &[CertificateDer<'static>],
) -> usize {
    let mut added = 0;
    for certificate in certificates {
        if store.add(certificate.clone()).is_ok() {
            kept.push(certificate.clone());
            added += 1;
        }
    }
    added
}

/// The rustls verdict inside an error chain: lettre's errors and `io::Error`s wrap it.
fn rustls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An `io::Error`'s `source` skips the error it carries; look inside it first.
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(inner);
        }
        next = e.source();
    }
    None
}

/// A name the certificate holds, as webpki reports it (`DnsName("relay.example.net")`),
/// without the wrapping.
fn readable_name(presented: &str) -> &str {
    presented
        .split_once("(\"")
        .and_then(|(_, rest)| rest.strip_suffix("\")"))
        .unwrap_or(presented)
}

fn date(time: UnixTime) -> String {
    chrono::DateTime::from_timestamp(time.as_secs() as i64, 0).map_or_else(
        || format!("{}", time.as_secs()),
        |t| t.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// The issuer of a DER certificate, as RFC 4514 writes it (`CN=…,O=…`).
pub fn issuer_of(der: &[u8]) -> Option<String> {
    use x509_cert::der::Decode;
    let certificate = x509_cert::Certificate::from_der(der).ok()?;
    Some(certificate.tbs_certificate.issuer.to_string())
}

/// A client configuration on `store`, or, with `verifier`, one that lets that verifier judge.
fn client_config(
    store: rustls::RootCertStore,
    verifier: Option<Arc<dyn ServerCertVerifier>>,
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions");
    let config = match verifier {
        None => builder.with_root_certificates(store),
        Some(verifier) => builder
            .dangerous()
            .with_custom_certificate_verifier(verifier),
    };
    Arc::new(config.with_no_client_auth())
}

/// For [`issuer_of_server`] only: takes any certificate, so that a refused one can be read
/// and named. The session it secures carries nothing but EHLO and QUIT.
#[derive(Debug)]
struct Inspect(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Inspect {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// How a server's certificate is reached: TLS from the first byte (smtps, imaps), or SMTP's
/// STARTTLS after EHLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Implicit,
    StartTls,
}

impl Trust {
    /// One line for a failed handshake with `host:port`: what was wrong and what to change.
    /// For an issuer we do not trust, the certificate is fetched once more, without checks,
    /// to name the issuer.
    pub async fn refusal(
        &self,
        host: &str,
        port: u16,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        handshake: Handshake,
        timeout: std::time::Duration,
    ) -> String {
        let issuer = match Trust::is_unknown_issuer(error) {
            true => tokio::time::timeout(timeout, issuer_of_server(host, port, handshake))
                .await
                .ok()
                .flatten(),
            false => None,
        };
        self.explain(host, error, issuer.as_deref())
            .unwrap_or_else(|| format!("TLS with {host} failed: {error}"))
    }
}

/// The issuer of the certificate a server presents, read over a session that checks nothing
/// and is closed before anything but EHLO (and STARTTLS) was said. `None` when it cannot be
/// had: the explanation then says "an authority".
async fn issuer_of_server(host: &str, port: u16, handshake: Handshake) -> Option<String> {
    let tcp = tokio::net::TcpStream::connect((host, port)).await.ok()?;
    match handshake {
        Handshake::Implicit => {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = client_config(
                rustls::RootCertStore::empty(),
                Some(Arc::new(Inspect(provider))),
            );
            let name = ServerName::try_from(host.to_string()).ok()?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .ok()?;
            let der = tls.get_ref().1.peer_certificates()?.first()?.to_vec();
            issuer_of(&der)
        }
        Handshake::StartTls => {
            let hello = lettre::transport::smtp::extension::ClientId::default();
            let mut conn = AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                .await
                .ok()?;
            let parameters = TlsParametersBuilder::new(host.to_string())
                .dangerous_accept_invalid_certs(true)
                .build_rustls()
                .ok()?;
            conn.starttls(parameters, &hello).await.ok()?;
            let der = conn.peer_certificate().ok();
            let _ = conn.quit().await;
            issuer_of(&der?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trust() -> Trust {
        Trust::load(None)
    }

    fn explained(problem: CertificateError) -> String {
        let error = std::io::Error::other(rustls::Error::InvalidCertificate(problem));
        trust()
            .explain("mail.example.org", &error, Some("CN=Example Private CA"))
            .expect("a TLS verdict")
    }

    #[test]
    fn each_refused_certificate_is_one_line_that_says_what_to_change() {
        let unknown = explained(CertificateError::UnknownIssuer);
        assert!(
            unknown.contains("issued by \"CN=Example Private CA\"")
                && unknown.contains("`mail.tls_ca_file`")
                && unknown.contains("update-ca-certificates"),
            "{unknown}"
        );
        let name = explained(CertificateError::NotValidForNameContext {
            expected: ServerName::try_from("mail.example.org").unwrap().to_owned(),
            presented: vec!["DnsName(\"relay.example.net\")".into()],
        });
        assert!(
            name.contains("relay.example.net") && name.contains("`mail.smtp_url`"),
            "{name}"
        );
        let expired = explained(CertificateError::ExpiredContext {
            time: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_800_000_000)),
            not_after: UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_700_000_000)),
        });
        assert!(
            expired.contains("expired on 2023-11-14") && expired.contains("renew"),
            "{expired}"
        );
        for line in [&unknown, &name, &expired] {
            assert!(!line.contains('\n'), "{line}");
            assert!(!line.to_lowercase().contains("connection error"), "{line}");
        }
    }

    #[test]
    fn errors_without_a_tls_verdict_are_left_to_the_caller() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(trust().explain("h", &refused, None).is_none());
        assert!(!Trust::is_unknown_issuer(&refused));
    }
}
