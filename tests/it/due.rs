//! `send --due` and `run`: each edition once, never late, exact across DST
//! changes in several kinds of zone. Time is given with `--now`; no test
//! waits for the wall clock to reach a slot.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::Newsroom;
use briefing::ledger::{EditionState, Ledger};
use chrono::{DateTime, Utc};

/// A newsroom with one newsletter `x` on `schedule` in `zone`.
fn newsroom(zone: &str, schedule: &str) -> Newsroom {
    newsroom_with(zone, schedule, "delivery:\n  transport: outbox\n")
}

fn newsroom_with(zone: &str, schedule: &str, delivery: &str) -> Newsroom {
    let config = format!(
        "site:\n  name: Due\n  base_url: https://news.example.com\n  timezone: {zone}\n  postal_address: none\n\
         regions:\n  - {{ id: here, name: Here }}\ntopics:\n  - {{ id: news, name: News }}\n\
         {delivery}\
         newsletters:\n  x:\n    name: X Brief\n    from: \"X Brief <x@news.example.com>\"\n\
         \x20   subscribers: subscribers/list.csv\n    schedule: \"{schedule}\"\n    lookback: 400d\n"
    );
    Newsroom::fixture("due").write("config.yaml", &config)
}

fn due(n: &Newsroom, now: &str) -> crate::support::Run {
    n.run(&["send", "--due", "--now", now])
}

/// The ledger's editions of `x`: (slot in UTC, state), oldest first.
fn editions(n: &Newsroom) -> Vec<(String, EditionState)> {
    let ledger = Ledger::open(&n.path().join(".briefing/ledger.sqlite")).unwrap();
    let mut v: Vec<_> = ledger
        .editions(Some("x"))
        .unwrap()
        .into_iter()
        .map(|e| (e.slot_utc.format("%Y-%m-%dT%H:%MZ").to_string(), e.state))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn sent_slots(n: &Newsroom) -> Vec<String> {
    editions(n)
        .into_iter()
        .filter(|(_, s)| *s == EditionState::Complete)
        .map(|(t, _)| t)
        .collect()
}

/// .eml files written for the edition whose local slot folder is `stamp`.
fn messages(n: &Newsroom, stamp: &str) -> usize {
    std::fs::read_dir(n.path().join("out/outbox/x").join(stamp))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn new_york_spring_forward_slot_runs_once_at_the_first_valid_instant() {
    // 02:30 does not exist on 2026-03-08 in New York (02:00 EST -> 03:00 EDT).
    let n = newsroom("America/New_York", "30 2 * * *");
    due(&n, "2026-03-07T07:31:00Z").success(); // 02:31 EST the day before
    due(&n, "2026-03-08T06:59:00Z")
        .success()
        .stdout_has("nothing due");
    due(&n, "2026-03-08T07:00:30Z")
        .success()
        .stdout_has("x-2026-03-08T0300: sent 3");
    due(&n, "2026-03-08T07:45:00Z")
        .success()
        .stdout_has("nothing due");
    due(&n, "2026-03-09T06:31:00Z").success(); // 02:31 EDT
    assert_eq!(
        sent_slots(&n),
        vec![
            "2026-03-07T07:30Z",
            "2026-03-08T07:00Z",
            "2026-03-09T06:30Z"
        ]
    );
    assert_eq!(messages(&n, "2026-03-08T0300"), 3);
}

#[test]
fn new_york_fall_back_slot_runs_once_at_its_first_occurrence() {
    // 01:30 happens twice on 2026-11-01: 05:30Z (EDT) and 06:30Z (EST).
    let n = newsroom("America/New_York", "30 1 * * *");
    due(&n, "2026-10-31T05:31:00Z").success();
    due(&n, "2026-11-01T05:31:00Z")
        .success()
        .stdout_has("x-2026-11-01T0130: sent 3");
    due(&n, "2026-11-01T06:31:00Z")
        .success()
        .stdout_has("nothing due");
    due(&n, "2026-11-01T07:40:00Z")
        .success()
        .stdout_has("nothing due");
    assert_eq!(
        sent_slots(&n),
        vec!["2026-10-31T05:30Z", "2026-11-01T05:30Z"]
    );
}

#[test]
fn london_gap_and_overlap() {
    // 2026-03-29: 01:00 GMT -> 02:00 BST, so 01:30 fires at 01:00Z.
    let n = newsroom("Europe/London", "30 1 * * *");
    due(&n, "2026-03-28T01:31:00Z").success();
    due(&n, "2026-03-29T00:59:00Z")
        .success()
        .stdout_has("nothing due");
    due(&n, "2026-03-29T01:00:10Z")
        .success()
        .stdout_has("sent 3");
    due(&n, "2026-03-29T02:00:00Z")
        .success()
        .stdout_has("nothing due");
    assert_eq!(
        sent_slots(&n),
        vec!["2026-03-28T01:30Z", "2026-03-29T01:00Z"]
    );
    // 2026-10-25: 01:30 BST (00:30Z) then 01:30 GMT (01:30Z): only the first.
    let n = newsroom("Europe/London", "30 1 * * *");
    due(&n, "2026-10-24T00:31:00Z").success();
    due(&n, "2026-10-25T00:31:00Z")
        .success()
        .stdout_has("sent 3");
    due(&n, "2026-10-25T01:31:00Z")
        .success()
        .stdout_has("nothing due");
    assert_eq!(
        sent_slots(&n),
        vec!["2026-10-24T00:30Z", "2026-10-25T00:30Z"]
    );
}

#[test]
fn sydney_southern_hemisphere_changes() {
    // Spring forward 2026-10-04 02:00 AEST -> 03:00 AEDT: 02:30 fires at 03:00 AEDT = 16:00Z the day before.
    let n = newsroom("Australia/Sydney", "30 2 * * *");
    due(&n, "2026-10-02T16:31:00Z").success(); // 02:30 AEST on 10-03
    due(&n, "2026-10-03T16:00:30Z")
        .success()
        .stdout_has("x-2026-10-04T0300: sent 3");
    due(&n, "2026-10-03T17:00:00Z")
        .success()
        .stdout_has("nothing due");
    assert_eq!(
        sent_slots(&n),
        vec!["2026-10-02T16:30Z", "2026-10-03T16:00Z"]
    );
    // Fall back 2026-04-05 03:00 AEDT -> 02:00 AEST: 02:30 AEDT (15:30Z) fires, 02:30 AEST (16:30Z) does not.
    let n = newsroom("Australia/Sydney", "30 2 * * *");
    due(&n, "2026-04-03T15:31:00Z").success();
    due(&n, "2026-04-04T15:31:00Z")
        .success()
        .stdout_has("sent 3");
    due(&n, "2026-04-04T16:31:00Z")
        .success()
        .stdout_has("nothing due");
    assert_eq!(
        sent_slots(&n),
        vec!["2026-04-03T15:30Z", "2026-04-04T15:30Z"]
    );
}

#[test]
fn half_hour_offset_zones() {
    // Asia/Kolkata is +05:30 all year: 06:00 local is 00:30Z.
    let n = newsroom("Asia/Kolkata", "0 6 * * *");
    due(&n, "2026-11-30T00:29:00Z").success(); // first run: yesterday's 06:00 is long past
    due(&n, "2026-11-30T00:30:30Z")
        .success()
        .stdout_has("x-2026-11-30T0600: sent 3");
    // Australia/Adelaide is +10:30 in summer: 06:00 on 11-30 is 19:30Z on 11-29.
    let n = newsroom("Australia/Adelaide", "0 6 * * *");
    due(&n, "2026-11-29T19:35:00Z")
        .success()
        .stdout_has("x-2026-11-30T0600: sent 3");
    assert_eq!(sent_slots(&n), vec!["2026-11-29T19:30Z"]);
}

#[test]
fn twice_in_a_row_sends_each_edition_once() {
    let n = newsroom("America/New_York", "0 6 * * MON-FRI");
    due(&n, "2026-11-30T11:05:00Z")
        .success()
        .stdout_has("x-2026-11-30T0600: sent 3");
    due(&n, "2026-11-30T11:06:00Z")
        .success()
        .stdout_has("nothing due at 2026-11-30 06:06 EST");
    assert_eq!(messages(&n, "2026-11-30T0600"), 3);
    assert_eq!(editions(&n).len(), 1);
}

#[test]
fn a_slot_older_than_max_delay_is_recorded_missed_and_never_sent() {
    let n = newsroom("America/New_York", "0 6 * * MON-FRI");
    due(&n, "2026-11-30T11:05:00Z").success();
    // Tuesday 06:00 EST is 11:00Z; the sender next runs at 13:30 EST (6h 30m late).
    due(&n, "2026-12-01T18:30:00Z")
        .code(1)
        .stdout_has("x-2026-12-01T0600: missed: slot 2026-12-01 06:00 EST was 7h 30m late when the sender ran, max_delay is 2h; not sent");
    assert_eq!(messages(&n, "2026-12-01T0600"), 0);
    assert_eq!(
        editions(&n)[1],
        ("2026-12-01T11:00Z".into(), EditionState::Missed)
    );
    // Reported once: the next run has nothing to do.
    due(&n, "2026-12-01T18:35:00Z")
        .success()
        .stdout_has("nothing due");
    // The first run of a newsletter does not count a slot before it as an error.
    let fresh = newsroom("America/New_York", "0 6 * * MON-FRI");
    due(&fresh, "2026-12-01T18:30:00Z")
        .success()
        .stdout_has("not sent (first run for this newsletter");
    assert_eq!(messages(&fresh, "2026-12-01T0600"), 0);
}

#[test]
fn an_unscheduled_newsletter_is_never_sent_by_due() {
    let n = newsroom("America/New_York", "0 6 * * *").edit(
        "config.yaml",
        "    schedule: \"0 6 * * *\"\n",
        "",
    );
    due(&n, "2026-11-30T11:05:00Z")
        .success()
        .stdout_has("nothing due");
    assert!(editions(&n).is_empty());
}

fn smtp_newsroom(
    sink: &crate::support::smtp_sink::SmtpSink,
    readers: usize,
    connections: usize,
) -> Newsroom {
    let delivery = format!(
        "delivery:\n  transport: smtp\n  smtp:\n    url: \"{}\"\n    connections: {connections}\n",
        sink.url()
    );
    let mut csv = String::from("email,name\n");
    for i in 0..readers {
        csv.push_str(&format!("reader{i:04}@example.com,Reader {i}\n"));
    }
    newsroom_with("America/New_York", "0 6 * * MON-FRI", &delivery)
        .write("subscribers/list.csv", &csv)
}

/// Recipients of every message the sink received, with how many each got.
fn arrivals(sink: &crate::support::smtp_sink::SmtpSink) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for f in sink.dumps() {
        let raw = std::fs::read_to_string(&f).unwrap_or_default();
        if let Some(r) = raw.lines().find_map(|l| l.strip_prefix("X-Rcpt-Args: ")) {
            let r = r
                .trim()
                .trim_start_matches('<')
                .split('>')
                .next()
                .unwrap_or("")
                .to_string();
            *m.entry(r).or_insert(0) += 1;
        }
    }
    m
}

fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn briefing(n: &Newsroom, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_briefing"));
    c.args(args)
        .current_dir(n.path())
        .env("BRIEFING_UNSUBSCRIBE_SECRET", "due-test-secret")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn two_senders_started_together_send_each_edition_once() {
    // A slowed sink keeps the first sender busy while the second starts.
    let sink = crate::support::smtp_sink::SmtpSink::start(&["-w", "1"]);
    let n = smtp_newsroom(&sink, 6, 2);
    let a = briefing(&n, &["send", "--due", "--now", "2026-11-30T11:05:00Z"])
        .spawn()
        .unwrap();
    let b = briefing(&n, &["send", "--due", "--now", "2026-11-30T11:05:00Z"])
        .spawn()
        .unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    let codes = [a.status.code().unwrap(), b.status.code().unwrap()];
    let got = arrivals(&sink);
    assert_eq!(got.len(), 6, "every reader got the edition: {codes:?}");
    assert!(
        got.values().all(|c| *c == 1),
        "nobody got it twice: {got:?}"
    );
    // One sent; the other found the lease taken (75) or, if it started after
    // the first finished, nothing left to do (0).
    assert!(codes.contains(&0), "{codes:?}");
    for c in codes {
        assert!(
            c == 0 || c == 75,
            "{codes:?}\n{}\n{}",
            String::from_utf8_lossy(&a.stdout),
            String::from_utf8_lossy(&b.stdout)
        );
    }
}

#[test]
fn run_stops_on_sigterm_mid_edition_and_send_due_finishes_it() {
    // `run` sends the current minute's edition at once ("* * * * *"), slowly.
    let sink = crate::support::smtp_sink::SmtpSink::start(&["-w", "1"]);
    let delivery = format!(
        "delivery:\n  transport: smtp\n  smtp:\n    url: \"{}\"\n    connections: 1\n",
        sink.url()
    );
    let mut csv = String::from("email,name\n");
    for i in 0..12 {
        csv.push_str(&format!("reader{i:04}@example.com,Reader {i}\n"));
    }
    let n = newsroom_with("UTC", "* * * * *", &delivery).write("subscribers/list.csv", &csv);
    let mut run = briefing(&n, &["run"]).spawn().unwrap();
    wait_for("the first messages", Duration::from_secs(20), || {
        sink.dumps().len() >= 3
    });
    let pid = run.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = run.wait().unwrap();
    assert_eq!(status.code(), Some(0), "run exits 0 on SIGTERM");
    let after_stop = arrivals(&sink);
    assert!(after_stop.len() < 12, "stopped mid-edition");

    // The edition is in the ledger with the rest pending; --due at its slot finishes it.
    let ledger = Ledger::open(&n.path().join(".briefing/ledger.sqlite")).unwrap();
    let ed = ledger
        .editions(Some("x"))
        .unwrap()
        .into_iter()
        .next()
        .expect("an edition");
    let counts = ledger.counts(&ed.id).unwrap();
    assert_eq!(
        counts.sent as usize,
        after_stop.len(),
        "every message that arrived is recorded sent"
    );
    assert_eq!(counts.total(), 12);
    drop(ledger);
    let at: DateTime<Utc> = ed.slot_utc + chrono::Duration::seconds(30);
    let out = briefing(&n, &["send", "--due", "--now", &at.to_rfc3339()])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = arrivals(&sink);
    assert_eq!(got.len(), 12, "no recipient lost");
    assert!(
        got.values().all(|c| *c == 1),
        "a graceful stop leaves nothing in doubt: {got:?}"
    );
}

#[test]
fn schedule_lists_slots_in_local_time_and_utc_and_flags_dead_schedules() {
    let n = newsroom("America/New_York", "30 2 * * *");
    n.run(&["schedule", "--now", "2026-03-07T12:00:00Z", "--days", "2"])
        .success()
        .stdout_has("x (X Brief): \"30 2 * * *\" in America/New_York")
        .stdout_has("last edition: none in the ledger yet")
        // The skipped 02:30 shows as the instant it runs: 03:00 EDT.
        .stdout_has("Sun 2026-03-08 03:00 EDT   2026-03-08 07:00 UTC   1 item")
        .stdout_has("Mon 2026-03-09 02:30 EDT   2026-03-09 06:30 UTC   1 item");
    due(&n, "2026-03-08T07:01:00Z").success();
    n.run(&["schedule", "--now", "2026-03-08T08:00:00Z", "--days", "1"])
        .success()
        .stdout_has("last edition: x-2026-03-08T0300 complete (sent 3,");
    let dead = newsroom("America/New_York", "0 0 30 2 *");
    dead.run(&["schedule", "--now", "2026-03-07T12:00:00Z"])
        .success()
        .stdout_has("warning: this schedule never fires");
}
