//! `briefing send` end to end: the binary sends the edition of the fixture
//! newsroom `tests/fixtures/delivery` (copied to a temp folder) to a real SMTP
//! server, Postfix's smtp-sink, started per test on a free loopback port with
//! `-d` so every message that arrived can be read back and checked. Faults
//! come from smtp-sink's own switches: `-r` soft-rejects, `-f` hard-rejects,
//! `-q` hangs up, `-w`/`-W` slow a reply down. `--now` pins the clock.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Dump, SmtpSink};
use crate::support::{Newsroom, wait_until};
use briefing::ledger::{DeliveryState, EditionState, Ledger};
use briefing::mail::message::message_id;
use briefing::mail::token::{DEV_SECRET, verify_token};
use mail_parser::{Message, MessageParser, MimeHeaders};

/// The unsubscribe secret every send gets in its environment.
const SECRET: &str = "send-test-secret";
/// Monday's 06:00 edition, one minute after its slot.
const EDITION: &str = "am-2026-11-30T0600";
const AT: &str = "2026-11-30T08:00";
const NOW: &str = "2026-11-30T06:01";
const SEND: [&str; 7] = ["send", "-n", "am", "--at", AT, "--now", NOW];

/// Where the fixture's config points until a test says otherwise.
const NO_SINK: &str = "smtp://127.0.0.1:9?tls=none";

/// The fixture newsroom, sending to `sink`.
fn newsroom(sink: &SmtpSink) -> Newsroom {
    Newsroom::fixture("delivery").edit("config.yaml", NO_SINK, &sink.url())
}

/// Points an existing newsroom at another sink (a rerun after a fault).
fn retarget(room: Newsroom, sink: &SmtpSink) -> Newsroom {
    let config = room.read("config.yaml");
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("url: smtp://"))
        .expect("an smtp url in config.yaml")
        .to_owned();
    let text = config.replace(&line, &format!("    url: {}", sink.url()));
    room.write("config.yaml", &text)
}

fn send(room: &Newsroom, extra: &[&str]) -> crate::support::Run {
    let args: Vec<&str> = SEND.iter().chain(extra).copied().collect();
    room.run_env(&args, &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)])
}

fn ledger(room: &Newsroom) -> Ledger {
    Ledger::open(&room.path().join("state/ledger.sqlite")).expect("ledger opens")
}

// ---------------------------------------------------------------------------
// The generated audience: reader000@example.org, reader001@…, with names,
// cities and preferences that vary by index.

fn email_of(i: usize) -> String {
    format!("reader{i:03}@example.org")
}

/// Plain names, "Last, First" names (a comma, as spreadsheets export them),
/// non-ASCII names and no name at all.
fn name_of(i: usize) -> String {
    match i % 4 {
        0 => format!("Reader {i}"),
        1 => format!("Lima, Ana {i}"),
        2 => format!("Zoë Ångström {i}"),
        _ => String::new(),
    }
}

/// The `city` column: empty for every third reader.
fn city_of(i: usize) -> String {
    if i % 3 == 0 {
        String::new()
    } else {
        format!("City {i}")
    }
}

/// `regions` and `topics` columns.
fn prefs_of(i: usize) -> (&'static str, &'static str) {
    match i % 10 {
        1 => ("world", ""),
        2 => ("", "trade"),
        3 => ("national", "tech"),
        _ => ("", ""),
    }
}

/// The items (by id) reader `i` should get.
fn items_of(i: usize) -> Vec<&'static str> {
    match i % 10 {
        1 => vec!["world/summit", "world/tariffs"],
        2 => vec!["world/tariffs"],
        3 => vec!["national/chips"],
        _ => vec![
            "national/budget",
            "national/chips",
            "world/summit",
            "world/tariffs",
        ],
    }
}

const ALL_ITEMS: [&str; 4] = [
    "national/budget",
    "national/chips",
    "world/summit",
    "world/tariffs",
];

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The header and `n` generated rows.
fn subscribers_csv(n: usize) -> String {
    let mut csv = String::from("email,name,regions,topics,city\n");
    for i in 0..n {
        let (regions, topics) = prefs_of(i);
        csv.push_str(&format!(
            "{},{},{regions},{topics},{}\n",
            email_of(i),
            csv_field(&name_of(i)),
            csv_field(&city_of(i))
        ));
    }
    csv
}

/// Rows that must never get a message, whatever else the list holds: two
/// suppressed (one in another case), two invalid, one whose preferences leave
/// nothing in this newsletter.
const NEVER_MAILED: &str = "\
unsubscribed@example.org,Un Subscribed,,,
BOUNCED@example.ORG,Bounced,,,
not-an-address,Broken,,,
READER000@EXAMPLE.ORG,Duplicate of reader000,,,
denver-only@example.org,Denver Only,denver,,
";

// ---------------------------------------------------------------------------
// Reading back what arrived.

fn parse(dump: &Dump) -> Message<'_> {
    MessageParser::default()
        .parse(&dump.raw)
        .unwrap_or_else(|| panic!("{} does not parse", dump.path.display()))
}

/// Whether the dump holds a whole message: its closing MIME boundary arrived.
fn is_complete(dump: &Dump) -> bool {
    let Some(msg) = MessageParser::default().parse(&dump.raw) else {
        return false;
    };
    let Some(boundary) = msg
        .content_type()
        .and_then(|ct| ct.attribute("boundary"))
        .map(str::to_owned)
    else {
        return false;
    };
    let closing = format!("--{boundary}--");
    String::from_utf8_lossy(&dump.raw).contains(&closing)
}

/// How many complete messages each envelope recipient got.
fn tally<'a>(dumps: impl IntoIterator<Item = &'a Dump>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for d in dumps.into_iter().filter(|d| is_complete(d)) {
        *counts.entry(d.rcpt.clone()).or_default() += 1;
    }
    counts
}

/// Header names of the message part of a dump, in order (smtp-sink's own
/// records left out).
fn header_names(dump: &Dump) -> Vec<String> {
    let text = String::from_utf8_lossy(&dump.raw);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let head = head.split("\n\n").next().unwrap_or("");
    head.lines()
        .filter(|l| !l.starts_with([' ', '\t']))
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.to_owned()))
        .filter(|name| !crate::support::smtp_sink::SINK_HEADERS.contains(&name.as_str()))
        .collect()
}

/// Every header a delivered message may carry; anything else would be an
/// injected one.
const MESSAGE_HEADERS: [&str; 14] = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "Content-Type",
    "Content-Transfer-Encoding",
    "DKIM-Signature",
];

fn assert_only_known_headers(dump: &Dump) {
    let names = header_names(dump);
    for name in &names {
        assert!(
            MESSAGE_HEADERS.iter().any(|h| h.eq_ignore_ascii_case(name)),
            "unexpected header {name:?} in the message to {}",
            dump.rcpt
        );
    }
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a repeated header: {names:?}");
}

/// A raw header value, unfolded.
fn raw_header(msg: &Message<'_>, name: &str) -> Option<String> {
    msg.header_raw(name).map(|v| {
        v.replace("\r\n", "\n")
            .replace("\n ", " ")
            .replace("\n\t", " ")
            .trim()
            .to_owned()
    })
}

/// `name=value` pairs of a URL's query, percent-decoded.
fn query(url: &str) -> BTreeMap<String, String> {
    let q = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                percent_encoding::percent_decode_str(v)
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect()
}

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Item ids in a plain-text body (`[item world/trade] Title`).
fn items_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("[item "))
        .filter_map(|l| l.split(']').next())
        .map(str::to_owned)
        .collect()
}

/// What a line of the send summary says about `word`: `sent 200` -> 200.
fn summary_count(stdout: &str, word: &str) -> u64 {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(EDITION))
        .unwrap_or_else(|| panic!("no summary line in {stdout:?}"));
    line.split(", ")
        .flat_map(|part| part.split(": "))
        .find_map(|part| part.strip_prefix(&format!("{word} ")))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no `{word} N` in {line:?}"))
}

// ---------------------------------------------------------------------------

#[test]
fn delivers_200_personalised_messages_with_every_header() {
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink).write("subscribers/am.csv", &(subscribers_csv(200) + NEVER_MAILED));
    let run = send(&room, &[]);
    run.success()
        .stdout_has("sent 200, deferred 0, failed 0, suppressed 2, invalid 2, empty 1");

    let received = sink.received();
    assert_eq!(received.len(), 200, "exactly one message per reader");
    let expected: BTreeSet<String> = (0..200).map(email_of).collect();
    let got: BTreeSet<String> = received.iter().map(|d| d.rcpt.clone()).collect();
    assert_eq!(got, expected, "each reader once, nobody else");

    let secret = SECRET.as_bytes();
    for dump in &received {
        let rcpt = dump.rcpt.as_str();
        let i: usize = rcpt["reader".len()..rcpt.find('@').unwrap()]
            .parse()
            .unwrap();
        let msg = parse(dump);
        // smtp-sink dumps lines with LF ends and drops CRs, so line ends are
        // checked on the composed bytes (tests/mail_message.rs), not here.
        let text = String::from_utf8(dump.raw.clone()).expect("7-bit clean");
        assert!(text.is_ascii(), "{rcpt}: 8-bit bytes on the wire");
        assert!(
            text.lines().all(|l| l.len() <= 998),
            "{rcpt}: a line over 998 octets"
        );
        assert_only_known_headers(dump);
        assert_eq!(dump.mail_from, "am@news.example.com");

        // Addresses.
        let from = msg.from().and_then(|a| a.first()).unwrap();
        assert_eq!(
            (from.name(), from.address()),
            (Some("Morning Brief"), Some("am@news.example.com"))
        );
        let to = msg.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.address(), Some(rcpt), "To is the envelope recipient");
        let name = name_of(i);
        let want_name = (!name.is_empty()).then_some(name.as_str());
        assert_eq!(to.name(), want_name, "{rcpt}: To carries the reader's name");
        let reply_to = msg.reply_to().and_then(|a| a.first()).unwrap();
        assert_eq!(reply_to.address(), Some("desk@news.example.com"));

        // Subject: the lead of the reader's own edition, encoded (it has a
        // middle dot) and decoded back.
        let subject = msg.subject().unwrap();
        assert!(subject.starts_with("Morning Brief · "), "{subject}");
        let raw_subject = raw_header(&msg, "Subject").unwrap();
        assert!(
            raw_subject.contains("=?utf-8?"),
            "non-ASCII subject not RFC 2047 encoded: {raw_subject}"
        );

        // The other headers.
        assert!(msg.date().is_some(), "{rcpt}: Date");
        assert_eq!(raw_header(&msg, "MIME-Version").as_deref(), Some("1.0"));
        assert_eq!(
            msg.message_id().map(|id| format!("<{id}>")),
            Some(message_id(EDITION, rcpt, "news.example.com"))
        );
        assert!(
            msg.message_id()
                .unwrap()
                .starts_with(&format!("{EDITION}."))
                && msg.message_id().unwrap().ends_with("@news.example.com")
        );
        assert_eq!(
            raw_header(&msg, "List-Id").as_deref(),
            Some("Morning Brief <am.news.example.com>")
        );
        let unsubscribe = raw_header(&msg, "List-Unsubscribe").unwrap();
        let (https, mailto) = unsubscribe.split_once(", ").unwrap();
        // The mailto names its recipient with a tag only our secret makes.
        let tag = mailto
            .strip_prefix("<mailto:unsubscribe+")
            .and_then(|m| m.strip_suffix("@news.example.com?subject=unsubscribe>"))
            .unwrap_or_else(|| panic!("{mailto}"));
        let (_, recipient) =
            briefing::inbound::tag::decode(tag, &[SECRET.as_bytes()]).expect("a tag that verifies");
        assert_eq!(recipient, briefing::inbound::tag::recipient_ref(rcpt));
        let url = https.trim_start_matches('<').trim_end_matches('>');
        assert!(url.starts_with("https://news.example.com/unsubscribe?"));
        let q = query(url);
        assert_eq!(q["n"], "am");
        assert_eq!(q["e"], rcpt);
        assert!(
            verify_token(secret, "am", rcpt, &q["t"]),
            "{rcpt}: the unsubscribe token does not verify"
        );
        assert!(!verify_token(b"another secret", "am", rcpt, &q["t"]));
        assert_eq!(
            raw_header(&msg, "List-Unsubscribe-Post").as_deref(),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            raw_header(&msg, "Feedback-ID").as_deref(),
            Some("am-2026-11-30T0600:am:deliverytest")
        );

        // multipart/alternative: text/plain, then text/html, nothing else.
        let ct = msg.content_type().unwrap();
        assert_eq!(
            (ct.ctype(), ct.subtype()),
            ("multipart", Some("alternative"))
        );
        assert!(is_complete(dump), "{rcpt}: closing boundary");
        let parts: Vec<String> = msg.parts[1..]
            .iter()
            .map(|p| {
                let ct = p.content_type().unwrap();
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or(""))
            })
            .collect();
        assert_eq!(parts, ["text/plain", "text/html"], "{rcpt}");
        let body = normalise(&msg.body_text(0).unwrap());
        let html = normalise(&msg.body_html(0).unwrap());

        // Personalised: the reader's name and city, their unsubscribe link.
        let city = city_of(i);
        let greeting = match (name.is_empty(), city.is_empty()) {
            (true, _) => None,
            (false, true) => Some(format!("Good morning, {name}.")),
            (false, false) => Some(format!("Good morning, {name} in {city}.")),
        };
        match &greeting {
            Some(g) => {
                assert!(body.contains(g.as_str()), "{rcpt}: {g:?} not in\n{body}");
                assert!(html.contains(g.as_str()), "{rcpt}: {g:?} not in the HTML");
            }
            None => assert!(!body.contains("Good morning"), "{rcpt}: greeted"),
        }
        assert!(body.contains(&format!("This email was sent to {rcpt}.")));
        assert!(body.contains(url), "{rcpt}: unsubscribe URL in the text");
        assert!(
            html.contains(&url.replace('&', "&amp;")),
            "{rcpt}: unsubscribe URL in the HTML"
        );

        // Only the items the reader's preferences ask for, in text and HTML.
        let want = items_of(i);
        assert_eq!(items_in(&body), want, "{rcpt}");
        for id in ALL_ITEMS {
            assert_eq!(
                html.contains(&format!("id=\"{id}\"")),
                want.contains(&id),
                "{rcpt}: {id} in the HTML"
            );
        }
    }

    // The plan's counts are kept for status.
    room.run(&["status", "--edition", EDITION])
        .success()
        .stdout_has("complete")
        .stdout_has("planned: 200 recipients of 203 listed; 2 suppressed, 2 invalid rows, 1 with nothing in this edition");
    // And a rerun has nothing left to do.
    send(&room, &[]).success().stdout_has("already complete");
    assert_eq!(sink.dumps().len(), 200);
}

#[test]
fn dry_run_prints_the_plan_and_sends_nothing() {
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink);
    // No secret needed to look.
    room.run(&["send", "-n", "am", "--at", AT, "--now", NOW, "--dry-run"])
        .success()
        .stdout_has(&format!(
            "{EDITION} (2026-11-30 06:00 EST): \"Morning Brief · Senate passes the stopgap budget\""
        ))
        .stdout_has("3 recipients would get it (6 listed, 2 suppressed, 2 invalid rows, 1 with nothing in this edition), 3 renderings")
        .stdout_has("World · Trade");
    assert!(sink.dumps().is_empty(), "a dry run sent mail");
    room.run(&["status"]).success().stdout_lacks(EDITION);
    // Nothing was frozen: the real send plans afresh and delivers.
    send(&room, &[]).success().stdout_has("sent 3,");
    assert_eq!(sink.dumps().len(), 3);
}

#[test]
fn test_copies_go_only_to_the_given_addresses_and_are_not_recorded() {
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink);
    send(
        &room,
        &["--to", "editor@example.org", "--to", "ana@example.org"],
    )
    .success()
    .stdout_has("2 sent, 0 failed, via the relay 127.0.0.1:")
    .stdout_has("(not recorded)");
    let copies = sink.received();
    let rcpts: BTreeSet<&str> = copies.iter().map(|d| d.rcpt.as_str()).collect();
    assert_eq!(
        rcpts,
        BTreeSet::from(["ana@example.org", "editor@example.org"])
    );
    let mut test_ids = BTreeMap::new();
    for copy in &copies {
        let msg = parse(copy);
        let subject = msg.subject().unwrap();
        assert!(subject.starts_with("[TEST] Morning Brief · "), "{subject}");
        assert_only_known_headers(copy);
        test_ids.insert(copy.rcpt.clone(), msg.message_id().unwrap().to_owned());
    }
    room.run(&["status"]).success().stdout_lacks(EDITION);

    // The real edition still goes to every subscriber, ana included, and
    // her real message does not share the test copy's Message-ID (mailbox
    // providers drop a second message with an id they have seen).
    send(&room, &[]).success().stdout_has("sent 3,");
    let all = sink.received();
    assert_eq!(all.len(), 5);
    let real = all
        .iter()
        .filter(|d| d.rcpt == "ana@example.org")
        .map(|d| parse(d).message_id().unwrap().to_owned())
        .find(|id| id != &test_ids["ana@example.org"]);
    assert_eq!(
        real.map(|id| format!("<{id}>")),
        Some(message_id(EDITION, "ana@example.org", "news.example.com")),
        "the test copy reused the real Message-ID"
    );
}

#[test]
fn hard_reject_fails_with_the_reply_and_is_never_retried() {
    let sink = SmtpSink::start(&["-f", "RCPT"]);
    let room = newsroom(&sink);
    let run = send(&room, &[]);
    run.code(1).stdout_has("sent 0, deferred 0, failed 3");
    let status = room.run(&["status", "--edition", EDITION, "--failed"]);
    status.success();
    for who in ["ana@example.org", "bo@example.org", "cy@example.org"] {
        status.stdout_has(&format!("failed: {who}: 500 5.3.0 Error: command failed"));
    }
    for d in ledger(&room).deliveries(EDITION).unwrap() {
        assert_eq!(d.state, DeliveryState::Failed);
        assert_eq!(d.attempts, 1, "a 5xx was retried");
    }
    // A rerun against a healthy server does not retry them either.
    let healthy = SmtpSink::start(&[]);
    let room = retarget(room, &healthy);
    send(&room, &[]).success().stdout_has("already complete");
    assert!(healthy.dumps().is_empty());
    assert!(sink.dumps().is_empty());
}

#[test]
fn soft_reject_defers_with_the_reply_and_a_rerun_delivers_them_once() {
    // Eight readers: two go out first (--limit), the six others meet a
    // relay that answers RCPT with 450, the throttling reply.
    let first = SmtpSink::start(&[]);
    let room = newsroom(&first).write("subscribers/am.csv", &subscribers_csv(8));
    send(&room, &["--limit", "2"])
        .success()
        .stdout_has("sent 2, deferred 0, failed 0")
        .stdout_has("6 left pending (--limit)");
    let early: BTreeSet<String> = first.received().iter().map(|d| d.rcpt.clone()).collect();
    assert_eq!(early.len(), 2);

    let rejecting = SmtpSink::start(&["-r", "RCPT"]);
    let room = retarget(room, &rejecting);
    let run = send(&room, &[]);
    run.code(75)
        .stdout_has("sent 0, deferred 6, failed 0")
        .stdout_has("[resumed]")
        .stderr_has("relay is throttling: halving the send rate");
    assert!(rejecting.dumps().is_empty());
    room.run(&["status", "--edition", EDITION, "--failed"])
        .success()
        .stdout_has("deferred: reader002@example.org: 450 4.3.0 Error: command failed");
    let ledger = ledger(&room);
    let deferred: Vec<_> = ledger
        .deliveries(EDITION)
        .unwrap()
        .into_iter()
        .filter(|d| d.state == DeliveryState::Deferred)
        .collect();
    assert_eq!(deferred.len(), 6);
    for d in &deferred {
        assert!(!early.contains(&d.email));
        assert_eq!(d.attempts, 2, "first try and one retry (retries: 1)");
        assert_eq!(
            d.last_reply.as_deref(),
            Some("450 4.3.0 Error: command failed")
        );
    }

    let healthy = SmtpSink::start(&[]);
    let room = retarget(room, &healthy);
    send(&room, &[])
        .success()
        .stdout_has("sent 6, deferred 0, failed 0");
    let late = tally(&healthy.received());
    let want: BTreeMap<String, usize> = (0..8)
        .map(email_of)
        .filter(|e| !early.contains(e))
        .map(|e| (e, 1))
        .collect();
    assert_eq!(late, want, "exactly the deferred readers, once each");
    send(&room, &[]).success().stdout_has("already complete");
    assert_eq!(healthy.dumps().len(), 6);
}

#[test]
fn throttling_replies_slow_the_sender_down() {
    // One connection, no retries, a relay that answers every RCPT with 450.
    // Unthrottled, the ten attempts would follow each other at one pace (a
    // round trip and a ledger commit each); halving the rate at each 450
    // doubles the pause every time, so the last pause is hundreds of times
    // the first.
    let sink = SmtpSink::start(&["-r", "RCPT"]);
    let room = newsroom(&sink)
        .edit("config.yaml", "connections: 4", "connections: 1")
        .edit("config.yaml", "retries: 1", "retries: 0")
        .write("subscribers/am.csv", &subscribers_csv(10));
    send(&room, &[])
        .code(75)
        .stdout_has("sent 0, deferred 10, failed 0")
        .stderr_has("relay is throttling: halving the send rate");
    let mut times: Vec<_> = ledger(&room)
        .deliveries(EDITION)
        .unwrap()
        .into_iter()
        .map(|d| d.updated_at)
        .collect();
    times.sort();
    // Milliseconds, as the ledger keeps them.
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    let (first, last) = (gaps[0].max(1), gaps[gaps.len() - 1]);
    assert!(
        last >= 16 * first && last >= 20,
        "the pauses between throttled attempts did not grow: {gaps:?} ms"
    );
}

#[test]
fn hang_up_at_data_defers_and_a_rerun_delivers_once() {
    let sink = SmtpSink::start(&["-q", "DATA"]);
    let room = newsroom(&sink);
    send(&room, &[])
        .code(75)
        .stdout_has("sent 0, deferred 3, failed 0")
        .stdout_has("; 3 deferred to the next run");
    assert!(sink.dumps().is_empty());
    for d in ledger(&room).deliveries(EDITION).unwrap() {
        assert_eq!(d.state, DeliveryState::Deferred);
        let reply = d.last_reply.unwrap();
        assert!(reply.starts_with("connection lost"), "{reply}");
    }
    room.run(&["status", "--edition", EDITION, "--failed"])
        .success()
        .stdout_has("deferred: ana@example.org: connection lost");

    let healthy = SmtpSink::start(&[]);
    let room = retarget(room, &healthy);
    send(&room, &[]).success().stdout_has("sent 3, deferred 0");
    assert_eq!(
        tally(&healthy.received()),
        BTreeMap::from([
            ("ana@example.org".to_owned(), 1),
            ("bo@example.org".to_owned(), 1),
            ("cy@example.org".to_owned(), 1),
        ])
    );
}

/// A newsroom of `readers` sending over `connections` to a sink that holds
/// the reply to each final dot for a second (`-W .:1`), the worst moment for
/// a crash: every connection has a message the relay took that the ledger
/// cannot know about yet.
fn crash_room(connections: usize, readers: usize) -> (SmtpSink, Newsroom) {
    let slow = SmtpSink::start(&["-W", ".:1"]);
    let room = newsroom(&slow)
        .edit(
            "config.yaml",
            "connections: 4",
            &format!("connections: {connections}"),
        )
        .write("subscribers/am.csv", &subscribers_csv(readers));
    (slow, room)
}

#[test]
fn crash_mid_edition_resends_at_most_one_message_per_connection() {
    const READERS: usize = 2_000;
    const CONNECTIONS: usize = 8;
    // `-W .:1` holds the reply to the end of each message for a second: the
    // sender is killed while every connection has a message the relay took
    // but the ledger cannot know about, the worst moment. (`-w` would delay
    // the reply to DATA instead, before the message is sent.)
    let (slow, room) = crash_room(CONNECTIONS, READERS);
    let mut sender = room
        .command(&SEND)
        .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(
        Duration::from_secs(60),
        "the first messages to be recorded",
        || {
            room.path().join("state/ledger.sqlite").exists()
                && ledger(&room).counts(EDITION).unwrap().sent >= 2 * CONNECTIONS as u64
        },
    );
    sender.kill().unwrap(); // SIGKILL
    sender.wait().unwrap();
    let before = ledger(&room).counts(EDITION).unwrap();
    assert!(before.pending > 0, "killed too late to test anything");
    assert_eq!(
        ledger(&room).edition(EDITION).unwrap().unwrap().state,
        EditionState::Sending
    );

    // Rerun at once (the dead sender's lease is reclaimed) and a day later:
    // an edition already started is finished, never missed.
    let fast = SmtpSink::start(&[]);
    let room = retarget(room, &fast);
    let args = ["send", "-n", "am", "--at", AT, "--now", "2026-12-01T09:00"];
    room.run_env(&args, &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)])
        .success()
        .stdout_has("[resumed]")
        .stderr_has("took over the edition from a sender that stopped");
    let after = ledger(&room).counts(EDITION).unwrap();
    assert_eq!((after.sent, after.unsent()), (READERS as u64, 0));

    let slow_got = slow.received();
    let fast_got = fast.received();
    let counts = tally(slow_got.iter().chain(&fast_got));
    assert_eq!(counts.len(), READERS, "someone never got the edition");
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n == 2).collect();
    assert!(
        counts.values().all(|n| *n <= 2),
        "someone got it three times"
    );
    assert!(
        twice.len() <= CONNECTIONS,
        "{} readers got it twice, more than one per connection: {twice:?}",
        twice.len()
    );
    // The doubles are exactly the messages the relay took before the kill
    // that the ledger had not recorded.
    let slow_complete = slow_got.iter().filter(|d| is_complete(d)).count() as u64;
    assert_eq!(twice.len() as u64, slow_complete - before.sent);
}

/// Five kills in a row, then a run that finishes: every recipient gets the
/// edition; each crash adds at most one extra copy per connection, and
/// nobody gets more copies than there were crashes plus one.
#[test]
fn repeated_crashes_add_at_most_one_copy_per_connection_each() {
    const READERS: usize = 300;
    const CONNECTIONS: usize = 4;
    const CRASHES: usize = 5;
    let (slow, room) = crash_room(CONNECTIONS, READERS);
    for crash in 0..CRASHES {
        let before = if room.path().join("state/ledger.sqlite").exists() {
            ledger(&room).counts(EDITION).unwrap().sent
        } else {
            0
        };
        let mut sender = room
            .command(&SEND)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            Duration::from_secs(60),
            "messages of this run to be recorded",
            || {
                room.path().join("state/ledger.sqlite").exists()
                    && ledger(&room).counts(EDITION).unwrap().sent >= before + CONNECTIONS as u64
            },
        );
        sender.kill().unwrap(); // SIGKILL
        sender.wait().unwrap();
        assert!(
            ledger(&room).counts(EDITION).unwrap().pending > 0,
            "crash {crash} came too late to test anything"
        );
    }
    let fast = SmtpSink::start(&[]);
    let room = retarget(room, &fast);
    send(&room, &[]).success().stdout_has("[resumed]");
    let counts = tally(slow.received().iter().chain(&fast.received()));
    assert_eq!(counts.len(), READERS, "someone never got the edition");
    let extra: usize = counts.values().map(|n| n - 1).sum();
    assert!(
        extra <= CRASHES * CONNECTIONS,
        "{extra} extra copies after {CRASHES} crashes of {CONNECTIONS} connections"
    );
    let most = counts.values().max().copied().unwrap_or(0);
    assert!(most <= CRASHES + 1, "someone got {most} copies");
}

#[test]
fn two_concurrent_senders_share_an_edition_and_send_each_message_once() {
    // A second per message (the DATA reply is held) keeps the first sender
    // busy for a few seconds.
    let sink = SmtpSink::start(&["-w", "1"]);
    let room = newsroom(&sink).write("subscribers/am.csv", &subscribers_csv(12));
    let spawn = || {
        room.command(&SEND)
            .env("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let runs: Vec<crate::support::Run> = [a, b]
        .into_iter()
        .map(|c| crate::support::Run::from(c.wait_with_output().unwrap()))
        .collect();
    let codes: Vec<i32> = runs.iter().map(|r| r.code).collect();
    assert_eq!(codes, [0, 0], "both share the edition");
    // Each sent what it claimed; together, everyone once.
    let sent: Vec<usize> = (runs.iter())
        .map(|r| {
            let line = r
                .stdout
                .lines()
                .find(|l| l.contains(": sent "))
                .unwrap_or("");
            let n = line
                .split(": sent ")
                .nth(1)
                .and_then(|s| s.split(',').next());
            n.and_then(|n| n.trim().parse().ok()).unwrap_or(0)
        })
        .collect();
    assert_eq!(sent.iter().sum::<usize>(), 12, "{sent:?}");
    let counts = tally(&sink.received());
    assert_eq!(counts.len(), 12);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[test]
fn header_injection_never_adds_a_header() {
    // Line breaks in item titles (CR/LF and the Unicode separator), and in a
    // subscriber's name: the items are refused and hold the edition back
    // (a story is never silently dropped), the rows are refused, and once
    // the items are fixed the rest goes out with exactly the headers it
    // should have.
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink);
    let (budget, chips) = (
        room.read("content/national/budget.md"),
        room.read("content/national/chips.md"),
    );
    let room = room
        .edit(
            "content/national/budget.md",
            "title: Senate passes the stopgap budget",
            r#"title: "Senate passes\r\nBcc: victim@example.org""#,
        )
        .edit(
            "content/national/chips.md",
            "title: Chip plant breaks ground in Ohio",
            r#"title: "Chip plant\u2028Bcc: victim@example.org""#,
        )
        .write(
            "subscribers/am.csv",
            "email,name,regions,topics,city\n\
             ana@example.org,Ana,,,\n\
             eve@example.org,\"Eve\r\nBcc: victim@example.org\",,,\n\
             bo@example.org,\"Bo\u{2028}Bcc: victim@example.org\",,,\n\
             cy@example.org,Cy,,,\n",
        );
    send(&room, &[])
        .code(1)
        .stdout_has("not sent: 2 items that may belong to this edition have errors")
        .stderr_has("content/national/budget.md:2:8: error: `title` contains a line break")
        .stderr_has("content/national/chips.md:2:8: error: `title` contains a line break");
    assert!(sink.received().is_empty());
    let room = room
        .write("content/national/budget.md", &budget)
        .write("content/national/chips.md", &chips);
    let run = send(&room, &[]);
    run.success().stdout_has("sent 2, deferred 0, failed 0");
    assert_eq!(summary_count(&run.stdout, "invalid"), 2);
    let got = sink.received();
    let rcpts: BTreeSet<&str> = got.iter().map(|d| d.rcpt.as_str()).collect();
    assert_eq!(rcpts, BTreeSet::from(["ana@example.org", "cy@example.org"]));
    for dump in &got {
        assert_only_known_headers(dump);
        let text = String::from_utf8_lossy(&dump.raw);
        assert!(!text.contains("victim@"), "{text}");
        assert_eq!(
            items_in(&normalise(&parse(dump).body_text(0).unwrap())),
            ALL_ITEMS
        );
    }

    // Line breaks in config values that reach headers: the send refuses to
    // start, nothing is frozen, nothing sent.
    let cases = [
        (
            "name: Morning Brief",
            r#"name: "Morning\r\nBcc: victim@example.org""#,
        ),
        (
            r#"from: "Morning Brief <am@news.example.com>""#,
            r#"from: "Morning Brief <am@news.example.com>\nBcc: victim@example.org""#,
        ),
        (
            r#"reply_to: "Newsdesk <desk@news.example.com>""#,
            r#"reply_to: "Newsdesk <desk@news.example.com>\u2028Bcc: victim@example.org""#,
        ),
        (
            r#"subject: "{{ newsletter.name }} · {{ edition.lead.title }}""#,
            r#"subject: "{{ newsletter.name }}\r\nBcc: victim@example.org""#,
        ),
        (
            "mailto: unsubscribe@news.example.com",
            r#"mailto: "unsubscribe@news.example.com\r\nBcc: victim@example.org""#,
        ),
        (
            "feedback_id: deliverytest",
            r#"feedback_id: "deliverytest\r\nBcc: victim@example.org""#,
        ),
    ];
    for (from, to) in cases {
        let sink = SmtpSink::start(&[]);
        let room = newsroom(&sink).edit("config.yaml", from, to);
        let run = send(&room, &[]);
        assert_eq!(run.code, 1, "{to}: {}\n{}", run.stdout, run.stderr);
        let key = to.split(':').next().unwrap();
        assert!(
            run.stderr.contains("error: ") && run.stderr.contains(&format!("{key}: \"")),
            "{to}: no error pointing at it in config.yaml: {}",
            run.stderr
        );
        assert!(sink.dumps().is_empty(), "{to}: sent anyway");
        assert!(
            !room.path().join("state/ledger.sqlite").exists()
                || ledger(&room).edition(EDITION).unwrap().is_none(),
            "{to}: the edition was frozen"
        );
    }
}

/// Signs with the test key `key` and checks every received message with
/// mail-auth against the matching DNS record.
async fn dkim_round_trip(key: &str, algorithm: &str, k: &str, public: &str) {
    let sink = SmtpSink::start(&[]);
    let pem = std::fs::read_to_string(crate::support::dkim::mail_fixture(key)).unwrap();
    let room = newsroom(&sink).write("secrets/dkim.pem", &pem).edit(
        "config.yaml",
        "  feedback_id: deliverytest\n",
        &format!(
            "  feedback_id: deliverytest\n  dkim: {{ domain: news.example.com, selector: brief, key_file: secrets/dkim.pem, algorithm: {algorithm} }}\n"
        ),
    );
    send(&room, &[]).success().stdout_has("sent 3,");
    let record = format!(
        "v=DKIM1; k={k}; p={}",
        std::fs::read_to_string(crate::support::dkim::mail_fixture(public))
            .unwrap()
            .trim()
    );
    let got = sink.received();
    assert_eq!(got.len(), 3);
    for dump in &got {
        // Verify the message as the relay received it: without smtp-sink's
        // records in front, and with the CRLF line ends its dump turns into
        // LF (the blank line it adds at the end is no part of what DKIM signs).
        let text = String::from_utf8_lossy(&dump.raw);
        assert!(text.contains("\nDKIM-Signature:"), "not signed");
        // The signature is the message's first header, as signers prepend it.
        let start = text.find("\nDKIM-Signature:").unwrap() + 1;
        let message = text[start..].replace('\n', "\r\n");
        let message = message.as_bytes();
        let signature = raw_header(&parse(dump), "DKIM-Signature").unwrap();
        assert!(signature.contains(&format!("a={algorithm}")), "{signature}");
        assert!(signature.contains("d=news.example.com"), "{signature}");
        let signed: String = signature
            .split("h=")
            .nth(1)
            .and_then(|s| s.split(';').next())
            .unwrap()
            .split_whitespace()
            .collect();
        for header in ["List-Unsubscribe", "List-Unsubscribe-Post", "List-Id"] {
            assert!(
                signed.split(':').any(|h| h.eq_ignore_ascii_case(header)),
                "{header} not signed: {signed}"
            );
        }
        assert_eq!(
            crate::support::dkim::verify_dkim(message, "brief", &record).await,
            [mail_auth::DkimResult::Pass],
            "{} ({algorithm})",
            dump.rcpt
        );
        // Sanity: the verifier does notice a change.
        let tampered =
            String::from_utf8_lossy(message).replace("This email was sent to", "This was sent to");
        assert_ne!(tampered.as_bytes(), message);
        assert_ne!(
            crate::support::dkim::verify_dkim(tampered.as_bytes(), "brief", &record).await,
            [mail_auth::DkimResult::Pass]
        );
    }
}

#[tokio::test]
async fn dkim_signatures_of_sent_messages_verify_independently() {
    dkim_round_trip(
        "dkim-ed25519.pem",
        "ed25519-sha256",
        "ed25519",
        "dkim-ed25519.p.txt",
    )
    .await;
    dkim_round_trip("dkim-rsa.pem", "rsa-sha256", "rsa", "dkim-rsa.p.txt").await;
}

#[test]
fn an_edition_past_max_delay_is_recorded_missed_and_never_sent() {
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink);
    // 2h 1m after the slot; max_delay defaults to 2h.
    let late = ["send", "-n", "am", "--at", AT, "--now", "2026-11-30T08:01"];
    room.run_env(&late, &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)])
        .code(1)
        .stdout_has(&format!("{EDITION}: missed: slot 2026-11-30 06:00 EST was 2h 1m late when the sender ran, max_delay is 2h; not sent"));
    room.run(&["status"])
        .success()
        .stdout_has("missed")
        .stdout_has("2h 1m late");
    // Once missed, never sent, even by a run that pretends to be on time.
    send(&room, &[])
        .success()
        .stdout_has("missed earlier; nothing to do");
    assert!(sink.dumps().is_empty());

    // max_delay is per newsletter.
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink).edit(
        "config.yaml",
        "    group_by: [region, topic]\n",
        "    group_by: [region, topic]\n    max_delay: 30m\n",
    );
    let args = ["send", "-n", "am", "--at", AT, "--now", "2026-11-30T06:31"];
    room.run_env(&args, &[("BRIEFING_UNSUBSCRIBE_SECRET", SECRET)])
        .code(1)
        .stdout_has("missed");
    assert!(sink.dumps().is_empty());
}

#[test]
fn smtp_refuses_to_start_without_the_unsubscribe_secret() {
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink);
    room.run(&SEND)
        .code(1)
        .stderr_has("refusing to send over SMTP without an unsubscribe secret: set the environment variable BRIEFING_UNSUBSCRIBE_SECRET");
    // The published development secret is no secret either.
    let dev = String::from_utf8(DEV_SECRET.to_vec()).unwrap();
    room.run_env(&SEND, &[("BRIEFING_UNSUBSCRIBE_SECRET", &dev)])
        .code(1)
        .stderr_has("development secret");
    assert!(sink.dumps().is_empty());
    assert!(
        ledger(&room).edition(EDITION).unwrap().is_none(),
        "refused, yet the edition was frozen"
    );
    // Once the secret is there, the edition goes out on time.
    send(&room, &[]).success().stdout_has("sent 3,");
}

#[test]
fn smtp_refuses_to_start_without_a_postal_address_unless_told_none_is_needed() {
    let sink = SmtpSink::start(&[]);
    let address = "  postal_address: 2 Delivery Road, Testville, ST 00000\n";
    let room = newsroom(&sink).edit("config.yaml", address, "");
    send(&room, &[]).code(1).stderr_has(
        "refusing to send over SMTP without a postal address: commercial email must show the sender's (the US CAN-SPAM Act); set `site.postal_address` in",
    );
    assert!(sink.dumps().is_empty());
    assert!(
        ledger(&room).edition(EDITION).unwrap().is_none(),
        "refused, yet the edition was frozen"
    );
    // Said explicitly, `none` lets it go, and no footer shows an address.
    let room = room.edit(
        "config.yaml",
        "  timezone: America/New_York\n",
        "  timezone: America/New_York\n  postal_address: none\n",
    );
    send(&room, &[]).success().stdout_has("sent 3,");
}

#[test]
fn the_outbox_works_without_a_secret_using_the_marked_development_one() {
    let room =
        Newsroom::fixture("delivery").edit("config.yaml", "transport: smtp", "transport: outbox");
    room.run(&SEND)
        .success()
        .stdout_has("sent 3,")
        .stderr_has("unsubscribe links use the development secret");
    let dir = room.path().join("out/outbox/am/2026-11-30T0600");
    let files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3);
    for f in files {
        let raw = std::fs::read(&f).unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        let to = msg
            .to()
            .and_then(|a| a.first())
            .and_then(|a| a.address())
            .unwrap()
            .to_owned();
        let unsubscribe = raw_header(&msg, "List-Unsubscribe").unwrap();
        let url = unsubscribe
            .split('>')
            .next()
            .unwrap()
            .trim_start_matches('<');
        let q = query(url);
        assert!(verify_token(DEV_SECRET, "am", &to, &q["t"]));
    }
}

#[test]
fn plain_text_smtp_to_a_remote_host_is_refused() {
    let room =
        Newsroom::fixture("delivery").edit("config.yaml", NO_SINK, "smtp://192.0.2.10:25?tls=none");
    send(&room, &[])
        .code(1)
        .stderr_has("refusing plain-text SMTP to 192.0.2.10");
    assert!(ledger(&room).edition(EDITION).unwrap().is_none());
}

#[test]
fn the_password_comes_from_the_named_variable_and_is_never_logged() {
    const PASSWORD: &str = "pw-Zq9-never-in-a-log";
    let sink = SmtpSink::start(&[]);
    let room = newsroom(&sink).edit(
        "config.yaml",
        "    connections: 4\n",
        "    connections: 4\n    username: briefing\n    password_env: BRIEFING_TEST_SMTP_PASSWORD\n",
    );
    // Without the variable: refused before anything is frozen or sent.
    send(&room, &[])
        .code(1)
        .stderr_has("BRIEFING_TEST_SMTP_PASSWORD");
    assert!(ledger(&room).edition(EDITION).unwrap().is_none());
    assert!(sink.dumps().is_empty());

    let args: Vec<&str> = ["-vv"].iter().chain(&SEND).copied().collect();
    let run = room.run_env(
        &args,
        &[
            ("BRIEFING_UNSUBSCRIBE_SECRET", SECRET),
            ("BRIEFING_TEST_SMTP_PASSWORD", PASSWORD),
        ],
    );
    run.success().stdout_has("sent 3,");
    assert!(!run.stdout.contains(PASSWORD) && !run.stderr.contains(PASSWORD));
    for dump in sink.received() {
        assert!(!String::from_utf8_lossy(&dump.raw).contains(PASSWORD));
    }
}

// ---------------------------------------------------------------------------
// Several relays: `delivery.smtp` as a list.

/// The fixture newsroom sending through these relays (`url`, `name`,
/// `weight`), each with `connections` sessions.
fn relays_newsroom(relays: &[(String, &str, u32)], connections: usize) -> Newsroom {
    let list: String = (relays.iter())
        .map(|(url, name, weight)| {
            format!(
                "    - {{ url: \"{url}\", name: {name}, weight: {weight}, connections: {connections}, retries: 1, timeout: 5s }}\n"
            )
        })
        .collect();
    Newsroom::fixture("delivery").edit(
        "config.yaml",
        "  smtp:\n    url: smtp://127.0.0.1:9?tls=none    # the tests point this at their smtp-sink\n    connections: 4\n    retries: 1\n    timeout: 10s\n",
        &format!("  smtp:\n{list}"),
    )
}

#[test]
fn a_relay_that_refuses_connections_is_backed_off_and_the_other_carries_everything() {
    let live = SmtpSink::start(&[]);
    let dead = format!(
        "smtp://127.0.0.1:{}?tls=none",
        crate::support::server::free_port()
    );
    // The refusing relay first, and of greater weight: it would be given
    // most of the mail if it took any.
    let room = relays_newsroom(&[(dead, "dead", 3), (live.url(), "live", 1)], 2)
        .write("subscribers/am.csv", &subscribers_csv(120));
    send(&room, &[])
        .success()
        .stdout_has("sent 120, deferred 0, failed 0")
        .stderr_has("cannot open an SMTP session");
    let counts = tally(&live.received());
    assert_eq!(counts.len(), 120);
    assert!(counts.values().all(|n| *n == 1));
    let status = room.run(&["status"]);
    status
        .success()
        .stdout_has("  relays: dead 0 sent, ")
        .stdout_has(" refused connections; live 120 sent");
}

#[test]
fn two_relays_that_keep_up_both_carry_the_mail_once_each() {
    let (a, b) = (SmtpSink::start(&[]), SmtpSink::start(&[]));
    let room = relays_newsroom(&[(a.url(), "a", 3), (b.url(), "b", 1)], 2)
        .write("subscribers/am.csv", &subscribers_csv(400));
    send(&room, &[])
        .success()
        .stdout_has("sent 400, deferred 0, failed 0");
    let (to_a, to_b) = (tally(&a.received()), tally(&b.received()));
    assert_eq!(to_a.len() + to_b.len(), 400);
    assert!(to_a.keys().all(|k| !to_b.contains_key(k)), "one copy each");
    // The weights shape the split only when sessions of both are free at
    // once; busy relays each carry what their sessions can.
    assert!(
        !to_a.is_empty() && !to_b.is_empty(),
        "a took {}, b {}",
        to_a.len(),
        to_b.len()
    );
    let status = room.run(&["status"]);
    status.success().stdout_has(&format!(
        "  relays: a {} sent; b {} sent",
        to_a.len(),
        to_b.len()
    ));
}
