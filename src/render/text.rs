//! Item bodies, Markdown to plain text, rendered from the Markdown itself:
//! paragraphs wrapped to the width, bullets with hanging indents, links as
//! numbered references listed after the body, tables as aligned columns (or
//! a list when they do not fit).

use pulldown_cmark::{Alignment, Event, HeadingLevel, Tag, TagEnd};
use textwrap::core::display_width;

use super::markdown::{MarkdownOptions, events};
use super::table::{self, Align};
use crate::mail::variant::{Fields, fill};

/// Wraps `text` to `width` columns with the given first-line and
/// continuation prefixes. Words longer than the width (URLs) stay whole;
/// an abbreviation stays on the line of what it abbreviates ("Dec. 16",
/// "Dr. Lee", "6 p.m."), and a no-break space never breaks.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let opts = textwrap::Options::new(width.max(first.len() + 10))
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        // Never break "small-business" or a URL at its hyphens.
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    let glued = glue_abbreviations(text);
    let wrapped = textwrap::wrap(&glued, opts).join("\n");
    // The glue did its work; the reader gets ordinary spaces.
    if wrapped.contains('\u{a0}') {
        wrapped.replace('\u{a0}', " ")
    } else {
        wrapped
    }
}

/// Abbreviations that must not end a line when a word follows them.
const ABBREVIATIONS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec", "Mon",
    "Tue", "Tues", "Wed", "Thu", "Thur", "Thurs", "Fri", "Sat", "Sun", "Mr", "Mrs", "Ms", "Mx",
    "Dr", "Prof", "Sen", "Rep", "Gov", "Lt", "Gen", "Col", "Capt", "Sgt", "Rev", "Hon", "Pres",
    "Supt", "St", "Mt", "Ft", "No", "Nos", "Vol", "p", "pp", "Fig", "vs", "approx", "ca",
];

/// Whether a line must not break after `word`: a listed abbreviation with
/// its period, an initial (`J.`), or a dotted one (`U.S.`, `a.m.`).
fn binds_to_next(word: &str) -> bool {
    let w = word.trim_start_matches(['(', '[', '"', '\'', '\u{201c}', '\u{2018}']);
    let Some(stem) = w.strip_suffix('.') else {
        return false;
    };
    if ABBREVIATIONS.contains(&stem) {
        return true;
    }
    let mut chars = stem.chars();
    let initial = matches!((chars.next(), chars.next()), (Some(c), None) if c.is_uppercase());
    let dotted = stem.contains('.')
        && stem
            .split('.')
            .all(|p| p.chars().count() == 1 && p.chars().all(char::is_alphabetic));
    initial || dotted
}

/// Whether `word` is a time's `a.m.` or a figure's unit (`0.09 pt`), which
/// stays with its number.
fn binds_to_previous(word: &str, previous: &str) -> bool {
    let w = word.trim_end_matches([',', ';', ':', ')', '.']);
    matches!(
        w,
        "a.m"
            | "p.m"
            | "am"
            | "pm"
            | "pt"
            | "pts"
            | "bp"
            | "bps"
            | "%"
            | "percent"
            | "million"
            | "billion"
            | "trillion"
    ) && previous.ends_with(|c: char| c.is_ascii_digit())
}

/// Replaces the spaces a line must not break at with no-break spaces.
fn glue_abbreviations(text: &str) -> String {
    if !text.contains(['.', ' ']) {
        return text.to_string();
    }
    let words: Vec<&str> = text.split(' ').collect();
    let mut out = String::with_capacity(text.len());
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            let prev = words[i - 1];
            let glue = !w.is_empty()
                && !prev.is_empty()
                && (binds_to_next(prev) || binds_to_previous(w, prev));
            out.push(if glue { '\u{a0}' } else { ' ' });
        }
        out.push_str(w);
    }
    out
}

/// A sent message's text part: the recipient's values filled in, then each
/// line that held one wrapped to `width` again, keeping its indent. The
/// rendering left those lines unwrapped (see the `wrap` filter), so a long
/// address or name re-flows its whole paragraph instead of leaving a long
/// line and a stray fragment; a URL alone on its line stays whole.
pub fn fill_and_wrap(text: &str, fields: &Fields, width: usize) -> String {
    let mut out = String::with_capacity(text.len() + 256);
    // Only the few lines that hold a placeholder are looked at; the rest
    // (every item's text) is copied as it is.
    let mut copied = 0;
    while let Some(i) = text[copied..].find(PLACEHOLDER_START) {
        let at = copied + i;
        let start = text[..at].rfind('\n').map_or(0, |j| j + 1);
        let end = text[at..].find('\n').map_or(text.len(), |j| at + j);
        out.push_str(&text[copied..start]);
        fill_line(&text[start..end], fields, width, &mut out);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// What starts every placeholder (see `mail::variant::placeholder`).
const PLACEHOLDER_START: char = '\u{e000}';

fn fill_line(line: &str, fields: &Fields, width: usize, out: &mut String) {
    let filled = fill(line, fields, false);
    if display_width(&filled) <= width {
        out.push_str(&filled);
        return;
    }
    let body = filled.trim_start();
    let indent = &filled[..filled.len() - body.len()];
    let body = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let wrapped = wrap(&body, width, indent, indent);
    for (j, l) in wrapped.split('\n').enumerate() {
        if j > 0 {
            out.push('\n');
        }
        break_overlong(l, width, indent, out);
    }
}

/// A line still over `width` after wrapping holds one word longer than the
/// width: a URL keeps it whole (breaking it would break the link), anything
/// else (an address of 80 characters) is cut at the width.
fn break_overlong(line: &str, width: usize, indent: &str, out: &mut String) {
    let word = line.trim();
    if display_width(line) <= width || word.contains("://") || word.contains(char::is_whitespace) {
        out.push_str(line);
        return;
    }
    let room = width.saturating_sub(display_width(indent)).max(10);
    let chars: Vec<char> = word.chars().collect();
    for (k, chunk) in chars.chunks(room).enumerate() {
        if k > 0 {
            out.push('\n');
        }
        out.push_str(indent);
        out.extend(chunk);
    }
}

struct ListLevel {
    next: Option<u64>,
    /// The marker of the current item, until its first block is written.
    pending_marker: Option<String>,
    indent: usize,
}

struct TextRenderer {
    width: usize,
    out: Vec<String>,
    inline: String,
    lists: Vec<ListLevel>,
    quote: usize,
    links: Vec<String>,
    link_stack: Vec<String>,
    heading: Option<HeadingLevel>,
    code_block: Option<String>,
    /// The table being read: its GFM alignments and rows (the head first).
    table: Option<(Vec<Alignment>, Vec<Vec<String>>)>,
    strike: bool,
}

impl TextRenderer {
    fn prefixes(&mut self) -> (String, String) {
        let quote = "> ".repeat(self.quote);
        let mut first = quote.clone();
        let mut rest = quote;
        let depth = self.lists.len();
        for (i, l) in self.lists.iter_mut().enumerate() {
            let last = i + 1 == depth;
            match (&l.pending_marker, last) {
                (Some(m), true) => {
                    first.push_str(&format!("{m:<w$}", w = l.indent));
                    l.pending_marker = None;
                }
                _ => first.push_str(&" ".repeat(l.indent)),
            }
            rest.push_str(&" ".repeat(l.indent));
        }
        (first, rest)
    }

    fn flush(&mut self) {
        let text = std::mem::take(&mut self.inline);
        let text = text.trim();
        if text.is_empty() {
            return;
        }
        let text = match self.heading {
            Some(_) => text.to_string(),
            None => text.split_whitespace().collect::<Vec<_>>().join(" "),
        };
        let (first, rest) = self.prefixes();
        let mut block = wrap(&text, self.width, &first, &rest);
        if let Some(level) = self.heading {
            let ch = if level <= HeadingLevel::H2 { '=' } else { '-' };
            let len = block
                .lines()
                .last()
                .map_or(0, |l| l.chars().count() - rest.chars().count());
            block.push('\n');
            block.push_str(&rest);
            block.push_str(&ch.to_string().repeat(len));
        }
        self.block(block);
    }

    fn block(&mut self, block: String) {
        // Items of a tight list stay together; everything else gets a blank line.
        let tight = !self.lists.is_empty() && self.out.last().is_some_and(|l| !l.is_empty());
        if !self.out.is_empty() && !tight && self.out.last().is_some_and(|l| !l.is_empty()) {
            self.out.push(String::new());
        }
        self.out.push(block);
    }

    fn event(&mut self, ev: Event) {
        if let Some(code) = &mut self.code_block {
            match ev {
                Event::Text(t) => code.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let code = self.code_block.take().unwrap_or_default();
                    let (_, rest) = self.prefixes();
                    let block = code
                        .trim_end()
                        .lines()
                        .map(|l| format!("{rest}    {l}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    self.block(block);
                }
                _ => {}
            }
            return;
        }
        match ev {
            Event::Start(Tag::Paragraph) => {}
            Event::End(TagEnd::Paragraph) => self.flush(),
            Event::Start(Tag::Heading { level, .. }) => {
                self.flush();
                self.heading = Some(level);
            }
            Event::End(TagEnd::Heading(_)) => {
                self.flush();
                self.heading = None;
            }
            Event::Start(Tag::BlockQuote(_)) => {
                self.flush();
                self.quote += 1;
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                self.flush();
                self.quote -= 1;
            }
            Event::Start(Tag::CodeBlock(_)) => {
                self.flush();
                self.code_block = Some(String::new());
            }
            Event::Start(Tag::List(start)) => {
                self.flush();
                if self.lists.is_empty() && self.out.last().is_some_and(|l| !l.is_empty()) {
                    // A list right after a paragraph still gets its blank line.
                    self.out.push(String::new());
                }
                let indent = if start.is_some() { 4 } else { 2 };
                self.lists.push(ListLevel {
                    next: start,
                    pending_marker: None,
                    indent,
                });
            }
            Event::End(TagEnd::List(_)) => {
                self.flush();
                self.lists.pop();
                if self.lists.is_empty() {
                    // Separate what follows a list from it.
                    self.out.push(String::new());
                }
            }
            Event::Start(Tag::Item) => {
                self.flush();
                if let Some(l) = self.lists.last_mut() {
                    l.pending_marker = Some(match &mut l.next {
                        Some(n) => {
                            let m = format!("{n}.");
                            *n += 1;
                            m
                        }
                        None => "-".into(),
                    });
                }
            }
            Event::End(TagEnd::Item) => self.flush(),
            Event::Start(Tag::Table(aligns)) => {
                self.flush();
                self.table = Some((aligns, Vec::new()));
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                if let Some((_, rows)) = &mut self.table {
                    rows.push(Vec::new());
                }
            }
            Event::End(TagEnd::TableCell) => {
                let cell = std::mem::take(&mut self.inline);
                let cell = cell.split_whitespace().collect::<Vec<_>>().join(" ");
                if let Some(row) = self.table.as_mut().and_then(|(_, rows)| rows.last_mut()) {
                    row.push(cell);
                }
            }
            Event::End(TagEnd::Table) => {
                if let Some((gfm, rows)) = self.table.take() {
                    let (first, rest) = self.prefixes();
                    let block = table(&gfm, &rows, self.width, &first, &rest);
                    self.block(block);
                }
            }
            Event::Start(Tag::Link { dest_url, .. }) => self.link_stack.push(dest_url.to_string()),
            Event::End(TagEnd::Link) => {
                if let Some(url) = self.link_stack.pop() {
                    let n = match self.links.iter().position(|l| l == &url) {
                        Some(i) => i + 1,
                        None => {
                            self.links.push(url);
                            self.links.len()
                        }
                    };
                    self.inline.push_str(&format!(" [{n}]"));
                }
            }
            Event::Start(Tag::Image { .. }) => self.inline.push_str("[Image: "),
            Event::End(TagEnd::Image) => self.inline.push(']'),
            Event::Start(Tag::Strikethrough) => {
                self.strike = true;
                self.inline.push_str("~~");
            }
            Event::End(TagEnd::Strikethrough) => {
                self.strike = false;
                self.inline.push_str("~~");
            }
            Event::Text(t) => self.inline.push_str(&t),
            Event::Code(t) => self.inline.push_str(&t),
            Event::SoftBreak => self.inline.push(' '),
            Event::HardBreak => self.inline.push('\n'),
            Event::Rule => {
                self.flush();
                self.block("-".repeat(20));
            }
            Event::TaskListMarker(done) => self.inline.push_str(if done { "[x] " } else { "[ ] " }),
            _ => {}
        }
    }
}

/// A table as aligned columns (figures right-aligned, as in the HTML) when
/// it fits the width, else as a list with one entry per row, each value
/// named by its column.
fn table(gfm: &[Alignment], rows: &[Vec<String>], width: usize, first: &str, rest: &str) -> String {
    let Some((head, body)) = rows.split_first() else {
        return String::new();
    };
    let aligns = table::alignments(gfm, body);
    let cols = aligns.len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| display_width(s))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let total = widths.iter().sum::<usize>() + 2 * cols.saturating_sub(1);
    if display_width(rest).max(display_width(first)) + total <= width {
        return columns(head, body, &aligns, &widths, first, rest);
    }
    let mut entries = Vec::new();
    for (i, r) in body.iter().enumerate() {
        let (lead, rest_cells) = match r.split_first() {
            Some((l, more)) => (l.as_str(), more),
            None => ("", &[][..]),
        };
        let values: Vec<String> = rest_cells
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| match head.get(k + 1).map(String::as_str) {
                Some(h) if !h.is_empty() => format!("{h}: {v}"),
                _ => v.clone(),
            })
            .collect();
        let line = match (lead.is_empty(), values.is_empty()) {
            (true, _) => values.join("; "),
            (false, true) => lead.to_string(),
            (false, false) => format!("{lead} \u{2014} {}", values.join("; ")),
        };
        let marker = if i == 0 {
            format!("{first}- ")
        } else {
            format!("{rest}- ")
        };
        entries.push(wrap(&line, width, &marker, &format!("{rest}  ")));
    }
    entries.join("\n")
}

fn columns(
    head: &[String],
    body: &[Vec<String>],
    aligns: &[Align],
    widths: &[usize],
    first: &str,
    rest: &str,
) -> String {
    let cell = |s: &str, c: usize| -> String {
        let pad = widths[c].saturating_sub(display_width(s));
        match aligns[c] {
            Align::Right => format!("{}{s}", " ".repeat(pad)),
            Align::Center => format!("{}{s}{}", " ".repeat(pad / 2), " ".repeat(pad - pad / 2)),
            Align::Left => format!("{s}{}", " ".repeat(pad)),
        }
    };
    let row = |r: &[String]| -> String {
        (0..widths.len())
            .map(|c| cell(r.get(c).map_or("", String::as_str), c))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut lines = vec![format!("{first}{}", row(head))];
    lines.push(format!(
        "{rest}{}",
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  ")
    ));
    for r in body {
        lines.push(format!("{rest}{}", row(r)));
    }
    lines.join("\n")
}

/// The body as plain text wrapped at `width`, followed by its link references.
pub fn to_text(md: &str, opts: &MarkdownOptions, width: usize) -> String {
    let mut r = TextRenderer {
        width,
        out: Vec::new(),
        inline: String::new(),
        lists: Vec::new(),
        quote: 0,
        links: Vec::new(),
        link_stack: Vec::new(),
        heading: None,
        code_block: None,
        table: None,
        strike: false,
    };
    for ev in events(md, opts) {
        r.event(ev);
    }
    r.flush();
    while r.out.last().is_some_and(String::is_empty) {
        r.out.pop();
    }
    let mut text = r.out.join("\n");
    if !r.links.is_empty() {
        text.push_str("\n\n");
        let refs: Vec<String> = r
            .links
            .iter()
            .enumerate()
            .map(|(i, u)| format!("[{}] {u}", i + 1))
            .collect();
        text.push_str(&refs.join("\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> MarkdownOptions {
        MarkdownOptions {
            base_url: "https://news.example.com".into(),
            allow_html: false,
            lead_ins: vec!["Why it matters:".into()],
        }
    }

    #[test]
    fn paragraphs_wrap_and_links_become_references() {
        let md = "Officials from [twelve nations](/talks) met on Sunday to resume negotiations over tariffs that have weighed on trade for months, see [the report](https://o.example/r).\n\n**Why it matters:** Prices.\n";
        let t = to_text(md, &opts(), 78);
        assert_eq!(
            t,
            "Officials from twelve nations [1] met on Sunday to resume negotiations over\ntariffs that have weighed on trade for months, see the report [2].\n\nWhy it matters: Prices.\n\n[1] https://news.example.com/talks\n[2] https://o.example/r"
        );
        assert!(t.lines().all(|l| l.chars().count() <= 78));
    }

    #[test]
    fn bullets_have_hanging_indents() {
        let md = "Intro.\n\n- First bullet that is long enough to need wrapping onto a second line of the text part.\n- Second.\n  - Nested one.\n\nAfter.\n";
        let t = to_text(md, &opts(), 40);
        assert_eq!(
            t,
            "Intro.\n\n- First bullet that is long enough to\n  need wrapping onto a second line of\n  the text part.\n- Second.\n  - Nested one.\n\nAfter."
        );
    }

    #[test]
    fn tables_headings_and_strikethrough() {
        let md = "## Numbers\n\n| Index | Close |\n|---|---|\n| S&P | 6,100 |\n\n~~Tuesday~~ Wednesday\n";
        let t = to_text(md, &opts(), 78);
        assert_eq!(
            t,
            "Numbers\n=======\n\nIndex  Close\n-----  -----\nS&P    6,100\n\n~~Tuesday~~ Wednesday"
        );
    }

    #[test]
    fn raw_html_stays_literal_text() {
        let t = to_text("a <b>bold</b> move", &opts(), 78);
        assert_eq!(t, "a <b>bold</b> move");
    }

    #[test]
    fn abbreviations_stay_with_what_follows() {
        let md =
            "Futures markets now put the odds of a rate cut at the Dec. 16 meeting at about 70%.";
        let t = to_text(md, &opts(), 60);
        assert_eq!(
            t,
            "Futures markets now put the odds of a rate cut at the\nDec. 16 meeting at about 70%."
        );
        let t = to_text(
            "The session ends at 11 p.m. Thursday, said Sen. Alvarez and J. Doe.",
            &opts(),
            22,
        );
        for l in t.lines() {
            assert!(
                !l.ends_with("Sen.") && !l.ends_with("J.") && !l.ends_with(" 11"),
                "{t}"
            );
        }
        assert!(
            !t.contains('\u{a0}'),
            "no-break spaces become spaces: {t:?}"
        );
    }

    #[test]
    fn strikethrough_stays_literal_and_quotes_are_typographic() {
        let t = to_text(
            "It was ~~4.16%~~ 4.06%, traders' \"best\" week.",
            &opts(),
            78,
        );
        assert_eq!(
            t,
            "It was ~~4.16%~~ 4.06%, traders\u{2019} \u{201c}best\u{201d} week."
        );
    }

    #[test]
    fn tables_align_figures_and_become_lists_when_too_wide() {
        let md = "| Gauge | Friday close | Week |\n|---|---:|---|\n| Large-cap index | 6,412.8 | +1.4% |\n| 10-year yield | 4.06% | \u{2212}0.09 pt |\n";
        assert_eq!(
            to_text(md, &opts(), 78),
            "Gauge            Friday close      Week\n\
             ---------------  ------------  --------\n\
             Large-cap index       6,412.8     +1.4%\n\
             10-year yield           4.06%  \u{2212}0.09 pt"
        );
        let t = to_text(md, &opts(), 29);
        assert_eq!(
            t,
            "- Large-cap index \u{2014} Friday\n  close: 6,412.8; Week: +1.4%\n- 10-year yield \u{2014} Friday\n  close: 4.06%; Week:\n  \u{2212}0.09 pt"
        );
        assert!(t.lines().all(|l| l.chars().count() <= 29), "{t}");
    }

    #[test]
    fn filled_lines_are_wrapped_around_the_readers_values() {
        use crate::mail::variant::placeholder;
        let long = format!("{}@{}.example.org", "a".repeat(40), "b".repeat(20));
        let fields = Fields(
            [
                ("email".to_string(), long.clone()),
                (
                    "url".to_string(),
                    format!("https://news.example.com/u?t={}", "c".repeat(90)),
                ),
                ("huge".to_string(), "d".repeat(100)),
            ]
            .into(),
        );
        let text = format!(
            "Title\n\n  This email was sent to {} because this address is subscribed to Markets from The Daily Brief.\n\n{}\n\n{}\nshort {}",
            placeholder("email"),
            placeholder("url"),
            placeholder("huge"),
            placeholder("missing"),
        );
        let t = fill_and_wrap(&text, &fields, 78);
        assert_eq!(
            t,
            format!(
                "Title\n\n  This email was sent to\n  {long}\n  because this address is subscribed to Markets from The Daily Brief.\n\nhttps://news.example.com/u?t={}\n\n{}\n{}\nshort ",
                "c".repeat(90),
                "d".repeat(78),
                "d".repeat(22),
            )
        );
        assert_eq!(
            fill_and_wrap("no placeholders", &fields, 78),
            "no placeholders"
        );
    }
}
