//! Email messages and the transports that carry them.
//!
//! `message` turns a rendered digest into an RFC 5322 message with the headers mail providers
//! expect of a list (`List-Unsubscribe` with one-click, `List-Id`, a stable `Message-ID`…).
//! `transport` sends it: over SMTP through a bounded connection pool, or into `.eml` files.
//! This module does not know subscribers or deliveries; it is handed addresses and text.

mod message;
mod transport;

pub use message::{DigestMessage, build_digest_message};
pub use transport::{Mailer, SendError};
