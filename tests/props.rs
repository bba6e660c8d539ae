//! Property tests: the front-matter parser and the YAML locator never panic,
//! whatever an editor's file holds.

use std::path::Path;

use briefing::config::Term;
use briefing::content::{ParseCtx, parse_item, prescan_date, split::split};
use proptest::prelude::*;

fn ctx_terms() -> (Vec<Term>, Vec<Term>) {
    let t = |id: &str| Term {
        id: id.into(),
        name: id.into(),
    };
    (vec![t("world"), t("national")], vec![t("trade")])
}

fn parse(text: &str) {
    let (regions, topics) = ctx_terms();
    let ctx = ParseCtx {
        timezone: chrono_tz::America::New_York,
        regions: &regions,
        topics: &topics,
        newsletters: vec!["am"],
    };
    let r = parse_item("x", Path::new("content/x.md"), text, &ctx);
    if let Err(ds) = r {
        assert!(!ds.is_empty());
        for d in ds {
            // Every diagnostic renders, and its position is inside the file.
            let _ = d.to_string();
            // YAML breaks lines at CR, LF, NEL, LS and PS.
            let lines = text
                .replace("\r\n", "\n")
                .split(['\n', '\r', '\u{85}', '\u{2028}', '\u{2029}'])
                .count();
            assert!(
                d.line <= lines.max(1) + 1,
                "line {} out of range in {text:?}",
                d.line
            );
        }
    }
}

const KEYS: &[&str] = &[
    "title", "date", "region", "regions", "topic", "topics", "priority", "image", "extra", "tags",
    "titel", "draft", "expires", "link",
];
const VALUES: &[&str] = &[
    "x",
    "[a, b",
    "{ src: a, alt: b }",
    "2026-02-30",
    "2026-11-28T05:30:00-05:00",
    "\"quoted",
    "'",
    "- item",
    "world",
    "[world, trade]",
    "&anchor x",
    "*alias",
    "!!binary aGk=",
    "|",
    ">-",
    "~",
    "1e400",
    "",
    "\t",
    "\u{feff}",
    "é",
    "\r",
];

fn front_matter() -> impl Strategy<Value = String> {
    let line = (
        prop::sample::select(KEYS),
        prop::sample::select(VALUES),
        0usize..3,
    )
        .prop_map(|(k, v, indent)| format!("{}{k}: {v}", " ".repeat(indent)));
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

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        parse(&text);
        let _ = split(&text);
        let _ = prescan_date(&text, chrono_tz::UTC);
    }

    #[test]
    fn yaml_like_front_matter_never_panics(text in front_matter()) {
        parse(&text);
        let _ = prescan_date(&text, chrono_tz::UTC);
    }

    #[test]
    fn locator_never_panics(text in "[a-z: \\[\\],{}\\-#\"\n]{0,120}", key in "[a-z]{1,3}") {
        let _ = briefing::yaml::locate(&text, &[key.as_str()]);
        let _ = briefing::yaml::locate(&text, &[key.as_str(), "a"]);
        let _ = briefing::yaml::top_level_keys(&text);
        if let Some(p) = briefing::yaml::locate(&text, &[key.as_str()]) {
            let _ = briefing::yaml::narrow(&text, p, "a");
        }
    }
}
