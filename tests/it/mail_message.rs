//! Messages parse back with the right structure and headers, header
//! injection is refused, and DKIM signatures verify with an independent
//! verifier (mail-auth) for both algorithms.

use briefing::mail::message::{
    DkimAlgorithm, DkimSettings, DkimSigner, MessageError, MessageSpec, build_message, compose,
};
use lettre::message::Mailbox;
use mail_auth::DkimResult;
use mail_parser::{MessageParser, MimeHeaders};

fn normalise(s: &str) -> String {
    s.replace("\r\n", "\n")
}

#[test]
fn composed_message_parses_back_with_all_headers() {
    let spec = crate::support::message::spec(7, 30);
    let raw = compose(&spec, None).expect("compose");
    assert!(raw.is_ascii(), "message must be 7-bit clean");
    for line in raw.split(|&b| b == b'\n') {
        assert!(line.len() <= 999, "line over 998 octets");
    }
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(!text.replace("\r\n", "").contains('\n'), "bare LF");
    assert!(!text.replace("\r\n", "").contains('\r'), "bare CR");

    let msg = MessageParser::default().parse(&raw).expect("parses");
    assert_eq!(msg.subject(), Some(spec.subject.as_str()));
    let from = msg.from().and_then(|a| a.first()).unwrap();
    assert_eq!(from.address(), Some("brief@news.example.com"));
    assert_eq!(from.name(), Some("Morning Brief"));
    let to = msg.to().and_then(|a| a.first()).unwrap();
    assert_eq!(to.address(), Some("reader7@example.org"));
    assert_eq!(to.name(), Some("Reader Nº7"));
    let reply_to = msg.reply_to().and_then(|a| a.first()).unwrap();
    assert_eq!(reply_to.address(), Some("desk@news.example.com"));
    assert_eq!(
        msg.message_id(),
        Some(spec.message_id.trim_matches(|c| c == '<' || c == '>'))
    );
    let date = msg.date().unwrap();
    assert_eq!(
        (date.year, date.month, date.day, date.hour),
        (2026, 11, 30, 6)
    );

    let raw_header = |name: &str| msg.header_raw(name).map(|v| v.trim().to_owned());
    assert_eq!(raw_header("MIME-Version").as_deref(), Some("1.0"));
    assert_eq!(
        raw_header("List-Id")
            .map(|v| normalise(&v).replace("\n ", " "))
            .as_deref(),
        Some("Morning Brief <am.news.example.com>")
    );
    let unsubscribe = normalise(&raw_header("List-Unsubscribe").unwrap()).replace("\n ", " ");
    assert_eq!(
        unsubscribe,
        format!(
            "<{}>, <mailto:unsubscribe@news.example.com?subject=unsubscribe>",
            spec.unsubscribe_url
        )
    );
    assert_eq!(
        raw_header("List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        raw_header("Feedback-ID").as_deref(),
        Some("am:briefing:newsroom")
    );

    // multipart/alternative with text/plain first and text/html last.
    let root_type = msg.root_part().content_type().unwrap();
    assert_eq!(root_type.ctype(), "multipart");
    assert_eq!(root_type.subtype(), Some("alternative"));
    let plain_at = text
        .find("Content-Type: text/plain; charset=utf-8")
        .unwrap();
    let html_at = text.find("Content-Type: text/html; charset=utf-8").unwrap();
    assert!(plain_at < html_at);
    assert_eq!(msg.text_body_count(), 1);
    assert_eq!(msg.html_body_count(), 1);
    assert_eq!(normalise(&msg.body_text(0).unwrap()), spec.text);
    assert_eq!(normalise(&msg.body_html(0).unwrap()), spec.html);
}

#[test]
fn non_latin_content_round_trips() {
    let mut spec = crate::support::message::spec(1, 2);
    spec.subject = "Πρωινή ενημέρωση: ο προϋπολογισμός".to_owned();
    spec.text = "Ελληνικά νέα\nδεύτερη γραμμή\n".repeat(50);
    spec.html = format!("<p>{}</p>\n", "Ελληνικά νέα ".repeat(300));
    spec.to = Mailbox::new(
        Some("Γιώργος \"Ο\" Παπαδόπουλος".to_owned()),
        "g@example.gr".parse().unwrap(),
    );
    spec.list_id = "Πρωινή Ενημέρωση, Αθήνα <am.news.example.gr>".to_owned();
    let raw = compose(&spec, None).unwrap();
    assert!(raw.is_ascii());
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(text.contains("Content-Transfer-Encoding: base64"));
    let msg = MessageParser::default().parse(&raw).unwrap();
    assert_eq!(msg.subject(), Some(spec.subject.as_str()));
    assert_eq!(
        msg.to().and_then(|a| a.first()).and_then(|a| a.name()),
        Some("Γιώργος \"Ο\" Παπαδόπουλος")
    );
    assert_eq!(normalise(&msg.body_text(0).unwrap()), spec.text);
    assert_eq!(normalise(&msg.body_html(0).unwrap()), spec.html);
    // RFC 2919 List-Id with an encoded phrase decodes to the display name.
    let list_id = msg.list_id().as_address().and_then(|a| a.first()).unwrap();
    assert_eq!(list_id.name(), Some("Πρωινή Ενημέρωση, Αθήνα"));
    assert_eq!(list_id.address(), Some("am.news.example.gr"));
}

#[test]
fn header_injection_is_refused() {
    let evil = "x\r\nBcc: victim@example.com";
    let name_mailbox =
        |name: &str| Mailbox::new(Some(name.to_owned()), "a@example.com".parse().unwrap());
    type Mutate = fn(&mut MessageSpec, &str);
    let cases: &[(&str, Mutate)] = &[
        ("Subject", |s, v| s.subject = format!("Brief{v}")),
        ("To name", |s, v| {
            s.to = Mailbox::new(Some(format!("Ana{v}")), "a@example.com".parse().unwrap())
        }),
        ("From name", |s, v| {
            s.from = Mailbox::new(Some(format!("Desk{v}")), "d@example.com".parse().unwrap())
        }),
        ("Reply-To name", |s, v| {
            s.reply_to = Some(Mailbox::new(
                Some(format!("R{v}")),
                "r@example.com".parse().unwrap(),
            ))
        }),
        ("List-Id", |s, v| {
            s.list_id = format!("Brief{v} <am.news.example.com>")
        }),
        ("Feedback-ID", |s, v| s.feedback_id = Some(format!("am{v}"))),
        ("unsubscribe URL", |s, v| {
            s.unsubscribe_url = format!("https://news.example.com/u{v}")
        }),
        ("unsubscribe mailto", |s, v| {
            s.unsubscribe_mailto = Some(format!("u@news.example.com{v}"))
        }),
        ("Message-ID", |s, v| {
            s.message_id = format!("<a{v}@news.example.com>")
        }),
    ];
    for (field, mutate) in cases {
        for value in [
            evil,
            "x\nBcc: v@example.com",
            "x\rBcc: v@example.com",
            "tab\there",
            "nul\0",
        ] {
            let mut spec = crate::support::message::spec(1, 1);
            mutate(&mut spec, value);
            match compose(&spec, None) {
                Err(MessageError::HeaderInjection { field: got, .. }) => assert_eq!(got, *field),
                other => panic!("{field} with {value:?}: expected HeaderInjection, got {other:?}"),
            }
        }
    }
    // Unicode line separators are refused too.
    let mut spec = crate::support::message::spec(1, 1);
    spec.to = name_mailbox("Ana\u{2028}Bcc: x");
    assert!(matches!(
        compose(&spec, None),
        Err(MessageError::HeaderInjection { .. })
    ));
}

#[test]
fn other_invalid_values_are_refused() {
    let mut spec = crate::support::message::spec(1, 1);
    spec.unsubscribe_url = "http://news.example.com/u".to_owned();
    assert!(matches!(
        compose(&spec, None),
        Err(MessageError::InvalidUnsubscribeUrl(_))
    ));
    let mut spec = crate::support::message::spec(1, 1);
    spec.subject = "   ".to_owned();
    assert!(matches!(
        compose(&spec, None),
        Err(MessageError::Empty { .. })
    ));
    let mut spec = crate::support::message::spec(1, 1);
    spec.message_id = "no-brackets@x".to_owned();
    assert!(matches!(
        compose(&spec, None),
        Err(MessageError::InvalidMessageId(_))
    ));
}

fn signer(key_file: &str, algorithm: DkimAlgorithm, selector: &str) -> DkimSigner {
    DkimSigner::load(&DkimSettings {
        domain: "news.example.com".to_owned(),
        selector: selector.to_owned(),
        key_file: crate::support::dkim::mail_fixture(key_file),
        algorithm,
    })
    .expect("key loads")
}

async fn check_algorithm(key_file: &str, algorithm: DkimAlgorithm, k: &str, public: &str) {
    let selector = "brief2026";
    let record = format!(
        "v=DKIM1; k={k}; p={}",
        std::fs::read_to_string(crate::support::dkim::mail_fixture(public))
            .unwrap()
            .trim()
    );
    let signer = signer(key_file, algorithm, selector);
    let raw = compose(&crate::support::message::spec(3, 30), Some(&signer)).unwrap();
    let text = String::from_utf8(raw.clone()).unwrap();
    let signature = text
        .split("\r\n")
        .skip_while(|l| !l.starts_with("DKIM-Signature:"))
        .take_while(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("");
    assert!(signature.contains(&format!("a={k}-sha256")), "{signature}");
    let signed: String = signature
        .split("h=")
        .nth(1)
        .and_then(|s| s.split(';').next())
        .unwrap()
        .split_whitespace()
        .collect();
    for header in DkimSigner::SIGNED_HEADERS {
        assert!(
            signed.split(':').any(|h| h.eq_ignore_ascii_case(header)),
            "{header} not signed: h={signed}"
        );
    }
    assert_eq!(
        crate::support::dkim::verify_dkim(&raw, selector, &record).await,
        [DkimResult::Pass],
        "{k}"
    );
    assert!(
        crate::support::dkim::dkimpy_verifies(&raw, &record),
        "dkimpy, a second verifier, refuses the {k} signature"
    );

    // Changing a signed header breaks the signature: the one-click header is
    // really covered.
    let tampered = text.replace(
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        "List-Unsubscribe-Post: List-Unsubscribe=One-Clack",
    );
    assert_ne!(tampered, text);
    let results = crate::support::dkim::verify_dkim(tampered.as_bytes(), selector, &record).await;
    assert!(!results.contains(&DkimResult::Pass), "{results:?}");
    assert!(!crate::support::dkim::dkimpy_verifies(
        tampered.as_bytes(),
        &record
    ));
    // So does changing the body.
    let tampered = text.replacen("MORNING BRIEF", "MOURNING BRIEF", 1);
    let results = crate::support::dkim::verify_dkim(tampered.as_bytes(), selector, &record).await;
    assert!(!results.contains(&DkimResult::Pass), "{results:?}");
}

#[tokio::test]
async fn dkim_rsa_sha256_verifies_independently() {
    check_algorithm(
        "dkim-rsa.pem",
        DkimAlgorithm::RsaSha256,
        "rsa",
        "dkim-rsa.p.txt",
    )
    .await;
    // The traditional PKCS#1 form of the same key works too.
    check_algorithm(
        "dkim-rsa-pkcs1.pem",
        DkimAlgorithm::RsaSha256,
        "rsa",
        "dkim-rsa.p.txt",
    )
    .await;
}

#[tokio::test]
async fn dkim_ed25519_sha256_verifies_independently() {
    check_algorithm(
        "dkim-ed25519.pem",
        DkimAlgorithm::Ed25519Sha256,
        "ed25519",
        "dkim-ed25519.p.txt",
    )
    .await;
}

#[test]
fn dkim_key_errors_are_clear() {
    let wrong = DkimSigner::load(&DkimSettings {
        domain: "news.example.com".to_owned(),
        selector: "s".to_owned(),
        key_file: crate::support::dkim::mail_fixture("dkim-ed25519.pem"),
        algorithm: DkimAlgorithm::RsaSha256,
    })
    .unwrap_err();
    assert!(wrong.to_string().contains("not an RSA key"), "{wrong}");
    let missing = DkimSigner::load(&DkimSettings {
        domain: "news.example.com".to_owned(),
        selector: "s".to_owned(),
        key_file: crate::support::dkim::mail_fixture("nope.pem"),
        algorithm: DkimAlgorithm::Ed25519Sha256,
    })
    .unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    assert!("rsa-sha1".parse::<DkimAlgorithm>().is_err());
}

#[test]
fn build_message_envelope_matches_headers() {
    let message = build_message(&crate::support::message::spec(2, 1)).unwrap();
    let envelope = message.envelope();
    assert_eq!(
        envelope.from().map(|a| a.to_string()).as_deref(),
        Some("brief@news.example.com")
    );
    assert_eq!(
        envelope
            .to()
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>(),
        ["reader2@example.org"]
    );
}
