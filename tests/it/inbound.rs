//! Reading returned mail: every fixture in `tests/fixtures/inbound` against
//! its expected JSON line, real DSNs from a throwaway Postfix, and arbitrary
//! or mangled input that must never panic.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::postfix::{self, Options, Relay};
use briefing::inbound::{self, Action, Class, Context, Decision, Kind, Report, Via, status, tag};
use briefing::mail::message::{MessageSpec, compose, message_id};
use briefing::mail::token::unsubscribe_url;
use chrono::TimeZone;
use proptest::prelude::*;

/// The secrets the fixtures' tags are signed with: current, then previous.
const FIXTURE_SECRET: &[u8] = b"fixture-verp-secret";
const FIXTURE_OLD_SECRET: &[u8] = b"fixture-old-secret";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inbound")
}

fn context() -> Context {
    Context {
        bounce_address: Some("bounces@news.example.com".into()),
        unsubscribe_address: Some("unsubscribe@news.example.com".into()),
        secrets: vec![FIXTURE_SECRET.to_vec(), FIXTURE_OLD_SECRET.to_vec()],
        message_id_domains: vec!["news.example.com".into()],
        ..Context::default()
    }
}

/// A stand-in for the ledger's editions table, which the caller of
/// `classify` consults: row id, newsletter, edition id.
const EDITIONS: &[(u64, &str, &str)] = &[
    (7, "am", "am-2026-11-30T0600"),
    (8, "pm", "pm-2026-11-30T1700"),
];

/// Resolves newsletter and edition the way the caller will: the tag's
/// edition row first, then our Message-ID's edition part.
fn resolve(report: &mut Report) {
    let by_tag = report
        .evidence
        .tag
        .as_ref()
        .and_then(|t| EDITIONS.iter().find(|e| e.0 == t.edition));
    let by_id = || {
        report.evidence.message_ids.iter().find_map(|m| {
            let edition = m.edition_part.split('.').next().unwrap_or_default();
            EDITIONS.iter().find(|e| e.2.eq_ignore_ascii_case(edition))
        })
    };
    if let Some(&(_, newsletter, edition)) = by_tag.or_else(by_id) {
        report.newsletter = Some(newsletter.to_owned());
        report.edition = Some(edition.to_owned());
    }
}

fn fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("tests/fixtures/inbound")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".eml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

#[test]
fn every_fixture_classifies_as_its_json_line_says() {
    let dir = fixture_dir();
    let names = fixture_names();
    assert!(names.len() >= 30, "only {} fixtures", names.len());
    let mut failures = Vec::new();
    for name in &names {
        let raw = std::fs::read(dir.join(format!("{name}.eml"))).unwrap();
        let json_path = dir.join(format!("{name}.json"));
        let Ok(expected) = std::fs::read_to_string(&json_path).or_else(|e| {
            if std::env::var_os("INBOUND_BLESS").is_some() {
                Ok("{}".to_owned())
            } else {
                Err(e)
            }
        }) else {
            failures.push(format!("{name}: no {}", json_path.display()));
            continue;
        };
        let expected: serde_json::Value = match serde_json::from_str(&expected) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: not JSON: {e}", json_path.display()));
                continue;
            }
        };
        let mut report = inbound::classify(&raw, &context());
        report.source = format!("{name}.eml");
        resolve(&mut report);
        let line = report.to_json_line();
        if std::env::var_os("INBOUND_BLESS").is_some() {
            // Rewrites the expected lines from what classify says now:
            // review the diff before committing it.
            std::fs::write(&json_path, format!("{line}\n")).unwrap();
            continue;
        }
        let got: serde_json::Value = serde_json::from_str(&line).unwrap();
        if got != expected {
            failures.push(format!(
                "{name}:\n  expected {expected}\n  got      {got}\n  evidence {:?}",
                report.evidence
            ));
        }
    }
    // A .json without its .eml is a fixture that silently stopped running.
    for e in std::fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()) {
        let file = e.file_name().into_string().unwrap_or_default();
        if let Some(stem) = file.strip_suffix(".json")
            && !names.iter().any(|n| n == stem)
        {
            failures.push(format!("{file}: no {stem}.eml"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn arf_fixtures_agree_with_mail_auth() {
    // An independent ARF reader: the feedback type and the recipient we
    // read must be what mail-auth reads.
    let mut checked = 0;
    for name in fixture_names().iter().filter(|n| n.starts_with("arf_")) {
        let raw = std::fs::read(fixture_dir().join(format!("{name}.eml"))).unwrap();
        let theirs = mail_auth::report::Feedback::parse_rfc5322(&raw)
            .unwrap_or_else(|e| panic!("{name}: mail-auth cannot read it: {e:?}"));
        let ours = inbound::classify(&raw, &context());
        let their_type = format!("{:?}", theirs.feedback_type()).to_ascii_lowercase();
        assert_eq!(
            ours.evidence
                .feedback_type
                .as_deref()
                .map(|t| t.replace('-', "")),
            Some(their_type),
            "{name}"
        );
        if let Some(rcpt) = theirs.original_rcpt_to()
            && !inbound::arf::is_redacted(rcpt.trim_matches(['<', '>']))
        {
            assert!(
                ours.recipients
                    .iter()
                    .any(|r| r.address == rcpt.trim_matches(['<', '>'])),
                "{name}: {rcpt} not among {:?}",
                ours.recipients
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} ARF fixtures");
}

/// Minimal SMTP client for the tests: briefing's own sender does not offer
/// the DSN parameters (`NOTIFY`, `RET`) used to make Postfix write success
/// and headers-only reports, and a synchronous rejection must be seen as
/// the reply itself.
fn smtp_send(
    port: u16,
    mail_from: &str,
    mail_params: &str,
    rcpt: &str,
    rcpt_params: &str,
    message: &[u8],
) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream.try_clone().map_err(|e| e.to_string())?);
    let mut writer = stream;
    let mut reply = |expect: char| -> Result<String, String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).map_err(|e| e.to_string())?;
            if line.is_empty() {
                return Err(format!("connection closed after {all:?}"));
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if all.starts_with(expect) {
            Ok(all)
        } else {
            Err(all.trim_end().to_owned())
        }
    };
    reply('2')?;
    let mut send = |line: &str| {
        writer
            .write_all(format!("{line}\r\n").as_bytes())
            .map_err(|e| e.to_string())
    };
    send("EHLO news.example.com")?;
    reply('2')?;
    send(&format!("MAIL FROM:<{mail_from}>{mail_params}"))?;
    reply('2')?;
    send(&format!("RCPT TO:<{rcpt}>{rcpt_params}"))?;
    reply('2')?;
    send("DATA")?;
    reply('3')?;
    let mut data = Vec::with_capacity(message.len() + 16);
    for line in message.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            data.push(b'.');
        }
        data.extend_from_slice(line);
    }
    if !data.ends_with(b"\n") {
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice(b".\r\n");
    writer.write_all(&data).map_err(|e| e.to_string())?;
    reply('2')?;
    writer.write_all(b"QUIT\r\n").map_err(|e| e.to_string())?;
    Ok(())
}

/// A message as briefing composes it for reader `email` of edition row 7,
/// with the VERP envelope sender for delivery row `recipient`.
fn briefing_message(email: &str, recipient: u64, secret: &[u8]) -> (String, Vec<u8>) {
    let tag = tag::encode(7, recipient, secret);
    let verp = tag::address(&format!("bounces@{}", postfix::BOUNCE_DOMAIN), &tag).unwrap();
    let spec = MessageSpec {
        from: "Morning Brief <brief@news.example.com>".parse().unwrap(),
        to: email.parse().unwrap(),
        reply_to: Some("Newsdesk <desk@news.example.com>".parse().unwrap()),
        subject: "Morning Brief: Budget talks, rain later".to_owned(),
        text: "MORNING BRIEF\n\nMinisters met on Tuesday to discuss the budget.\n".to_owned(),
        html: "<!doctype html><html lang=\"en\"><body><p>Ministers met on Tuesday to discuss the budget.</p></body></html>\n".to_owned(),
        message_id: message_id("am-2026-11-30T0600", email, "news.example.com"),
        list_id: "Morning Brief <am.news.example.com>".to_owned(),
        unsubscribe_url: unsubscribe_url("https://news.example.com/unsubscribe", "am", email, secret).unwrap(),
        unsubscribe_mailto: Some(tag::address("unsubscribe@news.example.com", &tag).unwrap()),
        feedback_id: Some("am:briefing:newsroom".to_owned()),
        date: chrono::Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap(),
    };
    (verp, compose(&spec, None).unwrap())
}

/// What each test domain's DSN must say.
struct Case {
    email: String,
    kind: Kind,
    decision: Decision,
    status: &'static str,
    class: Class,
    diagnostic: &'static str,
}

fn case(
    domain: &str,
    kind: Kind,
    decision: Decision,
    status: &'static str,
    class: Class,
    diagnostic: &'static str,
) -> Case {
    Case {
        email: format!("reader@{domain}"),
        kind,
        decision,
        status,
        class,
        diagnostic,
    }
}

fn relay_context(secret: &[u8], envelope: &str) -> Context {
    Context {
        secrets: vec![secret.to_vec()],
        envelope_recipient: Some(envelope.to_owned()),
        ..context()
    }
}

#[test]
fn real_postfix_dsns_classify_as_their_failures() {
    let relay = Relay::start(Options::default());
    let secret = b"relay-test-secret";
    let cases = [
        case(
            postfix::UNKNOWN,
            Kind::Bounce,
            Decision::Suppress,
            "5.1.1",
            Class::Hard,
            "User unknown in relay recipient table",
        ),
        case(
            postfix::GONE,
            Kind::Bounce,
            Decision::Suppress,
            "5.1.1",
            Class::Hard,
            "X-Postfix; mailbox unavailable",
        ),
        case(
            postfix::LOCAL,
            Kind::Bounce,
            Decision::Suppress,
            "5.1.1",
            Class::Hard,
            "unknown user: \"reader\"",
        ),
        case(
            postfix::FULL,
            Kind::Bounce,
            Decision::CountSoft,
            "5.2.2",
            Class::Soft,
            "Mailbox full",
        ),
        case(
            postfix::SOFT,
            Kind::Bounce,
            Decision::CountSoft,
            "4.3.0",
            Class::Soft,
            "450 4.3.0",
        ),
        case(
            postfix::REFUSE,
            Kind::Bounce,
            Decision::CountSoft,
            "5.3.0",
            Class::Soft,
            "500 5.3.0",
        ),
        case(
            postfix::BLOCKED,
            Kind::Bounce,
            Decision::Ignore,
            "5.7.1",
            Class::Policy,
            "zen.spamhaus.org",
        ),
    ];
    for (i, c) in cases.iter().enumerate() {
        let (verp, message) = briefing_message(&c.email, 100 + i as u64, secret);
        smtp_send(relay.port(), &verp, "", &c.email, "", &message)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", c.email, relay.log()));
    }
    // And one that is delivered: no DSN, and the VERP sender arrives intact.
    let ok = format!("reader@{}", postfix::ACCEPT);
    let (ok_verp, message) = briefing_message(&ok, 99, secret);
    smtp_send(relay.port(), &ok_verp, "", &ok, "", &message).unwrap();

    let returned = relay.returned(cases.len(), Duration::from_secs(60));
    assert_eq!(
        returned.len(),
        cases.len(),
        "one DSN per failure, none for the delivery"
    );
    for dsn in &returned {
        assert_eq!(dsn.mail_from, "", "a DSN has the null sender");
        let report = inbound::classify(&dsn.message, &relay_context(secret, &dsn.rcpt));
        let tag = report
            .evidence
            .tag
            .clone()
            .unwrap_or_else(|| panic!("no tag in the DSN to {}: {report:?}", dsn.rcpt));
        assert_eq!((tag.edition, tag.via), (7, Via::Bounce));
        let c = &cases[(tag.recipient - 100) as usize];
        let who = &c.email;
        assert_eq!(report.kind, c.kind, "{who}: {report:?}");
        assert_eq!(report.decision, c.decision, "{who}: {report:?}");
        assert_eq!(report.evidence.dialect, Some("rfc3464"), "{who}");
        let [r] = report.recipients.as_slice() else {
            panic!("{who}: {:?}", report.recipients)
        };
        assert_eq!(r.address, *who);
        assert_eq!(r.action, Some(Action::Failed), "{who}");
        assert_eq!(r.status.as_deref(), Some(c.status), "{who}");
        assert_eq!(r.class, c.class, "{who}: {r:?}");
        assert_eq!(r.hard, c.class == Class::Hard, "{who}");
        assert!(
            r.diagnostic
                .as_deref()
                .unwrap_or_default()
                .contains(c.diagnostic),
            "{who}: {r:?}"
        );
        assert_eq!(report.relay_problem(), c.class == Class::Policy, "{who}");
        // The returned original's Message-ID is ours and names the edition.
        let expected_id = message_id("am-2026-11-30T0600", who, "news.example.com");
        assert!(
            report
                .evidence
                .message_ids
                .iter()
                .any(|m| m.id == expected_id && m.edition_part == "am-2026-11-30T0600"),
            "{who}: {:?}",
            report.evidence.message_ids
        );
        // The DSN must not name this machine.
        let text = String::from_utf8_lossy(&dsn.message);
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        assert!(
            host.trim().is_empty() || !text.contains(host.trim()),
            "{who}: the DSN leaks {host}"
        );
    }
    let delivered = relay.delivered(1, Duration::from_secs(30));
    assert_eq!(delivered[0].rcpt, ok);
    assert_eq!(
        delivered[0].mail_from, ok_verp,
        "the VERP sender survives the relay"
    );
    assert_eq!(
        tag::decode(ok_verp.split(['+', '@']).nth(1).unwrap(), &[secret]),
        Some((7, 99))
    );
}

#[test]
fn real_postfix_rejects_synchronously_and_warns_of_delays() {
    let relay = Relay::start(Options {
        delay_warnings: true,
        ..Options::default()
    });
    let secret = b"relay-test-secret";

    // A strict relay refuses at RCPT: there will be no DSN, the reply is
    // the bounce, and it classifies as hard.
    let sync = format!("reader@{}", postfix::SYNC);
    let (verp, message) = briefing_message(&sync, 1, secret);
    // Through the address a newsroom would configure.
    let port: u16 = relay
        .url()
        .strip_prefix("smtp://127.0.0.1:")
        .and_then(|rest| rest.split('?').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected relay URL {}", relay.url()));
    let err = smtp_send(port, &verp, "", &sync, "", &message).unwrap_err();
    let code: u16 = err
        .get(..3)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert_eq!(code, 550, "{err}");
    assert_eq!(
        status::classify_reply(code, &err[4..]),
        Class::Hard,
        "{err}"
    );

    // A soft failure with a queue lifetime: Postfix warns, and a warning is
    // a report, not a bounce.
    let slow = format!("reader@{}", postfix::SOFT);
    let (verp, message) = briefing_message(&slow, 2, secret);
    smtp_send(relay.port(), &verp, "", &slow, "", &message).unwrap();
    let returned = relay.returned(1, Duration::from_secs(60));
    let report = inbound::classify(
        &returned[0].message,
        &relay_context(secret, &returned[0].rcpt),
    );
    assert_eq!(
        (report.kind, report.decision),
        (Kind::Report, Decision::Ignore),
        "{report:?}"
    );
    assert_eq!(report.recipients[0].action, Some(Action::Delayed));
    assert!(!report.recipients[0].hard);
    assert_eq!(report.evidence.tag.as_ref().map(|t| t.recipient), Some(2));
}

/// Makes the DSNs of a fresh throwaway Postfix, as the committed
/// `postfix_*.eml` fixtures were made, and checks that each classifies as
/// its committed fixture says: the fixtures stay what today's Postfix
/// writes. With `INBOUND_CAPTURE_DIR` set, the captured DSNs are also kept
/// there (how to refresh the fixtures).
#[test]
fn a_fresh_postfix_writes_dsns_that_classify_as_the_committed_fixtures() {
    let keep = std::env::var_os("INBOUND_CAPTURE_DIR").map(PathBuf::from);
    let scratch = tempfile::tempdir().unwrap();
    let out = keep.clone().unwrap_or_else(|| scratch.path().to_owned());
    std::fs::create_dir_all(&out).unwrap();
    let capture = |relay: &Relay, sends: &[(&str, u64, &str, &str, &str)]| {
        for &(email, recipient, mail_params, rcpt_params, _) in sends {
            let (verp, message) = briefing_message(email, recipient, FIXTURE_SECRET);
            smtp_send(
                relay.port(),
                &verp,
                mail_params,
                email,
                rcpt_params,
                &message,
            )
            .unwrap();
        }
        let returned = relay.returned(sends.len(), Duration::from_secs(60));
        for dsn in returned {
            let report = inbound::classify(&dsn.message, &relay_context(FIXTURE_SECRET, &dsn.rcpt));
            let recipient = report.evidence.tag.as_ref().map(|t| t.recipient).unwrap();
            let name = sends.iter().find(|s| s.1 == recipient).unwrap().4;
            std::fs::write(out.join(format!("{name}.eml")), &dsn.message).unwrap();
        }
    };
    let relay = Relay::start(Options::default());
    let d = |domain: &str| format!("reader@{domain}");
    let (unknown, gone, local, full, soft, refuse, blocked, relayed, headers) = (
        d(postfix::UNKNOWN),
        d(postfix::GONE),
        format!("nosuchuser@{}", postfix::LOCAL),
        d(postfix::FULL),
        d(postfix::SOFT),
        d(postfix::REFUSE),
        d(postfix::BLOCKED),
        d(postfix::ACCEPT),
        format!("headers-only@{}", postfix::UNKNOWN),
    );
    capture(
        &relay,
        &[
            (&unknown, 1001, "", "", "postfix_user_unknown"),
            (&gone, 1002, "", "", "postfix_error_transport"),
            (&local, 1003, "", "", "postfix_local_unknown_user"),
            (&full, 1004, "", "", "postfix_mailbox_full"),
            (&soft, 1005, "", "", "postfix_soft_expired"),
            (&refuse, 1006, "", "", "postfix_refused"),
            (&blocked, 1007, "", "", "postfix_policy_spamhaus"),
            (
                &relayed,
                1008,
                "",
                " NOTIFY=SUCCESS,FAILURE",
                "postfix_relayed",
            ),
            (&headers, 1009, " RET=HDRS", "", "postfix_headers_only"),
        ],
    );
    drop(relay);
    let relay = Relay::start(Options {
        delay_warnings: true,
        ..Options::default()
    });
    capture(&relay, &[(&soft, 1010, "", "", "postfix_delayed")]);
    let mut checked = 0;
    for e in std::fs::read_dir(&out).unwrap().filter_map(|e| e.ok()) {
        let name = e.file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".eml") else {
            continue;
        };
        let mut report = inbound::classify(&std::fs::read(e.path()).unwrap(), &context());
        report.source = name.clone();
        resolve(&mut report);
        let got: serde_json::Value = serde_json::from_str(&report.to_json_line()).unwrap();
        let committed =
            std::fs::read_to_string(fixture_dir().join(format!("{stem}.json"))).unwrap();
        let want: serde_json::Value = serde_json::from_str(&committed).unwrap();
        assert_eq!(
            got, want,
            "{stem}: today's Postfix DSN classifies differently"
        );
        checked += 1;
    }
    assert_eq!(checked, 10);
}

/// Reads one fixture.
fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture_dir().join(name)).unwrap()
}

/// Every fixture, for mutation.
fn all_fixtures() -> Vec<Vec<u8>> {
    fixture_names()
        .iter()
        .map(|n| fixture(&format!("{n}.eml")))
        .collect()
}

/// Generous: classify reads a few KB in well under a millisecond; this only
/// catches a blow-up (quadratic scans, runaway nesting), never tunes speed.
const TIME_LIMIT: Duration = Duration::from_secs(2);

fn classify_timed(raw: &[u8]) -> Report {
    let start = Instant::now();
    let report = inbound::classify(raw, &context());
    let took = start.elapsed();
    assert!(
        took < TIME_LIMIT,
        "classify took {took:?} on {} bytes",
        raw.len()
    );
    // Whatever came in, the JSON line is well-formed and decision-consistent.
    let line: serde_json::Value = serde_json::from_str(&report.to_json_line()).unwrap();
    assert!(line["kind"].is_string() && line["decision"].is_string());
    assert_eq!(report.decision, report.decide(&context().policy));
    report
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..4096)) {
        classify_timed(&raw);
    }

    #[test]
    fn mutated_fixtures_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..24),
        cut in any::<prop::sample::Index>(),
    ) {
        let fixtures = all_fixtures();
        let mut raw = fixtures[which.index(fixtures.len())].clone();
        for (at, byte, op) in edits {
            if raw.is_empty() {
                raw.push(byte);
                continue;
            }
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                2 => { raw.remove(i); }
                // Duplicate a slice: repeated boundaries and header blocks.
                _ => {
                    let end = (i + 64).min(raw.len());
                    let piece = raw[i..end].to_vec();
                    raw.splice(i..i, piece);
                }
            }
        }
        let keep = cut.index(raw.len() + 1);
        raw.truncate(keep);
        classify_timed(&raw);
    }
}

#[test]
fn hostile_shapes_stay_cheap() {
    // Deep multipart nesting, a thousand parts, a header of a million
    // characters, a body of tag-shaped strings: each must be read quickly.
    let mut deep = String::from("Content-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
    for i in 0..2000 {
        deep.push_str(&format!(
            "--b{i}\r\nContent-Type: multipart/mixed; boundary=\"b{}\"\r\n\r\n",
            i + 1
        ));
    }
    let mut many = String::from(
        "Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n",
    );
    for _ in 0..1000 {
        many.push_str("--b\r\nContent-Type: message/delivery-status\r\n\r\nFinal-Recipient: rfc822; a@b.example\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n");
    }
    let long_header = format!("Subject: {}\r\n\r\nx", "a".repeat(1 << 20));
    let tags = format!(
        "From: MAILER-DAEMON@x.example\r\n\r\n{}",
        "bounces+1-1-aaaaaaaaaaaaaaaa@news.example.com <a.0123456789abcdef@news.example.com> "
            .repeat(20_000)
    );
    for raw in [deep, many, long_header, tags] {
        classify_timed(raw.as_bytes());
    }
}

#[test]
fn a_leading_mbox_from_line_is_tolerated() {
    // What a Postfix pipe transport with the F flag, or an mbox, delivers.
    let mut raw = b"From MAILER-DAEMON  Tue Dec  1 17:00:27 2026\n".to_vec();
    raw.extend(fixture("postfix_user_unknown.eml"));
    let report = classify_timed(&raw);
    assert_eq!(
        (report.kind, report.decision),
        (Kind::Bounce, Decision::Suppress),
        "{report:?}"
    );
}
