use super::*;

fn tree(text: &str) -> Node {
    parse(text, 1, &FRONT_MATTER).unwrap()
}

fn err(text: &str) -> Problem {
    parse(text, 1, &FRONT_MATTER).unwrap_err()
}

const CFG: &str = "site:\n  name: X\n  timezone: Mars/Base # bad\nnewsletters:\n  am:\n    name: AM\n    regions: [national, wrld]\n  pm:\n    schedule: \"0 17 * * *\"\n    image: { src: a.jpg, alt: \"\" }\n    topics:\n      - politics\n      - sprots\n";

#[test]
fn locates_nested_values_keys_and_list_elements() {
    let t = tree(CFG);
    assert_eq!(t.locate(&["site", "timezone"]), Some(Pos::new(3, 13, 9)));
    assert_eq!(
        t.locate(&["newsletters", "pm", "schedule"]),
        Some(Pos::new(9, 15, 12))
    );
    assert_eq!(t.locate(&["newsletters", "am", "schedule"]), None);
    // A block list is pointed at by its key.
    assert_eq!(
        t.locate(&["newsletters", "pm", "topics"]),
        Some(Pos::new(11, 5, 6))
    );
    assert_eq!(
        t.locate(&["newsletters", "pm", "topics", "1"]),
        Some(Pos::new(13, 9, 6))
    );
    assert_eq!(
        t.locate(&["newsletters", "am", "regions", "1"]),
        Some(Pos::new(7, 25, 4))
    );
    // A flow collection is underlined to its closing bracket.
    assert_eq!(
        t.locate(&["newsletters", "am", "regions"]),
        Some(Pos::new(7, 14, 16))
    );
    assert_eq!(
        t.locate(&["newsletters", "pm", "image", "alt"]),
        Some(Pos::new(10, 31, 2))
    );
}

#[test]
fn positions_are_file_relative() {
    let t = parse("title: x\ndate: y\n", 2, &FRONT_MATTER).unwrap();
    assert_eq!(t.locate(&["date"]), Some(Pos::new(3, 7, 1)));
    let p = parse("title: [x\ndate: y\n", 2, &FRONT_MATTER).unwrap_err();
    assert_eq!((p.pos.line, p.pos.col), (3, 5));
}

#[test]
fn aliases_point_at_their_use_and_remember_their_anchor() {
    let t = tree("a: &r [world, wrld]\n# between\nb: *r\n");
    let b = t.get("b").unwrap();
    assert_eq!(b.pos, Pos::new(3, 4, 2));
    assert_eq!(b.anchor_line, Some(1));
    let Value::Seq(items) = &b.value else {
        panic!("{b:?}")
    };
    assert_eq!(items[1].as_str(), Some("wrld"));
    assert_eq!(t.get("a").unwrap().anchor_line, None);
}

#[test]
fn block_scalars_and_comments() {
    let t = tree("a: |\n  one\n  two\nb: >-\n  folded\n  line\nc: x # note\nd: # only a comment\n");
    assert_eq!(t.get("a").unwrap().as_str(), Some("one\ntwo\n"));
    assert_eq!(t.get("b").unwrap().as_str(), Some("folded line"));
    // A block scalar's text starts on a later line: its `|` is pointed at.
    assert_eq!(t.locate(&["a"]), Some(Pos::new(1, 4, 1)));
    assert_eq!(t.locate(&["b"]), Some(Pos::new(4, 4, 2)));
    // Comments are not part of a value's width.
    assert_eq!(t.locate(&["c"]), Some(Pos::new(7, 4, 1)));
    let d = t.get("d").unwrap();
    assert!(d.is_null() && d.empty);
    assert_eq!(t.locate(&["d"]), Some(Pos::new(8, 1, 1)));
}

#[test]
fn scalars_keep_how_they_were_written() {
    let t = tree("n: 1984\nb: yes\nf: 1.50\nz: ~\nq: \"1984\"\n1: numeric key\n");
    assert_eq!(t.get("n").unwrap().as_text(), Some("1984"));
    assert_eq!(t.get("b").unwrap().as_text(), Some("yes"));
    assert_eq!(t.get("f").unwrap().as_text(), Some("1.50"));
    assert!(t.get("z").unwrap().is_null() && !t.get("z").unwrap().empty);
    assert_eq!(t.get("q").unwrap().as_str(), Some("1984"));
    assert_eq!(t.get("1").unwrap().as_str(), Some("numeric key"));
    assert_eq!(t.get("n").unwrap().describe(), "integer `1984`");
    assert_eq!(
        tree("x: [a]").get("x").unwrap().to_json(),
        serde_json::json!(["a"])
    );
}

#[test]
fn size_and_nesting_are_capped_before_parsing() {
    let big = format!("title: \"{}\"\n", "x".repeat(70_000));
    let p = err(&big);
    assert_eq!(p.message, "front-matter is 69 KB; at most 64 KB is allowed");
    assert_eq!(p.pos.line, 1);
    // 100,000 levels in 200 KB would be refused by size; 30,000 are not.
    let deep = format!("a: {}{}\n", "[".repeat(30_000), "]".repeat(30_000));
    let start = std::time::Instant::now();
    let p = err(&deep);
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(
        p.message,
        "front-matter nests lists and mappings more than 32 levels deep"
    );
    assert_eq!((p.pos.line, p.pos.col), (1, 36));
    // Block nesting is stopped by the parser's budget, with the same message.
    let block: String = (0..40)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    assert_eq!(err(&block).message, p.message);
    let dashes = format!("a: {}x\n", "- ".repeat(5_000));
    assert!(parse(&dashes, 1, &FRONT_MATTER).is_err());
    // Brackets inside quotes and comments are text.
    assert!(
        parse(
            &format!("a: \"{}\" # {}\n", "[".repeat(40), "{".repeat(40)),
            1,
            &FRONT_MATTER
        )
        .is_ok()
    );
}

#[test]
fn hints_for_common_mistakes() {
    let p = err("title: Breaking: Winter storm closes schools\n");
    assert_eq!((p.pos.line, p.pos.col), (1, 16));
    assert_eq!(
        p.help.as_deref(),
        Some(
            "a `: ` inside a value reads as a new key: quote the value: title: \"Breaking: Winter storm closes schools\""
        )
    );
    let p = err("summary: 'It's here'\n");
    assert_eq!(
        p.help.as_deref(),
        Some(
            "inside single quotes an apostrophe ends the value: write it twice (`''`), or use double quotes: summary: \"It's here\""
        )
    );
    let p = err("title: \"Senate\" passes bill\n");
    assert_eq!(
        p.help.as_deref(),
        Some(
            "the value starts with a quote, so it ends at the next `\"`: put the whole value in single quotes: title: '\"Senate\" passes bill'"
        )
    );
    let p = err("title: x\nimage:\n\tsrc: a.jpg\n");
    assert_eq!(p.message, "a tab in the indentation");
    assert_eq!((p.pos.line, p.pos.col), (3, 1));
    assert_eq!(
        p.help.as_deref(),
        Some("YAML does not allow tabs for indentation: indent with spaces")
    );
    let p = err("title: [unclosed\ndate: 2026-11-29\n");
    assert_eq!((p.pos.line, p.pos.col), (2, 5));
    assert_eq!(p.message, "the `[` on line 1 is never closed");
    assert_eq!(
        p.help.as_deref(),
        Some(
            "a value that starts with `[` is a list, which must end with `]`; to write text that starts with `[`, quote it: title: \"[unclosed\""
        )
    );
    let p = err("title: x\ntitle: y\n");
    assert_eq!(p.message, "`title` appears twice");
    assert_eq!(p.pos.line, 2);
}
