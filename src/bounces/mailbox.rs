//! The bounce mailbox, over IMAP with TLS from the first byte (`mail.bounce_imap_url`), with
//! `async-imap`: the unread messages, and marking one read once what it says is recorded.
//! Messages are only ever marked `\Seen`, never deleted: the mailbox stays the record an
//! operator can read, and a message paperboy could not use stays there for a person.
//! Not for: what the messages mean (`dsn`, `bounces`).

use crate::config::ImapUrl;
use crate::mail::{Handshake, Trust};
use futures_util::TryStreamExt;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;

type Session = async_imap::Session<tokio_rustls::client::TlsStream<TcpStream>>;

/// A logged-in session on the bounce mailbox, its folder selected.
pub struct BounceMailbox {
    session: Session,
    timeout: Duration,
    /// `user@host:port/MAILBOX`, for errors and the log.
    pub name: String,
}

/// `fut`, or an error naming `what` when it takes longer than `timeout`.
async fn within<T, E: std::fmt::Display>(
    timeout: Duration,
    what: &str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!(
            "{what}: no answer within {} s (config key `mail.timeout_secs`)",
            timeout.as_secs()
        )),
    }
}

/// What the server said in a NO answer: async-imap hands it over as
/// `code: …, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")`.
fn server_words(answer: &str) -> &str {
    answer
        .split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map_or(answer, |(words, _)| words)
}

impl BounceMailbox {
    /// Connects, checks the certificate against `trust`, logs in and selects the folder.
    pub async fn open(
        url: &ImapUrl,
        trust: &Trust,
        timeout: Duration,
    ) -> Result<BounceMailbox, String> {
        let (host, port) = (url.host.as_str(), url.port);
        let name = format!("{}@{host}:{port}/{}", url.user, url.mailbox);
        let tcp = within(
            timeout,
            &format!("cannot connect to {host}:{port} (config key `mail.bounce_imap_url`)"),
            TcpStream::connect((host, port)),
        )
        .await?;
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| format!("{host} (config key `mail.bounce_imap_url`): {e}"))?;
        let tls = match tokio::time::timeout(timeout, trust.connector().connect(server_name, tcp))
            .await
        {
            Err(_) => {
                return Err(format!(
                    "{host}:{port} did not finish the TLS handshake in time"
                ));
            }
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) if Trust::has_verdict(&e) => {
                return Err(trust
                    .refusal(host, port, &e, Handshake::Implicit, timeout)
                    .await);
            }
            Ok(Err(e)) => return Err(format!("TLS with {host}:{port}: {e}")),
        };
        let mut client = async_imap::Client::new(tls);
        let greeting = within(timeout, "the IMAP greeting", client.read_response()).await?;
        if greeting.is_none() {
            return Err(format!(
                "{host}:{port} closed the connection instead of greeting"
            ));
        }
        let mut session =
            match tokio::time::timeout(timeout, client.login(&url.user, url.password.expose()))
                .await
            {
                Err(_) => return Err(format!("{host}:{port} did not answer LOGIN in time")),
                Ok(Ok(session)) => session,
                Ok(Err((async_imap::error::Error::No(answer), _))) => {
                    return Err(format!(
                        "the bounce mailbox refused the login ({}): check the user and password \
                     in `mail.bounce_imap_url` / `mail.bounce_imap_password_file`",
                        server_words(&answer)
                    ));
                }
                Ok(Err((e, _))) => return Err(format!("LOGIN at {host}:{port}: {e}")),
            };
        within(
            timeout,
            &format!(
                "cannot open the folder {} (the path of `mail.bounce_imap_url`)",
                url.mailbox
            ),
            session.select(&url.mailbox),
        )
        .await?;
        Ok(BounceMailbox {
            session,
            timeout,
            name,
        })
    }

    /// The unread messages, by UID, oldest first; reading them does not mark them read.
    pub async fn unread(&mut self) -> Result<Vec<(u32, Vec<u8>)>, String> {
        let mut uids: Vec<u32> = within(
            self.timeout,
            "SEARCH UNSEEN",
            self.session.uid_search("UNSEEN"),
        )
        .await?
        .into_iter()
        .collect();
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        uids.sort_unstable();
        let set = uids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let timeout = self.timeout;
        let fetched = within(timeout, "FETCH", async {
            self.session
                .uid_fetch(&set, "(UID BODY.PEEK[])")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await?;
        let mut messages: Vec<(u32, Vec<u8>)> = fetched
            .iter()
            .filter_map(|f| Some((f.uid?, f.body()?.to_vec())))
            .collect();
        messages.sort_by_key(|(uid, _)| *uid);
        Ok(messages)
    }

    /// How many messages are unread, for `paperboy check`.
    pub async fn unread_count(&mut self) -> Result<usize, String> {
        Ok(within(
            self.timeout,
            "SEARCH UNSEEN",
            self.session.uid_search("UNSEEN"),
        )
        .await?
        .len())
    }

    /// Marks one message read: what it says is recorded.
    pub async fn mark_read(&mut self, uid: u32) -> Result<(), String> {
        let timeout = self.timeout;
        within(timeout, "STORE \\Seen", async {
            self.session
                .uid_store(uid.to_string(), "+FLAGS (\\Seen)")
                .await?
                .try_collect::<Vec<_>>()
                .await
        })
        .await
        .map(|_| ())
    }

    /// Says LOGOUT, briefly.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(
            self.timeout.min(Duration::from_secs(2)),
            self.session.logout(),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_refusal_is_quoted_in_the_server_s_words() {
        assert_eq!(
            super::server_words(
                "code: None, info: Some(\"[AUTHENTICATIONFAILED] Authentication failed.\")"
            ),
            "[AUTHENTICATIONFAILED] Authentication failed."
        );
        assert_eq!(super::server_words("plain text"), "plain text");
    }
}
