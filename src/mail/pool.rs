//! Our own SMTP connection pool, built on lettre's public connection API.
//!
//! What for: sending many messages fast and knowing exactly how each one ended. Up to
//! `mail.max_connections` sessions are open at once and each is reused for message after
//! message (`RSET` after a refused transaction, a fresh connection after a broken one).
//! `paperboy check` probes the server through the same opening code
//! ([`SmtpPool::test_connection`]: connect, TLS, EHLO, STARTTLS, AUTH, then QUIT), so check
//! passes only where sending can connect. Where and how to connect is `config::SmtpUrl`, read
//! once with the configuration.
//! Every failure to open a session is one line that says what to change: an untrusted,
//! mismatched or expired certificate (worded by `tls::Trust`), STARTTLS or AUTH not offered,
//! AUTH refused, a refused connection, a timeout. A password goes only over TLS, unless
//! `mail.smtp_plaintext_auth` allows a loopback relay.
//! Not for: building messages, deciding retries (the caller classifies with [`Failure`]),
//! reading `mail.smtp_url`, choosing which certificates to trust (`tls`).
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

use super::tls::{Handshake, Trust};
use crate::config::{SmtpTls, SmtpUrl};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use std::fmt;
use std::pin::Pin;
use std::sync::Mutex;
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
    /// TLS could not be set up: the handshake failed, or STARTTLS is demanded and not offered
    /// (or AUTH would go without it).
    Tls,
    /// The server refused our user and password, or offers no AUTH we speak.
    Auth,
    /// Anything else: an answer lettre could not parse, a feature the server lacks, a `.eml`
    /// file that could not be written.
    Other,
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

    /// A fault of the configuration, not of a subscriber or a passing outage: TLS that cannot
    /// be trusted or set up, AUTH refused. Nothing can be sent until the operator acts, so
    /// sending pauses and every digest stays due.
    pub fn is_configuration_fault(&self) -> bool {
        self.stage == Stage::Connect && matches!(self.class, Class::Tls | Class::Auth)
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
    /// The roots the server's certificate is checked against.
    trust: Trust,
    /// STARTTLS's parameters, with `trust`'s roots, when the URL asks for STARTTLS.
    starttls: Option<TlsParameters>,
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
    pub fn new(
        server: SmtpUrl,
        trust: Trust,
        max_connections: u32,
        timeout: Duration,
        nodelay: bool,
    ) -> Result<Self, String> {
        let starttls = match server.tls {
            SmtpTls::StartTlsRequired | SmtpTls::StartTlsOpportunistic => Some(
                trust
                    .starttls_parameters(&server.host)
                    .map_err(|e| format!("cannot set up TLS for {}: {e}", server.host))?,
            ),
            SmtpTls::Plain | SmtpTls::Implicit => None,
        };
        Ok(SmtpPool {
            trust,
            starttls,
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
        })
    }

    /// Where the trusted roots come from, for `paperboy check`.
    pub fn trust_summary(&self) -> &str {
        self.trust.summary()
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
        Failure::new(
            Stage::Connect,
            Kind::Temporary,
            Class::Timeout,
            format!(
                "{}:{} did not answer {step} within {} s (config key `mail.timeout_secs`)",
                self.server.host,
                self.server.port,
                self.timeout.as_secs()
            ),
        )
    }

    /// [`SmtpPool::connect`], noting each step done in `done` and naming the one that failed.
    async fn open(
        &self,
        done: &mut Vec<String>,
    ) -> Result<AsyncSmtpConnection, (SessionStep, Failure)> {
        use SessionStep as S;
        let tls =
            |detail: String| Failure::new(Stage::Connect, Kind::Temporary, Class::Tls, detail);
        let host = self.server.host.as_str();
        let tcp = self.tcp().await.map_err(|f| (S::Connect, f))?;
        let implicit = self.server.tls == SmtpTls::Implicit;
        let stream: Box<dyn AsyncTokioStream> = if implicit {
            // lettre's public API cannot put TLS under a stream it did not open before the
            // greeting, so implicit TLS is done here with tokio-rustls, on the same roots
            // lettre is given for STARTTLS (`Trust`), and the TLS stream is handed over.
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|e| (S::Tls, tls(format!("TLS with {host}: {e}"))))?;
            let handshake =
                tokio::time::timeout(self.timeout, self.trust.connector().connect(name, tcp))
                    .await
                    .map_err(|_| (S::Tls, self.no_answer("the TLS handshake")))?;
            match handshake {
                Ok(stream) => Box::new(TlsStream(stream)),
                // A verdict on the certificate or the protocol is the configuration's; a
                // connection lost during the handshake is a passing fault like any other.
                Err(e) if Trust::has_verdict(&e) => {
                    return Err((S::Tls, tls(self.refusal(&e, Handshake::Implicit).await)));
                }
                Err(e) => {
                    return Err((
                        S::Tls,
                        Failure::new(
                            Stage::Connect,
                            Kind::Temporary,
                            Class::Connection,
                            format!("TLS with {host}: the connection failed: {e}"),
                        ),
                    ));
                }
            }
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
            if implicit {
                format!(" with TLS ({})", self.trust.summary())
            } else {
                String::new()
            },
            conn.server_info().name()
        ));
        let starttls = match self.server.tls {
            SmtpTls::StartTlsRequired if !conn.can_starttls() => {
                return Err((
                    S::StartTls,
                    tls(format!(
                        "{host} does not offer STARTTLS, and `?tls=required` in \
                         `mail.smtp_url` demands it: use smtps:// if the server speaks TLS \
                         from the first byte (port 465), or a server that offers STARTTLS"
                    )),
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
            let parameters = self
                .starttls
                .clone()
                .expect("STARTTLS parameters are built for every STARTTLS URL");
            let upgraded =
                tokio::time::timeout(self.timeout, conn.starttls(parameters, &self.hello))
                    .await
                    .map_err(|_| (S::StartTls, self.no_answer("STARTTLS")))?;
            if let Err(e) = upgraded {
                let failure = match Trust::has_verdict(&e) {
                    true => tls(self.refusal(&e, Handshake::StartTls).await),
                    false => {
                        let f = Failure::from_lettre(Stage::Connect, &e);
                        let detail = format!("STARTTLS with {host}: {}", f.detail);
                        Failure::new(f.stage, f.kind, f.class, detail)
                    }
                };
                return Err((S::StartTls, failure));
            }
            done.push(format!("STARTTLS ok ({})", self.trust.summary()));
        }
        match &self.credentials {
            Some(credentials) => {
                // lettre cannot tell that our implicit-TLS transport is encrypted.
                let encrypted = implicit || starttls;
                self.authenticate(&mut conn, credentials, encrypted)
                    .await
                    .map_err(|f| (S::Auth, f))?;
                done.push(format!(
                    "AUTH ok as {}",
                    self.server.login.as_ref().map_or("", |l| l.user.as_str())
                ));
            }
            None => done.push("no AUTH configured".into()),
        }
        Ok(conn)
    }

    /// The TCP connection, with `TCP_NODELAY` as configured (the point of this module).
    async fn tcp(&self) -> Result<TcpStream, Failure> {
        let (host, port) = (self.server.host.as_str(), self.server.port);
        let tcp = tokio::time::timeout(self.timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| self.no_answer("the connection"))?
            .map_err(|e| {
                Failure::new(
                    Stage::Connect,
                    Kind::Temporary,
                    Class::Connection,
                    format!("cannot connect to {host}:{port}: {e}"),
                )
            })?;
        tcp.set_nodelay(self.nodelay).map_err(|e| {
            Failure::new(
                Stage::Connect,
                Kind::Temporary,
                Class::Connection,
                format!("TCP_NODELAY: {e}"),
            )
        })?;
        Ok(tcp)
    }

    /// What a failed handshake with the server means, in one line ([`Trust::refusal`]).
    async fn refusal(
        &self,
        error: &(dyn std::error::Error + Send + Sync + 'static),
        handshake: Handshake,
    ) -> String {
        let (host, port) = (self.server.host.as_str(), self.server.port);
        self.trust
            .refusal(host, port, error, handshake, self.timeout)
            .await
    }

    /// AUTH PLAIN or LOGIN, only over TLS unless `mail.smtp_plaintext_auth` allows otherwise
    /// (which the configuration allows only for a loopback relay).
    async fn authenticate(
        &self,
        conn: &mut AsyncSmtpConnection,
        credentials: &Credentials,
        encrypted: bool,
    ) -> Result<(), Failure> {
        let host = self.server.host.as_str();
        let auth =
            |kind: Kind, detail: String| Failure::new(Stage::Connect, kind, Class::Auth, detail);
        if !encrypted && !self.server.plaintext_auth {
            return Err(Failure::new(
                Stage::Connect,
                Kind::Temporary,
                Class::Tls,
                format!(
                    "{host} did not offer STARTTLS, so AUTH would send the password in clear \
                     text; refused: use `?tls=required` or smtps:// in `mail.smtp_url`"
                ),
            ));
        }
        if conn
            .server_info()
            .get_auth_mechanism(DEFAULT_MECHANISMS)
            .is_none()
        {
            return Err(auth(
                Kind::Permanent,
                format!(
                    "{host} offers no AUTH PLAIN or LOGIN: remove the user and password from \
                     `mail.smtp_url` if it needs none, or use the server's submission port \
                     (587 with `?tls=required`, or smtps:// on 465)"
                ),
            ));
        }
        match tokio::time::timeout(self.timeout, conn.auth(DEFAULT_MECHANISMS, credentials)).await {
            Err(_) => Err(self.no_answer("AUTH")),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() || e.is_transient() => {
                let answer = [
                    e.status().map(|code| code.to_string()),
                    std::error::Error::source(&e).map(|s| s.to_string()),
                ]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
                Err(match e.is_permanent() {
                    true => auth(
                        Kind::Permanent,
                        format!(
                            "authentication failed ({answer}): check the user and password in \
                             `mail.smtp_url` / `mail.smtp_password_file`"
                        ),
                    ),
                    // 454 and the like: the server could not check the password just now.
                    false => Failure::new(
                        Stage::Connect,
                        Kind::Temporary,
                        Class::Transient,
                        format!("AUTH answered {answer}: tried again later"),
                    ),
                })
            }
            Ok(Err(e)) => {
                let f = Failure::from_lettre(Stage::Connect, &e);
                Err(Failure::new(
                    f.stage,
                    f.kind,
                    f.class,
                    format!("AUTH: {}", f.detail),
                ))
            }
        }
    }
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
