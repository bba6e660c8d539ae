//! Where messages go: an outbox directory of `.eml` files (development and
//! previews) or an SMTP relay. This module owns connection setup (TLS policy,
//! authentication) and one SMTP transaction at a time; concurrency, retries
//! and rate belong to the sender.

use std::fmt;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::Address;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
#[allow(deprecated)]
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use thiserror::Error;

/// Where a send delivers to.
#[derive(Debug, Clone)]
pub enum Transport {
    /// Write each message to `<dir>/<message-id>.eml`; nothing leaves the
    /// machine. The only mode in which [`crate::mail::token::DEV_SECRET`] is acceptable.
    Outbox {
        dir: PathBuf,
    },
    Smtp(SmtpSettings),
}

/// SMTP relay settings, as configured by the newsroom.
#[derive(Clone)]
pub struct SmtpSettings {
    /// `smtp://host:587` (STARTTLS required), `smtps://host:465` (implicit
    /// TLS), or `smtp://localhost:2525?tls=none` (plain text: loopback only,
    /// unless `allow_insecure`).
    pub url: String,
    pub username: Option<String>,
    /// Name of the environment variable holding the password. The password
    /// itself never appears in config or logs.
    pub password_env: Option<String>,
    /// Concurrent SMTP sessions.
    pub connections: usize,
    /// Messages per second across all sessions; `None` = as fast as accepted.
    pub rate: Option<f64>,
    /// Retries of a transient failure before the delivery is left deferred.
    pub retries: u32,
    /// Per SMTP command (and for connecting).
    pub timeout: Duration,
    /// Allow plain-text SMTP to a non-loopback host.
    pub allow_insecure: bool,
    /// EHLO name; default: this machine's host name.
    pub hello_name: Option<String>,
    /// Extra PEM root certificate(s) to trust, for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
}

impl Default for SmtpSettings {
    fn default() -> Self {
        SmtpSettings {
            url: "smtp://localhost:587".to_owned(),
            username: None,
            password_env: None,
            connections: 4,
            rate: None,
            retries: 3,
            timeout: Duration::from_secs(60),
            allow_insecure: false,
            hello_name: None,
            ca_file: None,
        }
    }
}

impl fmt::Debug for SmtpSettings {
    // Written out so that adding a secret-bearing field later does not leak
    // it through a derived Debug.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password_env", &self.password_env)
            .field("connections", &self.connections)
            .field("rate", &self.rate)
            .field("retries", &self.retries)
            .field("timeout", &self.timeout)
            .field("allow_insecure", &self.allow_insecure)
            .field("hello_name", &self.hello_name)
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

/// Problems with the transport configuration, found before anything is sent.
#[derive(Debug, Error)]
pub enum TransportError {
    #[error("invalid SMTP URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error(
        "refusing plain-text SMTP to {host}: credentials and mail would cross the network unencrypted (use smtp:// with STARTTLS or smtps://, or set allow_insecure)"
    )]
    Insecure { host: String },
    #[error("environment variable {var} (smtp password_env) is not set")]
    MissingPassword { var: String },
    #[error("smtp password_env is set but username is not")]
    PasswordWithoutUser,
    #[error("smtp username is set but password_env is not")]
    UserWithoutPassword,
    #[error("cannot read CA file {}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("smtp connections must be at least 1")]
    NoConnections,
    #[error("smtp rate must be a positive number of messages per second, not {0}")]
    InvalidRate(f64),
    #[error("cannot create outbox directory {}", path.display())]
    Outbox {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How the session is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS; refuses servers without it.
    StartTls,
    /// TLS from the first byte (SMTPS, port 465).
    ImplicitTls,
    /// No encryption (local test servers).
    Plain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Parses an SMTP URL (see [`SmtpSettings::url`]).
pub fn parse_smtp_url(url: &str, allow_insecure: bool) -> Result<Endpoint, TransportError> {
    let bad = |reason: &str| TransportError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("missing scheme"))?;
    let implicit = match scheme.to_ascii_lowercase().as_str() {
        "smtp" => false,
        "smtps" => true,
        _ => return Err(bad("scheme must be smtp or smtps")),
    };
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if authority.contains('@') {
        return Err(bad(
            "put credentials in username and password_env, not in the URL",
        ));
    }
    if authority.contains('/') {
        return Err(bad("an SMTP URL has no path"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("missing host"));
    }
    let mut plain = false;
    for pair in query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
    {
        match pair {
            "tls=none" => plain = true,
            "tls=starttls" if !implicit => plain = false,
            _ => {
                return Err(bad(
                    "the only query parameters are tls=none and tls=starttls",
                ));
            }
        }
    }
    if implicit && plain {
        return Err(bad(
            "smtps:// is always TLS; use smtp://...?tls=none for plain text",
        ));
    }
    let security = match (implicit, plain) {
        (true, _) => Security::ImplicitTls,
        (false, true) => Security::Plain,
        (false, false) => Security::StartTls,
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| bad("invalid port"))?,
        None => match security {
            Security::ImplicitTls => 465,
            Security::StartTls => 587,
            Security::Plain => 25,
        },
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if security == Security::Plain && !loopback && !allow_insecure {
        return Err(TransportError::Insecure {
            host: host.to_owned(),
        });
    }
    Ok(Endpoint {
        host: host.to_owned(),
        port,
        security,
    })
}

/// Why one SMTP transaction did not deliver.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SmtpFailure {
    /// The server answered with a 4xx or 5xx reply.
    #[error("{reply}")]
    Rejected { code: u16, reply: String },
    /// The session broke: network error, timeout, TLS or protocol error, or
    /// the server hung up. Transient; the session must not be reused.
    #[error("{0}")]
    Connection(String),
    /// This message cannot go through this server at all (e.g. 8-bit content
    /// and no 8BITMIME). Permanent for the message, the session is fine.
    #[error("{0}")]
    Unsendable(String),
    /// The relay refuses us, not the recipient: authentication or TLS
    /// failed, STARTTLS is missing, the greeting or `MAIL FROM` got a 5xx.
    /// Retrying recipients cannot help and failing them would be wrong, so
    /// the send stops and leaves them pending.
    #[error("{0}")]
    Fatal(String),
}

impl SmtpFailure {
    /// Never worth retrying: 5xx replies and unsendable messages.
    pub fn is_permanent(&self) -> bool {
        match self {
            SmtpFailure::Rejected { code, .. } => (500..600).contains(code),
            SmtpFailure::Connection(_) | SmtpFailure::Fatal(_) => false,
            SmtpFailure::Unsendable(_) => true,
        }
    }

    /// Replies by which providers say "slow down": the sender halves its rate
    /// instead of burning through recipients.
    pub fn is_throttle(&self) -> bool {
        matches!(
            self,
            SmtpFailure::Rejected {
                code: 421 | 450 | 451 | 452 | 454,
                ..
            }
        )
    }

    /// Whether the session can carry another transaction after this.
    pub fn keeps_session(&self) -> bool {
        match self {
            // 421: the server is closing the connection.
            SmtpFailure::Rejected { code, .. } => *code != 421,
            SmtpFailure::Connection(_) | SmtpFailure::Fatal(_) => false,
            SmtpFailure::Unsendable(_) => true,
        }
    }

    fn from_lettre(err: lettre::transport::smtp::Error) -> SmtpFailure {
        // A certificate that does not verify will not verify on a retry, and
        // lettre's client errors are configuration problems (e.g. no AUTH
        // mechanism in common with the relay).
        if err.is_tls() {
            return SmtpFailure::Fatal(format!("TLS failed: {err}"));
        }
        if err.is_client() {
            return SmtpFailure::Fatal(err.to_string());
        }
        match err.status() {
            Some(code) => {
                let code_text = code.to_string();
                let text = std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                SmtpFailure::Rejected {
                    code: code_text.parse().unwrap_or(0),
                    reply: format!("{code_text} {text}").trim_end().to_owned(),
                }
            }
            None => SmtpFailure::Connection(format!("connection lost: {err}")),
        }
    }
}

fn reply_text(response: &Response) -> String {
    let mut text = response.code().to_string();
    for line in response.message() {
        text.push(' ');
        text.push_str(line);
    }
    text
}

/// Everything needed to open sessions to one relay, resolved once (password
/// read, certificates loaded) so that every session is set up alike.
pub struct SmtpConnector {
    endpoint: Endpoint,
    tls: Option<TlsParameters>,
    credentials: Option<Credentials>,
    hello: ClientId,
    timeout: Duration,
}

impl fmt::Debug for SmtpConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConnector")
            .field("endpoint", &self.endpoint)
            .field("authenticated", &self.credentials.is_some())
            .field("hello", &self.hello.to_string())
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl SmtpConnector {
    /// Validates the settings and reads the password from its variable.
    pub fn new(settings: &SmtpSettings) -> Result<SmtpConnector, TransportError> {
        let endpoint = parse_smtp_url(&settings.url, settings.allow_insecure)?;
        if settings.connections == 0 {
            return Err(TransportError::NoConnections);
        }
        if let Some(rate) = settings.rate
            && !(rate.is_finite() && rate > 0.0)
        {
            return Err(TransportError::InvalidRate(rate));
        }
        let credentials = match (&settings.username, &settings.password_env) {
            (Some(user), Some(var)) => {
                let password = std::env::var(var)
                    .map_err(|_| TransportError::MissingPassword { var: var.clone() })?;
                Some(Credentials::new(user.clone(), password))
            }
            (None, None) => None,
            (None, Some(_)) => return Err(TransportError::PasswordWithoutUser),
            (Some(_), None) => return Err(TransportError::UserWithoutPassword),
        };
        let tls = match endpoint.security {
            Security::Plain => None,
            Security::StartTls | Security::ImplicitTls => {
                let mut builder = TlsParameters::builder(endpoint.host.clone());
                if let Some(path) = &settings.ca_file {
                    let pem = std::fs::read(path).map_err(|source| TransportError::CaFile {
                        path: path.clone(),
                        source,
                    })?;
                    let cert = Certificate::from_pem(&pem)
                        .map_err(|e| TransportError::Tls(e.to_string()))?;
                    builder = builder.add_root_certificate(cert);
                }
                Some(
                    builder
                        .build_rustls()
                        .map_err(|e| TransportError::Tls(e.to_string()))?,
                )
            }
        };
        let hello = match &settings.hello_name {
            Some(name) => ClientId::Domain(name.clone()),
            None => ClientId::default(),
        };
        Ok(SmtpConnector {
            endpoint,
            tls,
            credentials,
            hello,
            timeout: settings.timeout,
        })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Opens a session: greeting, EHLO, TLS as configured, AUTH if configured.
    /// Refusals that retrying cannot fix come back as [`SmtpFailure::Fatal`].
    pub async fn connect(&self) -> Result<SmtpSession, SmtpFailure> {
        self.open().await.map_err(|failure| match failure {
            SmtpFailure::Rejected { code, reply } if (500..600).contains(&code) => {
                SmtpFailure::Fatal(format!("the relay refused the session: {reply}"))
            }
            other => other,
        })
    }

    async fn open(&self) -> Result<SmtpSession, SmtpFailure> {
        let tcp = within_io(
            self.timeout,
            "connecting",
            tokio::net::TcpStream::connect((self.endpoint.host.as_str(), self.endpoint.port)),
        )
        .await?;
        // lettre writes the message and the final "." separately; with Nagle
        // on, the "." waits for the server's delayed ACK (40 ms on Linux),
        // capping a session at about 25 messages/s. lettre does not set
        // TCP_NODELAY, hence our own socket.
        tcp.set_nodelay(true)
            .map_err(|e| SmtpFailure::Connection(format!("connection lost: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match self.endpoint.security {
            Security::ImplicitTls => {
                let Some(tls) = self.tls.clone() else {
                    return Err(SmtpFailure::Fatal("TLS parameters missing".to_owned()));
                };
                #[allow(deprecated)]
                let mut stream = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                within_tls(self.timeout, &self.endpoint, stream.upgrade_tls(tls)).await?;
                Box::new(TlsStream(stream))
            }
            Security::StartTls | Security::Plain => Box::new(tcp),
        };
        let mut conn = within(
            self.timeout,
            "waiting for the greeting",
            AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
        )
        .await?;
        if self.endpoint.security == Security::StartTls {
            let Some(tls) = self.tls.clone() else {
                return Err(SmtpFailure::Connection("TLS parameters missing".to_owned()));
            };
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(SmtpFailure::Fatal(format!(
                    "{} does not offer STARTTLS; refusing to continue in plain text",
                    self.endpoint.host
                )));
            }
            within_tls(
                self.timeout,
                &self.endpoint,
                conn.starttls(tls, &self.hello),
            )
            .await?;
        }
        // lettre keeps only the EHLO keywords it uses itself; ask again to
        // learn whether the relay takes pipelined commands (RFC 2920). One
        // round trip per session; before AUTH, which EHLO may reset.
        let ehlo = within(
            self.timeout,
            "waiting for the EHLO reply",
            conn.command(Ehlo::new(self.hello.clone())),
        )
        .await;
        let pipelining = match ehlo {
            Ok(reply) => offers(&reply, "PIPELINING"),
            Err(err @ SmtpFailure::Connection(_)) => {
                conn.abort().await;
                return Err(err);
            }
            // Odd, since lettre's EHLO was accepted: send one command at a time.
            Err(_) => false,
        };
        if let Some(credentials) = &self.credentials {
            let auth = within(
                self.timeout,
                "AUTH",
                conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials),
            )
            .await;
            match auth {
                Ok(_) => {}
                Err(SmtpFailure::Rejected { code, reply }) if (400..500).contains(&code) => {
                    conn.abort().await;
                    return Err(SmtpFailure::Rejected { code, reply });
                }
                Err(err @ SmtpFailure::Connection(_)) => {
                    conn.abort().await;
                    return Err(err);
                }
                Err(err) => {
                    conn.abort().await;
                    return Err(SmtpFailure::Fatal(format!("authentication failed: {err}")));
                }
            }
        }
        tracing::debug!(
            host = %self.endpoint.host,
            port = self.endpoint.port,
            security = ?self.endpoint.security,
            "SMTP session open"
        );
        Ok(SmtpSession {
            conn,
            timeout: self.timeout,
            usable: true,
            pipelining,
        })
    }
}

/// Like [`within`], with handshake failures reported by their root cause
/// (e.g. `invalid peer certificate: UnknownIssuer`) rather than lettre's
/// nested "Connection error" wrappers.
async fn within_tls<T>(
    limit: Duration,
    endpoint: &Endpoint,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpFailure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) if err.status().is_some() => Err(SmtpFailure::from_lettre(err)),
        Ok(Err(err)) => {
            let mut cause: &dyn std::error::Error = &err;
            while let Some(next) = cause.source() {
                cause = next;
            }
            Err(SmtpFailure::Connection(format!(
                "TLS handshake with {}:{} failed: {cause}",
                endpoint.host, endpoint.port
            )))
        }
        Err(_) => Err(SmtpFailure::Connection(format!(
            "timed out after {limit:?} in the TLS handshake"
        ))),
    }
}

async fn within_io<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = std::io::Result<T>>,
) -> Result<T, SmtpFailure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(|e| SmtpFailure::Connection(format!("{what}: {e}"))),
        Err(_) => Err(SmtpFailure::Connection(format!(
            "timed out after {limit:?} {what}"
        ))),
    }
}

/// An implicit-TLS stream set up by lettre, handed back to lettre as a plain
/// tokio stream (lettre only accepts ready-made streams in that form).
#[allow(deprecated)]
#[derive(Debug)]
struct TlsStream(AsyncNetworkStream);

impl tokio::io::AsyncRead for TlsStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let unfilled = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut self.get_mut().0), cx, unfilled) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl tokio::io::AsyncWrite for TlsStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}

impl AsyncTokioStream for TlsStream {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

async fn within<T>(
    limit: Duration,
    what: &str,
    fut: impl Future<Output = Result<T, lettre::transport::smtp::Error>>,
) -> Result<T, SmtpFailure> {
    match tokio::time::timeout(limit, fut).await {
        Ok(result) => result.map_err(SmtpFailure::from_lettre),
        Err(_) => Err(SmtpFailure::Connection(format!(
            "timed out after {limit:?} {what}"
        ))),
    }
}

/// One open SMTP session, carrying one transaction at a time.
pub struct SmtpSession {
    conn: AsyncSmtpConnection,
    timeout: Duration,
    /// False once a failure left the session in an unknown state.
    usable: bool,
    /// The relay offers PIPELINING: MAIL, RCPT and DATA go in one write.
    pipelining: bool,
}

/// Whether an EHLO reply lists `keyword` (its lines after the first).
fn offers(reply: &Response, keyword: &str) -> bool {
    reply.message().skip(1).any(|line| {
        line.split_whitespace()
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
    })
}

impl SmtpSession {
    /// MAIL FROM, RCPT TO, DATA and the message for one recipient. Returns
    /// the server's final reply (e.g. `250 2.0.0 Ok: queued as 4ZxY`). A
    /// rejected command is followed by RSET so the session stays usable for
    /// the next recipient.
    pub async fn send(
        &mut self,
        from: &Address,
        to: &Address,
        message: &[u8],
    ) -> Result<String, SmtpFailure> {
        self.start(from, to, message).await?;
        self.data(message).await
    }

    /// The envelope half of [`SmtpSession::send`]: MAIL FROM, RCPT TO and
    /// DATA, pipelined when the relay allows. `message` is only looked at
    /// for 8-bit content.
    async fn start(
        &mut self,
        from: &Address,
        to: &Address,
        message: &[u8],
    ) -> Result<(), SmtpFailure> {
        let info = self.conn.server_info();
        let mut mail_params = Vec::new();
        if !message.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(SmtpFailure::Unsendable(
                    "message has 8-bit content and the server does not offer 8BITMIME".to_owned(),
                ));
            }
            mail_params.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }
        if !AsRef::<str>::as_ref(from).is_ascii() || !AsRef::<str>::as_ref(to).is_ascii() {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(SmtpFailure::Unsendable(
                    "non-ASCII address and the server does not offer SMTPUTF8".to_owned(),
                ));
            }
            mail_params.push(MailParameter::SmtpUtfEight);
        }
        let timeout = self.timeout;
        if self.pipelining {
            return self.start_pipelined(from, to, mail_params).await;
        }
        let mail = within(
            timeout,
            "waiting for MAIL reply",
            self.conn
                .command(Mail::new(Some(from.clone()), mail_params)),
        )
        .await;
        if let Err(failure) = mail {
            // A 5xx to MAIL FROM refuses our envelope sender, not the reader.
            let failure = match failure {
                SmtpFailure::Rejected { code, reply } if (500..600).contains(&code) => {
                    SmtpFailure::Fatal(format!(
                        "the relay refuses the envelope sender {from}: {reply}"
                    ))
                }
                other => other,
            };
            return Err(self.abandon_transaction(failure).await);
        }
        let rcpt = within(
            timeout,
            "waiting for RCPT reply",
            self.conn.command(Rcpt::new(to.clone(), Vec::new())),
        )
        .await;
        if let Err(failure) = rcpt {
            return Err(self.abandon_transaction(failure).await);
        }
        if let Err(failure) =
            within(timeout, "waiting for DATA reply", self.conn.command(Data)).await
        {
            return Err(self.abandon_transaction(failure).await);
        }
        Ok(())
    }

    /// [`SmtpSession::start`] with PIPELINING (RFC 2920): MAIL, RCPT and
    /// DATA in one write, then their three replies, which saves two round
    /// trips a message. Every command gets a reply whatever happened to the
    /// one before, so all three are read before deciding (except after a
    /// reply that ends the session, like 421).
    async fn start_pipelined(
        &mut self,
        from: &Address,
        to: &Address,
        mail_params: Vec<MailParameter>,
    ) -> Result<(), SmtpFailure> {
        let timeout = self.timeout;
        let commands = format!(
            "{}{}{}",
            Mail::new(Some(from.clone()), mail_params),
            Rcpt::new(to.clone(), Vec::new()),
            Data
        );
        let mail = within(
            timeout,
            "waiting for MAIL reply",
            self.conn.command(Verbatim(&commands)),
        )
        .await;
        let mail = self.check_pipelined(mail)?;
        let rcpt = within(timeout, "waiting for RCPT reply", self.conn.read_response()).await;
        let rcpt = self.check_pipelined(rcpt)?;
        let data = within(timeout, "waiting for DATA reply", self.conn.read_response()).await;
        let data = self.check_pipelined(data)?;
        let failure = match (mail, rcpt) {
            (Err(SmtpFailure::Rejected { code, reply }), _) if (500..600).contains(&code) => {
                // As in `start`: a refused envelope sender is about us.
                SmtpFailure::Fatal(format!(
                    "the relay refuses the envelope sender {from}: {reply}"
                ))
            }
            (Err(failure), _) | (Ok(_), Err(failure)) => failure,
            (Ok(_), Ok(_)) => match data {
                Ok(_) => return Ok(()),
                Err(failure) => return Err(self.abandon_transaction(failure).await),
            },
        };
        if data.is_ok() {
            // A relay that took DATA with no valid recipient waits for a
            // message: end it empty (RFC 2920 3.1), it delivers nothing.
            let end = within(
                timeout,
                "waiting for the reply to an empty message",
                self.conn.command(Verbatim(".\r\n")),
            )
            .await;
            if !matches!(end, Err(SmtpFailure::Rejected { .. }) | Ok(_)) {
                self.usable = false;
            }
        }
        Err(self.abandon_transaction(failure).await)
    }

    /// A pipelined reply: a failure that leaves the session unusable (the
    /// connection broke, or a 421) ends the transaction at once; other
    /// replies are kept until all three are read.
    fn check_pipelined(
        &mut self,
        reply: Result<Response, SmtpFailure>,
    ) -> Result<Result<Response, SmtpFailure>, SmtpFailure> {
        match reply {
            Err(failure) if !failure.keeps_session() => {
                self.usable = false;
                Err(failure)
            }
            other => Ok(other),
        }
    }

    /// The second half of [`SmtpSession::send`], after a successful
    /// [`SmtpSession::start`]: the message and the final dot. Returns the
    /// server's reply.
    async fn data(&mut self, message: &[u8]) -> Result<String, SmtpFailure> {
        let timeout = self.timeout;
        // After the final "." the transaction is over either way: no RSET.
        let block = data_block(message);
        let response = match std::str::from_utf8(&block) {
            // Our messages are 7-bit: one write of the ready block.
            Ok(text) => {
                within(
                    timeout,
                    "waiting for the reply to the message",
                    self.conn.command(Verbatim(text)),
                )
                .await
            }
            // Other bytes go through lettre's own (byte-at-a-time) encoder.
            Err(_) => {
                within(
                    timeout,
                    "waiting for the reply to the message",
                    self.conn.message(message),
                )
                .await
            }
        };
        match response {
            Ok(response) => Ok(reply_text(&response)),
            Err(failure) => {
                self.usable &= failure.keeps_session();
                Err(failure)
            }
        }
    }

    /// After a refused MAIL/RCPT/DATA: RSET so the next transaction starts
    /// clean. The original failure is what gets reported; a failed RSET only
    /// marks the session unusable.
    async fn abandon_transaction(&mut self, failure: SmtpFailure) -> SmtpFailure {
        if failure.keeps_session() {
            if self.reset().await.is_err() {
                self.usable = false;
            }
        } else {
            self.usable = false;
        }
        failure
    }

    /// Whether another transaction may be attempted on this session.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    async fn reset(&mut self) -> Result<(), SmtpFailure> {
        within(
            self.timeout,
            "waiting for RSET reply",
            self.conn.command(Rset),
        )
        .await
        .map(|_| ())
        .map_err(|e| SmtpFailure::Connection(format!("RSET failed: {e}")))
    }

    /// Polite goodbye; errors are irrelevant at this point.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(self.timeout, self.conn.quit()).await;
    }
}

/// What goes on the wire after `DATA` is accepted: the message with a dot
/// added to every line that starts with one (RFC 5321 4.5.2), then the
/// end-of-data line, exactly the bytes lettre's `message()` writes. lettre
/// does it a byte at a time and in two writes; it was the biggest CPU cost of
/// a send (17% of a 20,000-message run), this is a memchr scan and one write.
pub fn data_block(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 512 + 8);
    let mut start = 0;
    if message.first() == Some(&b'.') {
        out.push(b'.');
    }
    for at in memchr::memmem::find_iter(message, b"\r\n.") {
        // Up to and including the CRLF, then the extra dot.
        out.extend_from_slice(&message[start..at + 2]);
        out.push(b'.');
        start = at + 2;
    }
    out.extend_from_slice(&message[start..]);
    out.extend_from_slice(b"\r\n.\r\n");
    out
}

/// Text written to the session as is (lettre's `command` takes `Display`).
struct Verbatim<'a>(&'a str);

impl fmt::Display for Verbatim<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// A directory of `.eml` files, one per message.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Outbox {
    pub fn new(dir: &Path) -> Result<Outbox, TransportError> {
        std::fs::create_dir_all(dir).map_err(|source| TransportError::Outbox {
            path: dir.to_owned(),
            source,
        })?;
        Ok(Outbox {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `<dir>/<sanitised stem>.eml` atomically (temporary file, fsync,
    /// rename), so a reader never sees half a message and a crash leaves
    /// either the old file or the new one.
    pub fn write(&self, stem: &str, message: &[u8]) -> std::io::Result<PathBuf> {
        let target = self.dir.join(format!("{}.eml", sanitize_file_stem(stem)));
        let temp = self.dir.join(format!(
            ".tmp-{}-{}.eml",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&temp)?;
            file.write_all(message)?;
            file.sync_all()?;
            std::fs::rename(&temp, &target)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result.map(|()| target)
    }
}

/// A file name stem from a Message-ID: angle brackets dropped, anything but
/// ASCII letters, digits, `.`, `-`, `_`, `@`, `+` replaced by `_`, no leading
/// dot (hidden files), at most 150 characters.
pub fn sanitize_file_stem(id: &str) -> String {
    let inner = id.trim().trim_start_matches('<').trim_end_matches('>');
    let mut stem: String = inner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '+') {
                c
            } else {
                '_'
            }
        })
        .take(150)
        .collect();
    while stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    if stem.is_empty() {
        stem.push_str("message");
    }
    stem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let e = parse_smtp_url("smtp://relay.example.com", false).unwrap();
        assert_eq!((e.port, e.security), (587, Security::StartTls));
        let e = parse_smtp_url("smtps://relay.example.com", false).unwrap();
        assert_eq!((e.port, e.security), (465, Security::ImplicitTls));
        let e = parse_smtp_url("smtp://localhost:2525?tls=none", false).unwrap();
        assert_eq!(
            e,
            Endpoint {
                host: "localhost".into(),
                port: 2525,
                security: Security::Plain
            }
        );
        let e = parse_smtp_url("smtp://[::1]:2525?tls=none", false).unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 2525));
        let e = parse_smtp_url("smtp://127.0.0.2:25/?tls=none", false).unwrap();
        assert_eq!(e.security, Security::Plain);
    }

    #[test]
    fn refuses_plain_text_off_loopback() {
        assert!(matches!(
            parse_smtp_url("smtp://relay.example.com:25?tls=none", false),
            Err(TransportError::Insecure { .. })
        ));
        assert!(parse_smtp_url("smtp://relay.example.com:25?tls=none", true).is_ok());
    }

    #[test]
    fn refuses_bad_urls() {
        for url in [
            "relay.example.com",
            "http://relay.example.com",
            "smtp://user:pw@relay.example.com",
            "smtp://relay.example.com:99999",
            "smtp://relay.example.com/path",
            "smtps://relay.example.com?tls=none",
            "smtp://relay.example.com?tls=maybe",
            "smtp://:25",
        ] {
            assert!(
                matches!(
                    parse_smtp_url(url, false),
                    Err(TransportError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn connector_reads_password_from_env_only() {
        let settings = SmtpSettings {
            url: "smtp://localhost:2525?tls=none".into(),
            username: Some("briefing".into()),
            password_env: Some("BRIEFING_TEST_SURELY_UNSET_PW".into()),
            ..SmtpSettings::default()
        };
        assert!(matches!(
            SmtpConnector::new(&settings),
            Err(TransportError::MissingPassword { .. })
        ));
        let debug = format!("{settings:?}");
        assert!(debug.contains("BRIEFING_TEST_SURELY_UNSET_PW"));
        let no_pw = SmtpSettings {
            password_env: None,
            ..settings
        };
        assert!(matches!(
            SmtpConnector::new(&no_pw),
            Err(TransportError::UserWithoutPassword)
        ));
    }

    #[test]
    fn classifies_failures() {
        let r = |code| SmtpFailure::Rejected {
            code,
            reply: String::new(),
        };
        assert!(r(550).is_permanent() && !r(550).is_throttle() && r(550).keeps_session());
        assert!(!r(450).is_permanent() && r(450).is_throttle());
        assert!(r(421).is_throttle() && !r(421).keeps_session());
        assert!(!r(441).is_throttle());
        assert!(!SmtpFailure::Connection("x".into()).is_permanent());
    }

    #[test]
    fn data_block_stuffs_dots_like_lettre() {
        assert_eq!(data_block(b"a\r\nb"), b"a\r\nb\r\n.\r\n");
        assert_eq!(
            data_block(b".x\r\n..y\r\nz.\r\n.\r\n"),
            b"..x\r\n...y\r\nz.\r\n..\r\n\r\n.\r\n"
        );
        // A bare LF does not start a line for SMTP (nor for lettre).
        assert_eq!(data_block(b"a\n.b"), b"a\n.b\r\n.\r\n");
        assert_eq!(data_block(b""), b"\r\n.\r\n");
    }

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(
            sanitize_file_stem("<am-2026.ab12@news.example.com>"),
            "am-2026.ab12@news.example.com"
        );
        assert_eq!(sanitize_file_stem("../../etc/passwd"), "_._.._etc_passwd");
        assert_eq!(sanitize_file_stem("<>"), "message");
    }

    #[test]
    fn outbox_writes_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::new(&dir.path().join("outbox")).unwrap();
        let path = outbox
            .write("<a.b@c>", b"Subject: x\r\n\r\nhi\r\n")
            .unwrap();
        assert_eq!(path.file_name().unwrap(), "a.b@c.eml");
        assert_eq!(std::fs::read(&path).unwrap(), b"Subject: x\r\n\r\nhi\r\n");
        outbox.write("<a.b@c>", b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        let names: Vec<_> = std::fs::read_dir(outbox.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp files left: {names:?}");
    }
}
