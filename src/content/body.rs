//! Checks on an item's Markdown body that parsing the front-matter cannot
//! make: how deeply it nests. Every later stage (the HTML and text
//! renderers, the CSS inliner's serializer, mail clients) walks the
//! document recursively; a body of 12,000 `>` once overflowed the stack and
//! aborted `check`, `build` and `send`, and 2,500 killed a running preview.

use std::path::Path;

use pulldown_cmark::{Event, Parser};

use crate::diag::Diagnostic;
use crate::render::markdown::parser_options;

/// Deepest nesting of blocks and inline spans a body may have. Real items
/// stay under ten (a quote in a list in a quote); this leaves room and stays
/// far below what overflows a 2 MB thread stack.
pub const MAX_NESTING: usize = 32;

/// Deepest raw-HTML nesting counted when the newsroom allows raw HTML.
const MAX_HTML_NESTING: usize = 64;

/// An error at the body's line where the nesting passes [`MAX_NESTING`].
pub fn check_nesting(
    body: &str,
    body_line: usize,
    path: &Path,
    file_text: &str,
) -> Result<(), Diagnostic> {
    let mut depth = 0usize;
    let mut html_depth = 0usize;
    for (event, range) in Parser::new_ext(body, parser_options()).into_offset_iter() {
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Html(h) | Event::InlineHtml(h) => {
                html_depth = html_nesting(&h, html_depth);
            }
            _ => {}
        }
        if depth > MAX_NESTING || html_depth > MAX_HTML_NESTING {
            let line = body_line + body[..range.start].matches('\n').count();
            let what = if depth > MAX_NESTING {
                format!("more than {MAX_NESTING} levels of quotes, lists or emphasis")
            } else {
                format!("more than {MAX_HTML_NESTING} levels of raw HTML")
            };
            return Err(Diagnostic::error(
                path,
                format!("the body nests {what}: no digest can carry that"),
            )
            .at(file_text, line, 1)
            .help("flatten the quotes or lists; a reader sees at most a few levels"));
        }
    }
    Ok(())
}

/// The open-element depth after a piece of raw HTML, roughly: `<x` opens,
/// `</x` and `/>` close. Enough to bound what a parser will recurse into.
fn html_nesting(html: &str, mut depth: usize) -> usize {
    let bytes = html.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b != b'<' {
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'/') => depth = depth.saturating_sub(1),
            Some(c) if c.is_ascii_alphabetic() => {
                let end = html[i..].find('>').map(|j| i + j);
                let self_closing = end.is_some_and(|j| j > 0 && bytes[j - 1] == b'/');
                if !self_closing {
                    depth += 1;
                }
            }
            _ => {}
        }
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<(), Diagnostic> {
        let file = format!("---\ntitle: T\n---\n{body}");
        check_nesting(body, 4, Path::new("x.md"), &file)
    }

    #[test]
    fn ordinary_bodies_pass() {
        assert!(check("> quote\n>\n> - a\n>   > nested\n\n**Why it matters:** x\n").is_ok());
        assert!(check(&"> ".repeat(10)).is_ok());
    }

    #[test]
    fn deep_quotes_and_lists_are_refused_at_their_line() {
        let body = format!("intro\n\n{}deep\n", "> ".repeat(12_000));
        let d = check(&body).unwrap_err();
        assert_eq!(d.line, 6);
        assert!(d.message.contains("more than 32 levels"), "{}", d.message);
        let mut list = String::new();
        for i in 0..100 {
            list.push_str(&format!("{}- level {i}\n", "  ".repeat(i)));
        }
        assert!(check(&list).is_err());
    }

    #[test]
    fn deep_raw_html_is_refused() {
        assert!(check(&"<div>".repeat(500)).is_err());
        assert!(check("<p>a<br/>b<img src=x /></p>").is_ok());
    }
}
