//! Email messages and the transports that carry them.
//!
//! `message` turns a rendered digest into an RFC 5322 message with the headers mail providers
//! expect of a list (`List-Unsubscribe` with one-click, `List-Id`, a stable `Message-ID`…).
//! `transport` sends it: over SMTP through a bounded connection pool (`pool`, our own, for
//! `TCP_NODELAY`), trusting the roots of `tls` (the system's store and `mail.tls_ca_file`), or
//! into `.eml` files; `dkim` signs it when configured. A failed send says
//! where it failed and what kind of failure it was (`Failure`: `Stage`, `Kind`, `Class`).
//! This module does not know subscribers or deliveries; it is handed addresses and text.

mod dkim;
mod message;
mod notice;
pub mod pool;
mod tls;
mod transport;

pub use dkim::{DkimSigner, SIGNED_HEADERS};
pub use message::{DigestMessage, MessageError, build_digest_message};
pub use notice::{Notice, NoticeKind, build_notice_message};
pub use pool::{Class as FailureClass, Failure, Kind as FailureKind, Stage as FailureStage};
pub use tls::{Handshake, Trust};
pub use transport::{Mailer, SendError};
