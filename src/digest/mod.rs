//! The digest: what one subscriber's email for one date says, and how it looks.
//!
//! [`DigestView`] is everything the email shows, already decided: which papers, in which order,
//! why, and the signed links. [`DigestRenderer`] turns a view into a subject, a plain-text part
//! and an HTML part. Choosing and ranking papers belongs to `matching`, signing links to `links`,
//! and building or sending the MIME message to `mail`; nothing here does I/O.
//!
//! Text in a view that came from outside (titles, authors, abstracts, the subscriber's interests)
//! is untrusted: the renderer escapes it for HTML and drops any link that is not http(s).

mod format;
pub mod render;

pub use render::{DigestRenderer, RenderError, RenderedDigest};

/// One subscriber's digest for one date, ready to render.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DigestView {
    /// The subscriber's local digest date.
    pub date: chrono::NaiveDate,
    /// The address the digest goes to, shown in the "why you get this" footer.
    pub recipient: String,
    /// What the subscriber typed: untrusted, escaped in HTML.
    pub interests: String,
    /// Best first; never empty when rendered for sending.
    pub papers: Vec<DigestPaper>,
    /// Signed link to the preferences page.
    pub manage_url: String,
    /// Signed link to the unsubscribe page.
    pub unsubscribe_url: String,
    /// Signed "view in browser" link.
    pub view_url: Option<String>,
    /// `web.base_url`.
    pub site_url: String,
}

/// One paper as the digest shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DigestPaper {
    /// 1-based position in the digest.
    pub rank: u32,
    /// arXiv id, e.g. `2410.17243`.
    pub id: String,
    /// Untrusted (from a source).
    pub title: String,
    /// The full list; the renderer shortens long ones.
    pub authors: Vec<String>,
    /// The trimmed abstract (~300 chars) with the words that matched marked.
    pub snippet: Vec<SnippetPart>,
    pub upvotes: Option<i64>,
    /// arXiv categories, primary first (`cs.LG`); empty when no arXiv source listed the paper.
    pub categories: Vec<String>,
    /// From arXiv: the published version's DOI and journal reference.
    pub doi: Option<String>,
    pub journal_ref: Option<String>,
    pub abstract_url: Option<String>,
    pub pdf_url: Option<String>,
    pub hf_url: Option<String>,
    pub code_url: Option<String>,
    pub project_url: Option<String>,
    /// Why it was picked, e.g. "matches: diffusion, protein folding".
    pub reasons: Vec<String>,
    pub score: f32,
    /// Signed "more like this" / "less like this" links (`/feedback/{token}?vote=…`); absent
    /// where there is no subscriber to vote (previews).
    pub more_url: Option<String>,
    pub less_url: Option<String>,
}

/// A run of snippet text; `highlighted` runs matched the subscriber's interests.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SnippetPart {
    pub text: String,
    pub highlighted: bool,
}
