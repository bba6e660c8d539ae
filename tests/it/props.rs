//! Property tests: whatever an editor's file holds, the item path (split,
//! front-matter, dates) and the config loader answer with diagnostics that
//! point inside the file, and never panic.

use std::path::Path;

use briefing::config::{Newsroom, Term};
use briefing::content::{ParseCtx, parse_item, prescan_date, split::split};
use briefing::diag::Diagnostic;
use briefing::time::{parse_duration, parse_when, suggest_iso};
use proptest::prelude::*;

fn ctx_terms() -> (Vec<Term>, Vec<Term>) {
    let t = |id: &str| Term {
        id: id.into(),
        name: id.into(),
    };
    (vec![t("world"), t("national")], vec![t("trade")])
}

/// Asserts `d` points at a line of `text` and at most one column past its end.
fn inside(d: &Diagnostic, text: &str) {
    let _ = d.to_string();
    if d.line == 0 {
        return;
    }
    let lines: Vec<&str> = text.split('\n').collect();
    assert!(
        d.line <= lines.len(),
        "line {} of {} in {text:?}: {d}",
        d.line,
        lines.len()
    );
    let len = lines[d.line - 1].chars().count();
    assert!(
        d.col <= len + 1,
        "column {} past the end ({len}) of line {} in {text:?}: {d}",
        d.col,
        d.line
    );
}

fn parse(text: &str) {
    let (regions, topics) = ctx_terms();
    let lead_ins: Vec<String> = briefing::config::DEFAULT_LEAD_INS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let ctx = ParseCtx {
        timezone: chrono_tz::America::New_York,
        regions: &regions,
        topics: &topics,
        newsletters: vec!["am"],
        lead_ins: &lead_ins,
        base_url: "https://news.example.com",
    };
    // Positions are in the text as editors see it: CR and CRLF are line ends.
    let normalised = text.replace("\r\n", "\n").replace('\r', "\n");
    match parse_item("x", Path::new("content/x.md"), text, &ctx) {
        Err(ds) => {
            assert!(!ds.is_empty());
            ds.iter().for_each(|d| inside(d, &normalised));
        }
        Ok(item) => item.warnings.iter().for_each(|d| inside(d, &normalised)),
    }
    let _ = split(text);
    let _ = prescan_date(text, chrono_tz::UTC);
}

fn load_config(text: &str) {
    match Newsroom::from_text(Path::new("config.yaml"), text.to_string()) {
        Ok(n) => n.warnings.iter().for_each(|d| inside(d, text)),
        Err(ds) => {
            assert!(ds.errors() > 0, "{text:?}");
            ds.iter().for_each(|d| inside(d, text));
        }
    }
}

const KEYS: &[&str] = &[
    "title", "date", "region", "regions", "topic", "topics", "priority", "image", "extra", "tags",
    "titel", "draft", "expires", "link", "author", "authors", "summary", "- x", "? k",
];
const VALUES: &[&str] = &[
    "x",
    "[a, b",
    "{ src: a, alt: b }",
    "2026-02-30",
    "2026-11-29T",
    "2026-11-29T\u{e9}",
    "Nov 28, 2026",
    "2026-11-28T05:30:00-05:00",
    "\"quoted",
    "'It's'",
    "\"a\" b",
    "Breaking: storm",
    "#1 story",
    "'",
    "- item",
    "world",
    "[world, trade]",
    "&anchor x",
    "*anchor",
    "*alias",
    "!!binary aGk=",
    "|",
    ">-",
    "|\n  block\n  text",
    "~",
    "1e400",
    "9999999999999999999999",
    "",
    "\t",
    "\u{feff}",
    "é",
    "\r",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "- - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - - -",
];

fn front_matter() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
        0usize..3,
        any::<bool>(),
    )
        .prop_map(|(k, v, indent, tab)| {
            let pad = if tab { "\t".into() } else { " ".repeat(indent) };
            format!("{pad}{k}: {v}")
        });
    (
        prop::collection::vec(line, 0..10),
        any::<bool>(),
        any::<bool>(),
        ".{0,40}",
    )
        .prop_map(|(lines, crlf, close, body)| {
            let nl = if crlf { "\r\n" } else { "\n" };
            let mut s = format!("---{nl}{}{nl}", lines.join(nl));
            if close {
                s.push_str(&format!("---{nl}"));
            }
            s.push_str(&body);
            s
        })
}

const CONFIG_LINES: &[&str] = &[
    "site:",
    "  name: T",
    "  base_url: https://news.example.com",
    "  base_url: http://news.example.com/?q#f",
    "  timezone: America/New_York",
    "  timezone: Mars/Base",
    "regions: [{ id: world, name: World }]",
    "regions:\n  - { id: world, name: World }\n  - id: Bad Id",
    "topics: [{ id: trade, name: Trade }]",
    "topics: trade, tech",
    "newsletters:",
    "  am:",
    "    name: AM",
    "    name: #AM",
    "    from: \"AM <am@news.example.com>\"",
    "    schedule: \"0 6 * * MON-FRY\"",
    "    schedule: [",
    "    lookback: 9999999999999999w",
    "    lookback: 100000000d",
    "    max_delay: 15250284452w15250284452w",
    "    regions: &r [world, wrld]",
    "    topics: *r",
    "    min_items: -1",
    "    group_by: [region, region]",
    "ledger: ../x",
    "state: .briefing/ledger.sqlite",
    "paths: { content: /etc, templates: .. }",
    "delivery:",
    "  transport: smtp",
    "  smtp:",
    "    url: smtp://localhost:2525",
    "    connections: 100000",
    "    timeout: 999999999999999d",
    "    rate: .nan",
    "    ca_file: /etc/ssl/ca.pem",
    "    hello_name: \"a b\"",
    "  unsubscribe: { url: \"http://x.example/u?a\" }",
    "  dkim: { domain: d, selector: s, key_file: k.pem, algorithm: md5 }",
    "\tindented: with a tab",
    "title: Breaking: Winter storm",
    "key: 'It's'",
    "- a list at the top",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        parse(&text);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300), fm in any::<bool>()) {
        // Files arrive as bytes; the loader refuses invalid UTF-8 before
        // parsing, so what reaches the parser is any valid text.
        let text = String::from_utf8_lossy(&bytes);
        let text = if fm { format!("---\n{text}\n---\nbody") } else { text.into_owned() };
        parse(&text);
    }

    #[test]
    fn yaml_like_front_matter_never_panics(text in front_matter()) {
        parse(&text);
    }

    #[test]
    fn dates_and_durations_never_panic(s in "\\PC{0,30}", tail in "[T t0-9:.+\\-Z\\u{e9}\\u{1F600}]{0,12}") {
        for t in [s.clone(), format!("2026-11-29{tail}"), format!("2026-11-29T{s}")] {
            let _ = parse_when(&t, chrono_tz::America::New_York);
            let _ = suggest_iso(&t);
            let _ = parse_duration(&t);
        }
    }

    #[test]
    fn arbitrary_config_text_never_panics(text in "\\PC{0,300}") {
        load_config(&text);
    }

    #[test]
    fn config_like_text_never_panics(lines in prop::collection::vec(prop::sample::select(CONFIG_LINES), 0..25)) {
        load_config(&lines.join("\n"));
    }
}

/// Markdown-ish bodies: the characters and constructs that nest, link,
/// escape and break (quotes, lists, emphasis, tables, raw HTML, entities,
/// the placeholder characters, control characters), in any order.
fn body() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "> ",
        ">",
        "- ",
        "* ",
        "1. ",
        "  ",
        "\n",
        "\n\n",
        "**",
        "*",
        "_",
        "__",
        "~~",
        "`",
        "```\n",
        "[",
        "](",
        ")",
        "![",
        "<",
        ">",
        "&",
        "&amp;",
        "&#x0;",
        "<div>",
        "</div>",
        "<b>",
        "<!--",
        "-->",
        "<script>",
        "|",
        "| a | b |\n|---|--:|\n",
        "\\",
        "#",
        "## ",
        "---\n",
        "\t",
        "\u{0}",
        "\u{1b}",
        "\u{E000}",
        "\u{E001}",
        "\u{2028}",
        "\u{FEFF}",
        "é",
        "🗞",
        "http://x",
        "javascript:alert(1)",
        "**Why it matters:** ",
        "text ",
    ]);
    prop::collection::vec(piece, 0..120).prop_map(|v| v.concat())
}

proptest! {
    // Each case renders a whole edition (Tera, CSS inlining): a few dozen
    // in CI keep the suite quick; BRIEFING_FUZZ_CASES asks for more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("BRIEFING_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(48),
        .. ProptestConfig::default()
    })]

    /// The whole item path of `check`, `build` and `send`: split,
    /// front-matter, dates, the body's Markdown, the templates over it, CSS
    /// inlining, the text part. Nothing panics or overflows the stack; an
    /// item either renders or is a diagnostic inside its file.
    #[test]
    fn any_item_body_renders_or_is_a_diagnostic(body in body(), title in "\\PC{0,40}") {
        use briefing::content::Scope;
        use briefing::pipeline::Pipeline;
        use briefing::render::SubscriberCtx;
        let dir = tempfile::tempdir().unwrap();
        crate::support::fs::copy_dir(&crate::support::fs::fixtures().join("basic"), dir.path());
        let quoted = serde_json::to_string(&title).unwrap();
        let file = format!(
            "---\ntitle: {quoted}\ndate: 2026-11-29T10:00:00-05:00\nregion: world\ntopic: trade\npriority: 0\n---\n{body}"
        );
        std::fs::write(dir.path().join("content/world/fuzz.md"), &file).unwrap();
        let newsroom = Newsroom::load(&dir.path().join("config.yaml")).unwrap();
        // On a worker's 2 MB stack, as the preview and the sender render.
        let outcome = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                let pipeline = Pipeline::open(newsroom, &Scope::All);
                let at = briefing::time::parse_when("2026-11-30T08:00", pipeline.config().site.timezone).unwrap();
                let broken = pipeline.library().broken.iter().any(|b| b.path.ends_with("fuzz.md"));
                let mut rendered = 0;
                for n in &pipeline.config().newsletters {
                    if let Some(ed) = pipeline.edition(n, at) {
                        if ed.is_sendable() {
                            let r = pipeline.render(&ed, &SubscriberCtx::sample_for(pipeline.config(), n));
                            if let Ok(r) = r {
                                assert!(r.html.contains("</html>"));
                                rendered += 1;
                            }
                        }
                    }
                }
                (broken, rendered, pipeline.diagnostics())
            })
            .unwrap()
            .join();
        let (broken, rendered, diags) = outcome.expect("rendering panicked");
        prop_assert!(broken || rendered > 0, "neither a diagnostic nor a rendering");
        for d in diags.iter().filter(|d| d.path.ends_with("fuzz.md")) {
            inside(d, &file);
        }
    }
}
