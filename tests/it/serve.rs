//! `briefing serve` over real HTTP: the binary on a free port over a copy
//! of the sample newsroom, one-click requests built from the
//! `List-Unsubscribe` headers of messages that `send` really wrote, the
//! real SQLite ledger read back, and the next edition sent to see who it
//! leaves out.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use briefing::ledger::{Ledger, ReturnKind, SuppressionReason, SuppressionScope};
use mail_parser::MessageParser;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::support::server::{Server, free_port};
use crate::support::{Newsroom, wait_until};

const SECRET_ENV: &str = "BRIEFING_UNSUBSCRIBE_SECRET";
const SECRET: &str = "serve-test-secret-0123456789";
const SITE: &str = "https://news.example.com";
/// The first edition and the one after it.
const FIRST: (&str, &str, &str) = ("2026-11-30T08:00", "2026-11-30T06:05", "2026-11-30T0600");
const NEXT: (&str, &str, &str) = ("2026-12-01T08:00", "2026-12-01T06:05", "2026-12-01T0600");
const GMAIL_UA: &str = "Mozilla/5.0 (compatible; Google-Unsubscribe)";

/// The sample newsroom, with the morning brief sent on the next weekday
/// too (it has fewer items then than the sample's `min_items`).
fn newsroom() -> Newsroom {
    Newsroom::fixture(".").edit("config.yaml", "min_items: 3", "min_items: 1")
}

fn send(room: &Newsroom, (at, now, _): (&str, &str, &str), secret: &str) {
    room.run_env(
        &["send", "-n", "am", "--at", at, "--now", now],
        &[(SECRET_ENV, secret)],
    )
    .success();
}

fn serve(room: &Newsroom, secrets: &str) -> Server {
    Server::start(room.path(), &["serve"], &[(SECRET_ENV, secrets)])
}

fn ledger(room: &Newsroom) -> Ledger {
    Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap()
}

/// Each recipient's address and the path and query of the one-click URL
/// in their message's `List-Unsubscribe` header.
fn links(room: &Newsroom, (_, _, slot): (&str, &str, &str)) -> BTreeMap<String, String> {
    let dir = room.path().join("out/outbox/am").join(slot);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let raw = std::fs::read(entry.unwrap().path()).unwrap();
        let msg = MessageParser::default().parse(&raw).unwrap();
        let to = msg.to().and_then(|a| a.first()).unwrap();
        let header = msg.header_raw("List-Unsubscribe").unwrap();
        assert_eq!(
            msg.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );
        let url = header
            .split('<')
            .filter_map(|p| p.split_once('>').map(|(u, _)| u))
            .find(|u| u.starts_with("https://"))
            .unwrap();
        let path = url.strip_prefix(SITE).unwrap();
        assert!(path.starts_with("/unsubscribe?n=am&e="), "{url}");
        out.insert(to.address().unwrap().to_owned(), path.to_owned());
    }
    out
}

/// Who got an edition: the `To` of every message in its outbox folder.
fn recipients(room: &Newsroom, slot: (&str, &str, &str)) -> BTreeSet<String> {
    links(room, slot).into_keys().collect()
}

fn multipart(boundary: &str) -> Vec<u8> {
    format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
    )
    .into_bytes()
}

/// The three bodies RFC 8058 clients send: multipart/form-data (Gmail),
/// urlencoded, and nothing. Retried after a reset, as mail providers do.
fn one_click(server: &Server, path: &str, form: usize) -> (u16, String) {
    let ua = ("User-Agent", GMAIL_UA);
    match form % 3 {
        0 => server.request_retrying_resets(
            "POST",
            path,
            &[
                ua,
                ("Content-Type", "multipart/form-data; boundary=xYzZY42"),
            ],
            &multipart("xYzZY42"),
        ),
        1 => server.request_retrying_resets(
            "POST",
            path,
            &[ua, ("Content-Type", "application/x-www-form-urlencoded")],
            b"List-Unsubscribe=One-Click",
        ),
        _ => server.request_retrying_resets("POST", path, &[ua], b""),
    }
}

/// Checks what RFC 8058 asks of the answer: a 200 that neither redirects
/// nor sets a cookie.
fn assert_done(status: u16, response: &str) {
    assert_eq!(status, 200, "{response}");
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(!head.contains("\r\nlocation:"), "{head}");
    assert!(!head.contains("\r\nset-cookie:"), "{head}");
    assert!(head.contains("referrer-policy: no-referrer"), "{head}");
    assert!(
        response.contains("data-state=\"unsubscribed\""),
        "{response}"
    );
}

#[test]
fn one_click_posts_from_real_headers_unsubscribe_and_the_next_edition_leaves_them_out() {
    let room = newsroom();
    let control = newsroom();
    send(&room, FIRST, SECRET);
    send(&control, FIRST, SECRET);
    let links = links(&room, FIRST);
    assert!(links.len() > 10, "{links:?}");
    let server = serve(&room, SECRET);
    let leaving: Vec<(&String, &String)> = links.iter().take(3).collect();
    for (form, (_, path)) in leaving.iter().enumerate() {
        let (status, res) = one_click(&server, path, form);
        assert_done(status, &res);
    }
    let gone: BTreeSet<String> = leaving
        .iter()
        .map(|(e, _)| e.to_ascii_lowercase())
        .collect();
    let l = ledger(&room);
    let recorded = l.suppressions(None, Some("am")).unwrap();
    let from_serve: Vec<_> = recorded
        .iter()
        .filter(|s| s.reason == SuppressionReason::OneClick)
        .collect();
    assert_eq!(
        from_serve
            .iter()
            .map(|s| s.address.clone())
            .collect::<BTreeSet<_>>(),
        gone
    );
    for s in &from_serve {
        assert_eq!(s.scope, SuppressionScope::Newsletter("am".into()));
        assert_eq!(s.evidence["user_agent"], GMAIL_UA, "{:?}", s.evidence);
        assert_eq!(s.evidence["via"], "one-click");
        let events = l.events_about(&s.address).unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].kind, ReturnKind::Unsubscribe);
        assert_eq!(events[0].newsletter.as_deref(), Some("am"));
    }

    // Idempotent: the same POSTs again answer 200 and record nothing new.
    for (form, (_, path)) in leaving.iter().enumerate() {
        let (status, res) = one_click(&server, path, form + 1);
        assert_done(status, &res);
    }
    assert_eq!(l.suppressions(None, Some("am")).unwrap(), recorded);
    for a in &gone {
        assert_eq!(l.events_about(a).unwrap().len(), 1);
    }

    // The next edition leaves exactly those three out.
    send(&room, NEXT, SECRET);
    send(&control, NEXT, SECRET);
    let expected: BTreeSet<String> = recipients(&control, NEXT)
        .into_iter()
        .filter(|a| !gone.contains(&a.to_ascii_lowercase()))
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(recipients(&room, NEXT), expected);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn opening_the_link_shows_a_button_and_unsubscribes_nobody() {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    let server = serve(&room, SECRET);
    let (email, path) = links(&room, FIRST).into_iter().next().unwrap();
    for method in ["GET", "HEAD"] {
        let (status, res) =
            server.request(method, &path, &[("User-Agent", "LinkScanner/1.0")], b"");
        assert_eq!(status, 200, "{res}");
    }
    let (_, page) = server.get(&path);
    assert!(page.contains("data-state=\"confirm\""), "{page}");
    assert!(page.contains("<form method=\"post\""), "{page}");
    assert!(page.contains("value=\"unsubscribe\""), "{page}");
    assert!(page.contains("Morning Brief"), "{page}");
    assert!(page.contains("The Daily Brief"), "{page}");
    let prefs = path.replacen("/unsubscribe?", "/preferences?", 1);
    let (status, page) = server.get(&prefs);
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-state=\"preferences\""), "{page}");
    let l = ledger(&room);
    assert!(!l.is_suppressed(&email, "am").unwrap());
    assert!(l.events_about(&email).unwrap().is_empty());

    // The page's own button: a POST that is recorded as a link unsubscribe,
    // and the page after it offers the undo, which lifts it again.
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, res) = server.request("POST", &path, &[form], b"action=unsubscribe");
    assert_done(status, &res);
    assert!(res.contains("value=\"resubscribe\""), "{res}");
    let s = l.suppressions(None, Some("am")).unwrap();
    let mine: Vec<_> = s
        .iter()
        .filter(|s| s.address == email.to_ascii_lowercase())
        .collect();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0].reason, SuppressionReason::Link);
    let (status, res) = server.request("POST", &path, &[form], b"action=resubscribe");
    assert_eq!(status, 200, "{res}");
    assert!(res.contains("data-state=\"subscribed\""), "{res}");
    assert!(!l.is_suppressed(&email, "am").unwrap());
    let kinds: Vec<_> = l
        .events_about(&email)
        .unwrap()
        .iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [ReturnKind::Unsubscribe, ReturnKind::Resubscribe]);
}

#[test]
fn forged_tampered_truncated_and_stale_tokens_record_nothing() {
    let room = newsroom();
    send(&room, FIRST, "the-previous-secret-long-retired");
    let stale = links(&room, FIRST);
    let (victim, stale_path) = stale.iter().next().unwrap();
    let good = briefing::mail::token::unsubscribe_url(
        &format!("{SITE}/unsubscribe"),
        "am",
        victim,
        SECRET.as_bytes(),
    )
    .unwrap();
    let good = good.strip_prefix(SITE).unwrap().to_owned();
    let token = good.rsplit_once("t=").unwrap().1.to_owned();
    let other = stale.keys().nth(1).unwrap();
    let enc = |a: &str| a.replace('@', "%40").replace('+', "%2B");
    let flipped = format!(
        "{}{}",
        if token.starts_with('A') { "B" } else { "A" },
        &token[1..]
    );
    let server = serve(&room, SECRET);
    let cases: Vec<(String, u16)> = vec![
        (stale_path.clone(), 403),
        (good.replace(&enc(victim), &enc(other)), 403),
        (good.replace("n=am", "n=pm"), 403),
        (good.replace(&token, &flipped), 403),
        (good.replace(&token, &token[..20]), 400),
        (good.replace(&format!("&t={token}"), ""), 400),
        (good.replace("n=am&", ""), 400),
        (format!("{good}&t={token}"), 400),
        ("/unsubscribe".to_string(), 400),
    ];
    for (path, want) in &cases {
        for (form, method) in ["POST", "POST", "POST", "GET"].iter().enumerate() {
            let (status, res) = match *method {
                "GET" => server.get(path),
                _ => one_click(&server, path, form),
            };
            assert_eq!(status, *want, "{method} {path}: {res}");
            assert!(!res.contains("data-state=\"unsubscribed\""), "{res}");
        }
    }
    // The good link still works, so the refusals were about the links.
    let (status, res) = one_click(&server, &good, 0);
    assert_done(status, &res);
    let l = ledger(&room);
    let all = l.suppressions(None, None).unwrap();
    assert_eq!(
        all.iter().map(|s| s.address.as_str()).collect::<Vec<_>>(),
        [victim.to_ascii_lowercase()],
        "only the good link recorded anything"
    );
    assert!(l.events_about(other).unwrap().is_empty());
}

#[test]
fn a_token_signed_with_the_previous_secret_still_works_during_a_rotation() {
    let room = newsroom();
    send(&room, FIRST, "the-previous-secret");
    let old = links(&room, FIRST);
    // Rotated: the current secret first, the previous one after it.
    let server = serve(&room, &format!("{SECRET} the-previous-secret"));
    let (email, path) = old.iter().next().unwrap();
    let (status, res) = one_click(&server, path, 0);
    assert_done(status, &res);
    assert!(ledger(&room).is_suppressed(email, "am").unwrap());
    // The pages link onwards with the same (old) token, which verifies too.
    let prefs = path.replacen("/unsubscribe?", "/preferences?", 1);
    assert_eq!(server.get(&prefs).0, 200);
    drop(server);
    // Once the previous secret is dropped, its links stop working.
    let server = serve(&room, SECRET);
    let (_, path) = old.iter().nth(1).unwrap();
    assert_eq!(one_click(&server, path, 1).0, 403);
}

#[test]
fn five_hundred_concurrent_one_clicks_are_each_recorded_exactly_once() {
    let mut csv = String::from("email,name\n");
    for i in 0..500 {
        csv.push_str(&format!("reader{i:03}@example.org,Reader {i}\n"));
    }
    let room = newsroom().write("subscribers/am.csv", &csv);
    send(&room, FIRST, SECRET);
    let links = links(&room, FIRST);
    assert_eq!(links.len(), 500);
    let server = serve(&room, SECRET);
    let start = std::sync::Barrier::new(links.len());
    let statuses: Vec<(u16, u16)> = std::thread::scope(|s| {
        let handles: Vec<_> = links
            .values()
            .enumerate()
            .map(|(i, path)| {
                let (server, start) = (&server, &start);
                s.spawn(move || {
                    start.wait();
                    // Each twice: the repeat must record nothing new.
                    let first = one_click(server, path, i).0;
                    let again = one_click(server, path, i + 1).0;
                    (first, again)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(statuses.iter().all(|&s| s == (200, 200)), "{statuses:?}");
    let l = ledger(&room);
    let recorded = l.suppressions(None, Some("am")).unwrap();
    let addresses: BTreeSet<String> = recorded.iter().map(|s| s.address.clone()).collect();
    let expected: BTreeSet<String> = links.keys().map(|a| a.to_ascii_lowercase()).collect();
    assert_eq!(recorded.len(), 500);
    assert_eq!(addresses, expected);
    assert_eq!(l.return_counts(None, Some("am")).unwrap().unsubscribes, 500);
    for a in expected.iter().step_by(50) {
        assert_eq!(l.events_about(a).unwrap().len(), 1, "{a}");
    }
}

#[test]
fn an_unsubscribe_answered_200_survives_sigkill() {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    let (email, path) = links(&room, FIRST).into_iter().next().unwrap();
    let server = serve(&room, SECRET);
    let (status, res) = one_click(&server, &path, 0);
    assert_done(status, &res);
    // Dropping the server SIGKILLs it at once (and reaps it): no shutdown,
    // no flush, nothing after the answer gets to run.
    drop(server);
    let server = serve(&room, SECRET);
    let (status, page) = server.get(&path);
    assert_eq!(status, 200);
    assert!(page.contains("data-state=\"unsubscribed\""), "{page}");
    assert!(ledger(&room).is_suppressed(&email, "am").unwrap());
}

#[test]
fn the_preferences_page_saves_sections_and_unsubscribes_from_all() {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    let (email, path) = links(&room, FIRST).into_iter().next().unwrap();
    let prefs = path.replacen("/unsubscribe?", "/preferences?", 1);
    let server = serve(&room, SECRET);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, page) = server.request(
        "POST",
        &prefs,
        &[form],
        b"action=save&region=world&topic=trade&topic=economy",
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("From the next edition you get only World · Economy, Trade."),
        "{page}"
    );
    let l = ledger(&room);
    let p = l.preferences_of(&email, "am").unwrap().unwrap();
    assert_eq!(
        (p.regions, p.topics),
        (
            vec!["world".to_string()],
            vec!["economy".to_string(), "trade".to_string()]
        )
    );
    // A choice of nothing is refused and changes nothing.
    let (status, page) = server.request("POST", &prefs, &[form], b"action=save&region=world");
    assert_eq!(status, 400, "{page}");
    assert!(page.contains("Choose at least one topic"), "{page}");
    assert_eq!(
        l.preferences_of(&email, "am")
            .unwrap()
            .unwrap()
            .topics
            .len(),
        2
    );

    let (status, page) = server.request("POST", &prefs, &[form], b"action=unsubscribe-all");
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("value=\"resubscribe-all\""), "{page}");
    for n in ["am", "pm", "markets"] {
        assert!(l.is_suppressed(&email, n).unwrap(), "{n}");
    }
    let all = l.suppressions_of(&email).unwrap();
    assert_eq!(all.len(), 1);
    // Counted against the newsletter whose page it came from.
    assert_eq!(l.return_counts(None, Some("am")).unwrap().unsubscribes, 1);
    assert_eq!(
        (all[0].scope.clone(), all[0].reason),
        (SuppressionScope::All, SuppressionReason::Link)
    );
    // The unsubscribe link of this newsletter now says so, and offers the
    // preferences page to come back.
    let (_, page) = server.get(&path);
    assert!(page.contains("data-state=\"unsubscribed-all\""), "{page}");
    let (status, page) = server.request("POST", &prefs, &[form], b"action=resubscribe-all");
    assert_eq!(status, 200, "{page}");
    assert!(!l.is_suppressed(&email, "pm").unwrap());
}

#[test]
fn limits_fixed_routes_and_headers_hold() {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    let (_, path) = links(&room, FIRST).into_iter().next().unwrap();
    let server = serve(&room, SECRET);
    let (status, health) = server.get("/healthz");
    assert_eq!(status, 200, "{health}");
    assert!(health.ends_with("ok\n"), "{health}");
    // A body past the limit is refused, and nothing is recorded.
    let big = format!("List-Unsubscribe=One-Click&pad={}", "x".repeat(64 * 1024));
    let (status, _) = server.request(
        "POST",
        &path,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        big.as_bytes(),
    );
    assert_eq!(status, 413);
    // A head past the limit.
    let cookie = "a".repeat(40 * 1024);
    let (status, _) = server.request("GET", &path, &[("Cookie", &cookie)], b"");
    assert_eq!(status, 431);
    // Only the fixed routes; no file is ever served.
    for p in [
        "/",
        "/config.yaml",
        "/../config.yaml",
        "/unsubscribe/../config.yaml",
        "/%2e%2e/config.yaml",
        "/.briefing/ledger.sqlite",
        "/unsubscribe/",
        "/preferences/x",
        "/subscribers/am.csv",
    ] {
        let (status, body) = server.get(p);
        assert_eq!(status, 404, "{p}: {body}");
        assert!(
            !body.contains("newsletters:") && !body.contains("SQLite"),
            "{p}"
        );
    }
    assert_eq!(server.request("PUT", &path, &[], b"").0, 405);
    assert_eq!(server.request("DELETE", "/healthz", &[], b"").0, 405);
    assert!(ledger(&room).suppressions(None, None).unwrap().is_empty());
    // A client that opens a connection and sends nothing is let go.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let read = idle.read_to_end(&mut buf);
    assert!(read.is_ok(), "the server closed the connection: {read:?}");
}

/// The first edition sent and its archive written, with `serve --archive`
/// running over them.
fn sent_and_archived() -> (Newsroom, Server) {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    room.run(&["archive"]).success();
    let server = Server::start(
        room.path(),
        &["serve", "--archive"],
        &[(SECRET_ENV, SECRET)],
    );
    (room, server)
}

#[test]
fn any_request_is_answered_without_a_5xx_and_records_nothing() {
    let (room, server) = sent_and_archived();
    let suppressed_before = ledger(&room).suppressions(None, None).unwrap().len();
    let token = briefing::mail::token::unsubscribe_token(b"not-the-secret", "am", "a@example.com");
    let paths = prop_oneof![
        Just("/unsubscribe".to_string()),
        Just("/preferences".to_string()),
        Just("/subscribe".to_string()),
        Just("/subscribe/confirm".to_string()),
        "/[a-z%./]{0,20}",
        "/newsletters/[a-z0-9%./-]{0,30}",
    ];
    let queries = prop_oneof![
        Just(format!("n=am&e=a%40example.com&t={token}")),
        "[a-zA-Z0-9=&%+@._-]{0,80}",
        "\\PC{0,40}".prop_map(|s| percent_encoding::utf8_percent_encode(
            &s,
            percent_encoding::NON_ALPHANUMERIC
        )
        .to_string()),
    ];
    let types = prop_oneof![
        Just(None),
        Just(Some("application/x-www-form-urlencoded".to_string())),
        Just(Some("multipart/form-data; boundary=b".to_string())),
        Just(Some("multipart/form-data".to_string())),
        Just(Some("application/json".to_string())),
        "[ -~]{0,40}".prop_map(Some),
    ];
    let bodies = prop_oneof![
        Just(b"List-Unsubscribe=One-Click".to_vec()),
        Just(multipart("b")),
        Just(b"email=a%40example.com&newsletter=am&name=A".to_vec()),
        "email=[a-z@%.\\PC]{0,30}&newsletter=[a-z,-]{0,12}&name=\\PC{0,20}"
            .prop_map(String::into_bytes),
        Just(br#"{"email":"a@example.com","newsletters":["am"]}"#.to_vec()),
        "\\{\"email\":\"\\PC{0,20}\",\"newsletters\":\\[\"\\PC{0,8}\"\\]\\}"
            .prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..300),
    ];
    let methods = prop_oneof![Just("GET"), Just("POST"), Just("HEAD"), Just("OPTIONS")];
    let mut runner = TestRunner::new(Config {
        cases: 300,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(
            &(methods, paths, queries, types, bodies),
            |(method, path, query, ctype, body)| {
                let target = format!("{path}?{query}");
                let mut headers = Vec::new();
                if let Some(t) = &ctype {
                    headers.push(("Content-Type", t.as_str()));
                }
                let (status, res) = server.request(method, &target, &headers, &body);
                prop_assert!(
                    (200..500).contains(&status),
                    "{method} {target} {ctype:?}: {res}"
                );
                Ok(())
            },
        )
        .unwrap();
    assert_eq!(server.get("/healthz").0, 200);
    assert_eq!(
        ledger(&room).suppressions(None, None).unwrap().len(),
        suppressed_before
    );
    // No confirmation without a link we signed.
    assert!(ledger(&room).subscribers(None).unwrap().is_empty());
}

#[test]
fn json_logs_carry_no_address_above_debug() {
    let room = newsroom();
    send(&room, FIRST, SECRET);
    let (email, path) = links(&room, FIRST).into_iter().next().unwrap();
    let port = free_port();
    let log = room.path().join("serve-json.log");
    let mut child = room
        .command(&[
            "--log-format",
            "json",
            "serve",
            "--bind",
            &format!("127.0.0.1:{port}"),
        ])
        .env(SECRET_ENV, SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(30), "serve to listen", || {
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let http = |method: &str, target: &str, body: &[u8]| -> u16 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        let req = format!(
            "{method} {target} HTTP/1.1\r\nHost: news.example.com\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!(http("POST", &path, b""), 200);
    assert_eq!(http("POST", &path.replace("n=am", "n=pm"), b""), 403);
    assert_eq!(http("GET", &format!("/{email}"), b""), 404);
    // SIGTERM, as systemd stops it: a clean exit.
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let message = |v: &serde_json::Value| v["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        lines.iter().any(|v| message(v)
            .starts_with("Serving The Daily Brief's reader pages at http://127.0.0.1:")),
        "{text}"
    );
    let unsub = lines.iter().find(|v| message(v) == "unsubscribed").unwrap();
    assert_eq!(unsub["newsletter"], "am");
    assert_eq!(unsub["via"], "one-click");
    assert!(lines.iter().any(|v| v["status"] == 403), "{text}");
    let local = email.split('@').next().unwrap();
    assert!(!text.contains(local), "the address is in the log:\n{text}");
}

/// `serve --archive`: the pages `briefing archive` wrote, at the archive
/// URL's path, beside the reader routes; the links the emails carry open
/// their page; nothing outside the archive's own layout is served.
#[test]
fn with_archive_it_serves_the_written_archive_at_its_path_and_nothing_else() {
    let (room, server) = sent_and_archived();
    // The page a message's "View in browser" link opens.
    let dir = room.path().join("out/outbox/am").join(FIRST.2);
    let message = std::fs::read_to_string(
        std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap();
    let prefix = format!("{SITE}/newsletters/am/");
    let at = message.find(&prefix).expect("a View in browser link");
    let link: String = message[at + SITE.len()..]
        .chars()
        .take_while(|c| !matches!(c, '"' | '<' | '>' | '\r' | '\n' | ' '))
        .collect();
    let (status, page) = server.get(&link);
    assert_eq!(status, 200, "{link}: {page}");
    let expected = std::fs::read_to_string(
        room.path()
            .join("out/archive")
            .join(link.trim_start_matches("/newsletters/"))
            .join("index.html"),
    )
    .unwrap();
    assert!(page.ends_with(&expected), "the file as written");
    let head = page.split("\r\n\r\n").next().unwrap().to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/html; charset=utf-8"),
        "{head}"
    );
    assert!(head.contains("cache-control: public"), "{head}");
    assert!(
        head.contains("content-security-policy: default-src 'none'"),
        "{head}"
    );
    assert!(
        !head.contains("x-robots-tag"),
        "public pages may be indexed: {head}"
    );
    // The index, the site index and the feed.
    for (path, kind) in [
        ("/newsletters/", "text/html"),
        ("/newsletters/am/", "text/html"),
        ("/newsletters/am/feed.xml", "application/atom+xml"),
    ] {
        let (status, res) = server.get(path);
        assert_eq!(status, 200, "{path}: {res}");
        assert!(
            res.to_ascii_lowercase()
                .contains(&format!("content-type: {kind}")),
            "{path}"
        );
    }
    // A folder without its slash is redirected, with the query kept.
    let (status, res) = server.get("/newsletters/am?utm=x");
    assert_eq!(status, 301, "{res}");
    assert!(
        res.contains("location: /newsletters/am/?utm=x")
            || res.contains("Location: /newsletters/am/?utm=x"),
        "{res}"
    );
    // Nothing but the archive's files, and only to GET and HEAD.
    for p in [
        "/newsletters/../config.yaml",
        "/newsletters/%2e%2e/config.yaml",
        "/newsletters/am/%2e%2e/%2e%2e/config.yaml",
        "/newsletters/.briefing-manifest",
        "/newsletters/am/2099-01-01-0600/",
        "/newsletters/am/index.html/..",
        "/newsletters//etc/passwd",
        "/config.yaml",
        "/out/archive/index.html",
    ] {
        let (status, body) = server.get(p);
        assert_eq!(status, 404, "{p}: {body}");
        assert!(!body.contains("newsletters:"), "{p}");
    }
    assert_eq!(server.request("POST", "/newsletters/am/", &[], b"").0, 405);
    let (status, head_only) = server.request("HEAD", "/newsletters/am/feed.xml", &[], b"");
    assert_eq!(status, 200);
    assert!(!head_only.contains("<feed"), "HEAD has no body");
    // The reader routes are untouched: still one reader's, never cached.
    let (_, path) = links(&room, FIRST).into_iter().next().unwrap();
    let (status, res) = server.get(&path);
    assert_eq!(status, 200, "{res}");
    assert!(
        res.to_ascii_lowercase().contains("cache-control: no-store"),
        "{res}"
    );
}

#[test]
fn serve_archive_without_an_archive_section_is_a_usage_error() {
    let room = newsroom();
    let config = room.read("config.yaml");
    let start = config.find("archive:\n").unwrap();
    let end = config[start..].find("\n\n").unwrap() + start;
    let room = room.write(
        "config.yaml",
        &format!("{}{}", &config[..start], &config[end + 2..]),
    );
    let r = room.run_env(
        &["serve", "--archive", "--port", "0"],
        &[(SECRET_ENV, SECRET)],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("archive: section"), "{}", r.stderr);
}
