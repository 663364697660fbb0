//! The digest: what one subscriber's email for one date says, and how it looks.
//!
//! [`DigestView`] is everything the email shows, already decided: which papers, in which order,
//! why, and the signed links. [`DigestRenderer`] turns a view into a subject, a plain-text part
//! and an HTML part. Choosing and ranking papers belongs to `matching`, signing links to `links`,
//! and building or sending the MIME message to `mail`. The only I/O is reading a planned
//! delivery back from the store ([`DigestView::of_delivery`]).
//!
//! Text in a view that came from outside (titles, authors, abstracts, the subscriber's interests)
//! is untrusted: the renderer escapes it for HTML and drops any link that is not http(s).

mod cards;
mod format;
mod page;
pub mod render;
mod templates;
mod view;

pub use render::{DigestRenderer, RenderError, RenderedDigest};
pub use view::{DigestPaper, DigestView, SnippetPart};
