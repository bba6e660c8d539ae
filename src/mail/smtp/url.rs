//! The relay's address as the newsroom writes it: `smtp://host:587`
//! (STARTTLS), `smtps://host:465` (implicit TLS) or `smtp://host?tls=none`
//! (plain text, loopback only unless allowed). Pure parsing and the
//! plain-text policy; connecting is `connect.rs`'s job.

use std::net::IpAddr;

use super::SettingsError;

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

impl Endpoint {
    /// Whether the host is this machine, where plain text never crosses a
    /// network.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost")
            || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

/// Parses an SMTP URL (see [`super::SmtpSettings::url`]).
pub fn parse_smtp_url(url: &str, allow_insecure: bool) -> Result<Endpoint, SettingsError> {
    let bad = |reason: &str| SettingsError::InvalidUrl {
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
    if host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '[' || c == ']')
    {
        return Err(bad("the host name has spaces or control characters"));
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
    let endpoint = Endpoint {
        host: host.to_owned(),
        port,
        security,
    };
    if security == Security::Plain && !endpoint.is_loopback() && !allow_insecure {
        return Err(SettingsError::Insecure {
            host: host.to_owned(),
        });
    }
    Ok(endpoint)
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
        let e = parse_smtp_url("SMTP://relay.example.com:2587?tls=starttls", false).unwrap();
        assert_eq!((e.port, e.security), (2587, Security::StartTls));
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
        let e = parse_smtp_url("smtp://localhost?tls=none", false).unwrap();
        assert_eq!(e.port, 25);
    }

    #[test]
    fn refuses_plain_text_off_loopback() {
        assert!(matches!(
            parse_smtp_url("smtp://relay.example.com:25?tls=none", false),
            Err(SettingsError::Insecure { .. })
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
            "smtp://relay.example.com:",
            "smtp://relay.example.com/path",
            "smtps://relay.example.com?tls=none",
            "smtps://relay.example.com?tls=starttls",
            "smtp://relay.example.com?tls=maybe",
            "smtp://:25",
            "smtp://[::1",
            "smtp://[::1]x",
            "smtp://relay example.com",
            "smtp://relay.example.com\r\nRCPT:25",
        ] {
            assert!(
                matches!(
                    parse_smtp_url(url, false),
                    Err(SettingsError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }
}
