//! A real Postfix `smtp-sink` per test and what it received, and a TLS
//! front for it (SMTPS and STARTTLS end to end).

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Postfix `smtp-sink` on a free loopback port, dumping each transaction
/// to its own file; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    pub dump: tempfile::TempDir,
}

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

impl SmtpSink {
    /// `extra` are fault-injection flags such as `["-r", "RCPT"]`.
    pub fn start(extra: &[&str]) -> SmtpSink {
        assert!(
            Path::new(SMTP_SINK).exists(),
            "{SMTP_SINK} is missing: install Debian's postfix package \
             (DEBIAN_FRONTEND=noninteractive apt-get install -y postfix)"
        );
        // Ask the kernel for a free port, then hand it to smtp-sink. Another
        // process could grab it in between; the readiness check below would
        // then fail loudly rather than test the wrong server.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dump = tempfile::tempdir().expect("dump dir");
        // smtp-sink drops to `nobody` before writing dumps.
        set_mode(dump.path(), 0o777);
        let mut cmd = Command::new(SMTP_SINK);
        if running_as_root() {
            cmd.args(["-u", "nobody"]);
        }
        // -d "<dir>/%M." : one file per transaction (strftime + random hex).
        cmd.arg("-d")
            .arg(format!("{}/%M.", dump.path().display()))
            .args(extra)
            .arg(format!("127.0.0.1:{port}"))
            .arg("1000")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().expect("start smtp-sink");
        let sink = SmtpSink { child, port, dump };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "smtp-sink did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}?tls=none", self.port)
    }

    /// Dumped transaction files.
    pub fn dumps(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dump.path())
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Every transaction received so far, read back. smtp-sink writes a
    /// dump as its transaction goes (MAIL, then RCPT, then the message):
    /// one still before its `RCPT` is not counted yet.
    pub fn received(&self) -> Vec<Dump> {
        (self.dumps().iter())
            .filter(|p| {
                let raw = std::fs::read(p).unwrap_or_default();
                envelope_address(&String::from_utf8_lossy(&raw), "X-Rcpt-Args: ").is_some()
            })
            .map(|p| read_dump(p))
            .collect()
    }
}

/// One transaction as smtp-sink dumped it: its `X-…` envelope records, then
/// the message as received.
pub struct Dump {
    pub path: PathBuf,
    /// The envelope recipient (`RCPT TO`).
    pub rcpt: String,
    /// The envelope sender (`MAIL FROM`).
    pub mail_from: String,
    /// The whole file: smtp-sink's records and `Received:` line, then the
    /// message. mail-parser reads it as one message.
    pub raw: Vec<u8>,
}

/// The first record `name: <address>` of a dump, without the brackets.
fn envelope_address(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| l.strip_prefix(name)).map(|v| {
        v.trim()
            .trim_start_matches('<')
            .split('>')
            .next()
            .unwrap_or("")
            .to_owned()
    })
}

pub fn read_dump(path: &Path) -> Dump {
    let raw = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let rcpt = envelope_address(&text, "X-Rcpt-Args: ")
        .unwrap_or_else(|| panic!("no X-Rcpt-Args in {}", path.display()));
    let mail_from = envelope_address(&text, "X-Mail-Args: ")
        .unwrap_or_else(|| panic!("no X-Mail-Args in {}", path.display()));
    Dump {
        path: path.to_owned(),
        rcpt,
        mail_from,
        raw,
    }
}

/// The records smtp-sink puts before each dumped message.
pub const SINK_HEADERS: [&str; 6] = [
    "X-Client-Addr",
    "X-Client-Proto",
    "X-Helo-Args",
    "X-Mail-Args",
    "X-Rcpt-Args",
    "Received",
];

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|uid| uid == "0"))
        })
        .unwrap_or(false)
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// How [`TlsFront`] speaks to clients.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// TLS from the first byte (SMTPS).
    Implicit,
    /// Plain greeting and EHLO offering STARTTLS, then TLS.
    StartTls,
}

/// A TLS terminator in front of an [`SmtpSink`], with a certificate for
/// `localhost` signed by `tests/fixtures/mail/test-ca.pem`. Runs on the test's
/// tokio runtime until the runtime ends.
pub struct TlsFront {
    pub port: u16,
}

impl TlsFront {
    pub async fn start(sink_port: u16, mode: TlsMode) -> TlsFront {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::sync::Arc;
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mail");
        let certs = CertificateDer::pem_file_iter(fixtures.join("localhost.pem"))
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(fixtures.join("localhost.key")).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let mut client = BufReader::new(client);
                    if mode == TlsMode::StartTls {
                        let _ = client.get_mut().write_all(b"220 front ESMTP\r\n").await;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if client.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let command = line.trim_end().to_ascii_uppercase();
                            let reply: &[u8] = if command.starts_with("EHLO") {
                                b"250-front\r\n250 STARTTLS\r\n"
                            } else if command == "STARTTLS" {
                                b"220 2.0.0 Ready to start TLS\r\n"
                            } else {
                                b"530 5.7.0 Must issue a STARTTLS command first\r\n"
                            };
                            let _ = client.get_mut().write_all(reply).await;
                            if command == "STARTTLS" {
                                break;
                            }
                        }
                    }
                    let Ok(mut tls) = acceptor.accept(client.into_inner()).await else {
                        return;
                    };
                    let Ok(backend) =
                        tokio::net::TcpStream::connect(("127.0.0.1", sink_port)).await
                    else {
                        return;
                    };
                    let mut backend = BufReader::new(backend);
                    if mode == TlsMode::StartTls {
                        // The client greets again with EHLO over TLS and
                        // expects no second greeting: swallow smtp-sink's.
                        let mut greeting = String::new();
                        let _ = backend.read_line(&mut greeting).await;
                    }
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut backend).await;
                });
            }
        });
        TlsFront { port }
    }
}
