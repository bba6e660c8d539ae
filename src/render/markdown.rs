//! Item bodies, Markdown to HTML: CommonMark with tables and strikethrough,
//! typographic quotes and dashes, links and images made absolute, raw HTML
//! escaped unless the newsroom allows it, lead-ins marked with classes of
//! their own, and tables styled for email.

use pulldown_cmark::{Alignment, CowStr, Event, Options, Parser, Tag, TagEnd};

use super::table::{self, Align};
use crate::content::is_safe_url;

/// How bodies are rendered; built once from config.
#[derive(Debug, Clone)]
pub struct MarkdownOptions {
    pub base_url: String,
    pub allow_html: bool,
    pub lead_ins: Vec<String>,
}

/// The parser options every reader of a body uses. Smart punctuation gives
/// both parts the same typographic quotes, apostrophes and dashes.
pub fn parser_options() -> Options {
    Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_SMART_PUNCTUATION
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

/// Straight quotes for comparing: smart punctuation turns the `'` of a
/// configured `What's next:` into `’` in the body.
pub fn plain_quotes(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\u{2018}' | '\u{2019}' => '\'',
            '\u{201c}' | '\u{201d}' => '"',
            c => c,
        })
        .collect()
}

/// The lead-in a paragraph's first bold run is, if any (`Why it matters:`,
/// or `Why it matters` when the colon follows the bold).
pub fn lead_in<'a>(text: &str, lead_ins: &'a [String]) -> Option<&'a str> {
    let t = plain_quotes(text.trim());
    lead_ins.iter().map(String::as_str).find(|l| {
        let l = plain_quotes(l);
        t == l || t == l.trim_end_matches(':')
    })
}

/// Whether a lead-in is "Go deeper": the digest shows the item's `link:`
/// under that name too, so a body that has its own must not get a second.
pub fn is_go_deeper(lead_in: &str) -> bool {
    lead_in
        .trim()
        .trim_end_matches(':')
        .eq_ignore_ascii_case("go deeper")
}

/// Typographic quotes, apostrophes and dashes for plain text (a title, a
/// summary), as the body gets them: the same parser, with every other
/// Markdown character escaped so that nothing else changes.
pub fn smart_text(s: &str) -> String {
    if !s.contains(['\'', '"', '-', '.']) {
        return s.to_string();
    }
    s.split('\n').map(smart_line).collect::<Vec<_>>().join("\n")
}

fn smart_line(s: &str) -> String {
    // A no-break space in front keeps a leading `-`, `1.` or `#` from
    // starting a block, and counts as white space for the quote rules.
    let mut md = String::with_capacity(s.len() + 8);
    md.push('\u{a0}');
    for c in s.chars() {
        if c.is_ascii_punctuation() && !matches!(c, '\'' | '"' | '-' | '.') {
            md.push('\\');
        }
        md.push(c);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for ev in Parser::new_ext(&md, Options::ENABLE_SMART_PUNCTUATION) {
        match ev {
            Event::Text(t) => out.push_str(&t),
            Event::SoftBreak | Event::HardBreak => out.push(' '),
            _ => {}
        }
    }
    match out.strip_prefix('\u{a0}') {
        Some(rest) => rest.to_string(),
        // The parser read it some other way: keep the text as written.
        None => s.to_string(),
    }
}

/// Parses a body into events with URLs resolved and raw HTML neutralised,
/// adjacent text merged into one event, and `**Why it matters**:` read as
/// `**Why it matters:**`; both the HTML and the text renderer start from these.
pub fn events<'a>(md: &'a str, opts: &MarkdownOptions) -> Vec<Event<'a>> {
    let mut out: Vec<Event<'a>> = Vec::new();
    // Links whose target is unsafe are dropped, keeping their text.
    let mut dropped_links = Vec::new();
    for ev in Parser::new_ext(md, parser_options()) {
        let ev = match ev {
            Event::Html(h) | Event::InlineHtml(h) if !opts.allow_html => Event::Text(h),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => match absolute_url(&dest_url, &opts.base_url) {
                Some(u) => {
                    dropped_links.push(false);
                    Event::Start(Tag::Link {
                        link_type,
                        dest_url: CowStr::from(u),
                        title,
                        id,
                    })
                }
                None => {
                    dropped_links.push(true);
                    continue;
                }
            },
            Event::End(TagEnd::Link) => {
                if dropped_links.pop().unwrap_or(false) {
                    continue;
                }
                Event::End(TagEnd::Link)
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let u = absolute_url(&dest_url, &opts.base_url).unwrap_or_default();
                Event::Start(Tag::Image {
                    link_type,
                    dest_url: CowStr::from(u),
                    title,
                    id,
                })
            }
            other => other,
        };
        // Smart punctuation and entities split text into pieces; one piece
        // per run keeps the lead-in and table logic simple.
        if let (Event::Text(t), Some(Event::Text(prev))) = (&ev, out.last_mut()) {
            let mut joined = prev.to_string();
            joined.push_str(t);
            *prev = CowStr::from(joined);
            continue;
        }
        out.push(ev);
    }
    colon_into_lead_ins(&mut out, &opts.lead_ins);
    out
}

/// `**Why it matters**: …` becomes `**Why it matters:** …`, so that it is
/// styled and read as the lead-in it is meant to be.
fn colon_into_lead_ins(evs: &mut [Event], lead_ins: &[String]) {
    let mut i = 0;
    while i + 4 < evs.len() {
        let fix = matches!(evs[i], Event::Start(Tag::Paragraph))
            && matches!(evs[i + 1], Event::Start(Tag::Strong))
            && matches!(&evs[i + 2], Event::Text(t) if !t.trim_end().ends_with(':') && lead_in(t, lead_ins).is_some())
            && matches!(evs[i + 3], Event::End(TagEnd::Strong))
            && matches!(&evs[i + 4], Event::Text(t) if t.starts_with(':'));
        if fix {
            if let Event::Text(t) = &evs[i + 2] {
                evs[i + 2] = Event::Text(CowStr::from(format!("{}:", t.trim_end())));
            }
            if let Event::Text(t) = &evs[i + 4] {
                evs[i + 4] = Event::Text(CowStr::from(t[1..].to_string()));
            }
        }
        i += 1;
    }
}

/// What the templates need to know about a body besides its text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// The body has its own `Go deeper:` paragraph.
    pub go_deeper: bool,
    /// The links of that paragraph (absolute).
    pub go_deeper_links: Vec<String>,
}

/// Reads the facts of a body from its events.
pub fn facts(evs: &[Event], lead_ins: &[String]) -> BodyFacts {
    let mut f = BodyFacts::default();
    let mut i = 0;
    while i + 2 < evs.len() {
        let go_deeper = matches!(evs[i], Event::Start(Tag::Paragraph))
            && matches!(evs[i + 1], Event::Start(Tag::Strong))
            && matches!(&evs[i + 2], Event::Text(t) if lead_in(t, lead_ins).is_some_and(is_go_deeper));
        if !go_deeper {
            i += 1;
            continue;
        }
        f.go_deeper = true;
        i += 3;
        while i < evs.len() && !matches!(evs[i], Event::End(TagEnd::Paragraph)) {
            if let Event::Start(Tag::Link { dest_url, .. }) = &evs[i] {
                f.go_deeper_links.push(dest_url.to_string());
            }
            i += 1;
        }
    }
    f
}

/// The body as HTML, and what the templates need to know about it.
pub fn to_html_with_facts(md: &str, opts: &MarkdownOptions) -> (String, BodyFacts) {
    let mut evs = events(md, opts);
    let facts = facts(&evs, &opts.lead_ins);
    mark_lead_ins(&mut evs, &opts.lead_ins);
    style_tables(&mut evs);
    let mut html = String::with_capacity(md.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, evs.into_iter());
    (html, facts)
}

/// The body as HTML.
pub fn to_html(md: &str, opts: &MarkdownOptions) -> String {
    to_html_with_facts(md, opts).0
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

/// The plain text of each body row's cells, for deciding alignment.
fn body_cells(evs: &[Event]) -> Vec<Vec<String>> {
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut in_head = false;
    let mut cell: Option<String> = None;
    for ev in evs {
        match ev {
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => in_head = false,
            Event::Start(Tag::TableRow) => rows.push(Vec::new()),
            Event::Start(Tag::TableCell) if !in_head => cell = Some(String::new()),
            Event::Text(t) | Event::Code(t) => {
                if let Some(c) = &mut cell {
                    c.push_str(t);
                }
            }
            Event::End(TagEnd::TableCell) => {
                if let (Some(c), Some(r)) = (cell.take(), rows.last_mut()) {
                    r.push(c);
                }
            }
            Event::End(TagEnd::Table) => break,
            _ => {}
        }
    }
    rows
}

/// Gives item tables markup of their own: a wrapper that scrolls sideways
/// on a narrow screen instead of widening the message, a class the
/// template styles (so the layout tables' rules never reach data cells),
/// each column's alignment on every cell, and figures kept on one line.
fn style_tables(evs: &mut [Event]) {
    let mut i = 0;
    while i < evs.len() {
        let Event::Start(Tag::Table(gfm)) = &evs[i] else {
            i += 1;
            continue;
        };
        let gfm: Vec<Alignment> = gfm.clone();
        let start = i;
        let aligns = table::alignments(&gfm, &body_cells(&evs[start..]));
        evs[start] = Event::Html(CowStr::Borrowed(
            "<div class=\"table-wrap\"><table class=\"data-table\">\n",
        ));
        let mut in_head = false;
        let mut body_open = false;
        let mut col = 0;
        let mut cell_at = None;
        let mut cell_text = String::new();
        i += 1;
        while i < evs.len() {
            match &evs[i] {
                Event::Start(Tag::TableHead) => {
                    in_head = true;
                    col = 0;
                    evs[i] = Event::Html(CowStr::Borrowed("<thead><tr>"));
                }
                Event::End(TagEnd::TableHead) => {
                    in_head = false;
                    evs[i] = Event::Html(CowStr::Borrowed("</tr></thead>\n"));
                }
                Event::Start(Tag::TableRow) => {
                    col = 0;
                    evs[i] = Event::Html(CowStr::Borrowed(if body_open {
                        "<tr>"
                    } else {
                        "<tbody>\n<tr>"
                    }));
                    body_open = true;
                }
                Event::End(TagEnd::TableRow) => {
                    evs[i] = Event::Html(CowStr::Borrowed("</tr>\n"));
                }
                Event::Start(Tag::TableCell) => {
                    cell_at = Some(i);
                    cell_text.clear();
                }
                Event::Text(t) | Event::Code(t) if cell_at.is_some() => cell_text.push_str(t),
                Event::End(TagEnd::TableCell) => {
                    let align = aligns.get(col).copied().unwrap_or(Align::Left);
                    let tag = if in_head { "th" } else { "td" };
                    let mut class = Vec::new();
                    if col == 0 {
                        class.push("cell-first");
                    }
                    if !in_head && table::is_number(&cell_text) {
                        class.push("num");
                    }
                    let class = match class.is_empty() {
                        true => String::new(),
                        false => format!(" class=\"{}\"", class.join(" ")),
                    };
                    let scope = if in_head { " scope=\"col\"" } else { "" };
                    // The alignment goes inline: it must survive a client
                    // that drops the <style> block and the inliner's rules.
                    if let Some(at) = cell_at.take() {
                        evs[at] = Event::Html(CowStr::from(format!(
                            "<{tag}{class}{scope} style=\"text-align: {}\">",
                            align.css()
                        )));
                    }
                    evs[i] = Event::Html(CowStr::from(format!("</{tag}>")));
                    col += 1;
                }
                Event::End(TagEnd::Table) => {
                    evs[i] = Event::Html(CowStr::Borrowed(if body_open {
                        "</tbody></table></div>\n"
                    } else {
                        "</table></div>\n"
                    }));
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        i += 1;
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
    fn tables_get_their_own_markup_alignment_and_figures() {
        let h = to_html(
            "| Gauge | Close | Week |\n|---|---|:---:|\n| Large-cap index | 6,412.8 | +1.4% |\n| 10-year yield | 4.06% | \u{2212}0.09 pt |\n\n~~old~~ new\n",
            &opts(false),
        );
        assert_eq!(
            h,
            "<div class=\"table-wrap\"><table class=\"data-table\">\n\
             <thead><tr><th class=\"cell-first\" scope=\"col\" style=\"text-align: left\">Gauge</th><th scope=\"col\" style=\"text-align: right\">Close</th><th scope=\"col\" style=\"text-align: center\">Week</th></tr></thead>\n\
             <tbody>\n\
             <tr><td class=\"cell-first\" style=\"text-align: left\">Large-cap index</td><td class=\"num\" style=\"text-align: right\">6,412.8</td><td class=\"num\" style=\"text-align: center\">+1.4%</td></tr>\n\
             <tr><td class=\"cell-first\" style=\"text-align: left\">10-year yield</td><td class=\"num\" style=\"text-align: right\">4.06%</td><td class=\"num\" style=\"text-align: center\">\u{2212}0.09 pt</td></tr>\n\
             </tbody></table></div>\n\
             <p><del>old</del> new</p>\n"
        );
    }

    #[test]
    fn quotes_apostrophes_and_dashes_are_typographic() {
        let h = to_html(
            "Friday's \"soft\" landing -- or not.\n\n**What's next:** More.\n",
            &opts(false),
        );
        assert_eq!(
            h,
            "<p>Friday\u{2019}s \u{201c}soft\u{201d} landing \u{2013} or not.</p>\n<p class=\"lead-in\"><strong class=\"lead-in-label\">What\u{2019}s next:</strong> More.</p>\n"
        );
        // Code keeps its straight quotes.
        assert!(to_html("`a 'b'`", &opts(false)).contains("<code>a 'b'</code>"));
    }

    #[test]
    fn plain_text_gets_the_same_punctuation_and_nothing_else() {
        assert_eq!(
            smart_text("Friday's \"soft\" landing"),
            "Friday\u{2019}s \u{201c}soft\u{201d} landing"
        );
        assert_eq!(
            smart_text("'Quoted' -- *not* _emphasis_ <b>"),
            "\u{2018}Quoted\u{2019} \u{2013} *not* _emphasis_ <b>"
        );
        assert_eq!(
            smart_text("- 1. # [x](y) &amp; \\"),
            "- 1. # [x](y) &amp; \\"
        );
        assert_eq!(smart_text("1. Two\n- three"), "1. Two\n- three");
        assert_eq!(smart_text("plain"), "plain");
    }

    #[test]
    fn a_colon_after_the_bold_still_makes_a_lead_in() {
        let h = to_html("**Why it matters**: Prices.\n", &opts(false));
        assert_eq!(
            h,
            "<p class=\"lead-in\"><strong class=\"lead-in-label\">Why it matters:</strong> Prices.</p>\n"
        );
    }

    #[test]
    fn a_go_deeper_paragraph_and_its_links_are_found() {
        let md = "Text [a](/a).\n\n**Go deeper:** See [the close](/close) and [live](https://o.example/live).\n";
        let (_, f) = to_html_with_facts(md, &opts(false));
        assert!(f.go_deeper);
        assert_eq!(
            f.go_deeper_links,
            vec!["https://news.example.com/close", "https://o.example/live"]
        );
        let (_, f) = to_html_with_facts("**Why it matters:** [x](/x)\n", &opts(false));
        assert_eq!(f, BodyFacts::default());
    }
}
