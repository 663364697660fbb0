//! Renders the web pages from the tera templates in `templates/web/`, compiled into the binary.
//!
//! Autoescaping is on for every template (their names end in `.html`), so whatever a visitor
//! typed or a source wrote is escaped wherever it appears (invariant 6). This module only lays
//! out what handlers decided; it does no I/O.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use tracing::error;

const TEMPLATES: &[(&str, &str)] = &[
    (
        "base.html",
        include_str!("../../templates/web/base.html.tera"),
    ),
    (
        "macros.html",
        include_str!("../../templates/web/macros.html.tera"),
    ),
    (
        "subscribe.html",
        include_str!("../../templates/web/subscribe.html.tera"),
    ),
    (
        "message.html",
        include_str!("../../templates/web/message.html.tera"),
    ),
    (
        "confirm.html",
        include_str!("../../templates/web/confirm.html.tera"),
    ),
    (
        "manage.html",
        include_str!("../../templates/web/manage.html.tera"),
    ),
    (
        "manage_request.html",
        include_str!("../../templates/web/manage_request.html.tera"),
    ),
    (
        "unsubscribe.html",
        include_str!("../../templates/web/unsubscribe.html.tera"),
    ),
    (
        "feedback.html",
        include_str!("../../templates/web/feedback.html.tera"),
    ),
    (
        "preview.html",
        include_str!("../../templates/web/preview.html.tera"),
    ),
];

pub struct Pages {
    tera: tera::Tera,
}

/// A page that only says something, with optional links to go on.
#[derive(Serialize, Default)]
pub struct Message {
    heading: String,
    paragraphs: Vec<String>,
    actions: Vec<Action>,
    tone: Option<&'static str>,
}

#[derive(Serialize)]
struct Action {
    label: String,
    href: String,
}

impl Message {
    pub fn new(heading: impl Into<String>) -> Self {
        Message {
            heading: heading.into(),
            ..Message::default()
        }
    }

    pub fn line(mut self, text: impl Into<String>) -> Self {
        self.paragraphs.push(text.into());
        self
    }

    pub fn action(mut self, label: impl Into<String>, href: impl Into<String>) -> Self {
        self.actions.push(Action {
            label: label.into(),
            href: href.into(),
        });
        self
    }

    /// Styles the heading as a problem.
    pub fn bad(mut self) -> Self {
        self.tone = Some("bad");
        self
    }
}

impl Pages {
    pub fn new() -> Result<Self, tera::Error> {
        let mut tera = tera::Tera::default();
        tera.autoescape_on(vec![".html"]);
        tera.add_raw_templates(TEMPLATES.iter().copied())?;
        Ok(Pages { tera })
    }

    /// Renders `template` to a string (for fragments embedded in other pages).
    pub fn fragment(&self, template: &str, context: &tera::Context) -> String {
        match self.tera.render(template, context) {
            Ok(html) => html,
            Err(e) => {
                error!(template, error = %chain(&e), "a web template failed to render");
                String::new()
            }
        }
    }

    /// Renders a full page with `title` and `root` added to the context.
    pub fn page(
        &self,
        root: &str,
        status: StatusCode,
        template: &str,
        title: &str,
        mut context: tera::Context,
    ) -> Response {
        context.insert("title", title);
        context.insert("root", root);
        match self.tera.render(template, &context) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                // A bug in our templates, not the visitor's fault: say so plainly.
                error!(template, error = %chain(&e), "a web template failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "This page could not be shown because of a fault on our side. Please try again later.\n",
                )
                    .into_response()
            }
        }
    }

    pub fn message(&self, root: &str, status: StatusCode, message: Message) -> Response {
        let title = message.heading.clone();
        let context = tera::Context::from_serialize(&message).unwrap_or_default();
        self.page(root, status, "message.html", &title, context)
    }
}

/// tera hides the useful part of an error ("variable `x` not found") in its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_and_escape() {
        let pages = Pages::new().unwrap();
        let mut ctx = tera::Context::new();
        ctx.insert("error", &Some("<script>alert(1)</script>"));
        let html = pages.fragment("preview.html", &ctx);
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        let page = pages.message(
            "",
            StatusCode::OK,
            Message::new("<b>heading</b>").line("<i>line</i>"),
        );
        assert_eq!(page.status(), StatusCode::OK);
    }
}
