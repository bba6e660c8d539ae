//! Opening a session to the relay: TCP (with TCP_NODELAY), TLS (implicit or
//! STARTTLS, with the system's roots plus `ca_file`), the greeting, one EHLO
//! whose reply says what the relay offers, and AUTH PLAIN or LOGIN. Also the
//! byte stream every later command and reply goes through.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::reply::{self, Capabilities, Reply, ReplyClass, SmtpFailure};
use super::session::SmtpSession;
use super::url::{Endpoint, Security, parse_smtp_url};
use super::{MAX_CONNECTIONS, SettingsError, SmtpSettings};

/// Everything needed to open sessions to one relay, resolved once (password
/// read, certificates loaded) so that every session is set up alike.
pub struct SmtpConnector {
    endpoint: Endpoint,
    tls: Option<TlsConnector>,
    credentials: Option<Credentials>,
    hello: String,
    timeout: Duration,
    data_timeout: Duration,
}

impl fmt::Debug for SmtpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConnector")
            .field("endpoint", &self.endpoint)
            .field("authenticated", &self.credentials.is_some())
            .field("hello", &self.hello)
            .field("timeout", &self.timeout)
            .field("data_timeout", &self.data_timeout)
            .finish()
    }
}

/// A user name and the password read from `password_env`; never printed.
struct Credentials {
    user: String,
    password: String,
}

impl SmtpConnector {
    /// Validates the settings, reads the password from its variable and
    /// loads the root certificates.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpConnector, SettingsError> {
        let endpoint = parse_smtp_url(&settings.url, settings.allow_insecure)?;
        match settings.connections {
            0 => return Err(SettingsError::NoConnections),
            n if n > MAX_CONNECTIONS => return Err(SettingsError::TooManyConnections(n)),
            _ => {}
        }
        if let Some(rate) = settings.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(SettingsError::InvalidRate(rate));
        }
        for (name, value) in [
            ("timeout", settings.timeout),
            ("data_timeout", settings.data_timeout),
        ] {
            if value.is_zero() {
                return Err(SettingsError::ZeroTimeout { name });
            }
        }
        let credentials = match (&settings.username, &settings.password_env) {
            (Some(user), Some(var)) => {
                let password = std::env::var(var)
                    .map_err(|_| SettingsError::MissingPassword { var: var.clone() })?;
                Some(Credentials {
                    user: user.clone(),
                    password,
                })
            }
            (None, None) => None,
            (None, Some(_)) => return Err(SettingsError::PasswordWithoutUser),
            (Some(_), None) => return Err(SettingsError::UserWithoutPassword),
        };
        let tls = match endpoint.security {
            Security::Plain => None,
            Security::StartTls | Security::ImplicitTls => Some(tls_connector(settings)?),
        };
        let hello = match &settings.hello_name {
            Some(name) if is_hello_name(name) => name.clone(),
            Some(name) => return Err(SettingsError::InvalidHelloName(name.clone())),
            None => default_hello_name(),
        };
        Ok(SmtpConnector {
            endpoint,
            tls,
            credentials,
            hello,
            timeout: settings.timeout,
            data_timeout: settings.data_timeout,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens a session: TCP, TLS as configured, greeting, EHLO, AUTH if
    /// configured. Refusals that retrying cannot fix (TLS refused or not
    /// offered, AUTH rejected, a 5xx greeting) come back as
    /// [`SmtpFailure::Fatal`]; everything else (refused or dropped
    /// connections, timeouts, 4xx replies such as a 421 greeting) is
    /// transient.
    pub async fn connect(&self) -> Result<SmtpSession, SmtpFailure> {
        let ep = &self.endpoint;
        let tcp = match tokio::time::timeout(
            self.timeout,
            TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => {
                return Err(SmtpFailure::Connection(format!(
                    "cannot connect to {}:{}: {e}",
                    ep.host, ep.port
                )));
            }
            Err(_) => {
                return Err(SmtpFailure::Connection(format!(
                    "timed out after {:?} connecting to {}:{}",
                    self.timeout, ep.host, ep.port
                )));
            }
        };
        // Commands and the message are each one write; without NODELAY a
        // write after a reply can wait for the server's delayed ACK (40 ms
        // on Linux), capping a session at about 25 messages/s.
        tcp.set_nodelay(true)
            .map_err(|e| SmtpFailure::Connection(format!("connection lost: {e}")))?;
        let stream = match ep.security {
            Security::ImplicitTls => Stream::Tls(Box::new(self.handshake(tcp).await?)),
            Security::StartTls | Security::Plain => Stream::Plain(tcp),
        };
        let mut conn = Conn::new(stream, self.timeout);

        let greeting = conn.reply(self.timeout, "the greeting").await?;
        match greeting.class() {
            ReplyClass::Positive => {}
            ReplyClass::Permanent => {
                return Err(SmtpFailure::Fatal(format!(
                    "the relay refused the session: {greeting}"
                )));
            }
            // 421 "too busy" and the like: later.
            _ => return Err(SmtpFailure::rejected(&greeting)),
        }
        let mut caps = self.ehlo(&mut conn).await?;

        if ep.security == Security::StartTls {
            if !caps.starttls {
                return Err(SmtpFailure::Fatal(format!(
                    "{} does not offer STARTTLS; refusing to continue in plain text",
                    ep.host
                )));
            }
            let reply = conn.command(b"STARTTLS\r\n", "the STARTTLS reply").await?;
            match reply.class() {
                ReplyClass::Positive => {}
                ReplyClass::Permanent => {
                    return Err(SmtpFailure::Fatal(format!(
                        "{} refused STARTTLS: {reply}",
                        ep.host
                    )));
                }
                _ => return Err(SmtpFailure::rejected(&reply)),
            }
            // Anything already buffered was sent before TLS and could be an
            // injected command reply (CVE-2011-0411 and kin): refuse.
            if !conn.buf.is_empty() {
                return Err(SmtpFailure::Fatal(format!(
                    "{} sent data after agreeing to STARTTLS, before the TLS handshake; refusing the session",
                    ep.host
                )));
            }
            let Stream::Plain(tcp) = conn.stream else {
                return Err(SmtpFailure::Fatal("STARTTLS on a TLS session".to_owned()));
            };
            conn = Conn::new(
                Stream::Tls(Box::new(self.handshake(tcp).await?)),
                self.timeout,
            );
            // RFC 3207 4.2: what was said before TLS is forgotten; ask again.
            caps = self.ehlo(&mut conn).await?;
        }

        if let Some(credentials) = &self.credentials {
            self.authenticate(&mut conn, &caps, credentials).await?;
        }
        tracing::debug!(
            host = %ep.host,
            port = ep.port,
            security = ?ep.security,
            pipelining = caps.pipelining,
            "SMTP session open"
        );
        Ok(SmtpSession::new(
            conn,
            caps,
            self.timeout,
            self.data_timeout,
        ))
    }

    async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, SmtpFailure> {
        let ep = &self.endpoint;
        let Some(connector) = &self.tls else {
            return Err(SmtpFailure::Fatal("TLS is not configured".to_owned()));
        };
        let name = ServerName::try_from(ep.host.clone()).map_err(|e| {
            SmtpFailure::Fatal(format!(
                "{} cannot be checked against a certificate: {e}",
                ep.host
            ))
        })?;
        match tokio::time::timeout(self.timeout, connector.connect(name, tcp)).await {
            Ok(Ok(stream)) => Ok(stream),
            Ok(Err(err)) => {
                // rustls's own errors (a certificate that does not verify,
                // no protocol in common, an alert from the server) will be
                // the same next time; I/O errors may not.
                let tls = err
                    .get_ref()
                    .is_some_and(|inner| inner.is::<rustls::Error>());
                let text = format!(
                    "TLS handshake with {}:{} failed: {}",
                    ep.host,
                    ep.port,
                    root_cause(&err)
                );
                Err(if tls {
                    SmtpFailure::Fatal(text)
                } else {
                    SmtpFailure::Connection(text)
                })
            }
            Err(_) => Err(SmtpFailure::Connection(format!(
                "timed out after {:?} in the TLS handshake with {}:{}",
                self.timeout, ep.host, ep.port
            ))),
        }
    }

    /// EHLO, or HELO for a server that does not know EHLO (then without
    /// any extension).
    async fn ehlo(&self, conn: &mut Conn) -> Result<Capabilities, SmtpFailure> {
        let command = format!("EHLO {}\r\n", self.hello);
        let reply = conn.command(command.as_bytes(), "the EHLO reply").await?;
        match reply.class() {
            ReplyClass::Positive => return Ok(reply.capabilities()),
            ReplyClass::Permanent => {}
            _ => return Err(SmtpFailure::rejected(&reply)),
        }
        let command = format!("HELO {}\r\n", self.hello);
        let reply = conn.command(command.as_bytes(), "the HELO reply").await?;
        match reply.class() {
            ReplyClass::Positive => Ok(Capabilities::default()),
            ReplyClass::Permanent => Err(SmtpFailure::Fatal(format!(
                "the relay refused our EHLO and HELO {}: {reply}",
                self.hello
            ))),
            _ => Err(SmtpFailure::rejected(&reply)),
        }
    }

    /// AUTH PLAIN (RFC 4616) where offered, else AUTH LOGIN. A 4xx is
    /// transient (e.g. 454 "temporary authentication failure"); a 5xx means
    /// the credentials are wrong, which no retry fixes.
    async fn authenticate(
        &self,
        conn: &mut Conn,
        caps: &Capabilities,
        credentials: &Credentials,
    ) -> Result<(), SmtpFailure> {
        let final_reply = if caps.offers_auth("PLAIN") {
            let token = BASE64.encode(format!("\0{}\0{}", credentials.user, credentials.password));
            conn.command(
                format!("AUTH PLAIN {token}\r\n").as_bytes(),
                "the AUTH reply",
            )
            .await?
        } else if caps.offers_auth("LOGIN") {
            let mut reply = conn.command(b"AUTH LOGIN\r\n", "the AUTH reply").await?;
            for secret in [&credentials.user, &credentials.password] {
                if reply.code != 334 {
                    break;
                }
                let line = format!("{}\r\n", BASE64.encode(secret));
                reply = conn.command(line.as_bytes(), "the AUTH reply").await?;
            }
            reply
        } else {
            return Err(SmtpFailure::Fatal(format!(
                "authentication failed: {} offers no AUTH mechanism briefing supports (PLAIN, LOGIN){}",
                self.endpoint.host,
                if caps.auth.is_empty() {
                    String::new()
                } else {
                    format!("; it offers {}", caps.auth.join(", "))
                }
            )));
        };
        match final_reply.class() {
            ReplyClass::Positive => Ok(()),
            ReplyClass::Transient => Err(SmtpFailure::rejected(&final_reply)),
            _ => Err(SmtpFailure::Fatal(format!(
                "authentication failed: {final_reply}"
            ))),
        }
    }
}

/// The client TLS setup: the system's roots, plus `ca_file`'s.
fn tls_connector(settings: &SmtpSettings) -> Result<TlsConnector, SettingsError> {
    let config = crate::tls::client_config(settings.ca_file.as_deref())?;
    Ok(TlsConnector::from(Arc::new(config)))
}

/// A host name or address literal fit for EHLO: nothing that could end the
/// command line or add a parameter.
fn is_hello_name(name: &str) -> bool {
    let literal = name.starts_with('[') && name.ends_with(']') && name.len() > 2;
    !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'.' | b'-' | b'_')
                || (literal && matches!(b, b'[' | b']' | b':'))
        })
}

/// This machine's host name, as lettre's default did; `localhost` when it
/// cannot be read or would not make a valid EHLO.
fn default_hello_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| is_hello_name(h))
        .unwrap_or_else(|| "localhost".to_owned())
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

/// The session's byte stream with its read buffer: commands go out in one
/// write each, replies are parsed from what has arrived, and bytes past one
/// reply (pipelined replies) stay buffered for the next.
pub(super) struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    /// For writes and for every reply but the final dot's.
    timeout: Duration,
}

impl Conn {
    fn new(stream: Stream, timeout: Duration) -> Conn {
        Conn {
            stream,
            buf: Vec::with_capacity(1024),
            timeout,
        }
    }

    /// Writes `bytes` (then flushes TLS) within the timeout. An error means
    /// the last bytes may not have left: the server cannot have seen the
    /// end of what was written.
    pub(super) async fn write(&mut self, bytes: &[u8], what: &str) -> Result<(), SmtpFailure> {
        let io = async {
            match &mut self.stream {
                Stream::Plain(tcp) => tcp.write_all(bytes).await,
                Stream::Tls(tls) => {
                    tls.write_all(bytes).await?;
                    tls.flush().await
                }
            }
        };
        match tokio::time::timeout(self.timeout, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(SmtpFailure::Connection(format!(
                "connection lost sending {what}: {e}"
            ))),
            Err(_) => Err(SmtpFailure::Connection(format!(
                "timed out after {:?} sending {what}",
                self.timeout
            ))),
        }
    }

    /// Writes a command and reads its reply.
    pub(super) async fn command(&mut self, bytes: &[u8], what: &str) -> Result<Reply, SmtpFailure> {
        self.write(bytes, what).await?;
        self.reply(self.timeout, what).await
    }

    /// Reads one reply within `limit`. Every failure is a
    /// [`SmtpFailure::Connection`]: the session is in an unknown state.
    pub(super) async fn reply(
        &mut self,
        limit: Duration,
        what: &str,
    ) -> Result<Reply, SmtpFailure> {
        match tokio::time::timeout(limit, self.read_reply()).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(ReadError::Closed)) => Err(SmtpFailure::Connection(format!(
                "connection lost waiting for {what}: the server closed the connection"
            ))),
            Ok(Err(ReadError::Io(e))) => Err(SmtpFailure::Connection(format!(
                "connection lost waiting for {what}: {e}"
            ))),
            Ok(Err(ReadError::Protocol(e))) => Err(SmtpFailure::Connection(format!(
                "protocol error in {what}: {e}"
            ))),
            Err(_) => Err(SmtpFailure::Connection(format!(
                "timed out after {limit:?} waiting for {what}"
            ))),
        }
    }

    async fn read_reply(&mut self) -> Result<Reply, ReadError> {
        loop {
            if let Some((reply, used)) = reply::parse(&self.buf).map_err(ReadError::Protocol)? {
                self.buf.drain(..used);
                return Ok(reply);
            }
            self.buf.reserve(4096);
            let n = match &mut self.stream {
                Stream::Plain(tcp) => tcp.read_buf(&mut self.buf).await,
                Stream::Tls(tls) => tls.read_buf(&mut self.buf).await,
            }
            .map_err(ReadError::Io)?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
        }
    }

    /// Closes the connection without ceremony (after QUIT, or when the
    /// session is broken); errors are irrelevant by then.
    pub(super) async fn shutdown(&mut self) {
        let close = async {
            match &mut self.stream {
                Stream::Plain(tcp) => tcp.shutdown().await,
                Stream::Tls(tls) => tls.shutdown().await,
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), close).await;
    }
}

enum ReadError {
    Closed,
    Io(io::Error),
    Protocol(reply::ReplyError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> SmtpSettings {
        SmtpSettings {
            url: url.into(),
            ..SmtpSettings::default()
        }
    }

    #[test]
    fn reads_password_from_env_only() {
        let settings = SmtpSettings {
            username: Some("briefing".into()),
            password_env: Some("BRIEFING_TEST_SURELY_UNSET_PW".into()),
            ..settings("smtp://localhost:2525?tls=none")
        };
        assert!(matches!(
            SmtpConnector::new(&settings),
            Err(SettingsError::MissingPassword { .. })
        ));
        let debug = format!("{settings:?}");
        assert!(debug.contains("BRIEFING_TEST_SURELY_UNSET_PW"));
        let no_pw = SmtpSettings {
            password_env: None,
            ..settings.clone()
        };
        assert!(matches!(
            SmtpConnector::new(&no_pw),
            Err(SettingsError::UserWithoutPassword)
        ));
        let no_user = SmtpSettings {
            username: None,
            ..settings
        };
        assert!(matches!(
            SmtpConnector::new(&no_user),
            Err(SettingsError::PasswordWithoutUser)
        ));
    }

    #[test]
    fn validates_the_numbers() {
        let plain = settings("smtp://localhost:2525?tls=none");
        for (bad, want) in [
            (
                SmtpSettings {
                    connections: 0,
                    ..plain.clone()
                },
                "at least 1",
            ),
            (
                SmtpSettings {
                    connections: MAX_CONNECTIONS + 1,
                    ..plain.clone()
                },
                "at most 200",
            ),
            (
                SmtpSettings {
                    rate: Some(0.0),
                    ..plain.clone()
                },
                "positive",
            ),
            (
                SmtpSettings {
                    rate: Some(f64::NAN),
                    ..plain.clone()
                },
                "positive",
            ),
            (
                SmtpSettings {
                    data_timeout: Duration::ZERO,
                    ..plain.clone()
                },
                "data_timeout must be longer than zero",
            ),
        ] {
            let err = SmtpConnector::new(&bad).expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
        }
        assert!(
            SmtpConnector::new(&SmtpSettings {
                connections: MAX_CONNECTIONS,
                ..plain
            })
            .is_ok()
        );
    }

    #[test]
    fn hello_names_cannot_inject_commands() {
        for good in [
            "briefing.test",
            "mx-1.example.com",
            "[127.0.0.1]",
            "[IPv6:::1]",
        ] {
            assert!(is_hello_name(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a\r\nRCPT TO:<x@y>",
            "[",
            "[]",
            "naïve.example",
            "a;b",
        ] {
            assert!(!is_hello_name(bad), "{bad:?}");
            let s = SmtpSettings {
                hello_name: Some(bad.into()),
                ..settings("smtp://localhost:2525?tls=none")
            };
            assert!(matches!(
                SmtpConnector::new(&s),
                Err(SettingsError::InvalidHelloName(_))
            ));
        }
        assert!(is_hello_name(&default_hello_name()));
    }

    #[test]
    fn ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let err = SmtpConnector::new(&SmtpSettings {
            ca_file: Some(missing),
            ..settings("smtps://localhost")
        })
        .unwrap_err();
        assert!(
            matches!(err, SettingsError::Tls(crate::tls::RootsError::Read { .. })),
            "{err}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = SmtpConnector::new(&SmtpSettings {
            ca_file: Some(empty),
            ..settings("smtps://localhost")
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("holds no PEM certificate"),
            "{err}"
        );
        let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mail/test-ca.pem");
        assert!(
            SmtpConnector::new(&SmtpSettings {
                ca_file: Some(ca),
                ..settings("smtps://localhost")
            })
            .is_ok()
        );
    }
}
