//! The digest view: what one subscriber's email for one date shows, already decided.
//!
//! For: the [`DigestView`] type, and building one with its signed links, from a planned
//! delivery (its picks, the papers they name and the explanations stored at planning) or from
//! papers ranked just now (`paperboy preview`, `send --dry-run`). The email, the browser view
//! (`web`) and the previews all build theirs here, so they show the same thing. Not for:
//! choosing or ranking papers (`matching`, `jobs::plan`), rendering (`render`), or sending.

use crate::links::{Claims, Purpose, Signer};
use crate::matching::Explanation;
use crate::model::{Paper, Subscriber};
use crate::store::{DeliveryPaper, Store, StoreError, StoredPaper};
use chrono::NaiveDate;
use std::borrow::Borrow;
use std::collections::HashMap;
use url::Url;

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

impl DigestPaper {
    /// `paper` as the digest shows it at `rank`, with the snippet and reasons of its
    /// explanation. The feedback links are added with the view ([`DigestView::new`]).
    pub fn new(paper: &Paper, rank: u32, score: f32, explanation: Explanation) -> DigestPaper {
        DigestPaper {
            rank,
            id: paper.id.to_string(),
            title: paper.title.clone(),
            authors: paper.authors.clone(),
            snippet: explanation
                .snippet
                .into_iter()
                .map(|f| SnippetPart {
                    text: f.text,
                    highlighted: f.highlighted,
                })
                .collect(),
            upvotes: paper.upvotes,
            categories: paper.categories.clone(),
            doi: paper.arxiv.doi.clone(),
            journal_ref: paper.arxiv.journal_ref.clone(),
            abstract_url: paper.links.abstract_url.clone(),
            pdf_url: paper.links.pdf_url.clone(),
            hf_url: paper.links.hf_url.clone(),
            code_url: paper.links.code_url.clone(),
            project_url: paper.links.project_url.clone(),
            more_url: None,
            less_url: None,
            reasons: explanation.reasons,
            score,
        }
    }
}

impl DigestView {
    /// `subscriber`'s digest of `papers` for `date`, with every link signed for them against
    /// `base` (`web.base_url`). `delivery_id` adds the "view in browser" link: only a planned
    /// delivery has a page to view.
    pub fn new(
        signer: &Signer,
        base: &Url,
        subscriber: &Subscriber,
        date: NaiveDate,
        papers: Vec<DigestPaper>,
        delivery_id: Option<i64>,
    ) -> DigestView {
        let claims = |purpose, extra: Option<String>| Claims {
            purpose,
            subscriber_id: subscriber.id.0,
            token_version: subscriber.token_version,
            expires_at: None,
            extra,
        };
        // One feedback token per paper (it names the subscriber and the paper); the vote is the
        // button pressed on the page the link opens, pre-selected by `?vote=`.
        let papers = papers
            .into_iter()
            .map(|mut p| {
                let url = signer.url(base, &claims(Purpose::Feedback, Some(p.id.clone())));
                p.more_url = Some(format!("{url}?vote=more"));
                p.less_url = Some(format!("{url}?vote=less"));
                p
            })
            .collect();
        DigestView {
            date,
            recipient: subscriber.email.to_string(),
            interests: subscriber.interests.as_str().to_string(),
            papers,
            manage_url: signer.url(base, &claims(Purpose::Manage, None)),
            unsubscribe_url: signer.url(base, &claims(Purpose::Unsubscribe, None)),
            view_url: delivery_id
                .map(|id| signer.url(base, &claims(Purpose::Digest, Some(id.to_string())))),
            site_url: base.to_string(),
        }
    }

    /// The view of planned delivery `delivery_id`, from its picks and the papers they name (a
    /// pick whose paper is missing is left out). The send job reads both for a whole batch.
    pub fn of_picks(
        signer: &Signer,
        base: &Url,
        subscriber: &Subscriber,
        (delivery_id, date): (i64, NaiveDate),
        picks: &[DeliveryPaper],
        papers: &HashMap<String, impl Borrow<StoredPaper>>,
    ) -> DigestView {
        let mut shown = Vec::with_capacity(picks.len());
        for pick in picks {
            let Some(stored) = papers.get(&pick.paper_id).map(|p| p.borrow()) else {
                continue;
            };
            let explanation =
                Explanation::from_stored_json(&pick.reason, &stored.paper.abstract_text);
            shown.push(DigestPaper::new(
                &stored.paper,
                pick.rank as u32,
                pick.score as f32,
                explanation,
            ));
        }
        DigestView::new(signer, base, subscriber, date, shown, Some(delivery_id))
    }

    /// The view of planned delivery `delivery_id`, read from the store (the browser view).
    pub async fn of_delivery(
        store: &Store,
        signer: &Signer,
        base: &Url,
        subscriber: &Subscriber,
        (delivery_id, date): (i64, NaiveDate),
    ) -> Result<DigestView, StoreError> {
        let picks = store.delivery_papers(delivery_id).await?;
        let ids: Vec<String> = picks.iter().map(|p| p.paper_id.clone()).collect();
        let papers: HashMap<String, StoredPaper> = store
            .papers_by_ids(&ids)
            .await?
            .into_iter()
            .map(|p| (p.paper.id.to_string(), p))
            .collect();
        Ok(DigestView::of_picks(
            signer,
            base,
            subscriber,
            (delivery_id, date),
            &picks,
            &papers,
        ))
    }
}
