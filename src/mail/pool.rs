//! Our own SMTP connection pool, built on lettre's public connection API.
//!
//! What for: sending many messages fast and knowing exactly how each one ended. Up to
//! `mail.max_connections` sessions are open at once and each is reused for message after
//! message (`RSET` after a refused transaction, a fresh connection after a broken one).
//! `paperboy check` probes the server through the same opening code
//! ([`SmtpPool::test_connection`]: connect, TLS, EHLO, STARTTLS, AUTH, then QUIT), so check
//! passes only where sending can connect. Where and how to connect is `config::SmtpUrl`, read
//! once with the configuration.
//! Not for: building messages, deciding retries (the caller classifies with [`Failure`]),
//! reading `mail.smtp_url`.
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

use crate::config::{SmtpTls, SmtpUrl};
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

/// Why one message was not accepted.
#[derive(Clone, Debug)]
pub struct Failure {
    pub stage: Stage,
    pub kind: Kind,
    /// The server's answer or the I/O error, for the operator.
    pub detail: String,
    /// No answer in time. The session is then out of step (a late answer may still come), so
    /// it is never reused.
    pub timed_out: bool,
}

impl Failure {
    pub fn new(stage: Stage, kind: Kind, detail: impl Into<String>) -> Self {
        Failure {
            stage,
            kind,
            detail: detail.into(),
            timed_out: false,
        }
    }

    fn from_lettre(stage: Stage, e: &lettre::transport::smtp::Error) -> Self {
        let kind = if e.is_permanent() {
            Kind::Permanent
        } else {
            Kind::Temporary
        };
        Failure::new(stage, kind, e.to_string())
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

/// A reusable session and when it was last used.
struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// A bounded pool of SMTP sessions to one server.
pub struct SmtpPool {
    server: SmtpUrl,
    /// `server`'s EHLO name and credentials as lettre takes them.
    hello: ClientId,
    credentials: Option<Credentials>,
    /// Limits open sessions (idle ones hold no permit, but are at most this many too).
    slots: Semaphore,
    idle: Mutex<Vec<Idle>>,
    timeout: Duration,
    idle_timeout: Duration,
    nodelay: bool,
}

/// A step of opening a session: where [`SmtpPool::test_connection`] says it stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionStep {
    /// The TCP connection.
    Connect,
    /// The TLS handshake of `smtps://`.
    Tls,
    /// The server's greeting and our EHLO.
    Ehlo,
    StartTls,
    Auth,
    Quit,
}

/// Why [`SmtpPool::test_connection`] could not open and close a session.
#[derive(Debug)]
pub struct SessionFailure {
    pub step: SessionStep,
    /// The steps that succeeded before it, in words.
    pub done: Vec<String>,
    pub failure: Failure,
}

impl SmtpPool {
    pub fn new(server: SmtpUrl, max_connections: u32, timeout: Duration, nodelay: bool) -> Self {
        SmtpPool {
            hello: match &server.hello {
                Some(name) => ClientId::Domain(name.clone()),
                None => ClientId::default(),
            },
            credentials: server
                .login
                .as_ref()
                .map(|l| Credentials::new(l.user.clone(), l.password.expose().to_string())),
            server,
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
                    && !f.timed_out
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
        if result.as_ref().is_err_and(|f| f.timed_out) {
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
            Err(_) => Err(Failure {
                timed_out: true,
                ..Failure::new(
                    stage,
                    Kind::Temporary,
                    format!(
                        "no answer within {:?} (config key `mail.timeout_secs`)",
                        self.timeout
                    ),
                )
            }),
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
        self.open(&mut Vec::new()).await.map_err(|(_, f)| f)
    }

    /// Opens one session the way every message's session is opened (TCP with `TCP_NODELAY`,
    /// implicit TLS, EHLO, STARTTLS, AUTH, as `mail.smtp_url` says), then says QUIT: nothing
    /// is sent. For `paperboy check`: the steps done, in words, or where it stopped.
    pub async fn test_connection(&self) -> Result<Vec<String>, SessionFailure> {
        let mut done = Vec::new();
        let mut conn = match self.open(&mut done).await {
            Ok(conn) => conn,
            Err((step, failure)) => {
                return Err(SessionFailure {
                    step,
                    done,
                    failure,
                });
            }
        };
        let quit = match tokio::time::timeout(self.timeout, conn.quit()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(Failure::from_lettre(Stage::Connect, &e)),
            Err(_) => Err(self.no_answer("QUIT")),
        };
        match quit {
            Ok(()) => {
                done.push("QUIT; nothing sent".into());
                Ok(done)
            }
            Err(failure) => Err(SessionFailure {
                step: SessionStep::Quit,
                done,
                failure,
            }),
        }
    }

    /// A step that took longer than `mail.timeout_secs`.
    fn no_answer(&self, step: &str) -> Failure {
        Failure {
            timed_out: true,
            ..Failure::new(
                Stage::Connect,
                Kind::Temporary,
                format!(
                    "{}:{} did not answer {step} within {} s (config key `mail.timeout_secs`)",
                    self.server.host,
                    self.server.port,
                    self.timeout.as_secs()
                ),
            )
        }
    }

    /// [`SmtpPool::connect`], noting each step done in `done` and naming the one that failed.
    async fn open(
        &self,
        done: &mut Vec<String>,
    ) -> Result<AsyncSmtpConnection, (SessionStep, Failure)> {
        use SessionStep as S;
        let temporary = |detail: String| Failure::new(Stage::Connect, Kind::Temporary, detail);
        let (host, port) = (self.server.host.as_str(), self.server.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| (S::Connect, self.no_answer("the connection")))?
            .map_err(|e| {
                (
                    S::Connect,
                    temporary(format!("cannot connect to {host}:{port}: {e}")),
                )
            })?;
        // The point of this module: see the module docs.
        tcp.set_nodelay(self.nodelay)
            .map_err(|e| (S::Connect, temporary(format!("TCP_NODELAY: {e}"))))?;
        let implicit = self.server.tls == SmtpTls::Implicit;
        let stream: Box<dyn AsyncTokioStream> = if implicit {
            // lettre's public API cannot put TLS under a stream it did not open before the
            // greeting, so implicit TLS is done here with tokio-rustls (the same rustls and
            // webpki roots lettre uses) and the TLS stream is handed over as the transport.
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| (S::Tls, temporary(format!("TLS with {host}: {e}"))))?;
            let tls = tokio::time::timeout(self.timeout, tls_connector().connect(name, tcp))
                .await
                .map_err(|_| (S::Tls, self.no_answer("the TLS handshake")))?
                .map_err(|e| (S::Tls, temporary(format!("TLS with {host}: {e}"))))?;
            Box::new(TlsStream(tls))
        } else {
            Box::new(tcp)
        };
        let mut conn = tokio::time::timeout(
            self.timeout,
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
        )
        .await
        .map_err(|_| (S::Ehlo, self.no_answer("with a greeting and EHLO")))?
        .map_err(|e| (S::Ehlo, Failure::from_lettre(Stage::Connect, &e)))?;
        done.push(format!(
            "connected{}, EHLO answered by {}",
            if implicit { " with TLS" } else { "" },
            conn.server_info().name()
        ));
        let starttls = match self.server.tls {
            SmtpTls::StartTlsRequired if !conn.can_starttls() => {
                return Err((
                    S::StartTls,
                    temporary(
                        "the server does not offer STARTTLS but `?tls=required` demands it".into(),
                    ),
                ));
            }
            SmtpTls::StartTlsRequired => true,
            SmtpTls::StartTlsOpportunistic if conn.can_starttls() => true,
            SmtpTls::StartTlsOpportunistic => {
                done.push("STARTTLS not offered (opportunistic: plain)".into());
                false
            }
            SmtpTls::Plain => {
                done.push("no TLS asked for".into());
                false
            }
            SmtpTls::Implicit => false,
        };
        if starttls {
            let parameters = TlsParameters::new(host.to_string())
                .map_err(|e| (S::StartTls, temporary(format!("STARTTLS: {e}"))))?;
            tokio::time::timeout(self.timeout, conn.starttls(parameters, &self.hello))
                .await
                .map_err(|_| (S::StartTls, self.no_answer("STARTTLS")))?
                .map_err(|e| {
                    let f = Failure::from_lettre(Stage::Connect, &e);
                    (
                        S::StartTls,
                        Failure::new(f.stage, f.kind, format!("STARTTLS: {}", f.detail)),
                    )
                })?;
            done.push("STARTTLS ok".into());
        }
        match &self.credentials {
            Some(credentials) => {
                tokio::time::timeout(self.timeout, conn.auth(DEFAULT_MECHANISMS, credentials))
                    .await
                    .map_err(|_| (S::Auth, self.no_answer("AUTH")))?
                    .map_err(|e| {
                        let f = Failure::from_lettre(Stage::Connect, &e);
                        (
                            S::Auth,
                            Failure::new(f.stage, f.kind, format!("AUTH: {}", f.detail)),
                        )
                    })?;
                done.push("AUTH ok".into());
            }
            None => done.push("no AUTH configured".into()),
        }
        Ok(conn)
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
