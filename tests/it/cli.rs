//! What people read on the command line: the quick start's output, help,
//! dry runs of any edition, and the small messages that say what happened.

use crate::support::Newsroom;

const NOW: &str = "2026-11-30T08:00";

#[test]
fn the_quick_start_prints_one_line_per_edition_and_each_warning_once() {
    let room = Newsroom::fixture(".");
    let run = room.run(&["send", "--due", "--now", NOW]);
    run.success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 6, "one line per newsletter:\n{}", run.stdout);
    for (id, what) in [
        ("am-2026-11-30T0600", ": sent "),
        ("markets-2026-11-30T0730", ": sent "),
        ("denver-2026-11-30T0700", ": sent "),
        ("tampa-bay-2026-11-30T0700", ": sent "),
        ("pm-2026-11-29T1700", ": not sent (first run"),
        ("world-2026-11-27T1200", ": not sent (first run"),
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(id) && l.contains(what)),
            "{id}{what}\n{}",
            run.stdout
        );
    }
    let stderr: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(
        stderr.len(),
        1,
        "only the secret warning, once:\n{}",
        run.stderr
    );
    assert!(stderr[0].contains("development secret"), "{}", run.stderr);
    // The first run's passed slots are skipped, not missed: nothing was
    // missed on briefing's watch.
    let status = room.run(&["status"]);
    status.success();
    let pm = status
        .stdout
        .lines()
        .find(|l| l.starts_with("pm-2026-11-29T1700"))
        .unwrap();
    assert!(pm.contains(" skipped "), "{pm}");
    room.run(&["send", "--due", "--now", NOW])
        .success()
        .stdout_has("nothing due at 2026-11-30 08:00 EST");
}

#[test]
fn the_first_example_of_send_help_works_on_the_sample_newsroom() {
    let room = Newsroom::fixture(".");
    let help = room.run(&["send", "--help"]);
    help.success();
    let example = help
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("briefing send"))
        .unwrap()
        .trim();
    let args: Vec<&str> = example.split_whitespace().skip(1).collect();
    room.run(&args)
        .success()
        .stdout_has("am-2026-11-30T0600 (2026-11-30 06:00 EST): \"Morning Brief:");
    // Its own flags first, the global ones apart.
    let (own, global) = help.stdout.split_once("Global options:").unwrap();
    assert!(own.contains("--dry-run") && !own.contains("--log-format"));
    assert!(global.contains("--log-format") && global.contains("--config"));
}

#[test]
fn a_dry_run_shows_any_edition_late_or_sent() {
    let room = Newsroom::fixture(".");
    // A day late: the plan, with what a real send would do.
    room.run(&[
        "send",
        "-n",
        "am",
        "--at",
        NOW,
        "--now",
        "2026-12-01T08:00",
        "--dry-run",
    ])
    .success()
    .stdout_has("note: a send now would record it missed")
    .stdout_has("recipients would get it");
    room.run(&["send", "-n", "am", "--at", NOW, "--now", "2026-11-30T06:05"])
        .success();
    room.run(&["send", "-n", "am", "--at", NOW, "--dry-run"])
        .success()
        .stdout_has("am-2026-11-30T0600: sent earlier; 19 sent, 0 pending");
    assert!(!room.run(&["status"]).stdout.contains("missed"));
}

#[test]
fn status_says_what_it_did_not_find() {
    let room = Newsroom::fixture(".");
    room.run(&["send", "-n", "am", "--at", NOW, "--now", "2026-11-30T06:05"])
        .success();
    room.run(&["status", "--edition", "am-2026-11-30T0601"])
        .code(2)
        .stderr_has(
            "no edition `am-2026-11-30T0601` in the ledger (did you mean `am-2026-11-30T0600`?)",
        );
    room.run(&["status", "--edition", "am-2026-11-30T0600", "--failed"])
        .success()
        .stdout_has("no failed, deferred or in-doubt recipients");
}

#[test]
fn a_test_copy_says_where_it_went_and_counts_read_well() {
    let room = Newsroom::fixture(".");
    room.run(&["send", "-n", "am", "--at", NOW, "--to", "editor@example.org"])
        .success()
        .stdout_has("test copies to editor@example.org: 1 sent, 0 failed, via the outbox, out/outbox/am/2026-11-30T0600/test/");
    assert_eq!(
        std::fs::read_dir(room.path().join("out/outbox/am/2026-11-30T0600/test"))
            .unwrap()
            .count(),
        1
    );
    let build = room.run(&["build", "--at", NOW]);
    build.success();
    assert!(!build.stdout.contains(" 1 items"), "{}", build.stdout);
    room.run(&["send", "-n", "am", "--at", NOW, "--dry-run"])
        .success()
        .stdout_lacks(" 1 items");
}
