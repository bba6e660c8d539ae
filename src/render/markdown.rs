//! Item bodies, Markdown to HTML: CommonMark with tables and strikethrough,
//! links and images made absolute, raw HTML escaped unless the newsroom
//! allows it, and Smart Brevity lead-ins marked with classes of their own.

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

use crate::content::is_safe_url;

/// How bodies are rendered; built once from config.
#[derive(Debug, Clone)]
pub struct MarkdownOptions {
    pub base_url: String,
    pub allow_html: bool,
    pub lead_ins: Vec<String>,
}

pub fn parser_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH
}

/// A URL as it must appear in an email: absolute, or `None` if it is not
/// safe to link to at all.
pub fn absolute_url(url: &str, base_url: &str) -> Option<String> {
    let u = url.trim();
    if !is_safe_url(u) {
        return None;
    }
    let lower = u.to_ascii_lowercase();
    Some(
        if lower.starts_with("http://")
            || lower.starts_with("https://")
            || lower.starts_with("mailto:")
            || u.starts_with('#')
        {
            u.to_string()
        } else if let Some(rest) = u.strip_prefix("//") {
            format!("https://{rest}")
        } else if u.starts_with('/') {
            format!("{base_url}{u}")
        } else {
            format!("{base_url}/{}", u.trim_start_matches("./"))
        },
    )
}

/// The lead-in a paragraph's first bold run is, if any (`Why it matters:`).
pub fn lead_in<'a>(text: &str, lead_ins: &'a [String]) -> Option<&'a str> {
    let t = text.trim();
    lead_ins.iter().map(String::as_str).find(|l| {
        let bare = l.trim_end_matches(':');
        t == *l || t == bare
    })
}

/// Parses a body into events with URLs resolved and raw HTML neutralised;
/// both the HTML and the text renderer start from these.
pub fn events<'a>(md: &'a str, opts: &MarkdownOptions) -> Vec<Event<'a>> {
    let mut out = Vec::new();
    // Links whose target is unsafe are dropped, keeping their text.
    let mut dropped_links = Vec::new();
    for ev in Parser::new_ext(md, parser_options()) {
        match ev {
            Event::Html(h) | Event::InlineHtml(h) if !opts.allow_html => out.push(Event::Text(h)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match absolute_url(&dest_url, &opts.base_url) {
                Some(u) => {
                    dropped_links.push(false);
                    out.push(Event::Start(Tag::Link {
                        link_type,
                        dest_url: CowStr::from(u),
                        title,
                        id,
                    }));
                }
                None => dropped_links.push(true),
            },
            Event::End(TagEnd::Link) => {
                if !dropped_links.pop().unwrap_or(false) {
                    out.push(Event::End(TagEnd::Link));
                }
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let u = absolute_url(&dest_url, &opts.base_url).unwrap_or_default();
                out.push(Event::Start(Tag::Image {
                    link_type,
                    dest_url: CowStr::from(u),
                    title,
                    id,
                }));
            }
            other => out.push(other),
        }
    }
    out
}

/// The body as HTML.
pub fn to_html(md: &str, opts: &MarkdownOptions) -> String {
    let mut evs = events(md, opts);
    mark_lead_ins(&mut evs, &opts.lead_ins);
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, evs.into_iter());
    html
}

/// Rewrites `<p><strong>Why it matters:</strong> …</p>` so the paragraph and
/// the label carry classes the template styles.
fn mark_lead_ins(evs: &mut [Event], lead_ins: &[String]) {
    let mut i = 0;
    while i + 2 < evs.len() {
        let is_lead = matches!(evs[i], Event::Start(Tag::Paragraph))
            && matches!(evs[i + 1], Event::Start(Tag::Strong))
            && matches!(&evs[i + 2], Event::Text(t) if lead_in(t, lead_ins).is_some());
        if !is_lead {
            i += 1;
            continue;
        }
        evs[i] = Event::Html(CowStr::Borrowed("<p class=\"lead-in\">"));
        evs[i + 1] = Event::Html(CowStr::Borrowed("<strong class=\"lead-in-label\">"));
        let mut depth = 0;
        let mut strong_closed = false;
        for ev in evs.iter_mut().skip(i + 2) {
            match ev {
                Event::Start(Tag::Paragraph) => depth += 1,
                Event::End(TagEnd::Strong) if !strong_closed && depth == 0 => {
                    *ev = Event::Html(CowStr::Borrowed("</strong>"));
                    strong_closed = true;
                }
                Event::End(TagEnd::Paragraph) if depth == 0 => {
                    *ev = Event::Html(CowStr::Borrowed("</p>\n"));
                    break;
                }
                Event::End(TagEnd::Paragraph) => depth -= 1,
                _ => {}
            }
        }
        i += 3;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(allow_html: bool) -> MarkdownOptions {
        MarkdownOptions {
            base_url: "https://news.example.com".into(),
            allow_html,
            lead_ins: crate::config::DEFAULT_LEAD_INS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    #[test]
    fn lead_ins_get_classes() {
        let h = to_html(
            "**Why it matters:** Prices.\n\n**Not a lead-in:** x\n",
            &opts(false),
        );
        assert_eq!(
            h,
            "<p class=\"lead-in\"><strong class=\"lead-in-label\">Why it matters:</strong> Prices.</p>\n<p><strong>Not a lead-in:</strong> x</p>\n"
        );
    }

    #[test]
    fn urls_become_absolute_and_unsafe_ones_are_dropped() {
        let h = to_html(
            "[a](/x) [b](y/z) [c](https://o.example/) ![i](images/p.jpg) [d](javascript:alert(1))",
            &opts(false),
        );
        assert!(h.contains("href=\"https://news.example.com/x\""), "{h}");
        assert!(h.contains("href=\"https://news.example.com/y/z\""), "{h}");
        assert!(h.contains("href=\"https://o.example/\""), "{h}");
        assert!(
            h.contains("src=\"https://news.example.com/images/p.jpg\""),
            "{h}"
        );
        assert!(!h.contains("javascript"), "{h}");
        assert!(h.contains(" d</p>"), "{h}");
    }

    #[test]
    fn raw_html_is_escaped_unless_allowed() {
        let md = "Hi <script>alert(1)</script>\n\n<div onclick=x>block</div>\n";
        let h = to_html(md, &opts(false));
        assert!(!h.contains("<script>") && !h.contains("<div"), "{h}");
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(to_html(md, &opts(true)).contains("<div onclick=x>"));
    }

    #[test]
    fn tables_and_strikethrough() {
        let h = to_html(
            "| a | b |\n|---|---|\n| 1 | 2 |\n\n~~old~~ new\n",
            &opts(false),
        );
        assert!(h.contains("<table>") && h.contains("<td>1</td>"), "{h}");
        assert!(h.contains("<del>old</del>"), "{h}");
    }
}
