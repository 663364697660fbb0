//! Our own SMTP connection pool, built on lettre's public connection API.
//!
//! What for: sending many messages fast and knowing exactly how each one ended. Up to
//! `mail.max_connections` sessions are open at once and each is reused for message after
//! message (`RSET` after a refused transaction, a fresh connection after a broken one).
//! Not for: building messages, deciding retries (the caller classifies with [`Failure`]).
//!
//! Why not lettre's `AsyncSmtpTransport` pool: lettre 0.11.23 never sets `TCP_NODELAY`, and its
//! DATA phase writes the body and then the five-byte `\r\n.\r\n` terminator as two writes. With
//! Nagle's algorithm on, the terminator waits for the ACK of the body, which the server delays
//! (delayed ACK, 40 ms on Linux): one connection then manages about 23 messages a second on
//! loopback. Here we open the `TcpStream` ourselves, set `TCP_NODELAY`, and hand it to
//! `AsyncSmtpConnection::connect_with_transport`. (We also send the body and its terminator as
//! one write, `DataBody`, so Nagle has nothing to hold back there either.) Running the
//! transaction step by step (MAIL, RCPT, DATA, body) also tells us *where* a refusal came
//! from: a 5xx at RCPT means the address is bad (a hard bounce), while a 5xx at the end of
//! DATA is about the message.

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::fmt;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::rustls;

/// How the session is protected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain text (`smtp://host`): loopback relays and tests.
    Plain,
    /// `STARTTLS` after the greeting; refuse to go on without it (`?tls=required`).
    StartTlsRequired,
    /// `STARTTLS` when the server offers it (`?tls=opportunistic`).
    StartTlsOpportunistic,
    /// TLS from the first byte (`smtps://`, port 465).
    Implicit,
}

/// Where and how to connect, parsed from `mail.smtp_url`.
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub security: Security,
    pub credentials: Option<Credentials>,
    pub hello: ClientId,
}

impl fmt::Debug for Target {
    // Never print the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("auth", &self.credentials.is_some())
            .finish()
    }
}

impl Target {
    /// Parses `smtp://[user:pass@]host[:port][/helo-name][?tls=required|opportunistic]` or
    /// `smtps://…`, with the same defaults as lettre's `from_url` (25 plain, 587 STARTTLS,
    /// 465 implicit), so existing configs mean the same thing.
    pub fn from_url(raw: &str) -> Result<Target, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
        let host = url
            .host_str()
            .ok_or("the URL names no host")?
            .trim_matches(|c| c == '[' || c == ']')
            .to_string();
        let tls = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.to_string());
        let (security, default_port) = match (url.scheme(), tls.as_deref()) {
            ("smtp", None) => (Security::Plain, 25),
            ("smtp", Some("required")) => (Security::StartTlsRequired, 587),
            ("smtp", Some("opportunistic")) => (Security::StartTlsOpportunistic, 587),
            ("smtps", _) => (Security::Implicit, 465),
            (scheme, tls) => {
                return Err(format!(
                    "scheme `{scheme}` with tls={tls:?} is not supported; use smtp://, \
                     smtp://…?tls=required, smtp://…?tls=opportunistic or smtps://"
                ));
            }
        };
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let credentials = url
            .password()
            .map(|p| Credentials::new(decode(url.username()), decode(p)));
        let path = url.path().trim_matches('/');
        let hello = if path.is_empty() {
            ClientId::default()
        } else {
            ClientId::Domain(path.to_string())
        };
        Ok(Target {
            port: url.port().unwrap_or(default_port),
            host,
            security,
            credentials,
            hello,
        })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, Failure> {
        TlsParameters::new(self.host.clone())
            .map_err(|e| Failure::new(Stage::Connect, Kind::Temporary, Class::Tls, e.to_string()))
    }
}

/// Where in the SMTP conversation a send failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Connecting, greeting, EHLO, STARTTLS, AUTH: no transaction started.
    Connect,
    Mail,
    Rcpt,
    Data,
    /// After the body was sent: the server may or may not have taken the message.
    EndOfData,
}

/// Whether trying again later can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A 4xx answer, a timeout, a dropped connection.
    Temporary,
    /// A 5xx answer.
    Permanent,
}

/// What went wrong, as the operator counts it (`paperboy_smtp_errors_total{class=…}`). Set where
/// the failure happens, from lettre's error kind or from what the pool itself saw, so nothing
/// downstream reads it back out of the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// A 4xx answer.
    Transient,
    /// A 5xx answer.
    Permanent,
    /// The connection could not be opened, or broke.
    Connection,
    /// No answer in time. The session is then out of step (a late answer may still come), so
    /// it is never reused.
    Timeout,
    /// The TLS handshake or its setup failed.
    Tls,
    /// Anything else: an answer lettre could not parse, a feature the server lacks, a `.eml`
    /// file that could not be written.
    Other,
}

/// Why one message was not accepted.
#[derive(Clone, Debug)]
pub struct Failure {
    pub stage: Stage,
    pub kind: Kind,
    pub class: Class,
    /// The server's answer or the I/O error, for the operator.
    pub detail: String,
}

impl Failure {
    pub fn new(stage: Stage, kind: Kind, class: Class, detail: impl Into<String>) -> Self {
        Failure {
            stage,
            kind,
            class,
            detail: detail.into(),
        }
    }

    fn from_lettre(stage: Stage, e: &lettre::transport::smtp::Error) -> Self {
        let kind = if e.is_permanent() {
            Kind::Permanent
        } else {
            Kind::Temporary
        };
        Failure::new(stage, kind, Class::of_lettre(e), e.to_string())
    }

    /// No answer in time: the session is out of step and must not be reused.
    pub fn timed_out(&self) -> bool {
        self.class == Class::Timeout
    }

    /// A 5xx at RCPT: this address does not take mail (a hard bounce).
    pub fn is_bad_recipient(&self) -> bool {
        self.stage == Stage::Rcpt && self.kind == Kind::Permanent
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stage = match self.stage {
            Stage::Connect => "connecting",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::EndOfData => "end of DATA",
        };
        write!(f, "{stage}: {}", self.detail)
    }
}

impl Class {
    /// lettre's error kinds, of which it exposes these tests; what none of them claims is its
    /// network and connection errors.
    fn of_lettre(e: &lettre::transport::smtp::Error) -> Class {
        if e.is_transient() {
            Class::Transient
        } else if e.is_permanent() {
            Class::Permanent
        } else if e.is_timeout() {
            Class::Timeout
        } else if e.is_tls() {
            Class::Tls
        } else if e.is_response() || e.is_client() {
            Class::Other
        } else {
            Class::Connection
        }
    }
}

/// A reusable session and when it was last used.
struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// A bounded pool of SMTP sessions to one server.
pub struct SmtpPool {
    target: Target,
    /// Limits open sessions (idle ones hold no permit, but are at most this many too).
    slots: Semaphore,
    idle: Mutex<Vec<Idle>>,
    timeout: Duration,
    idle_timeout: Duration,
    nodelay: bool,
}

impl SmtpPool {
    pub fn new(target: Target, max_connections: u32, timeout: Duration, nodelay: bool) -> Self {
        SmtpPool {
            target,
            slots: Semaphore::new(max_connections.max(1) as usize),
            idle: Mutex::new(Vec::new()),
            timeout,
            // Servers commonly drop idle clients after 60-300 s; stay well below.
            idle_timeout: Duration::from_secs(30),
            nodelay,
        }
    }

    /// Sends one message. `Ok` means the server accepted it with a 2xx after the body.
    pub async fn send(&self, envelope: &Envelope, body: &[u8]) -> Result<(), Failure> {
        let _slot = self
            .slots
            .acquire()
            .await
            .expect("the pool's semaphore is never closed");
        let reused = self.take_idle();
        let was_reused = reused.is_some();
        let mut conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        let result = self.transaction(&mut conn, envelope, body).await;
        match result {
            Ok(()) => {
                self.put_back(conn);
                Ok(())
            }
            // A pooled connection the server closed while it was idle fails before any
            // transaction exists: nothing was delivered, so a fresh connection may try now.
            Err(f)
                if was_reused
                    && !f.timed_out()
                    && f.stage == Stage::Mail
                    && (conn.has_broken() || f.kind == Kind::Temporary) =>
            {
                self.discard(conn).await;
                let mut fresh = self.connect().await?;
                let second = self.transaction(&mut fresh, envelope, body).await;
                self.finish(fresh, &second).await;
                second
            }
            Err(f) => {
                self.finish(conn, &Err(f.clone())).await;
                Err(f)
            }
        }
    }

    /// After a transaction: keep a healthy session for the next message, drop a broken one.
    async fn finish(&self, mut conn: AsyncSmtpConnection, result: &Result<(), Failure>) {
        if result.is_ok() {
            self.put_back(conn);
            return;
        }
        if result.as_ref().is_err_and(Failure::timed_out) {
            // Out of step with the server: no QUIT (it could wait forever), just close.
            drop(conn);
            return;
        }
        if conn.has_broken() {
            self.discard(conn).await;
            return;
        }
        // The server refused a step but the session lives: reset it and reuse it.
        match tokio::time::timeout(self.timeout, conn.command(Rset)).await {
            Ok(Ok(_)) => self.put_back(conn),
            _ => self.discard(conn).await,
        }
    }

    /// Says QUIT if the session still can, briefly, then closes it.
    async fn discard(&self, mut conn: AsyncSmtpConnection) {
        let _ = tokio::time::timeout(self.timeout.min(Duration::from_secs(2)), conn.abort()).await;
    }

    async fn transaction(
        &self,
        conn: &mut AsyncSmtpConnection,
        envelope: &Envelope,
        body: &[u8],
    ) -> Result<(), Failure> {
        let mut params = Vec::new();
        if envelope
            .to()
            .iter()
            .chain(envelope.from())
            .any(|a: &lettre::Address| !AsRef::<str>::as_ref(a).is_ascii())
        {
            if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::new(
                    Stage::Mail,
                    Kind::Permanent,
                    Class::Other,
                    "the address is not ASCII and the server does not support SMTPUTF8",
                ));
            }
            params.push(MailParameter::SmtpUtfEight);
        }
        if !body.is_ascii() && conn.server_info().supports_feature(Extension::EightBitMime) {
            params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        self.step(
            Stage::Mail,
            conn.command(Mail::new(envelope.from().cloned(), params)),
        )
        .await?;
        for rcpt in envelope.to() {
            self.step(Stage::Rcpt, conn.command(Rcpt::new(rcpt.clone(), vec![])))
                .await?;
        }
        self.step(Stage::Data, conn.command(Data)).await?;
        // The body goes through `command`, already dot-stuffed and terminated, as one write:
        // lettre's `message` stuffs it one byte at a time (5 % of the send job's CPU) and
        // writes the terminator separately. A body that is not UTF-8 (`command` takes text)
        // goes the lettre way.
        match DataBody::new(body) {
            Some(data) => self.step(Stage::EndOfData, conn.command(data)).await?,
            None => self.step(Stage::EndOfData, conn.message(body)).await?,
        }
        Ok(())
    }

    /// One command with the configured timeout, its error tagged with where it happened.
    async fn step<F>(&self, stage: Stage, fut: F) -> Result<(), Failure>
    where
        F: std::future::Future<
                Output = Result<
                    lettre::transport::smtp::response::Response,
                    lettre::transport::smtp::Error,
                >,
            >,
    {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::from_lettre(stage, &e)),
            Err(_) => Err(Failure::new(
                stage,
                Kind::Temporary,
                Class::Timeout,
                format!(
                    "no answer within {:?} (config key `mail.timeout_secs`)",
                    self.timeout
                ),
            )),
        }
    }

    fn take_idle(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().expect("pool lock poisoned");
        while let Some(entry) = idle.pop() {
            if entry.since.elapsed() < self.idle_timeout && !entry.conn.has_broken() {
                return Some(entry.conn);
            }
            // Too old: dropping it closes the socket without a QUIT, which servers accept.
        }
        None
    }

    fn put_back(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        self.idle.lock().expect("pool lock poisoned").push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Opens, greets, secures and authenticates one session.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Failure> {
        let fail = |e: &lettre::transport::smtp::Error| Failure::from_lettre(Stage::Connect, e);
        let timed_out = || {
            Failure::new(
                Stage::Connect,
                Kind::Temporary,
                Class::Timeout,
                format!(
                    "{}:{} did not answer within {:?}",
                    self.target.host, self.target.port, self.timeout
                ),
            )
        };
        let tcp = tokio::time::timeout(
            self.timeout,
            TcpStream::connect((self.target.host.as_str(), self.target.port)),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| {
            Failure::new(
                Stage::Connect,
                Kind::Temporary,
                Class::Connection,
                format!(
                    "cannot connect to {}:{}: {e}",
                    self.target.host, self.target.port
                ),
            )
        })?;
        // The point of this module: see the module docs.
        tcp.set_nodelay(self.nodelay).map_err(|e| {
            Failure::new(
                Stage::Connect,
                Kind::Temporary,
                Class::Connection,
                format!("TCP_NODELAY: {e}"),
            )
        })?;
        let stream: Box<dyn AsyncTokioStream> = if self.target.security == Security::Implicit {
            // lettre's public API cannot put TLS under a stream it did not open before the
            // greeting, so implicit TLS is done here with tokio-rustls (the same rustls and
            // webpki roots lettre uses) and the TLS stream is handed over as the transport.
            let name =
                rustls::pki_types::ServerName::try_from(self.target.host.clone()).map_err(|e| {
                    Failure::new(Stage::Connect, Kind::Temporary, Class::Tls, e.to_string())
                })?;
            let tls = tokio::time::timeout(self.timeout, tls_connector().connect(name, tcp))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| {
                    Failure::new(
                        Stage::Connect,
                        Kind::Temporary,
                        Class::Tls,
                        format!("TLS: {e}"),
                    )
                })?;
            Box::new(TlsStream(tls))
        } else {
            Box::new(tcp)
        };
        let mut conn = tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(stream, &self.target.hello),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| fail(&e))?;
        let starttls = match self.target.security {
            Security::StartTlsRequired => true,
            Security::StartTlsOpportunistic => conn.can_starttls(),
            Security::Plain | Security::Implicit => false,
        };
        if starttls {
            tokio::time::timeout(
                self.timeout,
                conn.starttls(self.target.tls_parameters()?, &self.target.hello),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(|e| fail(&e))?;
        }
        if let Some(credentials) = &self.target.credentials {
            tokio::time::timeout(self.timeout, conn.auth(DEFAULT_MECHANISMS, credentials))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| fail(&e))?;
        }
        Ok(conn)
    }

    /// Opens one session and closes it (`paperboy check`).
    pub async fn test_connection(&self) -> Result<(), String> {
        let mut conn = self.connect().await.map_err(|e| e.to_string())?;
        let _ = conn.quit().await;
        Ok(())
    }
}

/// One rustls client configuration for the process: the webpki roots, safe defaults.
fn tls_connector() -> tokio_rustls::TlsConnector {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    let config = CONFIG.get_or_init(|| {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    tokio_rustls::TlsConnector::from(config.clone())
}

/// The implicit-TLS stream, made an `AsyncTokioStream` so lettre can talk SMTP over it.
#[derive(Debug)]
struct TlsStream(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// A message as the DATA phase carries it (RFC 5321 4.5.2): a `.` added before every line that
/// starts with one, then `CRLF . CRLF`. Lines are the ones lettre's codec counts: a line starts
/// at the beginning of the body and after each `CRLF`.
struct DataBody(String);

impl DataBody {
    fn new(body: &[u8]) -> Option<DataBody> {
        let text = std::str::from_utf8(body).ok()?;
        let mut out = String::with_capacity(body.len() + 64);
        let mut start = 0;
        if text.starts_with('.') {
            out.push('.');
        }
        for at in memchr::memmem::find_iter(body, b"\r\n.") {
            // Up to and including the CRLF, then the extra dot; the line's own dot follows.
            out.push_str(&text[start..at + 2]);
            out.push('.');
            start = at + 2;
        }
        out.push_str(&text[start..]);
        out.push_str("\r\n.\r\n");
        Some(DataBody(out))
    }
}

impl fmt::Display for DataBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_mean_what_lettre_made_them_mean() {
        let t = Target::from_url("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((t.port, t.security.clone()), (2525, Security::Plain));
        assert!(t.credentials.is_none());
        let t = Target::from_url("smtp://mail.example.org?tls=required").unwrap();
        assert_eq!(
            (t.port, t.security.clone()),
            (587, Security::StartTlsRequired)
        );
        let t = Target::from_url("smtps://u%40x:p%2Fw@mail.example.org").unwrap();
        assert_eq!((t.port, t.security.clone()), (465, Security::Implicit));
        assert!(t.credentials.is_some());
        assert!(!format!("{t:?}").contains("p/w"), "no password in Debug");
        assert!(Target::from_url("smtp://h?tls=sometimes").is_err());
    }

    #[test]
    fn data_bodies_double_every_leading_dot_and_end_with_the_terminator() {
        // The rule written the slow way: split into CRLF lines, double a leading dot.
        let slow = |body: &str| {
            let lines: Vec<String> = body
                .split("\r\n")
                .map(|l| match l.starts_with('.') {
                    true => format!(".{l}"),
                    false => l.to_string(),
                })
                .collect();
            format!("{}\r\n.\r\n", lines.join("\r\n"))
        };
        for body in [
            "",
            ".",
            ".\r\n.",
            "a\r\n.b\r\n..c\r\n",
            "no dots here\r\n",
            "bare\n.lf is not a line start for SMTP\r\n",
            "cr\r.dot\r\r\n.x",
            "\r\n.\r\n",
            "ends with\r\n.",
            "·▲ utf-8\r\n.é",
        ] {
            let data = DataBody::new(body.as_bytes()).expect("UTF-8");
            assert_eq!(data.to_string(), slow(body), "body {body:?}");
        }
        assert!(DataBody::new(b"\xff not utf-8").is_none());
    }
}
