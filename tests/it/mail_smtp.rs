//! Delivery against a real SMTP server: Postfix's smtp-sink, started per test
//! on a free loopback port, with its fault injection for soft rejects, hard
//! rejects and dropped connections.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use briefing::ledger::{
    DeliveryState, DeliveryUpdate, FrozenEdition, Ledger, MAIN_RENDERING, Recipient,
};
use briefing::mail::message::{MessageSpec, compose, message_id};
use briefing::mail::sender::{
    Job, LeasedLedger, MessageSource, OutcomeSink, Progress, SendError, SendOptions, deliver,
};
use briefing::mail::smtp::SmtpSettings;
use briefing::mail::token::unsubscribe_url;
use briefing::mail::transport::Transport;
use chrono::TimeZone;
use mail_parser::MessageParser;

use crate::support::smtp_sink;

const EDITION: &str = "am-2026-11-30T0600";

fn edition() -> FrozenEdition {
    FrozenEdition {
        id: EDITION.to_owned(),
        newsletter: "am".to_owned(),
        slot_utc: chrono::Utc.with_ymd_and_hms(2026, 11, 30, 6, 0, 0).unwrap(),
        zone: "Europe/Lisbon".to_owned(),
        renderings: vec![briefing::ledger::Rendering {
            subject: "Morning Brief".to_owned(),
            html: "<p>Budget talks collapse; rain later.</p>\n".repeat(20),
            text: "Budget talks collapse; rain later.\n".repeat(20),
            item_ids: vec!["world/budget".to_owned()],
        }],
        web: None,
    }
}

/// A ledger in `dir` with the edition frozen for `n` readers.
fn frozen_ledger(dir: &Path, n: usize) -> Ledger {
    let mut ledger = Ledger::open(&dir.join("state/ledger.sqlite")).unwrap();
    let recipients: Vec<Recipient> = (0..n)
        .map(|i| Recipient {
            email: format!("reader{i:03}@example.org"),
            name: Some(format!("Reader {i}")),
            rendering: MAIN_RENDERING,
            fields: Default::default(),
        })
        .collect();
    assert!(ledger.freeze_edition(&edition(), &recipients).unwrap());
    ledger
}

/// One job per pending delivery, composed lazily by the worker.
fn jobs(ledger: &Ledger) -> Vec<Job> {
    let stored = Arc::new(ledger.edition(EDITION).unwrap().unwrap());
    ledger
        .pending(EDITION)
        .unwrap()
        .into_iter()
        .map(|delivery| {
            let stored = Arc::clone(&stored);
            let email = delivery.email.clone();
            let id = message_id(EDITION, &email, "news.example.com");
            let mid = id.clone();
            Job {
                email: delivery.email,
                message_id: Some(id),
                envelope_from: None,
                message: MessageSource::Compose(Box::new(move || {
                    let (subject, html, text) = stored
                        .content(delivery.rendering)
                        .ok_or("unknown rendering")?;
                    let spec = MessageSpec {
                        from: "Morning Brief <brief@news.example.com>".parse()?,
                        to: lettre::message::Mailbox::new(delivery.name.clone(), email.parse()?),
                        reply_to: None,
                        subject: subject.to_owned(),
                        text: text.to_owned(),
                        html: html.to_owned(),
                        message_id: mid,
                        list_id: "Morning Brief <am.news.example.com>".to_owned(),
                        unsubscribe_url: unsubscribe_url(
                            "https://news.example.com/unsubscribe",
                            "am",
                            &email,
                            crate::support::message::SECRET,
                        )?,
                        unsubscribe_mailto: None,
                        feedback_id: None,
                        date: chrono::Utc::now(),
                    };
                    Ok(compose(&spec, None)?)
                })),
            }
        })
        .collect()
}

fn smtp(sink: &smtp_sink::SmtpSink, connections: usize, retries: u32) -> Transport {
    Transport::Smtp(SmtpSettings {
        url: sink.url(),
        connections,
        retries,
        timeout: Duration::from_secs(5),
        hello_name: Some("briefing.test".to_owned()),
        ..SmtpSettings::default()
    })
}

fn options() -> SendOptions {
    SendOptions {
        backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        ..SendOptions::new(EDITION, "bounces@news.example.com".parse().unwrap())
    }
}

fn progress_log() -> (
    Arc<Mutex<Vec<Progress>>>,
    impl FnMut(Progress) + Send + 'static,
) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let writer = Arc::clone(&log);
    (log, move |p| writer.lock().unwrap().push(p))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_200_messages_each_to_its_reader() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 200);
    let jobs = jobs(&ledger);
    let (log, progress) = progress_log();
    let (done, ledger) = deliver(&smtp(&sink, 4, 2), jobs, options(), ledger, progress)
        .await
        .expect("delivers");
    assert_eq!(
        done,
        Progress {
            total: 200,
            sent: 200,
            deferred: 0,
            failed: 0,
            in_doubt: 0,
            suppressed: 0,
        }
    );
    let last = *log.lock().unwrap().last().unwrap();
    assert_eq!(last, done, "progress ends at the final counts");

    let counts = ledger.counts(EDITION).unwrap();
    assert_eq!((counts.sent, counts.unsent(), counts.failed), (200, 0, 0));
    for delivery in ledger.deliveries(EDITION).unwrap() {
        assert_eq!(delivery.attempts, 1);
        // An acceptance is the common case and is not kept per recipient.
        assert_eq!(delivery.last_reply, None);
    }

    let dumps = sink.dumps();
    assert_eq!(dumps.len(), 200, "exactly one transaction per reader");
    let mut seen = BTreeSet::new();
    for path in &dumps {
        let smtp_sink::Dump { rcpt, raw, .. } = smtp_sink::read_dump(path);
        let msg = MessageParser::default().parse(&raw).expect("dump parses");
        let to = msg.to().and_then(|a| a.first()).unwrap();
        assert_eq!(to.address(), Some(rcpt.as_str()), "envelope and To agree");
        let n: usize = rcpt["reader".len()..rcpt.find('@').unwrap()]
            .parse()
            .unwrap();
        assert_eq!(to.name(), Some(format!("Reader {n}").as_str()));
        assert_eq!(msg.subject(), Some("Morning Brief"));
        assert_eq!(
            msg.message_id().map(|id| format!("<{id}>")),
            Some(message_id(EDITION, &rcpt, "news.example.com"))
        );
        let unsubscribe = msg.header_raw("List-Unsubscribe").unwrap();
        let token =
            briefing::mail::token::unsubscribe_token(crate::support::message::SECRET, "am", &rcpt);
        assert!(unsubscribe.contains(&token), "per-reader unsubscribe link");
        assert_eq!(
            msg.header_raw("List-Unsubscribe-Post").map(str::trim),
            Some("List-Unsubscribe=One-Click")
        );
        assert!(msg.header_raw("List-Id").is_some());
        assert!(seen.insert(rcpt), "one message per reader");
    }
    let mail_from = std::fs::read_to_string(&dumps[0]).unwrap();
    assert!(
        mail_from.contains("X-Mail-Args: <bounces@news.example.com>"),
        "{mail_from}"
    );
}

#[tokio::test]
async fn soft_reject_is_retried_then_deferred_with_reply() {
    let sink = smtp_sink::SmtpSink::start(&["-r", "RCPT"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let jobs = jobs(&ledger);
    let (done, ledger) = deliver(&smtp(&sink, 2, 2), jobs, options(), ledger, |_| {})
        .await
        .unwrap();
    assert_eq!((done.sent, done.deferred, done.failed), (0, 3, 0));
    for delivery in ledger.deliveries(EDITION).unwrap() {
        assert_eq!(delivery.state, DeliveryState::Deferred);
        assert_eq!(delivery.attempts, 3, "first try plus 2 retries");
        assert_eq!(
            delivery.last_reply.as_deref(),
            Some("450 4.3.0 Error: command failed")
        );
    }
    assert_eq!(
        ledger.pending(EDITION).unwrap().len(),
        3,
        "deferred are resumed next run"
    );
    assert!(sink.dumps().is_empty());
}

#[tokio::test]
async fn hard_reject_fails_at_once_with_reply() {
    let sink = smtp_sink::SmtpSink::start(&["-f", "RCPT"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 5);
    let jobs = jobs(&ledger);
    let (done, ledger) = deliver(&smtp(&sink, 2, 3), jobs, options(), ledger, |_| {})
        .await
        .unwrap();
    assert_eq!((done.sent, done.deferred, done.failed), (0, 0, 5));
    for delivery in ledger.deliveries(EDITION).unwrap() {
        assert_eq!(delivery.state, DeliveryState::Failed);
        assert_eq!(delivery.attempts, 1, "5xx is never retried");
    }
    let failed = ledger.failed(EDITION).unwrap();
    assert_eq!(failed.len(), 5);
    assert_eq!(failed[0].1, "500 5.3.0 Error: command failed");
    assert!(ledger.pending(EDITION).unwrap().is_empty());
}

#[tokio::test]
async fn hang_up_at_data_is_deferred() {
    let sink = smtp_sink::SmtpSink::start(&["-q", "DATA"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 2);
    let jobs = jobs(&ledger);
    let (done, ledger) = deliver(&smtp(&sink, 2, 1), jobs, options(), ledger, |_| {})
        .await
        .unwrap();
    assert_eq!((done.sent, done.deferred, done.failed), (0, 2, 0));
    for delivery in ledger.deliveries(EDITION).unwrap() {
        assert_eq!(delivery.state, DeliveryState::Deferred);
        assert_eq!(delivery.attempts, 2);
        let reply = delivery.last_reply.unwrap();
        assert!(reply.starts_with("connection lost"), "{reply}");
    }
}

/// A header-bound value with a line break is refused by the composer, so
/// nothing of it reaches the wire; it is our failure (planning checks every
/// recipient before freezing, so it means a bug), not the reader's: the run
/// stops with that reader still pending.
#[tokio::test]
async fn header_injection_never_reaches_the_wire_and_fails_no_reader() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let mut jobs = jobs(&ledger);
    let evil = &mut jobs[1];
    let email = evil.email.clone();
    evil.message = MessageSource::Compose(Box::new(move || {
        let mut spec = crate::support::message::spec(1, 1);
        spec.to = email.parse()?;
        spec.subject = "Brief\r\nBcc: everyone@example.com".to_owned();
        Ok(compose(&spec, None)?)
    }));
    let err = deliver(&smtp(&sink, 1, 1), jobs, options(), ledger, |_| {})
        .await
        .expect_err("the run stops");
    assert!(err.to_string().contains("control character"), "{err}");
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    assert!(ledger.failed(EDITION).unwrap().is_empty());
    let counts = ledger.counts(EDITION).unwrap();
    assert_eq!((counts.sent, counts.pending), (1, 2), "{counts:?}");
    for path in sink.dumps() {
        assert!(!std::fs::read_to_string(path).unwrap().contains("everyone@"));
    }
}

/// A composer that panics (a bug of ours) stops the send like any composing
/// failure: no hang, nobody failed, the rest still pending.
#[tokio::test]
async fn a_panic_while_composing_stops_the_send_and_fails_nobody() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let mut jobs = jobs(&ledger);
    jobs[1].message = MessageSource::Compose(Box::new(|| panic!("a bug")));
    let done = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        deliver(&smtp(&sink, 2, 1), jobs, options(), ledger, |_| {}),
    )
    .await
    .expect("no hang");
    let err = done.expect_err("the run stops");
    assert!(err.to_string().contains("panicked"), "{err}");
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    assert!(ledger.failed(EDITION).unwrap().is_empty());
    assert!(ledger.counts(EDITION).unwrap().pending >= 1);
}

/// Fails on the `fail_at`-th commit, like a full disk.
struct FailingSink {
    ledger: Ledger,
    commits: usize,
    fail_at: usize,
    recorded: Arc<Mutex<Vec<DeliveryUpdate>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("disk full")]
struct DiskFull;

impl OutcomeSink for FailingSink {
    type Error = DiskFull;

    fn record(&mut self, outcomes: &[DeliveryUpdate]) -> Result<(), DiskFull> {
        self.commits += 1;
        if self.commits >= self.fail_at {
            return Err(DiskFull);
        }
        self.ledger.record_batch(outcomes).map_err(|_| DiskFull)?;
        self.recorded.lock().unwrap().extend_from_slice(outcomes);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_one_message_per_connection_is_in_doubt() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 100);
    let jobs = jobs(&ledger);
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let failing = FailingSink {
        ledger,
        commits: 0,
        fail_at: 6,
        recorded: Arc::clone(&recorded),
    };
    let connections = 3;
    let err = deliver(
        &smtp(&sink, connections, 1),
        jobs,
        options(),
        failing,
        |_| {},
    )
    .await
    .err()
    .expect("the send stops");
    assert!(matches!(err, SendError::Ledger(_)), "{err}");
    let recorded_sent = recorded
        .lock()
        .unwrap()
        .iter()
        .filter(|o| o.state == DeliveryState::Sent)
        .count();
    let delivered = sink.dumps().len();
    assert!(delivered >= recorded_sent);
    assert!(
        delivered <= recorded_sent + connections,
        "{delivered} delivered, {recorded_sent} recorded: more than one per connection in doubt"
    );
    assert!(delivered < 100, "sending stopped early");
}

#[tokio::test]
async fn lost_lease_stops_the_send() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = frozen_ledger(dir.path(), 50);
    let ttl = Duration::from_millis(30);
    let alive = |_: &str| false;
    let joined = ledger.join_edition(EDITION, "host-a", ttl, &alive).unwrap();
    assert!(joined.others.is_empty());
    std::thread::sleep(Duration::from_millis(60));
    // Another sender sees the expired lease and takes over.
    let mut other = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    let joined = (other.join_edition(EDITION, "host-b", Duration::from_secs(60), &alive)).unwrap();
    assert_eq!(joined.took_over, ["host-a"]);
    let jobs = jobs(&ledger);
    let leased = LeasedLedger::new(ledger, EDITION, "host-a", ttl);
    std::thread::sleep(Duration::from_millis(20));
    let err = deliver(&smtp(&sink, 1, 1), jobs, options(), leased, |_| {})
        .await
        .err()
        .expect("stops");
    assert!(
        err.to_string().contains("recording outcomes failed"),
        "{err}"
    );
    assert!(sink.dumps().len() <= 2, "stopped after the first commit");
}

#[tokio::test]
async fn unreachable_relay_fails_before_touching_readers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let jobs = jobs(&ledger);
    let transport = Transport::Smtp(SmtpSettings {
        url: format!("smtp://127.0.0.1:{port}?tls=none"),
        timeout: Duration::from_secs(2),
        ..SmtpSettings::default()
    });
    let err = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect_err("fails");
    assert!(matches!(err, SendError::Connect(_)), "{err}");
    assert!(
        err.is_transient(),
        "a refused connection is worth another run"
    );
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    assert_eq!(ledger.counts(EDITION).unwrap().pending, 3);
}

#[tokio::test]
async fn starttls_is_required_unless_plain_was_asked_for() {
    // smtp-sink offers no STARTTLS: an smtp:// URL must refuse it rather
    // than silently send in plain text.
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 1);
    let jobs = jobs(&ledger);
    let transport = Transport::Smtp(SmtpSettings {
        url: format!("smtp://127.0.0.1:{}", sink.port),
        timeout: Duration::from_secs(2),
        ..SmtpSettings::default()
    });
    let err = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect_err("refuses");
    assert!(err.to_string().contains("STARTTLS"), "{err}");
    assert!(!err.is_transient());
    assert!(sink.dumps().is_empty());
}

#[tokio::test]
async fn outbox_writes_one_file_per_message() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 5);
    let jobs = jobs(&ledger);
    let outbox = dir.path().join("outbox");
    let transport = Transport::Outbox {
        dir: outbox.clone(),
    };
    let (done, ledger) = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .unwrap();
    assert_eq!(done.sent, 5);
    let mut names: Vec<String> = std::fs::read_dir(&outbox)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), 5);
    let expected = message_id(EDITION, "reader000@example.org", "news.example.com");
    assert!(names.contains(&format!(
        "{}.eml",
        expected.trim_matches(|c| c == '<' || c == '>')
    )));
    assert_eq!(ledger.counts(EDITION).unwrap().sent, 5);
}

#[tokio::test]
async fn refused_envelope_sender_stops_without_failing_readers() {
    // A 5xx to MAIL FROM is about us, not the reader: stop, keep them pending.
    let sink = smtp_sink::SmtpSink::start(&["-f", "MAIL"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 5);
    let jobs = jobs(&ledger);
    let err = deliver(&smtp(&sink, 2, 3), jobs, options(), ledger, |_| {})
        .await
        .expect_err("stops");
    match err {
        SendError::Stopped { failure, sent } => {
            assert_eq!(sent, 0);
            assert!(failure.to_string().contains("envelope sender"), "{failure}");
            assert!(failure.is_fatal());
        }
        other => panic!("expected Stopped, got {other}"),
    }
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    let counts = ledger.counts(EDITION).unwrap();
    assert_eq!((counts.pending, counts.failed), (5, 0));
}

fn tls_settings(url: String) -> Transport {
    Transport::Smtp(SmtpSettings {
        url,
        connections: 2,
        timeout: Duration::from_secs(5),
        hello_name: Some("briefing.test".to_owned()),
        ca_file: Some(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail/test-ca.pem"),
        ),
        ..SmtpSettings::default()
    })
}

/// Ten messages through a TLS front (`mode`) of a sink, to `scheme://`.
async fn delivers_ten_over(mode: smtp_sink::TlsMode, scheme: &str) {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let front = smtp_sink::TlsFront::start(sink.port, mode).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 10);
    let jobs = jobs(&ledger);
    let transport = tls_settings(format!("{scheme}://localhost:{}", front.port));
    let (done, _) = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .unwrap_or_else(|e| panic!("delivers over {scheme}: {e}"));
    assert_eq!(done.sent, 10);
    assert_eq!(sink.dumps().len(), 10);
}

#[tokio::test]
async fn delivers_over_implicit_tls() {
    delivers_ten_over(smtp_sink::TlsMode::Implicit, "smtps").await;
}

#[tokio::test]
async fn delivers_over_starttls() {
    delivers_ten_over(smtp_sink::TlsMode::StartTls, "smtp").await;
}

#[tokio::test]
async fn untrusted_certificate_stops_before_sending() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let front = smtp_sink::TlsFront::start(sink.port, smtp_sink::TlsMode::Implicit).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 2);
    let jobs = jobs(&ledger);
    // Without the test CA the certificate does not verify.
    let transport = Transport::Smtp(SmtpSettings {
        url: format!("smtps://localhost:{}", front.port),
        timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    });
    let err = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect_err("refuses");
    match err {
        SendError::Connect(failure) => {
            assert!(
                failure.is_fatal(),
                "a certificate that does not verify is not transient"
            );
            let text = failure.to_string();
            assert!(text.starts_with("TLS handshake with localhost:"), "{text}");
            assert!(text.contains("certificate"), "{text}");
        }
        other => panic!("expected a connect error, got {other}"),
    }
    assert!(sink.dumps().is_empty());
}

#[tokio::test]
async fn authenticates_with_the_password_from_the_environment() {
    // smtp-sink announces AUTH and accepts any credentials; this checks the
    // AUTH exchange and that the password comes from the named variable.
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let jobs = jobs(&ledger);
    // smtp-sink accepts any password, so any variable that is set will do;
    // PATH always is (setting our own would need `unsafe` set_var while
    // other test threads run).
    let var = "PATH";
    let transport = Transport::Smtp(SmtpSettings {
        url: sink.url(),
        username: Some("briefing".to_owned()),
        password_env: Some(var.to_owned()),
        timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    });
    let (done, ledger) = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect("delivers after AUTH");
    assert_eq!(done.sent, 3);

    // A relay that offers no AUTH while we have credentials is a
    // configuration error: stop before any reader is tried.
    let no_auth = smtp_sink::SmtpSink::start(&["-a"]);
    let transport = Transport::Smtp(SmtpSettings {
        url: no_auth.url(),
        username: Some("briefing".to_owned()),
        password_env: Some(var.to_owned()),
        timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    });
    let err = deliver(
        &transport,
        Vec::from_iter(jobs_for_one()),
        options(),
        ledger,
        |_| {},
    )
    .await
    .expect_err("refuses");
    assert!(err.to_string().contains("authentication failed"), "{err}");
    assert!(!err.is_transient());
    assert!(no_auth.dumps().is_empty());
}

fn jobs_for_one() -> Option<Job> {
    Some(Job {
        email: "reader000@example.org".to_owned(),
        message_id: None,
        message: MessageSource::Bytes(b"Subject: x\r\n\r\nx\r\n".to_vec()),
        envelope_from: None,
    })
}

/// What [`pipelining_server`] accepted: (recipients, data) per message, and
/// whether RCPT and DATA ever arrived together with MAIL (pipelined).
type Accepted = (Arc<Mutex<Vec<(Vec<String>, String)>>>, Arc<AtomicBool>);

/// A small SMTP server that offers PIPELINING (smtp-sink's `-r` and `-f`
/// turn it off), refuses RCPT for addresses containing `bad` (550) or
/// `later` (451), and records what it accepts. `sloppy` answers DATA with
/// 354 even when no recipient was accepted, which RFC 2920 tells the client
/// to handle by sending an empty message.
async fn pipelining_server(sloppy: bool) -> (u16, Accepted) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let pipelined = Arc::new(AtomicBool::new(false));
    let log = Arc::clone(&accepted);
    let seen = Arc::clone(&pipelined);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let log = Arc::clone(&log);
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                let _ = stream.get_mut().write_all(b"220 fake ESMTP\r\n").await;
                let mut rcpts: Vec<String> = Vec::new();
                let mut line = String::new();
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: &[u8] = if upper.starts_with("EHLO") {
                        b"250-fake\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        let rest = String::from_utf8_lossy(stream.buffer()).to_ascii_uppercase();
                        if upper.starts_with("MAIL")
                            && rest.contains("RCPT")
                            && rest.contains("DATA")
                        {
                            seen.store(true, Ordering::SeqCst);
                        }
                        rcpts.clear();
                        b"250 2.0.0 Ok\r\n"
                    } else if upper.starts_with("RCPT") {
                        if line.contains("bad") {
                            b"550 5.1.1 no such user\r\n"
                        } else if line.contains("later") {
                            b"451 4.3.0 try later\r\n"
                        } else {
                            rcpts.push(line[8..].trim().to_owned());
                            b"250 2.1.5 Ok\r\n"
                        }
                    } else if upper.starts_with("DATA") {
                        if rcpts.is_empty() && !sloppy {
                            b"554 5.5.1 Error: no valid recipients\r\n"
                        } else {
                            let _ = stream.get_mut().write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                if stream.read_line(&mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            log.lock().unwrap().push((std::mem::take(&mut rcpts), data));
                            b"250 2.0.0 Ok: queued\r\n"
                        }
                    } else if upper.starts_with("QUIT") {
                        let _ = stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                        return;
                    } else {
                        b"250 2.0.0 Ok\r\n"
                    };
                    let _ = stream.get_mut().write_all(reply).await;
                }
            });
        }
    });
    (port, (accepted, pipelined))
}

#[tokio::test]
async fn pipelined_refusals_are_classified_and_the_session_goes_on() {
    for sloppy in [false, true] {
        let (port, (accepted, pipelined)) = pipelining_server(sloppy).await;
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
        let recipients: Vec<Recipient> = ["good1", "bad", "later", "good2"]
            .iter()
            .map(|who| Recipient {
                email: format!("{who}@example.org"),
                name: None,
                rendering: MAIN_RENDERING,
                fields: Default::default(),
            })
            .collect();
        ledger.freeze_edition(&edition(), &recipients).unwrap();
        let jobs = jobs(&ledger);
        let transport = Transport::Smtp(SmtpSettings {
            url: format!("smtp://127.0.0.1:{port}?tls=none"),
            connections: 1,
            retries: 1,
            timeout: Duration::from_secs(5),
            ..SmtpSettings::default()
        });
        let (done, ledger) = deliver(&transport, jobs, options(), ledger, |_| {})
            .await
            .expect("delivers");
        assert_eq!(
            (done.sent, done.failed, done.deferred),
            (2, 1, 1),
            "{sloppy}"
        );
        let states: Vec<(String, DeliveryState, Option<String>)> = ledger
            .deliveries(EDITION)
            .unwrap()
            .into_iter()
            .map(|d| (d.email, d.state, d.last_reply))
            .collect();
        // Refusals keep the relay's reply; an acceptance is not kept.
        for (email, state, reply) in [
            (
                "bad@example.org",
                DeliveryState::Failed,
                Some("550 5.1.1 no such user"),
            ),
            (
                "later@example.org",
                DeliveryState::Deferred,
                Some("451 4.3.0 try later"),
            ),
            ("good1@example.org", DeliveryState::Sent, None),
            ("good2@example.org", DeliveryState::Sent, None),
        ] {
            assert!(
                states.contains(&(email.to_owned(), state, reply.map(str::to_owned))),
                "{sloppy}: {email}: {states:?}"
            );
        }
        // Only the good ones carried a message; a sloppy server got empty
        // messages without recipients, which deliver nothing.
        let accepted = accepted.lock().unwrap();
        let delivered: Vec<&Vec<String>> = accepted
            .iter()
            .filter(|(rcpts, _)| !rcpts.is_empty())
            .map(|(rcpts, _)| rcpts)
            .collect();
        assert_eq!(
            delivered,
            [
                &vec!["<good1@example.org>".to_owned()],
                &vec!["<good2@example.org>".to_owned()]
            ],
            "{sloppy}"
        );
        assert!(
            accepted
                .iter()
                .all(|(rcpts, data)| rcpts.is_empty() == data.is_empty())
        );
        assert!(
            pipelined.load(Ordering::SeqCst),
            "MAIL, RCPT and DATA were not sent together"
        );
    }
}

// ---------------------------------------------------------------------------
// Delivery semantics (issue 9: 15, 17, 18, 19), against a real smtp-sink.

/// What [`Front`] does with one of the first connections it accepts.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Accept, then close at once: no greeting.
    Close,
    /// Greet with `421 4.3.2` and close, as a relay that is too busy does.
    Busy,
    /// Accept and say nothing, as a relay whose banner never comes.
    Silent,
}

/// A TCP front for a real smtp-sink: its first connections meet `faults`,
/// in order; every later one is passed through to the sink untouched. It
/// counts the connections it accepted.
struct Front {
    port: u16,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Front {
    /// `listen_after`: the port refuses connections (nothing listens on it)
    /// for that long, then the front starts.
    async fn start(sink_port: u16, faults: Vec<Fault>, listen_after: Duration) -> Front {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = std_listener.local_addr().unwrap().port();
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = Arc::clone(&accepted);
        let listener = if listen_after.is_zero() {
            std_listener.set_nonblocking(true).unwrap();
            Some(tokio::net::TcpListener::from_std(std_listener).unwrap())
        } else {
            drop(std_listener);
            None
        };
        tokio::spawn(async move {
            let listener = match listener {
                Some(l) => l,
                None => {
                    tokio::time::sleep(listen_after).await;
                    tokio::net::TcpListener::bind(("127.0.0.1", port))
                        .await
                        .expect("the front's port is still free")
                }
            };
            while let Ok((mut client, _)) = listener.accept().await {
                let n = count.fetch_add(1, Ordering::SeqCst);
                let fault = faults.get(n).copied();
                tokio::spawn(async move {
                    use tokio::io::AsyncWriteExt;
                    match fault {
                        Some(Fault::Close) => {}
                        Some(Fault::Busy) => {
                            let _ = client
                                .write_all(b"421 4.3.2 Service busy, try again later\r\n")
                                .await;
                        }
                        Some(Fault::Silent) => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                        }
                        None => {
                            if let Ok(mut sink) =
                                tokio::net::TcpStream::connect(("127.0.0.1", sink_port)).await
                            {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut sink).await;
                            }
                        }
                    }
                });
            }
        });
        Front { port, accepted }
    }

    fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

/// Backoff long enough for a relay to come back within a test.
fn patient_options() -> SendOptions {
    SendOptions {
        backoff: Duration::from_millis(100),
        max_backoff: Duration::from_millis(400),
        ..options()
    }
}

#[tokio::test]
async fn a_short_outage_on_the_first_connection_is_waited_out() {
    // Issue 9.17: each of these made the whole send fail at once.
    let sink = smtp_sink::SmtpSink::start(&[]);
    for (what, faults, refuse_for) in [
        ("connection refused", vec![], Duration::from_millis(250)),
        (
            "closed before the greeting",
            vec![Fault::Close; 2],
            Duration::ZERO,
        ),
        ("421 greeting", vec![Fault::Busy; 2], Duration::ZERO),
        ("banner timeout", vec![Fault::Silent], Duration::ZERO),
    ] {
        let front = Front::start(sink.port, faults.clone(), refuse_for).await;
        let dir = tempfile::tempdir().unwrap();
        let ledger = frozen_ledger(dir.path(), 3);
        let jobs = jobs(&ledger);
        let transport = Transport::Smtp(SmtpSettings {
            url: front.url(),
            connections: 1,
            retries: 3,
            timeout: Duration::from_millis(500),
            ..SmtpSettings::default()
        });
        let (done, ledger) = deliver(&transport, jobs, patient_options(), ledger, |_| {})
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!((done.sent, done.deferred), (3, 0), "{what}");
        assert_eq!(
            front.accepted(),
            faults.len() + 1,
            "{what}: one session after the faults"
        );
        for delivery in ledger.deliveries(EDITION).unwrap() {
            assert_eq!(
                delivery.attempts, 1,
                "{what}: the outage was charged to a reader"
            );
        }
    }
    assert_eq!(sink.dumps().len(), 12);
}

#[tokio::test]
async fn a_lasting_outage_leaves_every_reader_pending_as_transient() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let front = Front::start(sink.port, vec![Fault::Busy; 10], Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let jobs = jobs(&ledger);
    let transport = Transport::Smtp(SmtpSettings {
        url: front.url(),
        retries: 2,
        timeout: Duration::from_secs(2),
        ..SmtpSettings::default()
    });
    let err = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect_err("the relay never took a session");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("421 4.3.2 Service busy"), "{err}");
    assert_eq!(front.accepted(), 3, "the first try and two retries");
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    let counts = ledger.counts(EDITION).unwrap();
    assert_eq!((counts.pending, counts.unsent()), (3, 3));
    assert!(sink.dumps().is_empty());
}

#[test]
fn send_exits_75_when_the_relay_is_down_and_a_rerun_delivers() {
    // The binary end to end: the fixture's relay (port 9) refuses every
    // connection. Transient, so exit 75 (EX_TEMPFAIL), not 1, and the
    // edition waits for the next run instead of failing anyone.
    use crate::support::SEND_AM as SEND;
    let secret = [("BRIEFING_UNSUBSCRIBE_SECRET", "send-test-secret")];
    let room = crate::support::Newsroom::fixture("delivery");
    room.run_env(&SEND, &secret)
        .code(75)
        .stdout_has("sent 0, deferred 0, failed 0")
        .stdout_has("3 deferred to the next run")
        .stderr_has("the relay is unavailable")
        .stderr_has("cannot connect to 127.0.0.1:9");
    let ledger = Ledger::open(&room.path().join("state/ledger.sqlite")).unwrap();
    assert_eq!(ledger.counts(EDITION).unwrap().pending, 3);

    let sink = smtp_sink::SmtpSink::start(&[]);
    let room = room.edit("config.yaml", "smtp://127.0.0.1:9?tls=none", &sink.url());
    room.run_env(&SEND, &secret)
        .success()
        .stdout_has("sent 3, deferred 0, failed 0")
        .stdout_has("[resumed]");
    assert_eq!(sink.dumps().len(), 3);
}

fn lossy(sink: &smtp_sink::SmtpSink, data_timeout: Duration) -> Transport {
    Transport::Smtp(SmtpSettings {
        url: sink.url(),
        connections: 2,
        retries: 2,
        timeout: Duration::from_secs(5),
        data_timeout,
        ..SmtpSettings::default()
    })
}

/// How many messages each envelope recipient got.
fn copies(sinks: &[&smtp_sink::SmtpSink]) -> std::collections::BTreeMap<String, usize> {
    let mut tally = std::collections::BTreeMap::new();
    for dump in sinks.iter().flat_map(|s| s.received()) {
        *tally.entry(dump.rcpt).or_default() += 1;
    }
    tally
}

#[tokio::test]
async fn a_lost_final_dot_reply_is_in_doubt_and_never_retried_in_the_run() {
    // Issue 9.18: `-q .` reads the whole message, keeps it, and hangs up
    // without a reply; `-W .:30` keeps it and holds the reply longer than
    // data_timeout. With retries: 2, each reader got 3 copies.
    for (flags, data_timeout, lost) in [
        (
            ["-q", "."],
            Duration::from_secs(5),
            "the server closed the connection",
        ),
        (
            ["-W", ".:30"],
            Duration::from_millis(700),
            "timed out after 700ms",
        ),
    ] {
        let sink = smtp_sink::SmtpSink::start(&flags);
        let dir = tempfile::tempdir().unwrap();
        let ledger = frozen_ledger(dir.path(), 3);
        let jobs = jobs(&ledger);
        let (done, ledger) = deliver(&lossy(&sink, data_timeout), jobs, options(), ledger, |_| {})
            .await
            .expect("delivers");
        assert_eq!(
            (done.sent, done.deferred, done.failed, done.in_doubt),
            (0, 0, 0, 3),
            "{flags:?}"
        );
        let got = copies(&[&sink]);
        assert_eq!(got.len(), 3, "{flags:?}: {got:?}");
        assert!(
            got.values().all(|n| *n == 1),
            "{flags:?}: resent within the run: {got:?}"
        );
        for d in ledger.deliveries(EDITION).unwrap() {
            assert_eq!(
                (d.state, d.attempts, d.doubts),
                (DeliveryState::InDoubt, 1, 1)
            );
            let reply = d.last_reply.unwrap();
            assert!(reply.starts_with("in doubt: "), "{reply}");
            assert!(reply.contains(lost), "{flags:?}: {reply}");
        }
        let counts = ledger.counts(EDITION).unwrap();
        assert_eq!((counts.in_doubt, counts.resend, counts.unsent()), (3, 3, 3));
    }
}

#[tokio::test]
async fn an_in_doubt_reader_is_resent_at_most_once_on_later_runs() {
    // Run 1 loses every final-dot reply. Run 2 resends once: to a healthy
    // relay that delivers; to the same lossy relay that leaves them in
    // doubt for good, and run 3 then sends nobody a third copy.
    for second_is_lossy in [false, true] {
        let lossy_sink = smtp_sink::SmtpSink::start(&["-q", "."]);
        let healthy = smtp_sink::SmtpSink::start(&[]);
        let dir = tempfile::tempdir().unwrap();
        let ledger = frozen_ledger(dir.path(), 3);
        let run = |ledger: Ledger, sink: &smtp_sink::SmtpSink| {
            let jobs = jobs(&ledger);
            let transport = lossy(sink, Duration::from_secs(5));
            async move {
                deliver(&transport, jobs, options(), ledger, |_| {})
                    .await
                    .unwrap()
            }
        };
        let (first, ledger) = run(ledger, &lossy_sink).await;
        assert_eq!(first.in_doubt, 3);
        let second_sink = if second_is_lossy {
            &lossy_sink
        } else {
            &healthy
        };
        let (second, ledger) = run(ledger, second_sink).await;
        assert_eq!(
            second.total, 3,
            "{second_is_lossy}: the in-doubt readers are resent"
        );
        let counts = ledger.counts(EDITION).unwrap();
        if second_is_lossy {
            assert_eq!(second.in_doubt, 3);
            assert_eq!((counts.in_doubt, counts.resend, counts.unsent()), (3, 0, 0));
        } else {
            assert_eq!(second.sent, 3);
            assert_eq!((counts.sent, counts.in_doubt, counts.unsent()), (3, 0, 0));
        }
        let (third, _) = run(ledger, &healthy).await;
        assert_eq!(
            third.total, 0,
            "{second_is_lossy}: nobody is left to send to"
        );
        let got = copies(&[&lossy_sink, &healthy]);
        assert_eq!(got.len(), 3);
        assert!(got.values().all(|n| *n == 2), "{second_is_lossy}: {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_more_sessions_than_readers() {
    // Issue 9.19: with 8 connections and 2 readers whose RCPT is soft
    // rejected, idle workers picked up the retries and opened sessions of
    // their own (6 to 8 sessions on the old code). Several threads, as in
    // the binary, so that any idle worker can win a retry.
    let sink = smtp_sink::SmtpSink::start(&["-r", "RCPT"]);
    let front = Front::start(sink.port, Vec::new(), Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 2);
    let jobs = jobs(&ledger);
    let transport = Transport::Smtp(SmtpSettings {
        url: front.url(),
        connections: 8,
        retries: 4,
        timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    });
    let (done, _) = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect("delivers");
    assert_eq!(done.deferred, 2);
    assert!(
        front.accepted() <= 2,
        "{} sessions for 2 readers",
        front.accepted()
    );
}

#[tokio::test]
async fn throttling_never_speeds_up_a_slow_configured_rate() {
    // Issue 9.15: `rate: 0.4` (one message every 2.5 s) and a relay that
    // answers every RCPT with 450: backing off took it to 0.5/s, a message
    // every 2 s.
    let sink = smtp_sink::SmtpSink::start(&["-r", "RCPT"]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 3);
    let jobs = jobs(&ledger);
    let transport = Transport::Smtp(SmtpSettings {
        url: sink.url(),
        connections: 1,
        retries: 0,
        rate: Some(0.4),
        timeout: Duration::from_secs(5),
        ..SmtpSettings::default()
    });
    let (done, ledger) = deliver(&transport, jobs, options(), ledger, |_| {})
        .await
        .expect("delivers");
    assert_eq!(done.deferred, 3);
    let mut times: Vec<_> = ledger
        .deliveries(EDITION)
        .unwrap()
        .into_iter()
        .map(|d| d.updated_at)
        .collect();
    times.sort();
    let gaps: Vec<i64> = times
        .windows(2)
        .map(|w| (w[1] - w[0]).num_milliseconds())
        .collect();
    assert!(
        gaps.iter().all(|gap| *gap >= 2_300),
        "attempts closer than 1/rate (2.5 s): {gaps:?} ms"
    );
}

/// A message we cannot compose is our failure, not the recipient's: the run
/// stops with everyone still pending, so a fix and a rerun deliver them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_cannot_be_composed_stops_the_run_and_fails_nobody() {
    let sink = smtp_sink::SmtpSink::start(&[]);
    let dir = tempfile::tempdir().unwrap();
    let ledger = frozen_ledger(dir.path(), 20);
    let mut jobs = jobs(&ledger);
    jobs[5].message = MessageSource::Compose(Box::new(|| Err("Subject is too long".into())));
    let err = deliver(&smtp(&sink, 2, 1), jobs, options(), ledger, |_| {})
        .await
        .expect_err("the run stops");
    assert!(
        err.to_string()
            .contains("cannot compose the message to reader005@example.org"),
        "{err}"
    );
    let ledger = Ledger::open(&dir.path().join("state/ledger.sqlite")).unwrap();
    let counts = ledger.counts(EDITION).unwrap();
    assert_eq!(counts.failed, 0, "{counts:?}");
    assert!(counts.pending >= 1, "{counts:?}");
    assert_eq!(counts.sent + counts.pending, 20, "{counts:?}");
}
