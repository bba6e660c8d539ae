//! An independent DKIM verifier (mail-auth) with a DNS filled by the test,
//! and the test keys.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// A TXT "DNS" filled by the test: the DKIM verifier never leaves the process.
#[derive(Default)]
pub struct TxtRecords(std::sync::Mutex<std::collections::HashMap<Box<str>, mail_auth::Txt>>);

impl mail_auth::ResolverCache<Box<str>, mail_auth::Txt> for TxtRecords {
    fn get<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<mail_auth::Txt>
    where
        Box<str>: std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: mail_auth::Txt, _valid_until: Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// Test keys and DNS records in `tests/fixtures/mail/`.
pub fn mail_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/mail")
        .join(name)
}

/// Verifies the DKIM signatures of `raw` with mail-auth, the DNS holding
/// only `record` at `<selector>._domainkey.news.example.com`.
pub async fn verify_dkim(raw: &[u8], selector: &str, record: &str) -> Vec<mail_auth::DkimResult> {
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;
    use mail_auth::hickory_resolver::config::{ResolverConfig, ResolverOpts};
    use mail_auth::{AuthenticatedMessage, MessageAuthenticator, Parameters, ResolverCache, Txt};

    let txt = TxtRecords::default();
    let key = DomainKey::parse(record.as_bytes()).expect("DNS record parses");
    txt.insert(
        format!("{selector}._domainkey.news.example.com.").into(),
        Txt::from(key),
        Instant::now() + Duration::from_secs(3600),
    );
    // No name servers: a lookup that misses the filled cache fails instead of
    // leaving the machine.
    let authenticator = MessageAuthenticator::new(
        ResolverConfig::from_parts(None, vec![], vec![]),
        ResolverOpts::default(),
    )
    .expect("authenticator");
    let message = AuthenticatedMessage::parse(raw).expect("parses");
    authenticator
        .verify_dkim(Parameters::new(&message).with_txt_cache(&txt))
        .await
        .into_iter()
        .map(|output| output.result().clone())
        .collect()
}

/// Verifies `raw` with Python's dkimpy (Debian's `python3-dkim`), a second
/// implementation next to mail-auth, its DNS answering every lookup with
/// `record`. Returns dkimpy's verdict, or panics saying what is missing.
pub fn dkimpy_verifies(raw: &[u8], record: &str) -> bool {
    use std::io::Write as _;
    const PYTHON: &str = "/usr/bin/python3";
    let script = "import sys, dkim\n\
                  rec = sys.argv[1].encode()\n\
                  ok = dkim.verify(sys.stdin.buffer.read(), dnsfunc=lambda name, timeout=5: rec)\n\
                  print('pass' if ok else 'fail')\n";
    let mut child = std::process::Command::new(PYTHON)
        .args(["-c", script, record])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {PYTHON} (install python3-dkim): {e}"));
    child.stdin.take().unwrap().write_all(raw).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dkimpy failed (install python3-dkim and python3-nacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout.trim() == "pass"
}
