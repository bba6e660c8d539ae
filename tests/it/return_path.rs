//! The return path end to end, with real parts: `briefing send` through a
//! throwaway Postfix (tests/it/support/postfix.rs) to domains whose servers
//! refuse some recipients, Postfix's own DSNs fed to `briefing inbound`,
//! and the next edition leaving the right people out.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::support::Newsroom;
use crate::support::postfix::{self, Options, Relay};

const SECRET: &str = "return-path-test-secret";
const AT: &str = "2026-11-30T08:00";
const NOW: &str = "2026-11-30T06:01";
/// Tuesday's edition: the one after the bounces came back.
const NEXT_AT: &str = "2026-12-01T08:00";
const NEXT_NOW: &str = "2026-12-01T06:01";

pub(crate) fn run(room: &Newsroom, args: &[&str]) -> crate::support::Run {
    room.run_env(args, &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)])
}

/// The delivery fixture sending through `relay` with VERP, to `people`.
fn newsroom(relay: &Relay, people: &[String]) -> Newsroom {
    let mut csv = String::from("email,name\n");
    for p in people {
        csv.push_str(&format!("{p},\n"));
    }
    Newsroom::fixture("delivery")
        .edit("config.yaml", "smtp://127.0.0.1:9?tls=none", &relay.url())
        .edit(
            "config.yaml",
            "  feedback_id: deliverytest",
            &format!(
                "  feedback_id: deliverytest\n  bounce_address: bounces@{}",
                postfix::BOUNCE_DOMAIN
            ),
        )
        .write("subscribers/am.csv", &csv)
}

pub(crate) fn suppressed(room: &Newsroom) -> BTreeSet<(String, String)> {
    let out = run(room, &["suppressions", "--format", "csv"]);
    out.success();
    out.stdout
        .lines()
        .skip(1)
        .map(|l| {
            let mut f = l.split(',');
            (f.next().unwrap().to_owned(), f.nth(1).unwrap().to_owned())
        })
        .collect()
}

#[test]
fn real_postfix_bounces_suppress_the_dead_addresses_and_the_next_edition_skips_them() {
    let relay = Relay::start(Options::default());
    let d = |local: &str, domain: &str| format!("{local}@{domain}");
    let (ok, dead, gone, nouser, full, blocked, sync) = (
        d("ok", postfix::ACCEPT),
        d("dead", postfix::UNKNOWN),
        d("gone", postfix::GONE),
        d("nosuchuser", postfix::LOCAL),
        d("full", postfix::FULL),
        d("blocked", postfix::BLOCKED),
        d("sync", postfix::SYNC),
    );
    let people = [&ok, &dead, &gone, &nouser, &full, &blocked, &sync].map(|s| s.to_string());
    let room = newsroom(&relay, &people);
    // sync.example refuses at RCPT: send hears it and records the bounce
    // itself; the others are queued by Postfix and bounce later.
    run(&room, &["send", "-n", "am", "--at", AT, "--now", NOW])
        .code(1)
        .stdout_has("sent 6, deferred 0, failed 1");
    let returned = relay.returned(5, Duration::from_secs(60));
    let files: Vec<String> = returned
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let name = format!("dsn-{i}.eml");
            std::fs::write(room.path().join(&name), &r.message).unwrap();
            name
        })
        .collect();
    let mut args = vec!["inbound", "--dry-run", "--json"];
    args.extend(files.iter().map(String::as_str));
    let dry = run(&room, &args);
    dry.success();
    for line in dry.stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["edition"], "am-2026-11-30T0600", "{line}");
        assert_eq!(v["newsletter"], "am", "{line}");
    }
    assert_eq!(
        suppressed(&room),
        BTreeSet::from([(sync.clone(), "hard-bounce".into())]),
        "a dry run records nothing"
    );
    let mut args = vec!["inbound"];
    args.extend(files.iter().map(String::as_str));
    run(&room, &args).success();
    let hard: BTreeSet<(String, String)> = [&dead, &gone, &nouser, &sync]
        .iter()
        .map(|a| (a.to_string(), "hard-bounce".to_string()))
        .collect();
    assert_eq!(
        suppressed(&room),
        hard,
        "the full mailbox counts, the policy block is the relay's"
    );
    let status = run(&room, &["status"]);
    status
        .success()
        .stdout_has("came back: 0 unsubscribes, 4 hard bounces, 1 soft bounce, 0 complaints, 1 refused for reputation")
        .stderr_has("am: 1 message refused for the relay's or the content's reputation");
    // The next edition goes to the living only.
    let room = room.write(
        "content/national/next.md",
        "---\ntitle: Senate returns to the budget\ndate: 2026-11-30T12:00:00-05:00\nregion: national\ntopic: politics\n---\nTalks resume.\n",
    );
    run(
        &room,
        &["send", "-n", "am", "--at", NEXT_AT, "--now", NEXT_NOW],
    )
    .success()
    .stdout_has("sent 3, deferred 0, failed 0, suppressed 4");
    let delivered = relay.delivered(2, Duration::from_secs(30));
    assert!(
        delivered.iter().all(|r| r.rcpt == ok),
        "only {ok} is on the accepting domain"
    );
}

/// A relay that will not take a message this big would refuse every reader
/// the same way: that is the edition's problem, not a bounce. Whether the
/// relay says so in its EHLO (SIZE) or only after the final dot (`552
/// 5.3.4`), the send stops with everyone pending and nobody suppressed.
#[test]
fn a_message_too_big_for_the_relay_stops_the_send_and_fails_nobody() {
    for hide_size in [false, true] {
        let relay = Relay::start(Options {
            message_size_limit: Some(4000),
            hide_size,
            ..Options::default()
        });
        let people = [
            format!("a@{}", postfix::ACCEPT),
            format!("b@{}", postfix::ACCEPT),
        ];
        let room = newsroom(&relay, &people);
        let sent = run(&room, &["send", "-n", "am", "--at", AT, "--now", NOW]);
        sent.code(1);
        assert!(
            sent.stderr.contains("too big") || sent.stderr.contains("(its SIZE)"),
            "hide_size {hide_size}: {}",
            sent.stderr
        );
        let status = run(&room, &["status", "--edition", "am-2026-11-30T0600"]);
        status.success();
        let row: Vec<&str> = (status.stdout.lines())
            .find(|l| l.starts_with("am-2026-11-30T0600"))
            .unwrap()
            .split_whitespace()
            .collect();
        // edition, state, date, time, zone, then sent pending deferred failed doubt
        assert_eq!(row[5..10], ["0", "2", "0", "0", "0"], "{}", status.stdout);
        let failed = run(
            &room,
            &["status", "--edition", "am-2026-11-30T0600", "--failed"],
        );
        assert!(
            !failed.stdout.contains('@'),
            "hide_size {hide_size}: nobody failed: {}",
            failed.stdout
        );
        assert!(suppressed(&room).is_empty(), "hide_size {hide_size}");
    }
}

// ---------------------------------------------------------------------------
// Reports built from what `send` really wrote to the outbox: complaints,
// mailed unsubscribes, soft bounces, a Maildir.

const EDITIONS: [(&str, &str, &str); 3] = [
    ("2026-11-30T08:00", "2026-11-30T06:01", "am-2026-11-30T0600"),
    ("2026-12-01T08:00", "2026-12-01T06:01", "am-2026-12-01T0600"),
    ("2026-12-02T08:00", "2026-12-02T06:01", "am-2026-12-02T0600"),
];

/// The delivery fixture in outbox mode for three subscribers, with an item
/// for each of the three editions above.
pub(crate) fn outbox_room() -> Newsroom {
    let mut room = Newsroom::fixture("delivery")
        .edit("config.yaml", "transport: smtp", "transport: outbox")
        .write(
            "subscribers/am.csv",
            "email,name\nana@example.org,Ana\nbob@example.org,Bob\ncy@example.org,Cy\n",
        );
    for (i, day) in ["2026-11-30", "2026-12-01"].iter().enumerate() {
        room = room.write(
            &format!("content/national/day{i}.md"),
            &format!("---\ntitle: Day {i} in the Senate\ndate: {day}T12:00:00-05:00\nregion: national\ntopic: politics\n---\nMore.\n"),
        );
    }
    room
}

pub(crate) fn send_edition(room: &Newsroom, i: usize) -> crate::support::Run {
    let (at, now, _) = EDITIONS[i];
    run(room, &["send", "-n", "am", "--at", at, "--now", now])
}

/// The message edition `i` sent to `who`, as written to the outbox.
pub(crate) fn sent_to(room: &Newsroom, i: usize, who: &str) -> String {
    let dir = room
        .path()
        .join(format!("out/outbox/am/{}", &EDITIONS[i].2[3..]));
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|m| m.contains(&format!("To: {who}")) || m.contains(&format!("<{who}>")))
        .unwrap_or_else(|| panic!("no message to {who} in {}", dir.display()))
}

fn headers_of(message: &str) -> &str {
    message.split("\r\n\r\n").next().unwrap()
}

/// An ARF abuse report about `original`, redacted as Yahoo's are.
pub(crate) fn complaint(original: &str) -> String {
    format!(
        "From: <feedback@fbl.example.net>\r\nTo: <fbl@news.example.com>\r\nSubject: complaint\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary=\"b1\"\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\nA user reported this message as spam.\r\n--b1\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nUser-Agent: TestFBL/1.0\r\nVersion: 1\r\n\r\n--b1\r\nContent-Type: text/rfc822-headers\r\n\r\n{}\r\n--b1--\r\n",
        headers_of(original)
    )
}

/// An RFC 3464 report of a soft failure (mailbox full) of `original` to `who`.
fn soft_bounce(original: &str, who: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.org\r\nTo: am@news.example.com\r\nSubject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"b2\"\r\n\r\n--b2\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full.\r\n--b2\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\nFinal-Recipient: rfc822; {who}\r\nAction: failed\r\nStatus: 5.2.2\r\nDiagnostic-Code: smtp; 552 5.2.2 Mailbox full: quota exceeded\r\n\r\n--b2\r\nContent-Type: text/rfc822-headers\r\n\r\n{}\r\n--b2--\r\n",
        headers_of(original)
    )
}

pub(crate) fn inbound(room: &Newsroom, name: &str, message: &str) -> crate::support::Run {
    std::fs::write(room.path().join(name), message).unwrap();
    run(room, &["inbound", "--json", name])
}

#[test]
fn a_complaint_suppresses_its_newsletter_and_shows_in_the_complaint_rate() {
    let room = outbox_room();
    send_edition(&room, 0).success();
    let report = inbound(
        &room,
        "fbl.eml",
        &complaint(&sent_to(&room, 0, "bob@example.org")),
    );
    report.success();
    let line: serde_json::Value = serde_json::from_str(report.stdout.trim()).unwrap();
    assert_eq!(line["kind"], "complaint");
    assert_eq!(line["edition"], "am-2026-11-30T0600");
    assert_eq!(line["decision"], "suppress");
    assert_eq!(
        suppressed(&room),
        BTreeSet::from([("bob@example.org".to_string(), "complaint".to_string())])
    );
    let json = run(&room, &["suppressions", "--format", "json"]);
    let entry: serde_json::Value = serde_json::from_str(json.stdout.trim()).unwrap();
    assert_eq!(
        entry["scope"], "am",
        "a complaint suppresses the newsletter it was about"
    );
    // One complaint in three messages: far over Gmail's limit, and said so.
    run(&room, &["status"])
        .success()
        .stdout_has("am: 3 sent; 0 unsubscribes, 0 hard bounces, 0 soft bounces, 1 complaint; complaint rate 33.33% (Gmail's limit 0.3%)")
        .stderr_has("am: the complaint rate 33.33% is over 0.1%, Google's advice");
    send_edition(&room, 1)
        .success()
        .stdout_has("sent 2, deferred 0, failed 0, suppressed 1");
}

#[test]
fn a_mailed_unsubscribe_to_the_tagged_address_suppresses_that_subscriber() {
    let room = outbox_room();
    send_edition(&room, 0).success();
    let original = sent_to(&room, 0, "cy@example.org");
    let mailto = original
        .split("<mailto:")
        .nth(1)
        .and_then(|m| m.split('?').next())
        .unwrap()
        .to_owned();
    assert!(mailto.starts_with("unsubscribe+"), "{mailto}");
    // Sent from another address than the subscriber's: the tag decides.
    let message = format!(
        "From: Cy at work <cy.work@example.net>\r\nTo: {mailto}\r\nSubject: unsubscribe\r\nMessage-ID: <u1@example.net>\r\n\r\nplease stop\r\n"
    );
    inbound(&room, "unsub.eml", &message).success();
    assert_eq!(
        suppressed(&room),
        BTreeSet::from([("cy@example.org".to_string(), "mailto".to_string())])
    );
}

#[test]
fn soft_bounces_suppress_only_after_three_editions_in_a_row() {
    let room = outbox_room();
    for i in 0..3 {
        send_edition(&room, i).success();
        let bounce = soft_bounce(&sent_to(&room, i, "ana@example.org"), "ana@example.org");
        let name = format!("soft{i}.eml");
        let r = inbound(&room, &name, &bounce);
        r.success();
        let line: serde_json::Value = serde_json::from_str(r.stdout.trim()).unwrap();
        assert_eq!(line["decision"], "count_soft", "{}", r.stdout);
        let expect: BTreeSet<(String, String)> = match i {
            0 | 1 => BTreeSet::new(),
            _ => BTreeSet::from([("ana@example.org".to_string(), "soft-bounce".to_string())]),
        };
        assert_eq!(suppressed(&room), expect, "after edition {i}");
    }
}

#[test]
fn a_maildir_keeps_what_it_does_not_understand_and_files_the_rest() {
    let room = outbox_room();
    send_edition(&room, 0).success();
    let mail = room.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(mail.join(sub)).unwrap();
    }
    let bounce = soft_bounce(&sent_to(&room, 0, "bob@example.org"), "bob@example.org");
    std::fs::write(mail.join("new/1.bounce"), bounce).unwrap();
    std::fs::write(mail.join("new/2.human"), "From: someone@example.net\r\nTo: bounces@news.example.com\r\nSubject: hello?\r\n\r\nIs anyone there?\r\n").unwrap();
    std::fs::write(
        mail.join("new/3.vacation"),
        "From: ana@example.org\r\nTo: am@news.example.com\r\nSubject: Out of office\r\nAuto-Submitted: auto-replied\r\n\r\nAway until Monday.\r\n",
    )
    .unwrap();
    let r = run(&room, &["inbound", "--maildir", "Maildir"]);
    assert_eq!(
        r.code, 1,
        "an unrecognised message is reported: {}",
        r.stdout
    );
    let left: Vec<String> = std::fs::read_dir(mail.join("new"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["2.human"], "kept for a person, never deleted");
    assert!(
        (r.stdout.lines()).any(|l| l.contains("new/2.human:") && l.ends_with("not understood: kept for a person")),
        "{}",
        r.stdout
    );
    let mut filed: Vec<String> = std::fs::read_dir(mail.join("cur"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    filed.sort();
    assert_eq!(filed, ["1.bounce:2,S", "3.vacation:2,S"]);
    // Run again: nothing new is handled twice.
    let again = run(&room, &["inbound", "--maildir", "Maildir"]);
    assert_eq!(again.stdout.lines().count(), 1, "{}", again.stdout);
}

/// Under a mail server's pipe, an error of ours (here a ledger that cannot
/// be opened) must not turn into a bounce of the bounce: exit 75 keeps the
/// message queued, and a Maildir keeps it in new/.
#[test]
fn when_the_ledger_cannot_be_opened_inbound_asks_to_be_retried_and_files_nothing() {
    let room = outbox_room();
    send_edition(&room, 0).success();
    let bounce = soft_bounce(&sent_to(&room, 0, "bob@example.org"), "bob@example.org");
    let ledger = room.path().join("state/ledger.sqlite");
    std::fs::remove_file(&ledger).unwrap();
    std::fs::create_dir(&ledger).unwrap();
    let piped = room.run_stdin(
        &["inbound", "--recipient", "am@news.example.com"],
        &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)],
        bounce.as_bytes(),
    );
    assert_eq!(piped.code, 75, "{}", piped.stderr);
    assert!(piped.stderr.contains("exit 75"), "{}", piped.stderr);
    let mail = room.path().join("Maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(mail.join(sub)).unwrap();
    }
    std::fs::write(mail.join("new/1.bounce"), &bounce).unwrap();
    let r = run(&room, &["inbound", "--maildir", "Maildir"]);
    assert_eq!(r.code, 75, "{}", r.stderr);
    assert!(mail.join("new/1.bounce").exists(), "left for the next try");
}

#[test]
fn the_people_who_run_the_list_suppress_and_lift_by_hand() {
    let room = outbox_room();
    run(
        &room,
        &[
            "suppress",
            "Bob <BOB@example.org>",
            "--reason",
            "asked by phone",
        ],
    )
    .success()
    .stdout_has("suppressed bob@example.org for all newsletters");
    run(&room, &["suppress", "bob@example.org"])
        .success()
        .stdout_has("already suppressed");
    send_edition(&room, 0)
        .success()
        .stdout_has("sent 2, deferred 0, failed 0, suppressed 1");
    run(&room, &["suppress", "nope"]).code(2);
    run(&room, &["suppress", "ana@example.org", "-n", "amm"])
        .code(2)
        .stderr_has("did you mean `am`?");
    let csv = run(&room, &["suppressions", "--newsletter", "am"]);
    csv.success()
        .stdout_has("bob@example.org,*,manual,")
        .stdout_has("asked by phone");
    // A bounce is not lifted without --force; a request is.
    let soft = soft_bounce(&sent_to(&room, 0, "cy@example.org"), "cy@example.org");
    let hard = soft.replace("Status: 5.2.2", "Status: 5.1.1").replace(
        "552 5.2.2 Mailbox full: quota exceeded",
        "550 5.1.1 User unknown",
    );
    inbound(&room, "hard.eml", &hard).success();
    run(&room, &["unsuppress", "cy@example.org"])
        .code(1)
        .stderr_has(
            "stays suppressed for all newsletters: a hard-bounce is not lifted without --force",
        );
    run(&room, &["unsuppress", "cy@example.org", "--force"]).success();
    run(&room, &["unsuppress", "bob@example.org"])
        .success()
        .stdout_has("bob@example.org may get all newsletters again");
    assert!(suppressed(&room).is_empty());
    let since = run(
        &room,
        &["suppressions", "--since", "2030-01-01", "--format", "json"],
    );
    assert_eq!(since.stdout.trim(), "");
}

/// An unsubscribe recorded while an edition is sending: that person gets
/// nothing after it, everyone else still does.
#[test]
fn an_unsubscribe_during_the_edition_stops_the_rest_of_its_mail_to_that_person() {
    use crate::support::{SmtpSink, wait_until};
    // One connection, each message held a second: the edition takes ~20 s.
    let sink = SmtpSink::start(&["-W", ".:1"]);
    let mut csv = String::from("email,name\n");
    for i in 0..20 {
        csv.push_str(&format!("reader{i:02}@example.org,R {i}\n"));
    }
    let room = Newsroom::fixture("delivery")
        .edit("config.yaml", "smtp://127.0.0.1:9?tls=none", &sink.url())
        .edit("config.yaml", "connections: 4", "connections: 1")
        .write("subscribers/am.csv", &csv);
    let sender = room
        .command(&["send", "-n", "am", "--at", AT, "--now", NOW])
        .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "the first messages", || {
        sink.received().len() >= 2
    });
    run(&room, &["suppress", "reader15@example.org", "-n", "am"]).success();
    let after = sink.received().len();
    let out = sender.wait_with_output().unwrap();
    assert!(out.status.success());
    let got: Vec<String> = sink.received().into_iter().map(|d| d.rcpt).collect();
    assert!(
        after < 15,
        "the edition was already past reader15 ({after} sent)"
    );
    assert!(
        !got.contains(&"reader15@example.org".to_string()),
        "{got:?}"
    );
    assert_eq!(got.len(), 19, "everyone else still gets it");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("sent 19, deferred 0, failed 0, suppressed 1"),
        "{stdout}"
    );
}
