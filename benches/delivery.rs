//! Composing one reader's message, single-threaded, the way `briefing send`
//! does it on a worker: through `briefing::delivery::Composer`, from a real
//! rendered edition with subscriber placeholders, filling in the reader's
//! name, address, city and unsubscribe link (HMAC token), then encoding the
//! MIME parts and assembling the headers, without and with DKIM.
//!
//! The edition is the sample newsroom's Evening Brief (`pm`) of 2026-11-30
//! 17:00: 22.7 KB of HTML and 5.3 KB of text, about 31 KB per message. Run
//! with `cargo bench --bench delivery`; figures in docs/benchmarks.md (Sending).
//! `compose_and_sign_30kb` signs the same message with our signer and with
//! lettre's DKIM, the baseline. End-to-end sending is measured by
//! bench/send_vs_smtp_source.sh.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

use briefing::config::Newsroom;
use briefing::delivery::compose::Composer;
use briefing::delivery::plan;
use briefing::ledger::Rendering;
use briefing::mail::message::{
    DkimAlgorithm, DkimSettings, DkimSigner, build_message, compose as compose_message,
};
use briefing::pipeline::Pipeline;
use briefing::time::parse_when;

const EDITION_AT: &str = "2026-11-30T17:00";

/// The sample newsroom and the whole rendering of its `pm` edition: every
/// item, every subscriber field a placeholder.
fn edition() -> (Newsroom, String, Rendering) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newsroom = Newsroom::load(&root.join("config.yaml")).expect("the sample config is valid");
    let cfg = &newsroom.config;
    let n = cfg.newsletter("pm").expect("the sample newsroom has pm");
    let at = parse_when(EDITION_AT, cfg.site.timezone).expect("a valid time");
    let n = n.clone();
    let pipeline = Pipeline::open(newsroom.clone(), &Pipeline::scope_at([&n], at));
    let ed = pipeline.edition(&n, at).expect("a slot");
    let plan = plan(&pipeline, &ed).expect("the edition plans");
    let main = plan
        .frozen
        .renderings
        .into_iter()
        .next()
        .expect("the whole edition's rendering");
    (newsroom, plan.frozen.id, main)
}

/// A reader's template fields as the ledger keeps them.
struct Reader {
    email: String,
    name: String,
    fields: BTreeMap<String, String>,
}

fn readers(n: usize) -> Vec<Reader> {
    (0..n)
        .map(|i| {
            let name = format!("Reader Nº{i}");
            let fields = [
                ("city".to_owned(), "St. Petersburg".to_owned()),
                ("email".to_owned(), format!("reader{i:05}@example.org")),
                ("name".to_owned(), name.clone()),
                ("unsubscribe_url".to_owned(), "-".to_owned()),
            ]
            .into();
            Reader {
                email: format!("reader{i:05}@example.org"),
                name,
                fields,
            }
        })
        .collect()
}

fn with_dkim(newsroom: &Newsroom, key: &str, algorithm: DkimAlgorithm) -> Newsroom {
    let mut newsroom = newsroom.clone();
    newsroom.config.delivery.dkim = Some(DkimSettings {
        domain: "news.example.com".to_owned(),
        selector: "bench".to_owned(),
        key_file: Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mail")
            .join(key),
        algorithm,
    });
    newsroom
}

fn compose(c: &mut Criterion) {
    let (newsroom, edition_id, variant) = edition();
    let n = newsroom.config.newsletter("pm").unwrap().clone();
    let rendered = variant.html.len() + variant.text.len();
    eprintln!(
        "edition {edition_id}: {} bytes of HTML + {} of text = {:.1} KB rendered",
        variant.html.len(),
        variant.text.len(),
        rendered as f64 / 1024.0
    );
    assert!(
        (24_000..36_000).contains(&rendered),
        "not a 30 KB edition: {rendered} bytes"
    );
    let content = (
        variant.subject.as_str(),
        variant.html.as_str(),
        variant.text.as_str(),
    );
    let readers = readers(1000);
    let secret = b"bench-secret".to_vec();
    let composers = [
        ("no_dkim", newsroom.clone()),
        (
            "dkim_ed25519",
            with_dkim(&newsroom, "dkim-ed25519.pem", DkimAlgorithm::Ed25519Sha256),
        ),
        (
            "dkim_rsa2048",
            with_dkim(&newsroom, "dkim-rsa.pem", DkimAlgorithm::RsaSha256),
        ),
    ]
    .map(|(label, room)| {
        let composer = Composer::new(&room, &n, &edition_id, secret.clone()).expect("a composer");
        (label, composer)
    });
    let size = composers[0]
        .1
        .compose(
            &edition_id,
            content,
            &readers[0].email,
            Some(&readers[0].name),
            &readers[0].fields,
        )
        .unwrap()
        .len();
    eprintln!("one message: {:.1} KB", size as f64 / 1024.0);

    let mut g = c.benchmark_group("compose_30kb");
    g.sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    for (label, composer) in &composers {
        let mut i = 0;
        g.bench_function(*label, |b| {
            b.iter(|| {
                let r = &readers[i % readers.len()];
                i += 1;
                composer
                    .compose(
                        black_box(&edition_id),
                        black_box(content),
                        &r.email,
                        Some(&r.name),
                        &r.fields,
                    )
                    .map(|m| m.len())
                    .unwrap()
            })
        });
    }
    g.finish();
}

/// Signing alone, ours (aws-lc-rs) next to lettre's DKIM (the pure-Rust
/// `rsa` crate and ed25519-dalek), on the same reader's message: the
/// baseline the gain is measured against.
fn sign(c: &mut Criterion) {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use lettre::message::dkim::{
        DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm,
        DkimSigningKey,
    };
    use lettre::message::header::HeaderName;

    let (newsroom, edition_id, variant) = edition();
    let n = newsroom.config.newsletter("pm").unwrap().clone();
    let composer = Composer::new(&newsroom, &n, &edition_id, b"bench-secret".to_vec()).unwrap();
    let r = &readers(1)[0];
    let spec = composer
        .spec(
            &edition_id,
            (&variant.subject, &variant.html, &variant.text),
            &r.email,
            Some(&r.name),
            &r.fields,
            true,
        )
        .unwrap();
    let fixture = |name: &str| {
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/mail")
                .join(name),
        )
        .unwrap()
    };
    let lettre_config = |key: DkimSigningKey| {
        DkimConfig::new(
            "bench".to_owned(),
            "news.example.com".to_owned(),
            key,
            DkimSigner::SIGNED_HEADERS
                .iter()
                .map(|h| HeaderName::new_from_ascii_str(h))
                .collect(),
            DkimCanonicalization {
                header: DkimCanonicalizationType::Relaxed,
                body: DkimCanonicalizationType::Relaxed,
            },
        )
    };
    // lettre wants the Ed25519 seed in base64: the last 32 bytes of the
    // PKCS#8 DER.
    let ed_pem = fixture("dkim-ed25519.pem");
    let ed_der: String = ed_pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let ed_der = STANDARD.decode(ed_der).unwrap();
    let seed = STANDARD.encode(&ed_der[ed_der.len() - 32..]);
    let baselines = [
        (
            "ed25519",
            lettre_config(DkimSigningKey::new(&seed, DkimSigningAlgorithm::Ed25519).unwrap()),
            "dkim-ed25519.pem",
            DkimAlgorithm::Ed25519Sha256,
        ),
        (
            "rsa2048",
            lettre_config(
                DkimSigningKey::new(&fixture("dkim-rsa-pkcs1.pem"), DkimSigningAlgorithm::Rsa)
                    .unwrap(),
            ),
            "dkim-rsa.pem",
            DkimAlgorithm::RsaSha256,
        ),
    ];
    let mut g = c.benchmark_group("compose_and_sign_30kb");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(1));
    for (label, lettre_dkim, key, algorithm) in &baselines {
        let room = with_dkim(&newsroom, key, *algorithm);
        let ours = DkimSigner::load(room.config.delivery.dkim.as_ref().unwrap()).unwrap();
        g.bench_function(format!("{label}_ours"), |b| {
            b.iter(|| {
                compose_message(black_box(&spec), Some(&ours))
                    .unwrap()
                    .len()
            })
        });
        g.bench_function(format!("{label}_lettre"), |b| {
            b.iter(|| {
                let mut m = build_message(black_box(&spec)).unwrap();
                m.sign(lettre_dkim);
                m.formatted().len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, compose, sign);
criterion_main!(benches);
