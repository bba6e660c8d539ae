//! Composing each recipient's message: the sender's identity and list
//! headers, the unsubscribe link signed with the newsroom's secret (and the
//! policy for that secret), DKIM, and filling a rendering's placeholders.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use chrono::Utc;
use lettre::message::Mailbox;

use crate::config::{Newsletter, Newsroom, TransportKind};
use crate::diag::DiagnosticError;
use crate::mail::message::{DkimSigner, MessageSpec, check_headers, compose, message_id};
use crate::mail::sender::BoxError;
use crate::mail::token::{DEV_SECRET, preferences_url, unsubscribe_url};
use crate::mail::variant::{Fields, fill};
use crate::render::TEXT_WIDTH;
use crate::render::text::fill_and_wrap;

/// The unsubscribe secret that signs new links: the first of
/// [`secrets`].
pub fn secret(newsroom: &Newsroom) -> Result<Vec<u8>> {
    let mut all = secrets(newsroom)?;
    Ok(all.swap_remove(0))
}

/// The unsubscribe secrets, from the environment variable config names:
/// the current one first, then, separated by white space, the previous one
/// while links signed with it are still in inboxes (rotating the secret
/// must not break the unsubscribe links already sent). The outbox falls back
/// to a development secret; SMTP refuses to start without one of its own.
pub fn secrets(newsroom: &Newsroom) -> Result<Vec<Vec<u8>>> {
    let d = &newsroom.config.delivery;
    let var = &d.unsubscribe.secret_env;
    let value = std::env::var(var).unwrap_or_default();
    let given: Vec<Vec<u8>> = value
        .split_whitespace()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    if given.iter().any(|s| s == DEV_SECRET) && d.transport == TransportKind::Smtp {
        bail!(
            "refusing to send over SMTP with briefing's development secret in {var}: it is published in briefing's source, so anyone could forge unsubscribe links; set a secret of your own"
        );
    }
    if !given.is_empty() {
        return Ok(given);
    }
    if d.transport == TransportKind::Outbox {
        // Said once per run, however many editions it sends.
        static SAID: std::sync::Once = std::sync::Once::new();
        SAID.call_once(|| {
            tracing::warn!(
                "{var} is not set: unsubscribe links use the development secret (fine for the outbox, never for real mail)"
            )
        });
        return Ok(vec![DEV_SECRET.to_vec()]);
    }
    bail!(
        "refusing to send over SMTP without an unsubscribe secret: set the environment variable {var} (named by delivery.unsubscribe.secret_env)"
    )
}

/// Everything a message needs besides the recipient, shared by all jobs.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: String,
    from_domain: String,
    newsletter: String,
    unsubscribe: String,
    preferences: String,
    unsubscribe_mailto: Option<String>,
    feedback_id: Option<String>,
    secret: Vec<u8>,
    dkim: Option<DkimSigner>,
    subject_prefix: String,
    /// Set for test copies: goes into their Message-ID, so that a copy never
    /// shares its id with the reader's real message (providers drop a
    /// message whose id they have seen) nor with an earlier copy.
    test_tag: Option<String>,
    /// VERP base (`delivery.bounce_address`).
    bounce_address: Option<String>,
    /// The edition's number in the ledger, once frozen: what VERP tags
    /// carry. 0 (before freezing, test copies): no tags.
    edition_num: u64,
}

impl Composer {
    pub fn new(
        newsroom: &Newsroom,
        n: &Newsletter,
        edition_id: &str,
        secret: Vec<u8>,
    ) -> Result<Composer> {
        let d = &newsroom.config.delivery;
        // Each at the key in config.yaml that needs fixing.
        let at = |key: &[&str], e: anyhow::Error, what: String| {
            anyhow::Error::new(DiagnosticError(
                newsroom.config_diag(key, format!("{what}: {e:#}")),
            ))
        };
        let from: Mailbox = n.from.parse().map_err(|e: lettre::address::AddressError| {
            at(
                &["newsletters", &n.id, "from"],
                e.into(),
                format!(
                    "newsletter `{}`: `from` is not a valid address: {}",
                    n.id, n.from
                ),
            )
        })?;
        let reply_to = (n.reply_to.as_deref())
            .map(|r| r.parse::<Mailbox>())
            .transpose()
            .map_err(|e| {
                at(
                    &["newsletters", &n.id, "reply_to"],
                    e.into(),
                    format!("newsletter `{}`: `reply_to` is not a valid address", n.id),
                )
            })?;
        let from_domain = from.email.domain().to_string();
        let dkim = (d.dkim.as_ref())
            .map(DkimSigner::load)
            .transpose()
            .map_err(|e| {
                at(
                    &["delivery", "dkim", "key_file"],
                    e.into(),
                    "cannot load the DKIM key".into(),
                )
            })?;
        Ok(Composer {
            list_id: format!("{} <{}.{}>", n.name, n.id, from_domain),
            from,
            reply_to,
            from_domain,
            newsletter: n.id.clone(),
            unsubscribe: d.unsubscribe.url.clone(),
            preferences: d.preferences.url.clone(),
            unsubscribe_mailto: d.unsubscribe.mailto.clone(),
            feedback_id: d
                .feedback_id
                .as_ref()
                .map(|s| format!("{edition_id}:{}:{s}", n.id)),
            secret,
            dkim,
            subject_prefix: String::new(),
            test_tag: None,
            bounce_address: d.bounce_address.clone(),
            edition_num: 0,
        })
    }

    /// Tags each message with the frozen edition's number (VERP envelope
    /// sender, per-recipient unsubscribe address).
    pub fn for_edition(mut self, num: u64) -> Self {
        self.edition_num = num;
        self
    }

    /// The VERP tag of `email`'s message, when the edition is frozen.
    fn tag(&self, email: &str) -> Option<String> {
        (self.edition_num > 0 && self.test_tag.is_none()).then(|| {
            crate::inbound::tag::encode(
                self.edition_num,
                crate::inbound::tag::recipient_ref(email),
                &self.secret,
            )
        })
    }

    /// `email`'s message's own envelope sender: `bounces+<tag>@…` when a
    /// bounce address is configured and the edition is frozen.
    pub fn envelope_for(&self, email: &str) -> Option<lettre::Address> {
        let base = self.bounce_address.as_deref()?;
        crate::inbound::tag::address(base, &self.tag(email)?)?
            .parse()
            .ok()
    }

    /// The `mailto:` of `email`'s List-Unsubscribe: `unsubscribe+<tag>@…`,
    /// so a mailed unsubscribe names its sender even when the From differs.
    fn mailto_for(&self, email: &str) -> Option<String> {
        let base = self.unsubscribe_mailto.as_deref()?;
        match self.tag(email) {
            Some(tag) => crate::inbound::tag::address(base, &tag).or(Some(base.to_owned())),
            None => Some(base.to_owned()),
        }
    }

    /// Marks every message as a test copy: `[TEST]` subject, own Message-ID.
    pub fn test_copies(mut self) -> Self {
        self.subject_prefix = "[TEST] ".into();
        self.test_tag = Some(format!("test-{}", Utc::now().format("%Y%m%dT%H%M%S%3f")));
        self
    }

    pub fn envelope_from(&self) -> lettre::Address {
        self.from.email.clone()
    }

    pub fn message_id(&self, edition_id: &str, email: &str) -> String {
        match &self.test_tag {
            Some(tag) => message_id(&format!("{edition_id}.{tag}"), email, &self.from_domain),
            None => message_id(edition_id, email, &self.from_domain),
        }
    }

    /// One recipient's message from a rendering with placeholders.
    pub fn compose(
        &self,
        edition_id: &str,
        content: (&str, &str, &str),
        email: &str,
        name: Option<&str>,
        fields: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>, BoxError> {
        let spec = self.spec(edition_id, content, email, name, fields, true)?;
        Ok(compose(&spec, self.dkim.as_ref())?)
    }

    /// Whether this recipient's message would compose: every header-bound
    /// value (the subject as filled in, the name, the address, the
    /// unsubscribe link) is checked, the bodies are not built. Planning runs
    /// it for every recipient, so that sending never meets a message it
    /// cannot make.
    pub fn check(
        &self,
        edition_id: &str,
        subject: &str,
        email: &str,
        name: Option<&str>,
        fields: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let spec = self
            .spec(edition_id, (subject, "", ""), email, name, fields, false)
            .map_err(|e| e.to_string())?;
        check_headers(&spec).map(|_| ()).map_err(|e| e.to_string())
    }

    /// One reader's message before MIME and DKIM: what [`Composer::compose`]
    /// builds and signs (the benches also sign it with a baseline).
    pub fn spec(
        &self,
        edition_id: &str,
        (subject, html, text): (&str, &str, &str),
        email: &str,
        name: Option<&str>,
        fields: &BTreeMap<String, String>,
        bodies: bool,
    ) -> Result<MessageSpec, BoxError> {
        let unsubscribe_url =
            unsubscribe_url(&self.unsubscribe, &self.newsletter, email, &self.secret)?;
        let mut f = fields.clone();
        f.insert("unsubscribe_url".into(), unsubscribe_url.clone());
        let preferences =
            preferences_url(&self.preferences, &self.newsletter, email, &self.secret)?;
        f.insert("preferences_url".into(), preferences);
        f.insert("email".into(), email.to_string());
        f.insert("name".into(), name.unwrap_or_default().to_string());
        let f = Fields(f);
        // Built from its parts, so that lettre quotes or encodes the name as
        // needed: "Lima, Ana" or "Ana <3" are names, not address syntax.
        let to = Mailbox::new(
            name.filter(|n| !n.is_empty()).map(str::to_owned),
            email.parse::<lettre::Address>()?,
        );
        let (text, html) = match bodies {
            // The text part is wrapped again around the reader's values.
            true => (fill_and_wrap(text, &f, TEXT_WIDTH), fill(html, &f, true)),
            false => (String::new(), String::new()),
        };
        Ok(MessageSpec {
            from: self.from.clone(),
            to,
            reply_to: self.reply_to.clone(),
            subject: format!("{}{}", self.subject_prefix, fill(subject, &f, false)),
            text,
            html,
            message_id: self.message_id(edition_id, email),
            list_id: self.list_id.clone(),
            unsubscribe_url,
            unsubscribe_mailto: self.mailto_for(email),
            feedback_id: self.feedback_id.clone(),
            date: Utc::now(),
        })
    }
}
