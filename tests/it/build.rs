//! `briefing build` on fixture newsrooms: which items an edition carries, in
//! which sections and order, and what lands on disk.

use crate::support::Newsroom;
use serde_json::Value;

const AT: &str = "2026-11-30T08:00";

fn items(ed: &Value) -> Vec<&str> {
    ed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect()
}

fn sections(ed: &Value) -> Vec<(&str, Vec<&str>)> {
    ed["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["id"].as_str().unwrap(),
                s["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect(),
            )
        })
        .collect()
}

fn built() -> Newsroom {
    let n = Newsroom::fixture("basic");
    n.run(&["build", "--at", AT]).success();
    n
}

#[test]
fn groups_by_region_then_topic_in_config_order_and_sorts_inside_sections() {
    let n = built();
    let ed = n.json("out/am/2026-11-30T0600/edition.json");
    assert_eq!(
        sections(&ed),
        vec![
            ("national/politics", vec!["national/lead"]),
            // Same priority: newest first; same date: by title (Alpha before Omega).
            (
                "national/tech",
                vec!["national/tech-c", "national/tech-b", "national/tech-a"]
            ),
            ("world/politics", vec!["world/edge-slot"]),
            // regions: [world, national] -> under world, its first region the newsletter carries.
            ("world/trade", vec!["world/trade"]),
            // newsletters: [am] brings a Denver item into a newsletter that does not carry Denver.
            ("denver/politics", vec!["denver/override"]),
        ]
    );
    assert_eq!(ed["edition"], "am-2026-11-30T0600");
    assert_eq!(ed["slot"], "2026-11-30T06:00:00-05:00");
    assert_eq!(ed["window_start"], "2026-11-27T06:00:00-05:00");
}

#[test]
fn window_edges_drafts_and_expiry() {
    let n = built();
    let ed = n.json("out/am/2026-11-30T0600/edition.json");
    let got = items(&ed);
    assert!(
        got.contains(&"world/edge-slot"),
        "an item exactly at the slot is in"
    );
    assert!(
        !got.contains(&"world/edge-prev"),
        "an item exactly at the previous slot is out"
    );
    assert!(!got.contains(&"national/draft"), "drafts are never sent");
    assert!(
        !got.contains(&"national/expired"),
        "an item expired before the slot is out"
    );
    assert!(!got.contains(&"world/old"));
    assert!(
        !got.contains(&"denver/local"),
        "the newsletter does not carry Denver"
    );
}

#[test]
fn lead_is_first_by_priority_and_drives_subject_and_preheader() {
    let n = built();
    let ed = n.json("out/am/2026-11-30T0600/edition.json");
    assert_eq!(
        ed["subject"],
        "Morning Brief: Senate reaches a late deal on the stopgap bill"
    );
    assert_eq!(
        ed["preheader"],
        "A deal on a short-term spending bill heads off a shutdown."
    );
}

#[test]
fn ungrouped_newsletter_without_schedule_uses_at_and_lookback() {
    let n = built();
    let ed = n.json("out/flat/2026-11-30T0800/edition.json");
    assert_eq!(ed["slot"], "2026-11-30T08:00:00-05:00");
    assert_eq!(ed["window_start"], "2026-11-28T08:00:00-05:00");
    let s = sections(&ed);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "all");
    // Priority first, then newest.
    assert_eq!(&s[0].1[..2], &["national/lead", "world/trade"]);
    assert!(s[0].1.contains(&"denver/local"));
}

#[test]
fn short_edition_is_reported_with_the_nearest_at_that_has_items() {
    let n = Newsroom::fixture("basic");
    n.run(&["build", "--at", AT])
        .success()
        .stdout_has("world        2026-11-27 12:00 EST  0 items (min_items is 1): no edition; nearest edition with items: --at 2026-12-01T12:00");
    assert!(!n.path().join("out/world").exists());
    // Following the suggestion gives the edition.
    n.run(&["build", "--at", "2026-12-01T12:00", "--newsletter", "world"])
        .success();
    let ed = n.json("out/world/2026-12-01T1200/edition.json");
    assert_eq!(items(&ed), vec!["world/trade"]);
    assert_eq!(
        ed["subject"],
        "Trade: Ports reopen after a week-long strike"
    );
}

#[test]
fn writes_all_three_files_per_edition_with_a_content_hash() {
    let n = built();
    let dir = "out/am/2026-11-30T0600";
    let html = n.read(&format!("{dir}/email.html"));
    let text = n.read(&format!("{dir}/email.txt"));
    let ed = n.json(&format!("{dir}/edition.json"));
    assert_eq!(ed["sizes"]["html_bytes"], html.len());
    assert_eq!(ed["sizes"]["text_bytes"], text.len());
    assert!(ed["content_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(ed["word_count"].as_u64().unwrap() > 50);
    // Same input, same hash: builds are reproducible.
    let again = Newsroom::fixture("basic");
    again
        .run(&["build", "--at", AT, "--newsletter", "am"])
        .success();
    assert_eq!(
        again.json(&format!("{dir}/edition.json"))["content_hash"],
        ed["content_hash"]
    );
}

#[test]
fn newsletter_filter_and_unknown_newsletter() {
    let n = Newsroom::fixture("basic");
    n.run(&["build", "--at", AT, "-n", "flat", "--out", "elsewhere"])
        .success();
    assert!(
        n.path()
            .join("elsewhere/flat/2026-11-30T0800/email.html")
            .exists()
    );
    assert!(!n.path().join("elsewhere/am").exists());
    n.run(&["build", "-n", "flt"])
        .code(2)
        .stderr_has("no newsletter `flt`")
        .stderr_has("did you mean `flat`?");
}

#[test]
fn crlf_and_bom_items_are_accepted() {
    let n = Newsroom::fixture("basic").write(
        "content/national/windows.md",
        "\u{feff}---\r\ntitle: Saved on Windows\r\ndate: 2026-11-29T10:30:00-05:00\r\nregion: national\r\ntopic: politics\r\npriority: 3\r\n---\r\nBody with **CRLF** endings.\r\n",
    );
    n.run(&["build", "--at", AT, "-n", "am"]).success();
    let ed = n.json("out/am/2026-11-30T0600/edition.json");
    assert!(items(&ed).contains(&"national/windows"));
    assert!(!n.read("out/am/2026-11-30T0600/email.txt").contains('\r'));
}

#[test]
fn a_bad_item_is_reported_and_the_others_still_build() {
    let n = Newsroom::fixture("basic").write(
        "content/world/broken.md",
        "---\ntitle: Broken\ndate: 2026-11-29T10:30:00-05:00\nregion: wrld\ntopic: trade\n---\n",
    );
    n.run(&["build", "--at", AT])
        .code(1)
        .stderr_has("content/world/broken.md:4:9: error: unknown region `wrld`");
    let ed = n.json("out/am/2026-11-30T0600/edition.json");
    assert_eq!(items(&ed).len(), 7);
}

#[test]
fn build_only_parses_items_near_the_windows() {
    // An item far outside every window is not parsed by build (check still reports it).
    let n = Newsroom::fixture("basic").write(
        "content/world/ancient.md",
        "---\ntitle: Old and broken\ndate: 2020-01-01\nregion: nowhere\ntopic: trade\n---\n",
    );
    n.run(&["build", "--at", AT])
        .success()
        .stderr_lacks("ancient");
    n.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("content/world/ancient.md:4:9: error: unknown region `nowhere`");
}

#[test]
fn sample_newsroom_builds_every_newsletter_for_the_readme_time() {
    let n = Newsroom::fixture(".");
    let run = n.run(&["build", "--at", AT]);
    run.success();
    for id in ["am", "pm", "markets", "denver", "tampa-bay", "world"] {
        let dir = n.path().join("out").join(id);
        let editions: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|_| panic!("no edition for {id}\n{}", run.stdout))
            .collect();
        assert_eq!(editions.len(), 1, "{id}");
    }
}
