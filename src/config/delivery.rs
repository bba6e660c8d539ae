//! `delivery:`: where messages go (outbox or SMTP), the unsubscribe
//! endpoint, suppressions, DKIM, and the SMTP relay's settings, which are
//! built straight into the transport's own settings type.

use std::path::{Path, PathBuf};

use chrono::Duration;

use super::site::Site;
use super::{check_header_value, duration, path};
use crate::mail::message::{DkimAlgorithm, DkimSettings};
use crate::mail::smtp::SmtpSettings;
use crate::mail::token::{preferences_url, unsubscribe_url};
use crate::yaml::{Fields, Node, Pos};

/// More sessions than this only queue at the relay and cost memory (1.37 GB
/// for 100,000 of them).
const MAX_CONNECTIONS: u64 = 200;
const MAX_RETRIES: u64 = 100;
const DEFAULT_SECRET_ENV: &str = "BRIEFING_UNSUBSCRIBE_SECRET";

/// Where messages go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TransportKind {
    /// `.eml` files in a folder: the default, needs no server.
    #[default]
    Outbox,
    Smtp,
}

/// How and where editions are delivered.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    pub transport: TransportKind,
    /// Root of the outbox; messages land in `<outbox>/<newsletter>/<slot>/`.
    pub outbox: PathBuf,
    pub suppressions: Option<PathBuf>,
    pub unsubscribe: Unsubscribe,
    pub preferences: PreferencesPage,
    /// Sender id for Gmail's `Feedback-ID` header.
    pub feedback_id: Option<String>,
    pub dkim: Option<DkimSettings>,
    /// The relays (`delivery.smtp`, one mapping or a list of them); empty
    /// without the section.
    pub relays: Vec<SmtpSettings>,
    /// VERP base address: each message's envelope sender becomes
    /// `<local>+<tag>@<domain>`, naming the edition and recipient a bounce
    /// is about. `None`: the From address, and bounces identified by their
    /// Message-ID or report fields only.
    pub bounce_address: Option<String>,
    /// What bounces and complaints do (`delivery.bounces`).
    pub bounces: crate::inbound::Policy,
    /// How long a sender's lease on an edition lasts without renewal
    /// (`delivery.lease`): how soon another sender takes over the
    /// recipients of one that stopped on another host.
    pub lease: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Unsubscribe {
    pub url: String,
    pub mailto: Option<String>,
    /// Name of the environment variable holding the HMAC secret.
    pub secret_env: String,
}

/// The page where a reader picks sections or unsubscribes from one or all
/// newsletters (`briefing serve` answers it), linked from every message.
#[derive(Debug, Clone)]
pub struct PreferencesPage {
    pub url: String,
}

/// Reads `delivery:` (every key optional).
pub(super) fn read(f: &mut Fields, site: &Site, root: &Path) -> DeliverySettings {
    // Without the section the same reads give the defaults, and the
    // unsubscribe URL derived from site.base_url is still checked.
    let mut d = f
        .fields("delivery", false)
        .unwrap_or_else(|| Fields::new(f.source(), Node::empty(), None, "delivery"));
    let base_url_pos = f.node().locate(&["site", "base_url"]);
    let transport = transport(&mut d);
    let outbox = path(&mut d, "outbox", root).unwrap_or_else(|| root.join("out/outbox"));
    let suppressions = path(&mut d, "suppressions", root);
    let unsubscribe = unsubscribe(&mut d, site, base_url_pos);
    let preferences = preferences(&mut d, &unsubscribe);
    let feedback_id = feedback_id(&mut d);
    let dkim = dkim(&mut d, root);
    let relays = relays(&mut d, root);
    let bounce_address = bounce_address(&mut d);
    let bounces = bounces(&mut d);
    let lease = duration(&mut d, "lease", Duration::seconds(5), Duration::hours(1))
        .and_then(|l| l.to_std().ok())
        .unwrap_or(crate::delivery::lease::DEFAULT_LEASE);
    if transport == TransportKind::Smtp && !d.has("smtp") {
        d.error(
            "transport",
            "`transport: smtp` needs a `delivery.smtp` section with at least `url`",
        );
    }
    f.absorb(d);
    DeliverySettings {
        transport,
        outbox,
        suppressions,
        unsubscribe,
        preferences,
        feedback_id,
        dkim,
        relays,
        bounce_address,
        bounces,
        lease,
    }
}

/// `bounce_address`: a bare address whose local part leaves room for a tag.
fn bounce_address(d: &mut Fields) -> Option<String> {
    let a = d.text(
        "bounce_address",
        "a bare address like bounces@news.example.com",
    )?;
    let room = crate::inbound::tag::MAX_LOCAL_PART - 1 - crate::inbound::tag::MAX_TAG_LEN;
    let problem = match a.rsplit_once('@') {
        None => Some("a bare address like bounces@news.example.com".to_string()),
        Some((local, domain)) if local.is_empty() || domain.is_empty() => {
            Some("a bare address like bounces@news.example.com".to_string())
        }
        Some((local, _)) if local.contains(['+', '<', '>', ' ']) => Some(
            "a local part without `+`, spaces or angle brackets (briefing adds `+<tag>`)"
                .to_string(),
        ),
        Some((local, _)) if local.len() > room => Some(format!(
            "a local part of at most {room} characters, so that `+<tag>` fits the 64 SMTP allows"
        )),
        _ => None,
    };
    match problem {
        Some(expected) => {
            d.error(
                "bounce_address",
                format!("`bounce_address` `{a}`: expected {expected}"),
            );
            None
        }
        None => Some(a.to_ascii_lowercase()),
    }
}

/// `bounces:`: the policy for bounces and complaints.
fn bounces(d: &mut Fields) -> crate::inbound::Policy {
    let mut policy = crate::inbound::Policy::default();
    let Some(mut b) = d.fields("bounces", false) else {
        return policy;
    };
    if let Some(n) = b.count("soft_bounce_limit", 1, 100) {
        policy.soft_bounce_limit = n as u32;
    }
    match b.text("complaint_scope", "newsletter or all") {
        None | Some("newsletter") => {}
        Some("all") => policy.complaint_scope = crate::inbound::Scope::All,
        Some(other) => {
            b.error(
                "complaint_scope",
                format!("unknown complaint_scope `{other}`: expected newsletter or all"),
            );
        }
    }
    if let Some(v) = b.bool("require_tag") {
        policy.require_tag = v;
    }
    d.absorb(b);
    policy
}

fn transport(d: &mut Fields) -> TransportKind {
    match d.text("transport", "outbox or smtp") {
        None | Some("outbox") => TransportKind::Outbox,
        Some("smtp") => TransportKind::Smtp,
        Some(other) => {
            d.error(
                "transport",
                format!("unknown transport `{other}`: expected outbox or smtp"),
            );
            TransportKind::Outbox
        }
    }
}

/// The unsubscribe endpoint, explicit or derived from `site.base_url`.
/// Composing refuses every message whose endpoint breaks its rules, so a
/// bad one is a config error here, before any edition is frozen.
fn unsubscribe(d: &mut Fields, site: &Site, base_url_pos: Option<Pos>) -> Unsubscribe {
    let Some(mut u) = d.fields("unsubscribe", false) else {
        let url = format!("{}/unsubscribe", site.base_url);
        if !site.base_url.is_empty() {
            if let Some(why) = endpoint_problem(&url) {
                let e = d.error_at(
                    base_url_pos,
                    format!(
                        "the unsubscribe URL `{url}`, made from `site.base_url`, {why}; sending would fail for every recipient"
                    ),
                );
                e.help = Some(
                    "use an https:// base_url without `?` or `#`, or set delivery.unsubscribe.url"
                        .into(),
                );
            }
        }
        return Unsubscribe {
            url,
            mailto: None,
            secret_env: DEFAULT_SECRET_ENV.into(),
        };
    };
    let url = u
        .required_text(
            "url",
            "an https:// URL like https://news.example.com/unsubscribe",
        )
        .unwrap_or_default()
        .to_string();
    if let Err(m) = check_header_value(&url) {
        u.error("url", format!("`url` {m}"));
    } else if let Some(why) = endpoint_problem(&url).filter(|_| !url.is_empty()) {
        u.error(
            "url",
            format!("the unsubscribe URL `{url}` {why}; sending would fail for every recipient"),
        );
    }
    let mailto = u.text("mailto", "a bare address like unsubscribe@news.example.com");
    if let Some(m) = mailto {
        if let Err(e) = check_header_value(m) {
            u.error("mailto", format!("`mailto` {e}"));
        } else if !m.contains('@') || m.contains(['<', '>', ' ']) {
            u.error(
                "mailto",
                format!(
                    "`mailto` must be a bare address like unsubscribe@news.example.com, found `{m}`"
                ),
            );
        }
    }
    let secret_env = u
        .text("secret_env", "the name of an environment variable")
        .unwrap_or(DEFAULT_SECRET_ENV)
        .to_string();
    let out = Unsubscribe {
        url,
        mailto: mailto.map(str::to_string),
        secret_env,
    };
    d.absorb(u);
    out
}

/// The preferences page, explicit or next to the unsubscribe page (both are
/// answered by `briefing serve`), held to the unsubscribe URL's rules: it is
/// a signed link of the same kind.
fn preferences(d: &mut Fields, unsubscribe: &Unsubscribe) -> PreferencesPage {
    let Some(mut p) = d.fields("preferences", false) else {
        // A broken unsubscribe URL is reported once, as itself.
        return PreferencesPage {
            url: sibling(&unsubscribe.url, "preferences"),
        };
    };
    let url = p
        .required_text(
            "url",
            "an https:// URL like https://news.example.com/preferences",
        )
        .unwrap_or_default()
        .to_string();
    if let Err(m) = check_header_value(&url) {
        p.error("url", format!("`url` {m}"));
    } else if let Some(why) = page_problem(&url).filter(|_| !url.is_empty()) {
        p.error(
            "url",
            format!("the preferences URL `{url}` {why}; sending would fail for every recipient"),
        );
    }
    d.absorb(p);
    PreferencesPage { url }
}

/// `name` in the same folder as `url`: `https://x.example/news/unsubscribe`
/// gives `https://x.example/news/<name>`, `https://x.example` gives
/// `https://x.example/<name>`.
pub(super) fn sibling(url: &str, name: &str) -> String {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].rfind('/') {
        Some(i) => format!("{}{name}", &url[..after_scheme + i + 1]),
        None => format!("{url}/{name}"),
    }
}

/// Why the message composer would refuse `url` as the unsubscribe endpoint.
/// The composer's own check decides; this only explains it.
fn endpoint_problem(url: &str) -> Option<&'static str> {
    unsubscribe_url(url, "newsletter", "reader@example.com", b"check").err()?;
    Some(url_problem(url))
}

/// [`endpoint_problem`] for the preferences page.
fn page_problem(url: &str) -> Option<&'static str> {
    preferences_url(url, "newsletter", "reader@example.com", b"check").err()?;
    Some(url_problem(url))
}

fn url_problem(url: &str) -> &'static str {
    if !url.starts_with("https://") {
        "must be https:// (mail clients refuse plain http for one-click unsubscribe)"
    } else if url.contains(['?', '#']) {
        "must not carry a query (`?`) or fragment (`#`): briefing appends its own query"
    } else {
        "must be an absolute https:// URL without spaces, quotes or angle brackets"
    }
}

fn feedback_id(d: &mut Fields) -> Option<String> {
    let f = d.text("feedback_id", "a short sender id like dailybrief")?;
    if f.is_empty() || f.contains(|c: char| c.is_control() || c == ':' || c.is_whitespace()) {
        d.error(
            "feedback_id",
            format!(
                "`feedback_id` must be a short sender id without spaces or `:`, found `{}`",
                f.escape_debug()
            ),
        );
    }
    Some(f.to_string())
}

fn dkim(d: &mut Fields, root: &Path) -> Option<DkimSettings> {
    let mut k = d.fields("dkim", false)?;
    let domain = k.required_text("domain", "the signing domain, like news.example.com");
    let selector = k.required_text("selector", "the DNS selector, like brief");
    let key_file = path(&mut k, "key_file", root);
    if !k.has("key_file") {
        k.missing("missing `key_file`: expected the PEM private key's path");
    }
    let algorithm = k
        .required_text("algorithm", "ed25519-sha256 or rsa-sha256")
        .and_then(|a| match a.parse::<DkimAlgorithm>() {
            Ok(a) => Some(a),
            Err(_) => {
                k.error(
                    "algorithm",
                    format!("unknown DKIM algorithm `{a}`: expected ed25519-sha256 or rsa-sha256"),
                );
                None
            }
        });
    let ok = k.diags.is_empty();
    d.absorb(k);
    match (domain, selector, key_file, algorithm) {
        (Some(domain), Some(selector), Some(key_file), Some(algorithm)) if ok => {
            Some(DkimSettings {
                domain: domain.to_string(),
                selector: selector.to_string(),
                key_file,
                algorithm,
            })
        }
        _ => None,
    }
}

/// `delivery.smtp`, read into the transport's own settings; whatever is not
/// written keeps `SmtpSettings::default()`, the one set of defaults.
/// `delivery.smtp`: one relay (a mapping), or several (a list of them,
/// each with an optional `name` and `weight`).
fn relays(d: &mut Fields, root: &Path) -> Vec<SmtpSettings> {
    let Some(node) = d.node().entry("smtp").map(|(_, v)| v) else {
        return Vec::new();
    };
    let crate::yaml::Value::Seq(items) = &node.value else {
        return (d.fields("smtp", false))
            .map(|mut s| {
                let out = relay(&mut s, root);
                d.absorb(s);
                vec![out]
            })
            .unwrap_or_default();
    };
    d.allow(&["smtp"]);
    if items.is_empty() {
        d.error(
            "smtp",
            "`smtp` lists no relay: give at least one, with its `url`",
        );
    }
    let mut out: Vec<SmtpSettings> = Vec::with_capacity(items.len());
    for item in items {
        let mut s = Fields::new(d.source(), item, Some(item.pos), "each of `smtp`");
        let r = relay(&mut s, root);
        if out.iter().any(|o| o.display_name() == r.display_name()) {
            let name = r.display_name();
            let key = if s.has("name") { "name" } else { "url" };
            s.error(
                key,
                format!("two relays are called `{name}`: give each a different `name`"),
            );
        }
        d.absorb(s);
        out.push(r);
    }
    out
}

/// One relay's settings.
fn relay(s: &mut Fields, root: &Path) -> SmtpSettings {
    let mut out = SmtpSettings::default();
    if let Some(url) = s.required_text("url", "an smtp:// or smtps:// URL") {
        out.url = url.to_string();
    }
    out.username = s.text("username", "a user name").map(str::to_string);
    out.password_env = s
        .text("password_env", "the name of an environment variable")
        .map(str::to_string);
    if let Some(c) = s.count("connections", 1, MAX_CONNECTIONS) {
        out.connections = c as usize;
    }
    if let Some(r) = s.float("rate", "messages per second, like 50") {
        if r.is_finite() && r > 0.0 {
            out.rate = Some(r);
        } else {
            s.error(
                "rate",
                "`rate` must be a positive number of messages per second",
            );
        }
    }
    if let Some(r) = s.count("retries", 0, MAX_RETRIES) {
        out.retries = r as u32;
    }
    if let Some(t) = duration(s, "timeout", Duration::seconds(1), Duration::hours(1)) {
        out.timeout = t.to_std().unwrap_or(out.timeout);
    }
    // RFC 5321 4.5.3.2.6 recommends 10 minutes for the final dot's reply.
    if let Some(t) = duration(s, "data_timeout", Duration::seconds(1), Duration::hours(1)) {
        out.data_timeout = t.to_std().unwrap_or(out.data_timeout);
    }
    if let Some(b) = s.bool("allow_insecure") {
        out.allow_insecure = b;
    }
    if let Some(h) = s.text("hello_name", "a host name like mail.example.com") {
        let ok = !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic());
        if !ok {
            s.error(
                "hello_name",
                format!(
                    "`hello_name` must be a host name like mail.example.com, found `{}`",
                    h.escape_debug()
                ),
            );
        }
        out.hello_name = Some(h.to_string());
    }
    out.ca_file = path(s, "ca_file", root);
    if let Some(w) = s.count("weight", 1, 1000) {
        out.weight = w as u32;
    }
    if let Some(n) = s.text("name", "a short name like mx1") {
        if n.is_empty() || n.len() > 64 || !n.chars().all(|c| c.is_ascii_graphic()) {
            s.error(
                "name",
                "`name` must be a short name like mx1: printable ASCII, no spaces, at most 64 characters",
            );
        } else {
            out.name = Some(n.to_owned());
        }
    }
    out
}
