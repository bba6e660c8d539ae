//! `briefing check`: one fixture per invalid input with its expected
//! diagnostic (file, line, column, message, the line itself and the caret),
//! exit codes, and problems in config and templates.

use crate::support::Newsroom;
use crate::support::fs::fixtures;

const AT: &str = "2026-11-30T08:00";

#[test]
fn clean_newsroom_passes() {
    Newsroom::fixture("basic")
        .run(&["check", "--at", AT])
        .success()
        .stdout_has("checked 12 items and 3 newsletters (2 rendered): 0 errors, 0 warnings");
}

#[test]
fn the_sample_newsroom_passes_with_warnings_denied() {
    Newsroom::fixture(".")
        .run(&["check", "--at", AT, "--deny-warnings"])
        .success()
        .stdout_has("0 errors, 0 warnings");
}

/// Each `tests/fixtures/invalid/*.md` in a good newsroom: `check` prints
/// exactly its diagnostics (an insta snapshot of the whole text, in
/// `snapshots/it__check__invalid__<name>.snap`), and the rest still renders.
#[test]
fn every_invalid_item_fixture_gives_its_snapshot_diagnostic_and_others_still_render() {
    let dir = fixtures().join("invalid");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 28, "fixtures missing");
    for case in cases {
        let name = case.file_name().unwrap().to_str().unwrap();
        let stem = name.trim_end_matches(".md");
        let n = Newsroom::fixture("basic").write(
            &format!("content/bad/{name}"),
            &std::fs::read_to_string(&case).unwrap(),
        );
        let run = n.run(&["check", "--at", AT]);
        let diagnostics = run.stderr.trim_end();
        insta::assert_snapshot!(format!("invalid__{stem}"), diagnostics);
        assert!(
            diagnostics.starts_with(&format!("content/bad/{name}:")),
            "{name}: the diagnostic names the file\n{diagnostics}"
        );
        // A fixture that gives only warnings loads; the others fail.
        let count = |what: &str| diagnostics.matches(&format!(": {what}: ")).count();
        assert_eq!(run.code, i32::from(count("error") > 0), "{name}: exit code");
        let plural = |n: usize, word: &str| match n {
            1 => format!("1 {word}"),
            n => format!("{n} {word}s"),
        };
        let summary = format!(
            "{}, {}",
            plural(count("error"), "error"),
            plural(count("warning"), "warning")
        );
        // One bad item never stops the others: both non-empty editions still
        // render, and the diagnostics shown are all there are.
        assert!(
            run.stdout.contains(&format!(
                "checked 13 items and 3 newsletters (2 rendered): {summary}"
            )),
            "{name}: {}",
            run.stdout
        );
    }
}

#[test]
fn a_broken_date_or_at_is_an_error_never_a_panic() {
    // Each of these panicked in time.rs, slicing an empty or non-ASCII
    // time part by bytes.
    let item = |date: &str, expires: &str| {
        format!(
            "---\ntitle: T\ndate: {date}\nexpires: {expires}\nregion: world\ntopic: trade\n---\n"
        )
    };
    let n = Newsroom::fixture("basic")
        .write("content/bad/a.md", &item("2026-11-29T\u{e9}", "2026-12-01"))
        .write("content/bad/b.md", &item("2026-11-29", "2026-11-30T"));
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("content/bad/a.md:3:7: error: invalid time `\u{e9}`")
        .stderr_has("content/bad/b.md:4:10: error: invalid date-time `2026-11-30T`: the time after the date is missing")
        .stdout_has("2 errors");
    let n = Newsroom::fixture("basic");
    // A bad --at is bad usage, like an unknown flag.
    for at in ["2026-11-30T", "2026-11-30T\u{e9}"] {
        n.run(&["check", "--at", at])
            .code(2)
            .stderr_has(&format!("invalid --at `{at}`"));
    }
}

#[test]
fn deep_or_huge_front_matter_is_refused_at_once() {
    // 100,000 levels of `[` took libyaml 21 s; now the size cap answers.
    let deep = format!(
        "---\ntitle: {}\n---\n",
        "[".repeat(100_000) + &"]".repeat(100_000)
    );
    let nested = format!("---\ntitle: {}x{}\n---\n", "[".repeat(40), "]".repeat(40));
    let n = Newsroom::fixture("basic")
        .write("content/bad/deep.md", &deep)
        .write("content/bad/nested.md", &nested);
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("content/bad/deep.md:2:1: error: invalid YAML in front-matter: front-matter is 196 KB; at most 64 KB is allowed")
        .stderr_has("content/bad/nested.md:2:40: error: invalid YAML in front-matter: front-matter nests lists and mappings more than 32 levels deep");
}

#[test]
fn config_warnings_are_printed_and_count() {
    let n = Newsroom::fixture("basic").edit(
        "config.yaml",
        "newsletters:\n",
        "state: .briefing/ledger.sqlite\nnewsletters:\n",
    );
    n.run(&["check", "--at", AT])
        .success()
        .stderr_has("config.yaml:16:1: warning: `state` is now called `ledger`: rename the key")
        .stdout_has("0 errors, 1 warning");
    n.run(&["check", "--at", AT, "--deny-warnings"]).code(1);
}

#[test]
fn config_values_that_would_break_later_are_errors_now() {
    let bad = |from: &str, to: &str, want: &str| {
        Newsroom::fixture("basic")
            .edit("config.yaml", from, to)
            .run(&["check", "--at", AT])
            .code(1)
            .stderr_has(want);
    };
    // Passed, then panicked in `check` subtracting it from the slot.
    bad(
        "lookback: 48h",
        "lookback: 100000000d",
        "config.yaml:33:15: error: `lookback` must be from 1m to 3660d; found `100000000d`",
    );
    // Sending would fail for every recipient.
    bad(
        "base_url: https://news.example.com",
        "base_url: http://news.example.com",
        "config.yaml:5:13: error: the unsubscribe URL `http://news.example.com/unsubscribe`, made from `site.base_url`, must be https://",
    );
    // Read from outside the newsroom.
    bad(
        "newsletters:\n",
        "paths: { content: ../elsewhere }\nnewsletters:\n",
        "config.yaml:16:19: error: `../elsewhere` must be a relative path inside the newsroom folder",
    );
    bad(
        "newsletters:\n",
        "delivery:\n  smtp:\n    url: smtp://localhost:2525\n    connections: 100000\nnewsletters:\n",
        "config.yaml:19:18: error: `connections` must be from 1 to 200; found 100000",
    );
}

#[test]
fn every_problem_of_every_item_is_reported_in_one_run() {
    let n = Newsroom::fixture("basic")
        .write(
            "content/bad/a.md",
            "---\ntitle: A\ndate: 2026-11-29\nregion: wrld\ntopic: tehc\n---\n",
        )
        .write("content/bad/b.md", "no front-matter\n");
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("content/bad/a.md:4:9: error: unknown region `wrld`")
        .stderr_has("content/bad/a.md:5:8: error: unknown topic `tehc`")
        .stderr_has("content/bad/b.md:1:1: error: missing front-matter")
        .stdout_has("3 errors, 0 warnings");
}

#[test]
fn duplicate_ids_differing_only_in_case_are_reported() {
    let n = Newsroom::fixture("basic").write(
        "content/national/Lead.md",
        "---\ntitle: Same id\ndate: 2026-11-29\nregion: national\ntopic: politics\n---\n",
    );
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("error: duplicate item id `national/lead`");
}

#[test]
fn config_problems_point_into_config_yaml_with_suggestions() {
    let n = Newsroom::fixture("basic").edit("config.yaml", "    lookback: 48h", "    lokback: 48h");
    n.run(&["check"])
        .code(1)
        .stderr_has("config.yaml:33:5: error: unknown key `lokback`")
        .stderr_has("did you mean `lookback`?");
    let n = Newsroom::fixture("basic").edit(
        "config.yaml",
        "regions: [national, world]",
        "regions: [national, wrld]",
    );
    n.run(&["check"]).code(1).stderr_has(
        "config.yaml:21:25: error: unknown region `wrld`; expected one of: national, world, denver",
    );
    let n = Newsroom::fixture("basic").edit(
        "config.yaml",
        "\"0 6 * * MON-FRI\"",
        "\"0 6 * * MON-FRY\"",
    );
    n.run(&["check"])
        .code(1)
        .stderr_has("config.yaml:20:24: error: invalid schedule:");
}

#[test]
fn template_errors_point_at_the_template_file_and_line() {
    let n = Newsroom::fixture("basic").write(
        "templates/digest.html",
        "<html>\n<body>\n{{ edition.subject }\n</body></html>\n",
    );
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("templates/digest.html:3:");
    let n = Newsroom::fixture("basic").write(
        "templates/digest.txt",
        "{{ edition.subject }}\n{{ edition.no_such_thing }}\n",
    );
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("templates/digest.txt:2:");
}

#[test]
fn header_injection_through_the_subject_template_is_an_error() {
    let n = Newsroom::fixture("basic").edit(
        "config.yaml",
        "subject: \"Trade: {{ edition.lead.title }}\"",
        "subject: \"Trade\\r\\nBcc: all@example.com {{ edition.lead.title }}\"",
    );
    n.run(&["check", "--at", "2026-12-01T12:00"])
        .code(1)
        .stderr_has("would inject a mail header");
}

#[test]
fn warnings_fail_only_with_deny_warnings() {
    let long = "x".repeat(100);
    let n = Newsroom::fixture("basic").write(
        "templates/digest.txt",
        &format!("{{{{ edition.subject }}}}\n{long}\n"),
    );
    n.run(&["check", "--at", AT])
        .success()
        .stderr_has("longer than 78 characters")
        .stdout_has("0 errors, 2 warnings");
    n.run(&["check", "--at", AT, "--deny-warnings"]).code(1);
}

#[test]
fn bad_usage_exits_2() {
    Newsroom::fixture("basic")
        .run(&["check", "--no-such-flag"])
        .code(2);
    Newsroom::fixture("basic")
        .run(&["check", "--at", "yesterday"])
        .code(2)
        .stderr_has("invalid --at `yesterday`");
}

#[test]
fn json_log_format_gives_one_object_per_diagnostic() {
    let n = Newsroom::fixture("basic").write(
        "content/bad/a.md",
        "---\ntitle: A\ndate: 2026-11-29\nregion: wrld\ntopic: trade\n---\n",
    );
    let run = n.run(&["--log-format", "json", "check", "--at", AT]);
    run.code(1);
    let errors: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .filter(|v: &serde_json::Value| v["level"] == "ERROR")
        .collect();
    assert_eq!(errors.len(), 1, "{}", run.stderr);
    assert_eq!(errors[0]["path"], "content/bad/a.md");
    assert_eq!(errors[0]["line"], 4);
    assert_eq!(errors[0]["col"], 9);
}

#[test]
fn config_from_env_and_missing_config() {
    let n = Newsroom::fixture("basic");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_briefing"))
        .args(["check", "--at", AT])
        .env("BRIEFING_CONFIG", n.path().join("config.yaml"))
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    n.run(&["--config", "nope.yaml", "check"])
        .code(1)
        .stderr_has("nope.yaml: error: cannot read the config file");
}

/// The annotated example in docs/config.md is the reference people copy
/// from: every key it shows must be one the config reader knows.
#[test]
fn every_key_of_the_documented_example_config_is_known() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/config.md")).unwrap();
    let start = doc.find("```yaml\n").expect("an example") + "```yaml\n".len();
    let example = &doc[start..start + doc[start..].find("```").unwrap()];
    let room = Newsroom::fixture("basic").write("config.yaml", example);
    let r = room.run(&["check"]);
    // Only the files it names are missing (a key, a list, a CA file).
    let problems: Vec<&str> = (r.stdout.lines())
        .filter(|l| l.starts_with("config.yaml:") && !l.contains("No such file"))
        .collect();
    assert!(problems.is_empty(), "{}", r.stdout);
    assert!(
        r.stdout.contains("checked "),
        "check read the whole example: {}{}",
        r.stdout,
        r.stderr
    );
}

/// A DKIM key that cannot be read is reported at `key_file`, the line to fix.
#[test]
fn an_unreadable_dkim_key_is_reported_at_its_key_file() {
    let room = Newsroom::fixture(".").edit(
        "config.yaml",
        "  transport: outbox\n",
        "  transport: outbox\n  dkim:\n    domain: news.example.com\n    selector: brief\n    algorithm: ed25519-sha256\n    key_file: secrets/missing.pem\n",
    );
    let line = 1 + room
        .read("config.yaml")
        .lines()
        .position(|l| l.contains("key_file: secrets/missing.pem"))
        .unwrap();
    let r = room.run(&["check"]);
    r.code(1);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!(
            "config.yaml:{line}:15: error: cannot load the DKIM key"
        )),
        "{all}"
    );
}
