//! The confirmation message: composed from the `signup/confirm*` templates
//! (built in, or the newsroom's own in `templates/signup/`), signed with
//! the newsroom's DKIM key when it has one, and delivered one at a time
//! through the configured transport: an `.eml` in `<outbox>/signup/`, or
//! one SMTP session to the relay.

use anyhow::{Context as _, Result, anyhow};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde::Serialize;

use super::link::Request;
use crate::config::{Newsletter, Newsroom, Site, TransportKind};
use crate::mail::message::{DkimSigner, NoticeSpec, compose_notice};
use crate::mail::outbox::Outbox;
use crate::mail::smtp::{SmtpConnector, SmtpSettings};
use crate::render::Renderer;

/// How a confirmation's Message-ID begins, where an edition's id would be.
pub const SIGNUP_ID: &str = "signup-";

/// A newsletter as the message and the pages name it.
#[derive(Debug, Clone, Serialize)]
pub struct LetterCtx<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub description: &'a str,
    pub cadence: &'a str,
}

impl<'a> From<&'a Newsletter> for LetterCtx<'a> {
    fn from(n: &'a Newsletter) -> Self {
        LetterCtx {
            id: &n.id,
            name: &n.name,
            description: n.description.as_deref().unwrap_or_default(),
            cadence: n.cadence.as_deref().unwrap_or_default(),
        }
    }
}

/// What the `signup/confirm*` templates see (docs/signup.md lists it).
#[derive(Debug, Serialize)]
struct ConfirmCtx<'a> {
    site: &'a Site,
    newsletters: Vec<LetterCtx<'a>>,
    email: &'a str,
    confirm_url: &'a str,
    /// "48 hours": how long the link works.
    expires_in: String,
    /// RFC 3339, UTC.
    expires_at: String,
    subject: String,
}

enum Way {
    Outbox(std::path::PathBuf),
    Smtp(Box<SmtpConnector>),
}

/// Composes and delivers confirmation messages for one newsroom.
pub struct Notices {
    renderer: Renderer,
    site: Site,
    /// `signup.from`, when set.
    from: Option<Mailbox>,
    bounce_address: Option<lettre::Address>,
    dkim: Option<DkimSigner>,
    way: Way,
}

impl Notices {
    /// Everything that could fail for every message fails here, at startup:
    /// the templates, the sender, the DKIM key, the relay's settings.
    pub fn new(newsroom: &Newsroom) -> Result<Notices> {
        let cfg = &newsroom.config;
        let renderer = Renderer::new(newsroom).map_err(|ds| {
            anyhow!(
                "{}",
                (ds.iter().map(|d| d.headline()))
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        })?;
        let from = (cfg.signup.from.as_deref())
            .map(|f| f.parse::<Mailbox>())
            .transpose()
            .context("signup.from is not an address")?;
        for n in &cfg.newsletters {
            n.from
                .parse::<Mailbox>()
                .with_context(|| format!("newsletter `{}`: `from` is not an address", n.id))?;
        }
        let d = &cfg.delivery;
        let dkim = (d.dkim.as_ref())
            .map(DkimSigner::load)
            .transpose()
            .context("cannot load the DKIM key")?;
        let way = match d.transport {
            TransportKind::Outbox => Way::Outbox(d.outbox.join("signup")),
            TransportKind::Smtp => {
                // The first relay: a confirmation is one message.
                let s: &SmtpSettings = (d.relays.first()).ok_or_else(|| {
                    anyhow!("delivery.transport is smtp but delivery.smtp is missing")
                })?;
                Way::Smtp(Box::new(SmtpConnector::new(s)?))
            }
        };
        Ok(Notices {
            renderer,
            site: cfg.site.clone(),
            from,
            bounce_address: d.bounce_address.as_deref().and_then(|a| a.parse().ok()),
            dkim,
            way,
        })
    }

    /// The message for `request`, whose link is `confirm_url`, dated
    /// `issued`. `letters` are its newsletters, in order. The name the form
    /// was given is in neither the message nor its headers: until the
    /// reader confirms, it is a stranger's text.
    pub fn compose(
        &self,
        request: &Request,
        letters: &[&Newsletter],
        confirm_url: &str,
        issued: DateTime<Utc>,
    ) -> Result<(lettre::Address, lettre::Address, Vec<u8>)> {
        let first = letters
            .first()
            .ok_or_else(|| anyhow!("a sign-up names no newsletter"))?;
        let from = match &self.from {
            Some(f) => f.clone(),
            None => first.from.parse::<Mailbox>()?,
        };
        let to_address: lettre::Address = request.email.parse()?;
        // Not the name: it is whatever the form was given, and must not
        // ride on a message of ours to someone who never asked for it.
        let to = Mailbox::new(None, to_address.clone());
        let mut ctx = ConfirmCtx {
            site: &self.site,
            newsletters: letters.iter().map(|n| LetterCtx::from(*n)).collect(),
            email: &request.email,
            confirm_url,
            expires_in: in_words(request.expires - request.issued),
            expires_at: request.expires.to_rfc3339(),
            subject: String::new(),
        };
        let render = |name: &str, ctx: &ConfirmCtx| {
            (self.renderer.render_named(name, ctx)).map_err(|d| anyhow!("{}", d.headline()))
        };
        ctx.subject = render("signup/confirm_subject.txt", &ctx)?
            .trim()
            .to_string();
        let text = render("signup/confirm.txt", &ctx)?;
        let html = render("signup/confirm.html", &ctx)?;
        // `<signup-<issued>.<hash of the address>@domain>`, the shape of an
        // edition's ids: a bounce that quotes it is traced to the address
        // by the ledger's record of confirmations (`inbound`), and the
        // address itself is not in it.
        let message_id = crate::mail::message::message_id(
            &format!("{SIGNUP_ID}{}", request.issued.timestamp()),
            &request.email,
            from.email.domain(),
        );
        let spec = NoticeSpec {
            from: from.clone(),
            to,
            subject: ctx.subject,
            text: text.replace('\n', "\r\n"),
            html: html.replace('\n', "\r\n"),
            message_id,
            date: issued,
        };
        let bytes = compose_notice(&spec, self.dkim.as_ref())?;
        let envelope = self.bounce_address.clone().unwrap_or(from.email);
        Ok((envelope, to_address, bytes))
    }

    /// Delivers one message; returns where it went (the file, or the
    /// relay's reply).
    pub async fn deliver(
        &self,
        envelope: &lettre::Address,
        to: &lettre::Address,
        message: Vec<u8>,
    ) -> Result<String> {
        match &self.way {
            Way::Outbox(dir) => {
                let dir = dir.clone();
                let stem = format!("signup-{}", Utc::now().format("%Y%m%dT%H%M%S%.9f"));
                let path = tokio::task::spawn_blocking(move || {
                    Outbox::new(&dir)?
                        .write(&stem, &message)
                        .map_err(anyhow::Error::from)
                })
                .await??;
                Ok(path.display().to_string())
            }
            Way::Smtp(connector) => {
                let mut session = connector.connect().await.map_err(|e| anyhow!("{e}"))?;
                let reply = session
                    .send(envelope, to, &message, &mut None)
                    .await
                    .map_err(|e| anyhow!("{e}"));
                session.quit().await;
                reply
            }
        }
    }
}

/// "48 hours", "7 days", "30 minutes": how long a link works, as a reader
/// reads it.
fn in_words(d: chrono::Duration) -> String {
    let unit = |n: i64, word: &str| match n {
        1 => format!("1 {word}"),
        n => format!("{n} {word}s"),
    };
    let minutes = d.num_minutes().max(1);
    match minutes {
        m if m < 120 => unit(m, "minute"),
        m if m < 72 * 60 || m % (24 * 60) != 0 => unit(m / 60, "hour"),
        m => unit(m / (24 * 60), "day"),
    }
}
