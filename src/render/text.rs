//! Item bodies, Markdown to plain text, rendered from the Markdown itself:
//! paragraphs wrapped to the width, bullets with hanging indents, links as
//! numbered references listed after the body.

use pulldown_cmark::{Event, HeadingLevel, Tag, TagEnd};

use super::markdown::{MarkdownOptions, events};

/// Wraps `text` to `width` columns with the given first-line and
/// continuation prefixes. Words longer than the width (URLs) stay whole.
pub fn wrap(text: &str, width: usize, first: &str, rest: &str) -> String {
    let opts = textwrap::Options::new(width.max(first.len() + 10))
        .initial_indent(first)
        .subsequent_indent(rest)
        .break_words(false)
        .word_separator(textwrap::WordSeparator::AsciiSpace)
        // Never break "small-business" or a URL at its hyphens.
        .word_splitter(textwrap::WordSplitter::NoHyphenation);
    textwrap::wrap(text, opts).join("\n")
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
    table: Option<Vec<Vec<String>>>,
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
            Event::Start(Tag::Table(_)) => {
                self.flush();
                self.table = Some(Vec::new());
            }
            Event::Start(Tag::TableHead | Tag::TableRow) => {
                if let Some(t) = &mut self.table {
                    t.push(Vec::new());
                }
            }
            Event::End(TagEnd::TableCell) => {
                let cell = std::mem::take(&mut self.inline).trim().to_string();
                if let Some(row) = self.table.as_mut().and_then(|t| t.last_mut()) {
                    row.push(cell);
                }
            }
            Event::End(TagEnd::Table) => {
                if let Some(rows) = self.table.take() {
                    let block = table(&rows);
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

fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut lines = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = (0..cols)
            .map(|c| format!("{:<w$}", r.get(c).map_or("", String::as_str), w = widths[c]))
            .collect();
        lines.push(cells.join("  ").trim_end().to_string());
        if i == 0 {
            lines.push(
                widths
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  "),
            );
        }
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
}
