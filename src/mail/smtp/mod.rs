//! SMTP to the newsroom's relay, on tokio and tokio-rustls: the settings and
//! their one set of defaults (here), the URL (`url`), opening a session with
//! TLS and AUTH (`connect`), one transaction at a time (`session`), and the
//! reply parser and failure classification (`reply`). Concurrency, retries
//! and the rate belong to `crate::mail::sender`.

pub mod connect;
pub mod reply;
pub mod session;
pub mod url;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

pub use connect::SmtpConnector;
pub use reply::{Reply, SmtpFailure};
pub use session::{SmtpSession, data_block};
pub use url::{Endpoint, Security, parse_smtp_url};

/// Most concurrent sessions a send may open. Relays limit sessions per
/// client far below this (Postfix: 50), and each session costs memory.
pub const MAX_CONNECTIONS: usize = 200;

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
    /// Concurrent SMTP sessions (at most [`MAX_CONNECTIONS`]; never more
    /// than there are recipients).
    pub connections: usize,
    /// Messages per second across all sessions; `None` = as fast as accepted.
    pub rate: Option<f64>,
    /// Retries of a transient failure (and of the first connection) before
    /// the delivery is left deferred.
    pub retries: u32,
    /// For connecting, the greeting, and every reply but the last one of a
    /// message.
    pub timeout: Duration,
    /// For the reply to the final dot of a message, while the relay takes it
    /// in (RFC 5321 4.5.3.2.6 recommends 10 minutes). A reply lost there
    /// leaves the delivery in doubt.
    pub data_timeout: Duration,
    /// Allow plain-text SMTP to a non-loopback host.
    pub allow_insecure: bool,
    /// EHLO name; default: this machine's host name.
    pub hello_name: Option<String>,
    /// Extra PEM root certificate(s) to trust, for a relay with a private CA.
    pub ca_file: Option<PathBuf>,
    /// What logs and `status` call this relay; default: its host and port.
    pub name: Option<String>,
    /// Its share beside other relays (`delivery.smtp` as a list): when
    /// sessions of several relays are free, the one furthest behind its
    /// share by weight takes the next message. Busy relays never wait for
    /// each other.
    pub weight: u32,
}

impl SmtpSettings {
    /// The relay's name: `name`, or `host:port` from the URL.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let rest = self
            .url
            .split_once("://")
            .map_or(self.url.as_str(), |(_, r)| r);
        let host = rest.rsplit('@').next().unwrap_or(rest);
        host.split(['?', '/']).next().unwrap_or(host).to_owned()
    }
}

impl Default for SmtpSettings {
    /// 60 s per reply: RFC 5321 4.5.3.2 asks clients for minutes, but a
    /// sender that waits five minutes to notice each dead session stalls a
    /// whole edition; a minute still covers greeting delays (postscreen,
    /// tarpits) and a loaded relay.
    fn default() -> Self {
        SmtpSettings {
            url: "smtp://localhost:587".to_owned(),
            username: None,
            password_env: None,
            connections: 4,
            rate: None,
            retries: 3,
            timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(600),
            allow_insecure: false,
            hello_name: None,
            ca_file: None,
            name: None,
            weight: 1,
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
            .field("data_timeout", &self.data_timeout)
            .field("allow_insecure", &self.allow_insecure)
            .field("hello_name", &self.hello_name)
            .field("ca_file", &self.ca_file)
            .field("name", &self.name)
            .field("weight", &self.weight)
            .finish()
    }
}

/// Problems with the SMTP settings, found before anything is sent.
#[derive(Debug, Error)]
pub enum SettingsError {
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
    #[error(transparent)]
    Tls(#[from] crate::tls::RootsError),
    #[error("smtp connections must be at least 1")]
    NoConnections,
    #[error("smtp connections is {0}; at most {MAX_CONNECTIONS} are allowed")]
    TooManyConnections(usize),
    #[error("smtp rate must be a positive number of messages per second, not {0}")]
    InvalidRate(f64),
    #[error("smtp {name} must be longer than zero")]
    ZeroTimeout { name: &'static str },
    #[error(
        "smtp hello_name {0:?} is not a host name (letters, digits, dots, hyphens, or an [address literal])"
    )]
    InvalidHelloName(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_rfc_5321_for_the_final_dot() {
        let d = SmtpSettings::default();
        assert_eq!(d.timeout, Duration::from_secs(60));
        assert_eq!(d.data_timeout, Duration::from_secs(600));
        let debug = format!("{d:?}");
        assert!(debug.contains("data_timeout: 600s"), "{debug}");
    }
}
