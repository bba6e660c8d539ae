//! The sign-up page over real HTTP: `briefing serve` on a free port over a
//! copy of the sample newsroom, confirmation messages read from the outbox
//! as a reader's mail app would, the links in them followed, and the next
//! edition sent to see who gets it.

use std::collections::BTreeSet;
use std::path::PathBuf;

use briefing::ledger::Ledger;
use briefing::signup::link::Request;
use chrono::{TimeDelta, Utc};
use mail_parser::MessageParser;

use std::time::Duration;

use crate::support::server::Server;
use crate::support::{Newsroom, wait_until};

const SECRET_ENV: &str = "BRIEFING_UNSUBSCRIBE_SECRET";
const SECRET: &str = "signup-test-secret-0123456789";
const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");

fn serve(room: &Newsroom) -> Server {
    Server::start(room.path(), &["serve"], &[(SECRET_ENV, SECRET)])
}

fn outbox(room: &Newsroom) -> PathBuf {
    room.path().join("out/outbox/signup")
}

/// How many sign-ups the confirmation worker has finished with: sent,
/// withheld or failed.
fn settled(server: &Server) -> usize {
    let log = server.log();
    [
        "confirmation sent route",
        "confirmation withheld",
        "confirmation failed",
    ]
    .iter()
    .map(|m| log.matches(m).count())
    .sum()
}

/// The confirmation messages once the worker has finished with `n`
/// sign-ups in all. The page answers before the worker is done.
fn confirmations_after(room: &Newsroom, server: &Server, n: usize) -> Vec<Vec<u8>> {
    wait_until(Duration::from_secs(30), "the confirmation worker", || {
        settled(server) >= n
    });
    assert_eq!(settled(server), n, "{}", server.log());
    confirmations(room)
}

/// The confirmation messages sent so far, oldest first.
fn confirmations(room: &Newsroom) -> Vec<Vec<u8>> {
    let Ok(dir) = std::fs::read_dir(outbox(room)) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = dir.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The path and query of the confirmation link in a message's text part.
fn confirm_link(raw: &[u8]) -> String {
    let msg = MessageParser::default().parse(raw).unwrap();
    let text = msg.body_text(0).unwrap();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("https://news.example.com/subscribe/confirm?"))
        .unwrap_or_else(|| panic!("no confirmation link in {text}"));
    url.strip_prefix("https://news.example.com")
        .unwrap()
        .to_owned()
}

fn sign_up(server: &Server, body: &str) -> (u16, String) {
    server.request("POST", "/subscribe", &[FORM], body.as_bytes())
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

fn stored(room: &Newsroom) -> Vec<(String, String)> {
    let l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
    (l.subscribers(None).unwrap().into_iter())
        .map(|s| (s.email, s.newsletter))
        .collect()
}

/// Who got an edition, one entry a message, lower-cased.
fn addressees(room: &Newsroom, newsletter: &str, slot: &str) -> Vec<String> {
    let dir = room.path().join("out/outbox").join(newsletter).join(slot);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .map(|e| {
            let raw = std::fs::read(e.unwrap().path()).unwrap();
            let msg = MessageParser::default().parse(&raw).unwrap();
            (msg.to().unwrap().first().unwrap().address().unwrap()).to_ascii_lowercase()
        })
        .collect()
}

/// The 2026-11-30 morning brief, sent a few minutes after its slot.
const SEND_AM: [&str; 7] = [
    "send",
    "-n",
    "am",
    "--at",
    "2026-11-30T08:00",
    "--now",
    "2026-11-30T06:05",
];

/// Sends the 2026-11-30 morning brief; who got it.
fn send_am(room: &Newsroom) -> Vec<String> {
    room.run_env(&SEND_AM, &[(SECRET_ENV, SECRET)]).success();
    addressees(room, "am", "2026-11-30T0600")
}

fn recipients(room: &Newsroom, newsletter: &str, slot: &str) -> BTreeSet<String> {
    addressees(room, newsletter, slot).into_iter().collect()
}

#[test]
fn a_sign_up_sends_one_confirmation_and_subscribes_nobody_until_the_button_is_pressed() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    let (status, res) = sign_up(
        &server,
        "email=New.Reader%40Example.com&name=Nia+Reader&newsletter=am&website=",
    );
    assert_eq!(status, 200, "{res}");
    assert!(res.contains("data-state=\"check-inbox\""), "{res}");
    let sent = confirmations_after(&room, &server, 1);
    assert_eq!(sent.len(), 1);
    let msg = MessageParser::default().parse(&sent[0]).unwrap();
    let to = msg.to().unwrap().first().unwrap();
    assert_eq!(to.address(), Some("New.Reader@example.com"));
    // A name sent with the sign-up is a stranger's text: it rides on
    // nothing we send (the confirmation page asks for it).
    assert_eq!(to.name(), None);
    let raw = String::from_utf8_lossy(&sent[0]);
    assert!(!raw.contains("Nia"), "{raw}");
    assert_eq!(
        msg.subject(),
        Some("Confirm your subscription to Morning Brief")
    );
    assert_eq!(
        msg.header_raw("Auto-Submitted").map(str::trim),
        Some("auto-generated")
    );
    // Nothing to unsubscribe from yet.
    assert!(msg.header_raw("List-Unsubscribe-Post").is_none());
    assert!(msg.header_raw("List-Unsubscribe").is_none());
    assert!(
        msg.body_html(0)
            .unwrap()
            .contains("Confirm my subscription")
    );
    assert!(stored(&room).is_empty());

    // Opening the link (a person, or a link scanner) confirms nothing.
    let link = confirm_link(&sent[0]);
    for _ in 0..2 {
        let (status, page) = server.get(&link);
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("data-state=\"confirm-signup\""), "{page}");
        assert!(page.contains("Morning Brief"));
    }
    assert!(stored(&room).is_empty());

    // The page's button posts back to the link, with the name its owner
    // gives there.
    let (status, page) = server.request(
        "POST",
        &link,
        &[("User-Agent", "Reader/1.0"), FORM],
        b"name=Nia+Reader",
    );
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("data-state=\"subscribed\""), "{page}");
    assert!(
        page.contains("/preferences?n=am&amp;e=New.Reader%40example.com"),
        "{page}"
    );
    assert_eq!(
        stored(&room),
        [("New.Reader@example.com".to_string(), "am".to_string())]
    );
    let l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
    let s = &l.subscribers(Some("am")).unwrap()[0];
    assert_eq!(s.name.as_deref(), Some("Nia Reader"));
    assert_eq!(s.source, "signup page");
    assert_eq!(s.evidence["user_agent"], "Reader/1.0");
    drop(server);

    // The plan counts them apart; then the next editions: the morning
    // brief comes, the other letters do not.
    room.run_env(
        &[&SEND_AM[..], &["--dry-run"]].concat(),
        &[(SECRET_ENV, SECRET)],
    )
    .success()
    .stdout_has("listed (1 from sign-ups)");
    room.run_env(
        &["send", "--due", "--now", "2026-11-30T08:00"],
        &[(SECRET_ENV, SECRET)],
    )
    .success();
    let am = recipients(&room, "am", "2026-11-30T0600");
    assert!(am.contains("new.reader@example.com"), "{am:?}");
    assert!(am.len() > 1);
    for (other, slot) in [
        ("markets", "2026-11-30T0730"),
        ("denver", "2026-11-30T0700"),
        ("tampa-bay", "2026-11-30T0700"),
    ] {
        let got = recipients(&room, other, slot);
        assert!(!got.is_empty(), "{other} was sent");
        assert!(!got.contains("new.reader@example.com"), "{other}");
    }
}

#[test]
fn without_a_working_mailer_sign_ups_are_refused_alike_and_unsubscribes_still_work() {
    let room = Newsroom::fixture(".").edit(
        "config.yaml",
        "  transport: outbox\n",
        "  transport: smtp\n  smtp: { url: \"smtp://127.0.0.1:9?tls=none\", username: briefing, password_env: BRIEFING_TEST_UNSET_PASSWORD }\n",
    );
    let server = serve(&room);
    assert!(
        server.log().contains("cannot send confirmation messages"),
        "{}",
        server.log()
    );
    assert_eq!(server.get("/subscribe").0, 200);
    room.run(&["suppress", "gone@example.com"]).success();
    for form in [
        "email=someone%40example.com&newsletter=am",
        "email=gone%40example.com&newsletter=am",
    ] {
        let (status, res) = sign_up(&server, form);
        assert_eq!(status, 503, "{form}: {res}");
    }
    assert_eq!(server.get("/healthz").0, 200);
    let token =
        briefing::mail::token::unsubscribe_token(SECRET.as_bytes(), "am", "someone@example.com");
    let (status, _) = server.request(
        "POST",
        &format!("/unsubscribe?n=am&e=someone%40example.com&t={token}"),
        &[FORM],
        b"List-Unsubscribe=One-Click",
    );
    assert_eq!(status, 200);
}

#[test]
fn signing_up_twice_or_while_on_the_list_mails_once_and_answers_alike() {
    let room = Newsroom::fixture(".");
    let listed = room
        .read("subscribers/am.csv")
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let server = serve(&room);
    let (_, first) = sign_up(&server, "email=twice%40example.com&newsletter=am");
    let (_, again) = sign_up(&server, "email=twice%40example.com&newsletter=am");
    let (_, on_list) = sign_up(
        &server,
        &format!("email={}&newsletter=am", listed.replace('@', "%40")),
    );
    // Nothing in the answer tells these apart.
    assert_eq!(body(&first), body(&again));
    assert_eq!(body(&first), body(&on_list));
    let sent = confirmations_after(&room, &server, 3);
    assert_eq!(sent.len(), 3);
    for raw in &sent {
        let link = confirm_link(raw);
        let (status, page) = server.request("POST", &link, &[], b"");
        assert_eq!(status, 200, "{page}");
    }
    let rows = stored(&room);
    assert_eq!(
        rows.iter()
            .filter(|(e, _)| e == "twice@example.com")
            .count(),
        1,
        "{rows:?}"
    );
    drop(server);
    let to_each = send_am(&room);
    for who in ["twice@example.com".to_string(), listed.to_ascii_lowercase()] {
        assert_eq!(to_each.iter().filter(|a| **a == who).count(), 1, "{who}");
    }
}

#[test]
fn expired_tampered_and_foreign_links_confirm_nothing() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    let asked = |expires: chrono::DateTime<Utc>| Request {
        email: "late@example.com".into(),
        newsletters: vec!["am".into()],
        issued: chrono::DateTime::from_timestamp(expires.timestamp() - 3600, 0).unwrap(),
        expires: chrono::DateTime::from_timestamp(expires.timestamp(), 0).unwrap(),
    };
    let expired = asked(Utc::now() - TimeDelta::minutes(1)).query(SECRET.as_bytes());
    let good = asked(Utc::now() + TimeDelta::hours(1)).query(SECRET.as_bytes());
    let forged = asked(Utc::now() + TimeDelta::hours(1)).query(b"not-the-newsrooms-secret");
    let cases = [
        (expired, 410),
        (good.replace("n=am", "n=pm"), 403),
        (good.replace("late%40", "early%40"), 403),
        (forged, 403),
        (good.replace("&t=", "&t=x"), 400),
        (good.replace("x=", "x=-"), 400),
    ];
    for (query, want) in &cases {
        for method in ["GET", "POST"] {
            let (status, page) =
                server.request(method, &format!("/subscribe/confirm?{query}"), &[], b"");
            assert_eq!(status, *want, "{method} {query}: {page}");
        }
    }
    assert!(stored(&room).is_empty());
    // The untouched link does confirm: the refusals were about the changes.
    let (status, _) = server.request("POST", &format!("/subscribe/confirm?{good}"), &[], b"");
    assert_eq!(status, 200);
    assert_eq!(stored(&room).len(), 1);
}

#[test]
fn suppressed_addresses_bots_and_repeated_addresses_get_no_mail_and_the_same_answer() {
    let room = Newsroom::fixture(".");
    room.run(&[
        "suppress",
        "blocked@example.com",
        "--reason",
        "asked by phone",
    ])
    .success();
    let listed_in_file = room
        .read("subscribers/suppressed.txt")
        .lines()
        .find(|l| l.contains('@') && !l.trim_start().starts_with('#'))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    {
        let mut l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
        l.suppress(&briefing::ledger::Suppression {
            address: "bounced@example.com".into(),
            scope: briefing::ledger::SuppressionScope::All,
            reason: briefing::ledger::SuppressionReason::HardBounce,
            created_at: Utc::now(),
            evidence: serde_json::json!({}),
        })
        .unwrap();
        // Their own unsubscribe does not stop a new sign-up.
        l.suppress(&briefing::ledger::Suppression {
            address: "changed.mind@example.com".into(),
            scope: briefing::ledger::SuppressionScope::Newsletter("am".into()),
            reason: briefing::ledger::SuppressionReason::OneClick,
            created_at: Utc::now(),
            evidence: serde_json::json!({}),
        })
        .unwrap();
    }
    let server = serve(&room);
    let (_, normal) = sign_up(&server, "email=fine%40example.com&newsletter=am");
    assert_eq!(confirmations_after(&room, &server, 1).len(), 1);
    for quiet in [
        "email=blocked%40example.com&newsletter=am".to_string(),
        "email=bounced%40example.com&newsletter=am".to_string(),
        format!("email={}&newsletter=am", listed_in_file.replace('@', "%40")),
    ] {
        let (status, res) = sign_up(&server, &quiet);
        assert_eq!(status, 200, "{res}");
        assert_eq!(body(&res), body(&normal), "{quiet}");
    }
    assert_eq!(confirmations_after(&room, &server, 4).len(), 1);
    let (status, res) = sign_up(
        &server,
        "email=bot%40example.com&newsletter=am&website=http%3A%2F%2Fspam.example",
    );
    assert_eq!((status, body(&res)), (200, body(&normal)));
    let (_, res) = sign_up(&server, "email=changed.mind%40example.com&newsletter=am");
    assert_eq!(body(&res), body(&normal));
    let to: Vec<String> = confirmations_after(&room, &server, 5)
        .iter()
        .map(|raw| {
            let m = MessageParser::default().parse(raw).unwrap();
            m.to()
                .unwrap()
                .first()
                .unwrap()
                .address()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        to,
        ["fine@example.com", "changed.mind@example.com"],
        "{}",
        server.log()
    );
    // One address gets two confirmations, then no more for a while.
    for _ in 0..4 {
        let (status, res) = sign_up(&server, "email=fine%40example.com&newsletter=pm");
        assert_eq!((status, body(&res)), (200, body(&normal)));
    }
    // Each of the four is settled by the worker, one of them sent.
    assert_eq!(confirmations_after(&room, &server, 9).len(), 3);
}

#[test]
fn a_relay_that_fails_after_startup_is_logged_and_the_answer_is_the_same() {
    let room = Newsroom::fixture(".").edit(
        "config.yaml",
        "  transport: outbox\n",
        &format!(
            "  transport: smtp\n  smtp: {{ url: \"smtp://127.0.0.1:{}?tls=none\", retries: 0 }}\n",
            crate::support::server::free_port()
        ),
    );
    let server = serve(&room);
    let healthy = Newsroom::fixture(".");
    let control = serve(&healthy);
    let (status, res) = sign_up(&server, "email=someone%40example.com&newsletter=am");
    let (_, normal) = sign_up(&control, "email=someone%40example.com&newsletter=am");
    assert_eq!(status, 200, "{res}");
    assert_eq!(body(&res), body(&normal));
    wait_until(Duration::from_secs(60), "the failure to be logged", || {
        server.log().contains("confirmation failed")
    });
    assert!(stored(&room).is_empty());
}

#[test]
fn many_sign_ups_from_one_client_are_limited() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    let mut limited = 0;
    for i in 0..200 {
        let (status, res) = sign_up(&server, &format!("email=r{i}%40example.com&newsletter=am"));
        match status {
            200 => {}
            429 => {
                assert!(
                    res.to_ascii_lowercase().contains("retry-after: 180"),
                    "{res}"
                );
                limited += 1;
            }
            other => panic!("{other}: {res}"),
        }
    }
    let sent = confirmations_after(&room, &server, 200 - limited).len();
    assert_eq!(sent + limited, 200);
    assert!(
        sent <= 12,
        "{sent} confirmations sent to one client's 200 sign-ups"
    );
    // Another client (behind the proxy on this machine) is not held back.
    let (status, _) = server.request(
        "POST",
        "/subscribe",
        &[FORM, ("X-Forwarded-For", "203.0.113.9")],
        b"email=other%40example.com&newsletter=am",
    );
    assert_eq!(status, 200);
}

#[test]
fn invalid_fields_get_errors_beside_them_as_html_and_json() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    for (form, field, words) in [
        ("email=&newsletter=am", "email", "Enter your email address"),
        ("email=not-an-address&newsletter=am", "email", "missing @"),
        (
            "email=a%40b%40example.com&newsletter=am",
            "email",
            "not an email address",
        ),
        (
            "email=ok%40example.com",
            "newsletters",
            "Choose at least one",
        ),
        (
            "email=ok%40example.com&newsletter=nope",
            "newsletters",
            "do not offer",
        ),
    ] {
        let (status, page) = sign_up(&server, form);
        assert_eq!(status, 400, "{form}: {page}");
        assert!(
            page.contains(&format!("id=\"{field}-error\"")),
            "{form}: {page}"
        );
        assert!(page.contains(words), "{form}: {page}");
    }
    // What was typed is kept, escaped.
    let (_, page) = sign_up(&server, "email=%22%3E%3Cscript%3E&newsletter=am");
    assert!(
        page.contains("value=\"&quot;&gt;&lt;script&gt;\""),
        "{page}"
    );
    assert!(!page.contains("\"><script>"));
    let (status, res) = server.request(
        "POST",
        "/subscribe",
        &[("Content-Type", "application/json")],
        br#"{"email": "nope", "newsletters": ["am"]}"#,
    );
    assert_eq!(status, 422, "{res}");
    let v: serde_json::Value = serde_json::from_str(body(&res)).unwrap();
    assert!(v["errors"]["email"].as_str().unwrap().contains("missing @"));
    let (status, res) = server.request(
        "POST",
        "/subscribe",
        &[("Content-Type", "application/json")],
        br#"{"email": "json@example.com", "newsletters": ["markets"]}"#,
    );
    assert_eq!(status, 202, "{res}");
    assert_eq!(confirmations_after(&room, &server, 1).len(), 1);
    let (status, _) = server.request(
        "POST",
        "/subscribe",
        &[("Content-Type", "application/json")],
        b"{not json",
    );
    assert_eq!(status, 400);
    assert!(stored(&room).is_empty());
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[test]
fn the_page_lists_every_public_newsletter_with_its_pitch_and_preselects_one() {
    let room =
        Newsroom::fixture(".").edit("config.yaml", "  world:\n", "  world:\n    signup: false\n");
    let server = serve(&room);
    let (status, page) = server.get("/subscribe?newsletter=markets");
    assert_eq!(status, 200);
    let cfg = briefing::config::Newsroom::load(&room.path().join("config.yaml")).unwrap();
    for n in &cfg.config.newsletters {
        let listed = page.contains(&format!("data-newsletter=\"{}\"", n.id));
        assert_eq!(listed, n.signup, "{}", n.id);
        if n.signup {
            let pitch = n
                .description
                .as_deref()
                .expect("every sample newsletter has a pitch");
            assert!(
                page.contains(&briefing::render::escape_html(pitch)),
                "{}",
                n.id
            );
        }
    }
    assert!(page.contains("value=\"markets\" checked"), "{page}");
    assert!(!page.contains("value=\"am\" checked"));
    assert!(page.contains("Weekday mornings"));
}

#[tokio::test(flavor = "multi_thread")]
async fn over_smtp_the_confirmation_is_dkim_signed_and_verifies() {
    let sink = crate::support::smtp_sink::SmtpSink::start(&[]);
    let pem =
        std::fs::read_to_string(crate::support::dkim::mail_fixture("dkim-ed25519.pem")).unwrap();
    let room = Newsroom::fixture(".")
        .write("secrets/dkim.pem", &pem)
        .edit(
            "config.yaml",
            "  transport: outbox\n",
            &format!(
                "  transport: smtp\n  smtp: {{ url: \"{}\" }}\n  bounce_address: bounces@news.example.com\n  dkim: {{ domain: news.example.com, selector: brief, key_file: secrets/dkim.pem, algorithm: ed25519-sha256 }}\n",
                sink.url()
            ),
        );
    let server = serve(&room);
    let (status, res) = sign_up(
        &server,
        "email=signed%40example.com&newsletter=markets&newsletter=pm",
    );
    assert_eq!(status, 200, "{res}\n{}", server.log());
    confirmations_after(&room, &server, 1);
    let got = sink.received();
    assert_eq!(got.len(), 1);
    let dump = &got[0];
    assert_eq!(dump.rcpt, "signed@example.com");
    assert_eq!(dump.mail_from, "bounces@news.example.com");
    let text = String::from_utf8_lossy(&dump.raw);
    let start = text.find("\nDKIM-Signature:").expect("signed") + 1;
    let message = text[start..].replace('\n', "\r\n");
    assert!(
        message
            .contains("Subject: Confirm your subscription to 2 newsletters from The Daily Brief")
    );
    // From the first newsletter chosen, in the newsroom's order.
    assert!(
        message.contains("From: \"Evening Brief\" <pm@news.example.com>"),
        "{message}"
    );
    let record = format!(
        "v=DKIM1; k=ed25519; p={}",
        std::fs::read_to_string(crate::support::dkim::mail_fixture("dkim-ed25519.p.txt"))
            .unwrap()
            .trim()
    );
    assert_eq!(
        crate::support::dkim::verify_dkim(message.as_bytes(), "brief", &record).await,
        [mail_auth::DkimResult::Pass]
    );
    assert!(crate::support::dkim::dkimpy_verifies(
        message.as_bytes(),
        &record
    ));
    assert!(stored(&room).is_empty());
}

#[test]
fn with_the_development_secret_sign_ups_are_closed_beyond_this_machine() {
    let room = Newsroom::fixture(".");
    let forged = Request {
        email: "victim@example.com".into(),
        newsletters: vec!["am".into()],
        issued: chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap(),
        expires: chrono::DateTime::from_timestamp(Utc::now().timestamp() + 3600, 0).unwrap(),
    }
    .query(briefing::mail::token::DEV_SECRET);
    // On loopback (trying it out), the outbox flow works with it.
    let local = Server::start(room.path(), &["serve"], &[]);
    assert_eq!(
        sign_up(&local, "email=me%40example.com&newsletter=am").0,
        200
    );
    drop(local);
    let dev = String::from_utf8(briefing::mail::token::DEV_SECRET.to_vec()).unwrap();
    let mixed = format!("{SECRET} {dev}");
    for env in [vec![], vec![(SECRET_ENV, mixed.as_str())]] {
        let public = Server::start(room.path(), &["serve", "--bind", "0.0.0.0"], &env);
        assert!(
            public.log().contains("sign-ups are refused"),
            "{}",
            public.log()
        );
        assert_eq!(
            sign_up(&public, "email=me%40example.com&newsletter=am").0,
            503
        );
        for method in ["GET", "POST"] {
            let (status, _) =
                public.request(method, &format!("/subscribe/confirm?{forged}"), &[], b"");
            assert_eq!(status, 503, "{method}");
        }
        // Unsubscribes are answered all the same.
        assert_eq!(public.get("/healthz").0, 200);
    }
    assert!(stored(&room).is_empty());
}

#[test]
fn subscribers_are_imported_whole_or_not_at_all_and_exported_as_stored() {
    let room = Newsroom::fixture(".").write(
        "exported.csv",
        "email,name,regions\nola@example.com,Ola,world\nBAD-ADDRESS,X,\npiet@example.com,Piet,mars\n",
    );
    room.run(&[
        "subscribers",
        "import",
        "exported.csv",
        "--newsletter",
        "am",
    ])
    .code(1)
    .stderr_has("exported.csv:3:")
    .stderr_has("exported.csv:4:")
    .stderr_has("unknown region `mars`")
    .stderr_has("nothing imported");
    room.run(&["subscribers"]).success();
    assert!(!room.path().join(".briefing/ledger.sqlite").exists() || stored(&room).is_empty());
    room.run(&[
        "subscribers",
        "import",
        "exported.csv",
        "-n",
        "am",
        "--skip-invalid",
    ])
    .success()
    .stdout_has("imported 1 subscriber into `am` (1 new, 0 already there)");
    room.run(&[
        "subscribers",
        "import",
        "exported.csv",
        "-n",
        "am",
        "--skip-invalid",
    ])
    .success()
    .stdout_has("(0 new, 1 already there)");
    room.run(&["subscribers", "import", "exported.csv", "-n", "nope"])
        .code(2);
    let csv = room.run(&["subscribers", "--format", "csv"]);
    let out = csv.success().stdout.clone();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "email,newsletter,name,consent_at,source,regions,topics"
    );
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].starts_with("ola@example.com,am,Ola,"), "{out}");
    assert!(lines[1].ends_with(",import exported.csv,world,"), "{out}");
    let json = room.run(&["subscribers", "-n", "am", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(json.success().stdout.trim()).unwrap();
    assert_eq!(v["email"], "ola@example.com");
    assert_eq!(v["regions"], serde_json::json!(["world"]));
    assert_eq!(v["evidence"]["line"], 2);
    // The next morning brief goes to Ola, once, with her section.
    let got = send_am(&room);
    assert_eq!(got.iter().filter(|a| *a == "ola@example.com").count(), 1);
    assert!(
        room.run(&["subscribers", "-n", "pm"])
            .success()
            .stdout
            .ends_with("topics\n")
    );
}

#[test]
fn a_confirmation_link_used_again_after_an_unsubscribe_changes_nothing() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    sign_up(&server, "email=twice.minded%40example.com&newsletter=am");
    let link = confirm_link(&confirmations_after(&room, &server, 1)[0]);
    assert_eq!(server.request("POST", &link, &[], b"").0, 200);
    // Unsubscribed a second later, by the link in the first edition.
    std::thread::sleep(Duration::from_millis(1100));
    let token = briefing::mail::token::unsubscribe_token(
        SECRET.as_bytes(),
        "am",
        "twice.minded@example.com",
    );
    let one_click = format!("/unsubscribe?n=am&e=twice.minded%40example.com&t={token}");
    assert_eq!(
        server
            .request("POST", &one_click, &[FORM], b"List-Unsubscribe=One-Click")
            .0,
        200
    );
    let (status, page) = server.request("POST", &link, &[], b"");
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("data-state=\"stale\""));
    let l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
    assert!(l.is_suppressed("twice.minded@example.com", "am").unwrap());
}

#[test]
fn the_confirmation_page_asks_for_the_name_and_refuses_one_that_is_not_a_plain_line() {
    let room = Newsroom::fixture(".");
    let server = serve(&room);
    sign_up(
        &server,
        "email=named%40example.com&newsletter=am&name=Ignored",
    );
    let link = confirm_link(&confirmations_after(&room, &server, 1)[0]);
    let (_, page) = server.get(&link);
    assert!(page.contains("id=\"name\""), "{page}");
    for bad in ["name=Eve%0D%0ABcc%3A+x", "name=a%E2%80%A8b", "name=%3Cb%3E"] {
        let (status, page) = server.request("POST", &link, &[FORM], bad.as_bytes());
        assert_eq!(status, 400, "{bad}: {page}");
        assert!(page.contains("id=\"name-error\""), "{page}");
        assert!(page.contains("aria-invalid=\"true\""));
    }
    assert!(stored(&room).is_empty());
    let (status, _) = server.request("POST", &link, &[FORM], b"name=++Named+%09Reader+");
    assert_eq!(status, 200);
    let l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
    assert_eq!(
        l.subscribers(None).unwrap()[0].name.as_deref(),
        Some("Named Reader")
    );
}

#[test]
fn a_confirmation_that_bounces_suppresses_its_address_through_inbound() {
    use crate::support::postfix::{self, Options, Relay};
    let relay = Relay::start(Options::default());
    let room = Newsroom::fixture(".").edit(
        "config.yaml",
        "  transport: outbox\n",
        &format!(
            "  transport: smtp\n  smtp: {{ url: \"{}\" }}\n  bounce_address: bounces@{}\n",
            relay.url(),
            postfix::BOUNCE_DOMAIN
        ),
    );
    let server = serve(&room);
    let dead = format!("mistyped@{}", postfix::UNKNOWN);
    let (status, _) = sign_up(
        &server,
        &format!("email={}&newsletter=am", dead.replace('@', "%40")),
    );
    assert_eq!(status, 200);
    wait_until(Duration::from_secs(30), "the confirmation", || {
        settled(&server) >= 1
    });
    assert!(
        server.log().contains("confirmation sent route"),
        "{}",
        server.log()
    );
    let returned = relay.returned(1, Duration::from_secs(60));
    std::fs::write(room.path().join("dsn.eml"), &returned[0].message).unwrap();
    let out = room.run_env(&["inbound", "dsn.eml"], &[(SECRET_ENV, SECRET)]);
    out.success();
    let l = Ledger::open(&room.path().join(".briefing/ledger.sqlite")).unwrap();
    let mine = l.suppressions_of(&dead).unwrap();
    assert_eq!(mine.len(), 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        mine[0].reason,
        briefing::ledger::SuppressionReason::HardBounce
    );
    assert_eq!(mine[0].scope, briefing::ledger::SuppressionScope::All);
    // A sign-up of it again sends nothing.
    sign_up(
        &server,
        &format!("email={}&newsletter=pm", dead.replace('@', "%40")),
    );
    wait_until(Duration::from_secs(30), "the second sign-up", || {
        settled(&server) >= 2
    });
    assert!(
        server
            .log()
            .contains("confirmation withheld: the address is suppressed")
    );
}
