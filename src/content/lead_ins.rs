//! Warnings about an item body's lead-ins that `check` gives before a reader
//! sees the result: a bold paragraph opener that is almost a configured
//! lead-in (`**Why it maters:**`, `**Why It Matters:**`), which renders as
//! plain bold and is skipped by every template that looks for lead-ins, and
//! a `Go deeper:` paragraph that links to the item's own `link:`, which the
//! digest already shows.

use std::path::Path;

use pulldown_cmark::{Event, Parser, Tag, TagEnd};

use crate::diag::Diagnostic;
use crate::render::markdown::{absolute_url, is_go_deeper, lead_in, parser_options, plain_quotes};

/// What the checks need to know about the item and the newsroom.
pub struct BodyCtx<'a> {
    pub path: &'a Path,
    /// The whole file, to quote the offending line.
    pub file_text: &'a str,
    pub body: &'a str,
    /// 1-based line of the body's first line in the file.
    pub body_line: usize,
    /// The item's `link:` and its line in the file.
    pub link: Option<(&'a str, usize)>,
    pub lead_ins: &'a [String],
    pub base_url: &'a str,
}

/// A paragraph that opens with bold text.
struct Opener {
    /// Byte offset of the `**` in the body.
    at: usize,
    /// The bold text, with a colon that follows the bold moved in.
    label: String,
    /// The links of the paragraph.
    links: Vec<String>,
}

fn openers(body: &str) -> Vec<Opener> {
    #[derive(PartialEq)]
    enum In {
        Bold,
        JustAfterBold,
        Rest,
    }
    let mut out = Vec::new();
    let mut para_start = false;
    let mut current: Option<(Opener, In)> = None;
    for (ev, range) in Parser::new_ext(body, parser_options()).into_offset_iter() {
        let first_in_para = std::mem::take(&mut para_start);
        let just_after_bold = current
            .as_ref()
            .is_some_and(|(_, s)| *s == In::JustAfterBold);
        if let Some((_, s)) = &mut current {
            if *s == In::JustAfterBold {
                *s = In::Rest;
            }
        }
        match ev {
            Event::Start(Tag::Paragraph) => para_start = true,
            Event::Start(Tag::Strong) if first_in_para => {
                let o = Opener {
                    at: range.start,
                    label: String::new(),
                    links: Vec::new(),
                };
                current = Some((o, In::Bold));
            }
            Event::End(TagEnd::Strong) => {
                if let Some((_, s)) = &mut current {
                    if *s == In::Bold {
                        *s = In::JustAfterBold;
                    }
                }
            }
            Event::Text(t) | Event::Code(t) => match &mut current {
                Some((o, In::Bold)) => o.label.push_str(&t),
                // `**Why it matters**: …` is read as `Why it matters:`.
                Some((o, In::Rest))
                    if just_after_bold && t.starts_with(':') && !o.label.ends_with(':') =>
                {
                    o.label.push(':')
                }
                _ => {}
            },
            Event::Start(Tag::Link { dest_url, .. }) => {
                if let Some((o, _)) = &mut current {
                    o.links.push(dest_url.to_string());
                }
            }
            Event::End(TagEnd::Paragraph) => {
                if let Some((mut o, _)) = current.take() {
                    o.label = o.label.trim().to_string();
                    out.push(o);
                }
            }
            _ => {}
        }
    }
    out
}

/// The configured lead-in `label` is a slip of, if any: the same but for
/// case, or one or two letters off, with its colon.
fn near_miss<'a>(label: &str, lead_ins: &'a [String]) -> Option<&'a str> {
    let bare = |s: &str| plain_quotes(s.trim().trim_end_matches(':').trim()).to_lowercase();
    let l = bare(label);
    // Too short to tell a slip from another word; too long to be a lead-in
    // (a whole bold sentence), and not worth comparing.
    if !(4..=80).contains(&l.chars().count()) {
        return None;
    }
    lead_ins
        .iter()
        .map(|c| (strsim::damerau_levenshtein(&l, &bare(c)), c.as_str()))
        // One slip in eight letters: `What's new:` is not `What's next:`.
        .filter(|(d, c)| *d * 8 <= bare(c).chars().count())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Every lead-in warning of one body.
pub fn check(cx: &BodyCtx) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for o in openers(cx.body) {
        let line = cx.body_line + cx.body[..o.at].matches('\n').count();
        let col = cx.body[..o.at]
            .rsplit('\n')
            .next()
            .map_or(0, |l| l.chars().count())
            + 1;
        let at = |message: String| {
            Diagnostic::warning(cx.path, message)
                .at(cx.file_text, line, col)
                .span(o.label.chars().count() + 4)
        };
        match lead_in(&o.label, cx.lead_ins) {
            Some(l) if is_go_deeper(l) => {
                let Some((link, link_line)) = cx.link else {
                    continue;
                };
                let item_link = absolute_url(link, cx.base_url);
                let same = o
                    .links
                    .iter()
                    .any(|u| absolute_url(u, cx.base_url) == item_link);
                if same {
                    out.push(at(format!(
                        "the body's `{l}` links to the item's own `link:` (line {link_line}), which the digest shows already"
                    )).help("keep one of the two: remove the link from this paragraph, or remove `link:` (the headline links to it)"));
                }
            }
            Some(_) => {}
            None if o.label.ends_with(':') => {
                if let Some(l) = near_miss(&o.label, cx.lead_ins) {
                    out.push(
                        at(format!(
                            "`**{}**` is not one of the lead-ins, so it is shown as plain bold text: did you mean `{l}`?",
                            o.label
                        ))
                        .help("the lead-ins are listed in config.yaml under `markdown.lead_ins` (see docs/config.md)"),
                    );
                }
            }
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(body: &str, link: Option<&str>) -> Vec<String> {
        let file = format!("---\ntitle: T\nlink: {}\n---\n{body}", link.unwrap_or("x"));
        let lead_ins: Vec<String> = crate::config::DEFAULT_LEAD_INS
            .iter()
            .map(|s| s.to_string())
            .collect();
        check(&BodyCtx {
            path: Path::new("content/x.md"),
            file_text: &file,
            body,
            body_line: 5,
            link: link.map(|l| (l, 3)),
            lead_ins: &lead_ins,
            base_url: "https://news.example.com",
        })
        .iter()
        .map(|d| d.headline())
        .collect()
    }

    #[test]
    fn a_lead_in_with_a_typo_gets_a_suggestion_at_its_place() {
        assert_eq!(
            warnings("Intro.\n\n**Why it maters:** Prices.\n", None),
            vec![
                "content/x.md:7:1: warning: `**Why it maters:**` is not one of the lead-ins, so it is shown as plain bold text: did you mean `Why it matters:`?"
            ]
        );
        assert_eq!(warnings("  **Why It Matters:** x\n", None).len(), 1);
        assert_eq!(warnings("**What’s nxt:** x\n", None).len(), 1);
        assert_eq!(warnings("**Between teh lines:** x\n", None).len(), 1);
        assert!(warnings("**What's new:** x\n", None).is_empty());
    }

    #[test]
    fn real_lead_ins_and_other_bold_openers_pass() {
        for body in [
            "**Why it matters:** x\n",
            "**Why it matters**: x\n",
            "**What's next:** x\n",
            "**Correction:** an earlier version…\n",
            "**Breaking** news\n",
            "Not **Why it maters:** at the start.\n",
            "**Why**: x\n",
        ] {
            assert_eq!(warnings(body, None), Vec::<String>::new(), "{body}");
        }
    }

    #[test]
    fn a_go_deeper_that_repeats_the_link_is_reported() {
        let body = "Text.\n\n**Go deeper:** Read [the story](/2026/x).\n";
        assert_eq!(
            warnings(body, Some("https://news.example.com/2026/x")),
            vec![
                "content/x.md:7:1: warning: the body's `Go deeper:` links to the item's own `link:` (line 3), which the digest shows already"
            ]
        );
        // Further reading next to the item's link is what Go deeper is for.
        assert!(warnings(body, Some("https://news.example.com/2026/other")).is_empty());
        assert!(warnings(body, None).is_empty());
    }
}
