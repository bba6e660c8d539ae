//! Regression tests for what a careless editor or an attacker could do to a
//! newsroom (issue "Hardening"): each reproduces a failure of an earlier
//! briefing through the binary, as the newsroom would meet it.

use std::collections::BTreeSet;

use crate::support::Newsroom;
use crate::support::server::Server;

const AT: &str = "2026-11-30T08:00";
const NOW: &str = "2026-11-30T06:01";
const EDITION_DIR: &str = "out/outbox/am/2026-11-30T0600";

/// The delivery fixture sending into the outbox, to `rows` (CSV lines after
/// the header).
fn outbox_room(rows: &[&str]) -> Newsroom {
    let mut csv = String::from("email,name\n");
    for r in rows {
        csv.push_str(r);
        csv.push('\n');
    }
    Newsroom::fixture("delivery")
        .edit("config.yaml", "transport: smtp", "transport: outbox")
        .write("subscribers/am.csv", &csv)
}

fn send(room: &Newsroom) -> crate::support::Run {
    room.run(&["send", "-n", "am", "--at", AT, "--now", NOW])
}

/// The `To:` addresses of the messages in the edition's outbox folder.
fn mailed(room: &Newsroom) -> BTreeSet<String> {
    let dir = room.path().join(EDITION_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeSet::new();
    };
    entries
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .map(|m| {
            let to = m
                .lines()
                .find(|l| l.starts_with("To: "))
                .unwrap()
                .to_owned();
            let addr = to.rsplit('<').next().unwrap().trim_end_matches('>');
            addr.trim_start_matches("To: ").to_ascii_lowercase()
        })
        .collect()
}

/// Whether `status` knows the edition (it was frozen, missed or skipped).
fn in_ledger(room: &Newsroom) -> bool {
    room.run(&["status"]).stdout.contains("am-2026-11-30T0600")
}

#[test]
fn suppressions_in_every_pasted_form_are_never_mailed() {
    let people = [
        "ana@example.org",
        "bob@example.org",
        "carol@example.org",
        "dan@example.org",
        "eve@example.org",
    ];
    let mut rows: Vec<String> = people.iter().map(|p| format!("{p},")).collect();
    rows.push("keep@example.org,Kept".into());
    let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
    // A BOM, CRLF line ends, angle brackets, a display name, mailto:, case.
    let suppressed = "\u{feff}ana@example.org\r\n<bob@example.org>\r\nCarol <carol@example.org>\r\nmailto:dan@example.org\r\nEVE@Example.ORG\r\n";
    let room = outbox_room(&rows).write("subscribers/suppressed.txt", suppressed);
    send(&room).success().stdout_has("suppressed 5");
    assert_eq!(
        mailed(&room),
        BTreeSet::from(["keep@example.org".to_string()])
    );
}

#[test]
fn a_suppression_list_with_an_unreadable_line_stops_the_send_before_freezing() {
    let room = outbox_room(&["ana@example.org,", "bob@example.org,"]).write(
        "subscribers/suppressed.txt",
        "ana@example.org\nbob at example.org\n",
    );
    send(&room)
        .code(1)
        .stderr_has("subscribers/suppressed.txt:2: `bob at example.org` is not an address");
    assert!(
        mailed(&room).is_empty(),
        "nobody may be mailed from a list read partly"
    );
    assert!(!in_ledger(&room), "the edition must not be frozen");
    // Fixed, the next run sends it.
    let room = room.write(
        "subscribers/suppressed.txt",
        "ana@example.org\nbob@example.org\n",
    );
    send(&room).success().stdout_has("suppressed 2");
}

/// Every message of the edition's outbox folder, parsed: (To address,
/// subject, HTML, text).
fn messages(room: &Newsroom) -> Vec<(String, String, String, String)> {
    use mail_parser::MessageParser;
    let dir = room.path().join(EDITION_DIR);
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let raw = std::fs::read(e.unwrap().path()).unwrap();
        let m = MessageParser::default().parse(&raw).unwrap();
        let to = m
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap()
            .to_owned();
        out.push((
            to,
            m.subject().unwrap_or_default().to_owned(),
            m.body_html(0).unwrap_or_default().into_owned(),
            m.body_text(0).unwrap_or_default().into_owned(),
        ));
    }
    out
}

#[test]
fn private_use_characters_in_content_cannot_reach_the_placeholders() {
    let (s, e) = ('\u{E000}', '\u{E001}');
    let item = format!(
        "---\ntitle: \"Senate passes {s}email{e} stopgap\"\ndate: 2026-11-29T18:00:00-05:00\nregion: national\ntopic: politics\npriority: 1\nsummary: \"Preview {s}unsubscribe_url{e} text\"\nlink: \"https://news.example.com/x?who={s}email{e}\"\n---\nBefore a lone {s} MARKER-AFTER-LONE and the rest {e} STILL-HERE.\n"
    );
    let room = outbox_room(&[
        &format!("ana@example.org,\"Ana {s}email{e}\""),
        "bob@example.org,Bob",
    ])
    .remove("templates")
    .write("content/national/budget.md", &item);
    send(&room).success();
    let sent = messages(&room);
    assert_eq!(sent.len(), 2);
    for (to, subject, html, text) in &sent {
        for (part, body) in [("subject", subject), ("html", html), ("text", text)] {
            assert!(
                !body.contains(&format!("who={to}")),
                "{part} leaks {to} into a link: {body}"
            );
            assert!(
                !body.contains(&format!("passes {to}")),
                "{part} puts {to} in the title: {body}"
            );
            assert!(
                !body.contains("Preview https://"),
                "{part} leaks the unsubscribe link"
            );
        }
        assert!(!subject.contains(to.as_str()), "{subject}");
        for (part, body) in [("html", html), ("text", text)] {
            assert!(
                body.contains("MARKER-AFTER-LONE"),
                "{part} lost the body: {body}"
            );
            assert!(body.contains("STILL-HERE"), "{part} lost the body: {body}");
        }
    }
}

#[test]
fn a_deeply_nested_body_is_a_diagnostic_for_check_build_and_send() {
    let body = format!("intro\n\n{}deep\n", "> ".repeat(12_000));
    let item = format!(
        "---\ntitle: Deep\ndate: 2026-11-29T19:00:00-05:00\nregion: national\ntopic: politics\n---\n{body}"
    );
    let room = outbox_room(&["ana@example.org,Ana"]).write("content/national/deep.md", &item);
    room.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("content/national/deep.md:9:1: error: the body nests more than 32 levels");
    room.run(&["build", "--at", AT])
        .code(1)
        .stderr_has("deep.md:9:1");
    let run = send(&room);
    assert!(
        run.code == 0 || run.code == 1,
        "killed by a signal: {}",
        run.stderr
    );
    run.stderr_has("deep.md:9:1");
}

/// Runs `briefing ARGS`, reads the first bytes of its stdout and closes the
/// pipe, as `| head -5` does; returns the exit code and stderr.
fn run_into_closed_pipe(room: &Newsroom, args: &[&str]) -> (Option<i32>, String) {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = room
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 256];
    let mut stdout = child.stdout.take().unwrap();
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use briefing::ledger::{
        DeliveryState, DeliveryUpdate, FrozenEdition, Ledger, Recipient, Rendering,
    };
    let room = outbox_room(&["ana@example.org,Ana"]);
    // An edition with 20,000 failed recipients: far more than a pipe holds.
    let mut ledger = Ledger::open(&room.path().join("state/ledger.sqlite")).unwrap();
    let edition = FrozenEdition {
        id: "am-2026-11-30T0600".into(),
        newsletter: "am".into(),
        slot_utc: "2026-11-30T11:00:00Z".parse().unwrap(),
        zone: "America/New_York".into(),
        renderings: vec![Rendering {
            subject: "s".into(),
            html: "h".into(),
            text: "t".into(),
            item_ids: vec![],
        }],
        web: None,
    };
    let recipients: Vec<Recipient> = (0..20_000)
        .map(|i| Recipient {
            email: format!("reader{i}@example.org"),
            name: None,
            rendering: 0,
            fields: Default::default(),
        })
        .collect();
    ledger.freeze_edition(&edition, &recipients).unwrap();
    let failed: Vec<DeliveryUpdate> = recipients
        .iter()
        .map(|r| DeliveryUpdate {
            edition_id: edition.id.clone(),
            email: r.email.clone(),
            state: DeliveryState::Failed,
            attempts: 1,
            reply: Some("550 5.1.1 no such user".into()),
        })
        .collect();
    ledger.record_batch(&failed).unwrap();
    drop(ledger);
    for args in [
        &["status", "--failed"][..],
        &["schedule", "--days", "400", "--now", AT][..],
    ] {
        let (code, stderr) = run_into_closed_pipe(&room, args);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn the_preview_renders_only_subscribers_it_offers_and_keeps_its_memory() {
    let room = Newsroom::fixture(".");
    let preview = Server::start(room.path(), &["preview", "--at", AT], &[]);
    let (code, _) = preview.get("/newsletter/am");
    assert_eq!(code, 200);
    let (code, _) = preview.get("/newsletter/am?subscriber=leser@xn--bcher-kva.example.org");
    assert_eq!(code, 200, "a real subscriber of the list");
    let (code, _) = preview.get("/newsletter/am?subscriber=nobody@example.org");
    assert_eq!(code, 404, "an id the picker does not offer");
    let before = preview.rss_kb();
    for i in 0..600 {
        preview.get(&format!("/newsletter/am/email.html?subscriber=y{i}"));
        preview.get(&format!(
            "/newsletter/am/email.html?at=2026-11-{:02}T08:{:02}",
            1 + i % 28,
            i % 60
        ));
    }
    let grown = preview.rss_kb().saturating_sub(before);
    assert!(
        grown < 40_000,
        "the preview grew by {grown} KB over 1,200 requests"
    );
}

/// The race two `send --due` lost 3 times in 21: the loser looked at the
/// edition while the winner was sending it, and took the lease only after
/// the winner had completed it and let go. Played here in order: the
/// edition is complete when the loser resumes it.
// new-api
#[test]
fn resuming_an_edition_another_sender_just_completed_is_not_an_error() {
    use briefing::delivery::{EditionOutcome, Options};
    let room = outbox_room(&["ana@example.org,Ana", "bob@example.org,Bob"]);
    send(&room).success();
    let newsroom = briefing::config::Newsroom::load(&room.path().join("config.yaml")).unwrap();
    let n = newsroom.config.newsletter("am").unwrap();
    let ledger = briefing::ledger::Ledger::open(&room.path().join("state/ledger.sqlite")).unwrap();
    let run = briefing::delivery::run::resume(
        &newsroom,
        n,
        "am-2026-11-30T0600",
        ledger,
        &Options::default(),
    )
    .expect("losing the race is not an error");
    assert!(
        matches!(run.outcome, EditionOutcome::AlreadyComplete { .. }),
        "{:?}",
        run.outcome
    );
    assert_eq!(run.outcome.exit(), briefing::exit::Exit::Ok);
    assert_eq!(mailed(&room).len(), 2);
}

#[test]
fn the_loser_of_two_concurrent_senders_exits_0_or_75_never_1() {
    for round in 0..12 {
        let rows: Vec<String> = (0..30)
            .map(|i| format!("reader{i}@example.org,R {i}"))
            .collect();
        let rows: Vec<&str> = rows.iter().map(String::as_str).collect();
        let room = outbox_room(&rows);
        let args = ["send", "--due", "--now", NOW];
        // Two at once, started together.
        let (a, b) = std::thread::scope(|s| {
            let one = s.spawn(|| room.command(&args).output().unwrap());
            let two = s.spawn(|| room.command(&args).output().unwrap());
            (one.join().unwrap(), two.join().unwrap())
        });
        let codes = [a.status.code(), b.status.code()];
        for (out, code) in [(&a, codes[0]), (&b, codes[1])] {
            assert!(
                matches!(code, Some(0) | Some(75)),
                "round {round}: exit {code:?}\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        assert_eq!(mailed(&room).len(), 30, "round {round}");
    }
}

#[test]
fn an_item_with_errors_holds_back_the_edition_it_may_belong_to() {
    let room = outbox_room(&["ana@example.org,Ana"]);
    let good = room.read("content/national/budget.md");
    // The lead item, with an unquoted colon in its title.
    let broken = good.replace(
        "title: Senate passes the stopgap budget",
        "title: Breaking: Senate passes the stopgap budget",
    );
    let room = room.write("content/national/budget.md", &broken);
    room.run(&["send", "--due", "--now", NOW])
        .code(1)
        .stderr_has("content/national/budget.md:2:")
        .stdout_has("am-2026-11-30T0600: not sent: 1 item that may belong to this edition has errors (content/national/budget.md)");
    assert!(mailed(&room).is_empty());
    assert!(!in_ledger(&room), "a held edition is not recorded");
    // Fixed within max_delay: the next run sends it, lead and all.
    let room = room.write("content/national/budget.md", &good);
    room.run(&["send", "--due", "--now", "2026-11-30T06:20"])
        .success()
        .stdout_has("am-2026-11-30T0600: sent 1");
    let sent = messages(&room);
    assert!(
        sent[0].1.contains("Senate passes the stopgap budget"),
        "{}",
        sent[0].1
    );
}

#[test]
fn an_item_with_errors_outside_the_window_does_not_hold_the_edition() {
    let old = "---\ntitle: Breaking: old news\ndate: 2026-10-01T09:00:00-04:00\nregion: national\ntopic: politics\n---\nOld.\n";
    let room = outbox_room(&["ana@example.org,Ana"]).write("content/national/old.md", old);
    room.run(&["send", "--due", "--now", NOW])
        .success()
        .stdout_has("sent 1");
}

#[test]
fn a_subject_no_message_can_carry_is_refused_by_check_and_before_freezing() {
    let room = outbox_room(&["ana@example.org,Ana", "bob@example.org,Bob"]);
    let long = "Senate ".repeat(70);
    let budget = room.read("content/national/budget.md");
    let room = room.write(
        "content/national/budget.md",
        &budget.replace(
            "title: Senate passes the stopgap budget",
            &format!("title: {long}"),
        ),
    );
    room.run(&["check", "--at", AT])
        .code(1)
        .stderr_has("no message of this edition can be composed: Subject is too long");
    send(&room).code(1).stderr_has("Subject is too long");
    assert!(mailed(&room).is_empty());
    assert!(
        !in_ledger(&room),
        "nothing frozen, so a fixed item is sent on the next run"
    );
}

#[test]
fn a_row_whose_message_cannot_be_composed_is_skipped_not_failed() {
    let long_name = "N".repeat(250);
    let mut csv = String::from("email,name,city\n");
    csv.push_str("ana@example.org,Ana,Denver\n");
    csv.push_str(&format!("bob@example.org,{long_name},Tampa\n"));
    csv.push_str("carol@example.org,Carol,\"Line\r\nBreak\"\n");
    let room = outbox_room(&[]).write("subscribers/am.csv", &csv).edit(
        "config.yaml",
        "subject: \"{{ newsletter.name }} · {{ edition.lead.title }}\"",
        "subject: \"{{ newsletter.name }} for {{ subscriber.city }} · {{ edition.lead.title }}\"",
    );
    room.run(&["check", "--at", AT])
        .success()
        .stderr_has("subscribers/am.csv:3: warning: bob@example.org: cannot compose a message: To name is too long")
        .stderr_has("subscribers/am.csv:4: warning: carol@example.org: cannot compose a message: Subject contains a control character");
    send(&room)
        .success()
        .stdout_has("sent 1, deferred 0, failed 0, suppressed 0, invalid 2");
    assert_eq!(
        mailed(&room),
        BTreeSet::from(["ana@example.org".to_string()])
    );
    room.run(&["status", "--failed"])
        .success()
        .stdout_lacks("failed: ");
}

#[test]
fn an_empty_or_header_only_list_stops_the_edition_unless_allowed() {
    for (csv, why) in [
        ("", "the header row has no `email` column"),
        ("email,name\n", "yields nobody to send to (it has no rows)"),
        (
            "email,name\nnot-an-address,Broken\n",
            "yields nobody to send to (none of its 1 rows is a valid subscriber)",
        ),
    ] {
        let room = outbox_room(&[]).write("subscribers/am.csv", csv);
        send(&room).code(1).stderr_has(why);
        assert!(!in_ledger(&room), "{csv:?}: frozen anyway");
        room.run(&["check", "--at", AT]).code(1).stderr_has(why);
    }
    let room = outbox_room(&[])
        .write("subscribers/am.csv", "email,name\n")
        .edit(
            "config.yaml",
            "    subscribers: subscribers/am.csv",
            "    subscribers: subscribers/am.csv\n    allow_empty: true",
        );
    send(&room).success().stdout_has("sent 0");
}
