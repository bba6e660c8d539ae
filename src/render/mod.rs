//! Rendering an edition: item bodies to HTML and text, the newsletter's
//! Tera templates over them, the subject and preheader, CSS inlining, and
//! the word count and reading time.

pub mod context;
pub mod files;
pub mod markdown;
pub mod table;
pub mod templates;
pub mod text;

use std::collections::HashMap;

use rayon::prelude::*;
use serde::Serialize;
use tera::{Context, Tera};

use crate::config::{Newsletter, Newsroom, check_header_value};
use crate::content::Item;
use crate::diag::Diagnostic;
use crate::edition::Edition;
pub use context::SubscriberCtx;
use context::TemplateContext;
pub use markdown::MarkdownOptions;
use templates::Sources;

/// Width of the plain-text part.
pub const TEXT_WIDTH: usize = 78;
/// Gmail clips messages whose HTML is larger than about this.
pub const GMAIL_CLIP_BYTES: usize = 102 * 1024;
/// Warn well before the clip.
pub const HTML_WARN_BYTES: usize = 90 * 1024;
/// Reading speed used for `reading_minutes`.
pub const WORDS_PER_MINUTE: usize = 200;

/// One item's body, rendered once and shared by every edition and subscriber.
#[derive(Debug, Clone, Serialize)]
pub struct Body {
    pub html: String,
    pub text: String,
    pub word_count: usize,
    /// The title and summary with the body's typographic punctuation.
    pub title: String,
    pub summary: String,
    /// The body has its own `Go deeper:` paragraph, with these links.
    pub go_deeper: bool,
    pub go_deeper_links: Vec<String>,
}

/// Bodies by item id.
pub type Bodies = HashMap<String, Body>;

/// A rendered edition, ready to become messages.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub subject: String,
    pub preheader: String,
    pub html: String,
    pub text: String,
    pub word_count: usize,
    pub reading_minutes: usize,
}

/// Templates and options, set up once per run.
pub struct Renderer {
    tera: Tera,
    sources: Sources,
    md: MarkdownOptions,
}

fn count_words(s: &str) -> usize {
    s.split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .count()
}

impl Renderer {
    /// Loads the templates every newsletter needs and compiles each
    /// newsletter's subject and preheader templates.
    pub fn new(newsroom: &Newsroom) -> Result<Renderer, Vec<Diagnostic>> {
        let mut tera = Tera::new();
        templates::register_filters(&mut tera);
        let sources = templates::load(&mut tera, &newsroom.root, &newsroom.templates_dir)
            .map_err(|d| vec![d])?;
        let mut diags = Vec::new();
        for n in &newsroom.config.newsletters {
            for ext in ["html", "txt"] {
                let name = format!("{}.{ext}", n.template);
                if !tera.contains_template(&name) {
                    diags.push(newsroom.config_diag(&["newsletters", &n.id, "template"], format!("template `{name}` not found in {} (and there is no built-in one by that name)", crate::diag::display_path(&newsroom.root, &newsroom.templates_dir).display())));
                }
            }
            for (key, src) in [
                ("subject", Some(&n.subject)),
                ("preheader", n.preheader.as_ref()),
            ] {
                let Some(src) = src else { continue };
                if let Err(e) = tera.add_raw_template(&format!("{}/{key}", n.id), src) {
                    let msg = match e.kind() {
                        tera::ErrorKind::SyntaxError(r) => r.message().to_string(),
                        _ => e.to_string(),
                    };
                    diags.push(newsroom.config_diag(
                        &["newsletters", &n.id, key],
                        format!("invalid `{key}` template: {msg}"),
                    ));
                }
            }
        }
        if !diags.is_empty() {
            return Err(diags);
        }
        let cfg = &newsroom.config;
        Ok(Renderer {
            tera,
            sources,
            md: MarkdownOptions {
                base_url: cfg.site.base_url.clone(),
                allow_html: cfg.markdown.allow_html,
                lead_ins: cfg.markdown.lead_ins.clone(),
            },
        })
    }

    /// Renders the template `name` (a built-in, or the newsroom's file of
    /// that name) with `context`: the sign-up's confirmation message.
    pub fn render_named(
        &self,
        name: &str,
        context: &impl serde::Serialize,
    ) -> Result<String, Diagnostic> {
        let ctx = Context::from_serialize(context).map_err(|e| {
            Diagnostic::error(
                self.sources.path(name),
                format!("cannot build the template context: {e}"),
            )
        })?;
        (self.tera)
            .render(name, &ctx)
            .map_err(|e| self.sources.diagnostic(name, &e))
    }

    pub fn markdown_options(&self) -> &MarkdownOptions {
        &self.md
    }

    /// Renders the bodies of `items` in parallel.
    pub fn bodies<'a>(&self, items: impl IntoIterator<Item = &'a Item>) -> Bodies {
        let items: Vec<&Item> = items.into_iter().collect();
        items
            .par_iter()
            .map(|i| {
                let (html, facts) = markdown::to_html_with_facts(&i.body, &self.md);
                let text = text::to_text(&i.body, &self.md, TEXT_WIDTH);
                let word_count = count_words(&i.title) + count_words(&text);
                (
                    i.id.clone(),
                    Body {
                        html,
                        text,
                        word_count,
                        title: markdown::smart_text(&i.title),
                        summary: markdown::smart_text(&i.summary),
                        go_deeper: facts.go_deeper,
                        go_deeper_links: facts.go_deeper_links,
                    },
                )
            })
            .collect()
    }

    /// Renders one edition for one subscriber. `bodies` must hold every
    /// item of the edition.
    pub fn render(
        &self,
        newsroom: &Newsroom,
        edition: &Edition,
        bodies: &Bodies,
        subscriber: &SubscriberCtx,
    ) -> Result<Rendered, Diagnostic> {
        let cfg = &newsroom.config;
        let n = edition.newsletter;
        let lead = edition.lead();
        let word_count: usize = edition
            .items()
            .map(|p| bodies.get(&p.item.id).map_or(0, |b| b.word_count))
            .sum();
        let reading_minutes = word_count.div_ceil(WORDS_PER_MINUTE).max(1);
        let mut tc = TemplateContext::new(
            cfg,
            edition,
            bodies,
            subscriber,
            (word_count, reading_minutes),
        );
        let to_tera = |tc: &TemplateContext| {
            Context::from_serialize(tc).map_err(|e| {
                Diagnostic::error(
                    self.sources.path(&format!("{}.html", n.template)),
                    format!("cannot build the template context: {e}"),
                )
            })
        };
        let ctx = to_tera(&tc)?;

        let subject = self
            .tera
            .render(&format!("{}/subject", n.id), &ctx)
            .map_err(|e| {
                newsroom.config_diag(
                    &["newsletters", &n.id, "subject"],
                    format!(
                        "cannot render the subject: {}",
                        self.sources
                            .diagnostic("", &e)
                            .message
                            .trim_start_matches("template: ")
                    ),
                )
            })?;
        let subject = subject.trim().to_string();
        if let Err(m) = check_header_value(&subject) {
            return Err(newsroom.config_diag(
                &["newsletters", &n.id, "subject"],
                format!("the rendered subject `{}` {m}", subject.escape_debug()),
            ));
        }
        let preheader = match &n.preheader {
            Some(_) => self
                .tera
                .render(&format!("{}/preheader", n.id), &ctx)
                .map_err(|e| {
                    newsroom.config_diag(
                        &["newsletters", &n.id, "preheader"],
                        format!(
                            "cannot render the preheader: {}",
                            self.sources.diagnostic("", &e).message
                        ),
                    )
                })?,
            None => lead
                .and_then(|p| bodies.get(&p.item.id))
                .map(|b| {
                    if b.summary.trim().is_empty() {
                        b.text.chars().take(140).collect()
                    } else {
                        b.summary.clone()
                    }
                })
                .unwrap_or_default(),
        };
        let preheader = preheader.split_whitespace().collect::<Vec<_>>().join(" ");
        tc.edition.subject = subject.clone();
        tc.edition.preheader = preheader.clone();
        let ctx = to_tera(&tc)?;

        let html_name = format!("{}.html", n.template);
        let html = self
            .tera
            .render(&html_name, &ctx)
            .map_err(|e| self.sources.diagnostic(&html_name, &e))?;
        let html = inline_css(&html).map_err(|m| {
            Diagnostic::error(
                self.sources.path(&html_name),
                format!("cannot inline the CSS: {m}"),
            )
        })?;
        let txt_name = format!("{}.txt", n.template);
        let text = self
            .tera
            .render(&txt_name, &ctx)
            .map_err(|e| self.sources.diagnostic(&txt_name, &e))?;
        Ok(Rendered {
            subject,
            preheader,
            html,
            text: normalise_text(&text),
            word_count,
            reading_minutes,
        })
    }

    /// The `subscriber` fields the templates of newsletter `n` can test for
    /// emptiness (see [`templates::tested_subscriber_fields`]).
    pub fn tested_fields(&self, n: &Newsletter) -> Option<std::collections::BTreeSet<String>> {
        let extra = [Some(n.subject.as_str()), n.preheader.as_deref()];
        templates::tested_subscriber_fields(self.sources.texts().chain(extra.into_iter().flatten()))
    }

    /// Where a template came from (for messages about its output).
    pub fn template_path(&self, name: &str) -> std::path::PathBuf {
        self.sources.path(name)
    }
}

/// Escapes text for HTML content and attribute values (`& < > " '`).
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    escape_html_into(s, &mut out);
    out
}

/// [`escape_html`] appending to `out`.
pub fn escape_html_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// "A", "A and B", "A, B and C".
pub fn byline(authors: &[String]) -> String {
    match authors {
        [] => String::new(),
        [a] => a.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Copies `<style>` rules into `style` attributes; `@media` rules stay in a
/// `<style>` block for the clients that honour them. Never fetches anything.
pub fn inline_css(html: &str) -> Result<String, String> {
    let inliner = css_inline::CSSInliner::options()
        .load_remote_stylesheets(false)
        .keep_at_rules(true)
        .build();
    let html = inliner.inline(html).map_err(|e| e.to_string())?;
    Ok(kept_rules_after_meta(html))
}

/// css-inline writes the `@media` rules it keeps as the first thing in
/// `<head>`, which pushes `<meta charset>` past the first 1,024 bytes, the
/// part a browser reads for the encoding (HTML, "determining the character
/// encoding"). The block moves to the end of `<head>`, after the metas.
fn kept_rules_after_meta(html: String) -> String {
    const STYLE: &str = "<style>";
    const END: &str = "</style>";
    let Some(head) = html.find("<head>").map(|i| i + "<head>".len()) else {
        return html;
    };
    if !html[head..].starts_with(STYLE) {
        return html;
    }
    let Some(style_end) = html[head..].find(END).map(|i| head + i + END.len()) else {
        return html;
    };
    let Some(head_end) = html[style_end..].find("</head>").map(|i| style_end + i) else {
        return html;
    };
    let mut out = String::with_capacity(html.len());
    out.push_str(&html[..head]);
    out.push_str(&html[style_end..head_end]);
    out.push_str(&html[head..style_end]);
    out.push_str(&html[head_end..]);
    out
}

/// Trailing spaces off every line, at most one blank line in a row, CRLF-free.
fn normalise_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank = 0;
    for line in text.trim_matches('\n').lines() {
        let line = line.trim_end();
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bylines() {
        assert_eq!(byline(&[]), "");
        assert_eq!(byline(&["A".into()]), "A");
        assert_eq!(byline(&["A".into(), "B".into(), "C".into()]), "A, B and C");
    }

    #[test]
    fn text_is_normalised() {
        assert_eq!(normalise_text("\n\na  \n\n\n\nb\n\n"), "a\n\nb\n");
    }

    #[test]
    fn the_charset_comes_before_the_kept_media_rules() {
        let css = "p{color:red} @media (max-width:600px){p{color:blue}} ".repeat(60);
        let h = inline_css(&format!("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>T</title><style>{css}</style></head><body><p>x</p></body></html>")).unwrap();
        let meta = h.find("<meta charset").unwrap();
        assert!(meta < 100, "{h}");
        let style = h.find("<style>").unwrap();
        assert!(
            style > h.find("<title>").unwrap() && style < h.find("</head>").unwrap(),
            "{h}"
        );
        assert!(h.contains("@media"), "{h}");
    }

    #[test]
    fn css_is_inlined_and_media_queries_kept() {
        let h = inline_css("<html><head><style>p{color:red} @media (max-width:600px){p{color:blue}}</style></head><body><p>x</p></body></html>").unwrap();
        assert!(
            h.contains("<p style=\"color: red;\">x</p>") || h.contains("<p style=\"color:red\">"),
            "{h}"
        );
        assert!(h.contains("@media"), "{h}");
    }
}

#[cfg(test)]
mod placeholder_tests {
    use crate::mail::variant::placeholder;

    #[test]
    fn placeholders_survive_css_inlining() {
        let p = placeholder("unsubscribe_url");
        let html = format!(
            "<html><head><style>a{{color:red}}</style></head><body><a href=\"{p}\">{}</a></body></html>",
            placeholder("name")
        );
        let out = super::inline_css(&html).unwrap();
        assert!(out.contains(&format!("href=\"{p}\"")), "{out}");
        assert!(out.contains(&placeholder("name")), "{out}");
    }
}
