//! Several hosts on one ledger: the `briefing` binary run as two "hosts"
//! (separate working folders, different `BRIEFING_HOST_ID`s) sharing a
//! ledger on a throwaway PostgreSQL server the tests start
//! (`briefing::ledger::throwaway`), sending to Postfix's smtp-sink. Plus the
//! way there: `ledger copy` from a newsroom's SQLite file, and `ledger
//! migrate`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::SEND_AM as SEND;
use crate::support::server::Server;
use crate::support::{Dump, Newsroom, Run, SmtpSink, wait_until};
use briefing::ledger::{Ledger, Location, throwaway};
use briefing::mail::token::unsubscribe_url;

const SECRET_ENV: &str = "BRIEFING_UNSUBSCRIBE_SECRET";
const SECRET: &str = "hosts-test-secret";
const EDITION: &str = "am-2026-11-30T0600";
const CONNECTIONS: usize = 4;

fn email_of(i: usize) -> String {
    format!("reader{i:05}@example.org")
}

/// One host's working folder: the delivery fixture with `readers` readers,
/// its ledger on `ledger`, sending to `sink` with leases of `lease`.
fn host(sink: &SmtpSink, ledger: &Location, readers: usize, lease: &str) -> Newsroom {
    let mut csv = String::from("email,name\n");
    for i in 0..readers {
        csv.push_str(&format!("{},Reader {i}\n", email_of(i)));
    }
    Newsroom::fixture("delivery")
        .edit("config.yaml", "smtp://127.0.0.1:9?tls=none", &sink.url())
        .edit(
            "config.yaml",
            "ledger: state/ledger.sqlite",
            &format!("ledger: {ledger}"),
        )
        .edit(
            "config.yaml",
            "  feedback_id: deliverytest\n",
            &format!("  feedback_id: deliverytest\n  lease: {lease}\n"),
        )
        .write("subscribers/am.csv", &csv)
}

/// A sink, a new ledger, and two hosts' folders sending `readers` to it.
fn two_hosts(readers: usize, lease: &str) -> (SmtpSink, Location, Newsroom, Newsroom) {
    let sink = SmtpSink::start(&[]);
    let ledger = throwaway::ledger();
    let (a, b) = (
        host(&sink, &ledger, readers, lease),
        host(&sink, &ledger, readers, lease),
    );
    (sink, ledger, a, b)
}

fn spawn(room: &Newsroom, host_id: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_briefing"))
        .args(args)
        .current_dir(room.path())
        .env_remove("BRIEFING_CONFIG")
        .env(SECRET_ENV, SECRET)
        .env("BRIEFING_HOST_ID", host_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("briefing starts")
}

fn finish(c: Child) -> Run {
    Run::from(c.wait_with_output().unwrap())
}

/// The number after "sent " in a run's result line.
fn sent_by(run: &Run) -> usize {
    (run.stdout.lines())
        .find_map(|l| l.split(": sent ").nth(1))
        .and_then(|s| s.split(',').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no result line:\n{}{}", run.stdout, run.stderr))
}

/// Messages received per recipient (whole messages only).
fn tally(dumps: &[Dump]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in dumps {
        if String::from_utf8_lossy(&d.raw).contains("Subject:") {
            *counts.entry(d.rcpt.clone()).or_default() += 1;
        }
    }
    counts
}

#[test]
fn two_hosts_share_one_edition_and_everyone_gets_it_once() {
    let (sink, ledger, a, b) = two_hosts(5_000, "60s");
    let (pa, pb) = (spawn(&a, "host-a", &SEND), spawn(&b, "host-b", &SEND));
    let (ra, rb) = (finish(pa), finish(pb));
    ra.success();
    rb.success();
    let counts = tally(&sink.received());
    assert_eq!(counts.len(), 5_000, "someone never got the edition");
    assert!(counts.values().all(|n| *n == 1), "someone got it twice");
    let (sa, sb) = (sent_by(&ra), sent_by(&rb));
    assert_eq!(sa + sb, 5_000, "{sa} + {sb}");
    assert!(sa > 0 && sb > 0, "both delivered a share: {sa} and {sb}");
    let l = Ledger::open(&ledger).unwrap();
    let editions = l.editions(Some("am")).unwrap();
    assert_eq!(editions.len(), 1, "frozen once");
    assert_eq!(editions[0].counts.sent, 5_000);
    assert_eq!(editions[0].state, briefing::ledger::EditionState::Complete);
}

#[test]
fn a_host_killed_mid_edition_leaves_its_share_to_the_next_sender() {
    let (sink, ledger, a, b) = two_hosts(5_000, "5s");
    let mut pa = spawn(&a, "host-a", &SEND);
    let pb = spawn(&b, "host-b", &SEND);
    wait_until(Duration::from_secs(60), "the first messages", || {
        sink.dumps().len() >= 300
    });
    pa.kill().unwrap();
    let _ = pa.wait();
    // The other host sends what it claimed and what nobody had; what the
    // killed one held stays its own until its lease runs out.
    let rb = finish(pb);
    assert!(rb.code == 0 || rb.code == 75, "{}{}", rb.stdout, rb.stderr);
    std::thread::sleep(Duration::from_secs(6));
    let again = finish(spawn(&b, "host-b", &SEND));
    again.success();
    // Taken over by the second run, or by the first if it outlasted the
    // lease.
    let said = format!("{}{}", rb.stderr, again.stderr);
    assert!(
        said.contains("took over the edition from a sender that stopped"),
        "{said}"
    );
    let counts = tally(&sink.received());
    assert_eq!(counts.len(), 5_000, "nobody is missing");
    let extra: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        extra <= CONNECTIONS,
        "{extra} extra copies after one crash of {CONNECTIONS} connections"
    );
    assert!(counts.values().all(|n| *n <= 2), "resent at most once");
    let l = Ledger::open(&ledger).unwrap();
    assert_eq!(
        l.edition(EDITION).unwrap().unwrap().state,
        briefing::ledger::EditionState::Complete
    );
}

#[test]
fn two_hosts_running_send_due_at_the_same_minute_freeze_the_slot_once() {
    let (sink, ledger, a, b) = two_hosts(400, "60s");
    let due = ["send", "--due", "--now", "2026-11-30T06:01"];
    for round in 0..3 {
        let (pa, pb) = (spawn(&a, "host-a", &due), spawn(&b, "host-b", &due));
        let (ra, rb) = (finish(pa), finish(pb));
        ra.success();
        rb.success();
        let l = Ledger::open(&ledger).unwrap();
        let editions = l.editions(Some("am")).unwrap();
        assert_eq!(editions.len(), 1, "round {round}: started once");
        assert_eq!(editions[0].id, EDITION);
    }
    let counts = tally(&sink.received());
    assert_eq!(counts.len(), 400);
    assert!(counts.values().all(|n| *n == 1));
}

#[test]
fn an_unsubscribe_answered_by_serve_on_the_shared_ledger_stops_both_hosts_mail_to_it() {
    // Readers are claimed in address order: the last one is reached last,
    // long after the first messages.
    let sink = SmtpSink::start(&[]);
    let ledger = throwaway::ledger();
    let (a, b, web) = (
        host(&sink, &ledger, 2_000, "60s"),
        host(&sink, &ledger, 2_000, "60s"),
        host(&sink, &ledger, 2_000, "60s"),
    );
    let (pa, pb) = (spawn(&a, "host-a", &SEND), spawn(&b, "host-b", &SEND));
    let server = Server::start(web.path(), &["serve"], &[(SECRET_ENV, SECRET)]);
    wait_until(Duration::from_secs(60), "the first messages", || {
        sink.dumps().len() >= 4
    });
    let last = email_of(1_999);
    let url = unsubscribe_url(
        "https://news.example.com/unsubscribe",
        "am",
        &last,
        SECRET.as_bytes(),
    )
    .unwrap();
    let path = url.strip_prefix("https://news.example.com").unwrap();
    let (status, response) = server.request_retrying_resets(
        "POST",
        path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"List-Unsubscribe=One-Click",
    );
    assert_eq!(status, 200, "{response}");
    let answered = sink.dumps().len();
    let (ra, rb) = (finish(pa), finish(pb));
    ra.success();
    rb.success();
    let counts = tally(&sink.received());
    assert!(!counts.contains_key(&last), "mailed after the 200");
    assert_eq!(counts.len(), 1_999, "{answered} had arrived at the 200");
    let l = Ledger::open(&ledger).unwrap();
    assert_eq!(l.counts(EDITION).unwrap().suppressed, 1);
}

#[test]
fn a_newsroom_moves_from_sqlite_to_postgres_with_ledger_copy() {
    let sink = SmtpSink::start(&[]);
    let file = Location::Sqlite("state/ledger.sqlite".into());
    let room = host(&sink, &file, 30, "60s");
    room.run_env(&SEND, &[(SECRET_ENV, SECRET)]).success();
    room.run_env(
        &["suppress", &email_of(3), "--reason", "asked by phone"],
        &[],
    )
    .success();
    let pg = throwaway::ledger();
    let Location::Postgres(target) = &pg else {
        unreachable!()
    };
    let copy = || {
        let to = ["--to", &target.url];
        room.run(
            &[
                &["ledger", "copy", "--from", "sqlite:state/ledger.sqlite"][..],
                &to,
            ]
            .concat(),
        )
    };
    copy()
        .success()
        .stdout_has("editions 1, ")
        .stdout_has("deliveries 30, suppressions 1");
    // Into a ledger with history: refused, nothing added.
    copy()
        .code(1)
        .stderr_has("the target already holds 1 row(s) in editions");
    let moved = room.edit(
        "config.yaml",
        "ledger: state/ledger.sqlite",
        &format!("ledger: {}", target.url),
    );
    moved
        .run(&["ledger", "migrate"])
        .success()
        .stdout_has("at schema version ")
        .stdout_has(" already");
    let status = moved.run(&["status"]);
    status.success().stdout_has("complete");
    assert!(status.stdout.contains("30"), "{}", status.stdout);
    moved
        .run(&["suppressions"])
        .success()
        .stdout_has(&email_of(3));
    moved
        .run_env(&SEND, &[(SECRET_ENV, SECRET)])
        .success()
        .stdout_has("already complete");
    assert_eq!(tally(&sink.received()).len(), 30, "nobody mailed twice");
}

#[test]
fn the_mail_hosts_inbound_on_the_shared_ledger_is_heard_by_the_sender() {
    use crate::return_path::{complaint, inbound, outbox_room, send_edition, sent_to};
    let ledger = throwaway::ledger();
    let shared = |room: Newsroom| {
        room.edit(
            "config.yaml",
            "ledger: state/ledger.sqlite",
            &format!("ledger: {ledger}"),
        )
    };
    // The cron host sends; the mail host (another folder, the same
    // ledger) reads the complaint that comes back.
    let (cron, mail) = (shared(outbox_room()), shared(outbox_room()));
    send_edition(&cron, 0).success();
    let report = inbound(
        &mail,
        "fbl.eml",
        &complaint(&sent_to(&cron, 0, "bob@example.org")),
    );
    report.success();
    cron.run(&["status"])
        .success()
        .stdout_has("1 complaint; complaint rate 33.33%");
    send_edition(&cron, 1)
        .success()
        .stdout_has("sent 2, deferred 0, failed 0, suppressed 1");
}

#[test]
fn a_ledger_database_that_is_down_asks_cron_to_try_again() {
    let sink = SmtpSink::start(&[]);
    let port = crate::support::server::free_port();
    let down = Location::Postgres(briefing::ledger::PgTarget {
        url: format!("postgres://briefing@127.0.0.1:{port}/briefing"),
        password_env: None,
    });
    let room = host(&sink, &down, 3, "60s");
    for args in [
        &SEND[..],
        &["send", "--due", "--now", "2026-11-30T06:01"],
        &["status"],
    ] {
        room.run_env(args, &[(SECRET_ENV, SECRET)])
            .code(75)
            .stderr_has("cannot connect to the ledger's database");
    }
    assert!(sink.dumps().is_empty());
}
