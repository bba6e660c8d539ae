//! Sending one edition: plan who gets which rendering, freeze the edition
//! and its audience in the ledger, then deliver every pending recipient
//! under a lease. The commands (`send`, and cron's `send --due`) only decide
//! which editions to send and how to report.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use lettre::message::Mailbox;
use serde_json::json;

use crate::audience::{self, PreferenceKey, Subscriber};
use crate::config::{Newsletter, Newsroom, TransportKind};
use crate::diag::{Diagnostic, display_path};
use crate::edition::Edition;
use crate::ledger::{
    FrozenEdition, LeaseOutcome, Ledger, MAIN_VARIANT, Outcome, Recipient, StoredEdition, Variant,
};
use crate::mail::message::{DkimSigner, MessageSpec, compose, message_id};
use crate::mail::sender::{
    BoxError, Job, LeasedLedger, MessageSource, OutcomeSink, Progress, SendOptions, deliver,
};
use crate::mail::smtp::{SmtpConnector, SmtpSettings};
use crate::mail::token::{DEV_SECRET, unsubscribe_url};
use crate::mail::transport::Transport;
use crate::mail::variant::{Fields, fill, subscriber_context};
use crate::render::{Bodies, Renderer};
use crate::time::slot_stamp;

/// How long a sender's lease lasts without renewal (it renews every third).
pub const LEASE_TTL: StdDuration = StdDuration::from_secs(60);

/// What planning an edition counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanStats {
    /// Valid, unique subscribers on the list.
    pub listed: usize,
    /// Subscribers who get a message.
    pub recipients: usize,
    pub suppressed: usize,
    /// Rows rejected by validation (bad address, duplicate…).
    pub invalid: usize,
    /// Subscribers whose preferences leave nothing in this edition.
    pub empty: usize,
    /// Distinct renderings.
    pub variants: usize,
}

impl PlanStats {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "listed": self.listed, "recipients": self.recipients, "suppressed": self.suppressed,
            "invalid": self.invalid, "empty": self.empty, "variants": self.variants,
        })
    }

    pub fn from_json(v: &serde_json::Value) -> PlanStats {
        let n = |k: &str| v[k].as_u64().unwrap_or(0) as usize;
        PlanStats {
            listed: n("listed"),
            recipients: n("recipients"),
            suppressed: n("suppressed"),
            invalid: n("invalid"),
            empty: n("empty"),
            variants: n("variants"),
        }
    }
}

/// A section of the edition and how many recipients get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionPlan {
    pub id: String,
    pub title: String,
    pub items: usize,
    pub readers: usize,
}

/// An edition ready to freeze: its renderings and its audience.
pub struct Plan {
    pub frozen: FrozenEdition,
    pub recipients: Vec<Recipient>,
    pub stats: PlanStats,
    pub sections: Vec<SectionPlan>,
    /// Rejected subscriber rows and suppression lines, as warnings.
    pub warnings: Vec<Diagnostic>,
}

/// The template fields of one subscriber: `email`, `name`, the CSV's other
/// columns, and `unsubscribe_url` (filled in per message).
fn subscriber_fields(s: &Subscriber) -> Fields {
    let mut f: BTreeMap<String, String> = s.fields.clone();
    f.insert("email".into(), s.email.clone());
    f.insert("name".into(), s.name.clone().unwrap_or_default());
    // Always present; the value depends on the secret and is set when sending.
    f.insert("unsubscribe_url".into(), "-".into());
    Fields(f)
}

fn variant_key(pref: &PreferenceKey, fields: &Fields) -> String {
    format!("{pref};fields={}", fields.present().join(","))
}

fn rejected_diag(newsroom: &Newsroom, r: &audience::Rejected) -> Diagnostic {
    let mut d = Diagnostic::warning(
        display_path(&newsroom.root, &r.path),
        format!("{} (row skipped)", r.reason),
    );
    d.line = r.line as usize;
    d
}

/// Loads the newsletter's audience and renders one variant per distinct
/// preference set (and set of filled-in fields).
pub fn plan(
    newsroom: &Newsroom,
    renderer: &Renderer,
    edition: &Edition,
    bodies: &Bodies,
) -> Result<Plan> {
    let cfg = &newsroom.config;
    let n = edition.newsletter;
    let list_path = n.subscribers.as_ref().ok_or_else(|| {
        anyhow!(
            "newsletter `{}` has no `subscribers:` list in {}",
            n.id,
            newsroom.config_path.display()
        )
    })?;
    let mut list = audience::load_subscribers(list_path)
        .with_context(|| format!("cannot load the subscribers of `{}`", n.id))?;
    let mut warnings: Vec<Diagnostic> = Vec::new();
    let mut stats = PlanStats {
        invalid: list.rejected.len(),
        ..PlanStats::default()
    };
    if let Some(path) = &cfg.delivery.suppressions {
        let sup = audience::load_suppressions(path)
            .with_context(|| format!("cannot load the suppression list {}", path.display()))?;
        warnings.extend(sup.invalid.iter().map(|r| rejected_diag(newsroom, r)));
        stats.suppressed = list.remove_suppressed(&sup);
    }
    warnings.extend(list.rejected.iter().map(|r| rejected_diag(newsroom, r)));
    stats.listed = list.subscribers.len() + stats.suppressed;

    // Unknown preference ids are a list problem, not a reason to drop the
    // reader: they are reported and ignored.
    for s in &mut list.subscribers {
        for (ids, known, what) in [
            (&mut s.regions, &cfg.regions, "region"),
            (&mut s.topics, &cfg.topics, "topic"),
        ] {
            ids.retain(|id| {
                let ok = known.iter().any(|t| &t.id == id);
                if !ok {
                    warnings.push(Diagnostic::warning(
                        display_path(&newsroom.root, list_path),
                        format!("{}: unknown {what} `{id}` in preferences, ignored", s.email),
                    ));
                }
                ok
            });
        }
    }

    let mut variants: Vec<Variant> = Vec::new();
    let mut by_key: HashMap<String, Option<usize>> = HashMap::new();
    let mut recipients = Vec::new();
    let mut section_readers: HashMap<String, usize> = HashMap::new();
    for s in &list.subscribers {
        let pref = s.preference_key();
        let fields = subscriber_fields(s);
        let key = variant_key(&pref, &fields);
        let slot = match by_key.get(&key) {
            Some(v) => *v,
            None => {
                let ed = edition.personalise(cfg, &pref.regions, &pref.topics);
                let v = if ed.item_count() == 0 {
                    None
                } else {
                    let ctx = subscriber_context(&fields, &pref.regions, &pref.topics);
                    let r = renderer
                        .render(newsroom, &ed, bodies, &ctx)
                        .map_err(|d| anyhow!("{d}"))?;
                    variants.push(Variant {
                        key: key.clone(),
                        subject: r.subject,
                        html: r.html,
                        text: r.text,
                        item_ids: ed.items().map(|p| p.item.id.clone()).collect(),
                    });
                    Some(variants.len() - 1)
                };
                by_key.insert(key.clone(), v);
                v
            }
        };
        let Some(i) = slot else {
            stats.empty += 1;
            continue;
        };
        let ed_items = &variants[i].item_ids;
        for sec in &edition.sections {
            if sec.items.iter().any(|p| ed_items.contains(&p.item.id)) {
                *section_readers.entry(sec.id()).or_default() += 1;
            }
        }
        recipients.push(Recipient {
            email: s.email.clone(),
            name: s.name.clone(),
            variant: key,
            fields: fields.0,
        });
    }
    stats.recipients = recipients.len();
    stats.variants = variants.len();

    // The main rendering: the whole edition with every field filled in, the
    // copy `status` and a resumed send show when no variant is asked for.
    let all = Fields(
        ["email", "name", "unsubscribe_url"]
            .iter()
            .map(|k| (k.to_string(), "-".to_string()))
            .collect(),
    );
    let main = renderer
        .render(
            newsroom,
            edition,
            bodies,
            &subscriber_context(&all, &[], &[]),
        )
        .map_err(|d| anyhow!("{d}"))?;
    let sections = edition
        .sections
        .iter()
        .map(|s| SectionPlan {
            id: s.id(),
            title: s.title(),
            items: s.items.len(),
            readers: section_readers.get(&s.id()).copied().unwrap_or(0),
        })
        .collect();
    Ok(Plan {
        frozen: FrozenEdition {
            id: edition.id.clone(),
            newsletter: n.id.clone(),
            slot_utc: edition.slot.at,
            zone: n.timezone.name().to_string(),
            subject: main.subject,
            html: main.html,
            text: main.text,
            item_ids: edition.items().map(|p| p.item.id.clone()).collect(),
            variants,
        },
        recipients,
        stats,
        sections,
        warnings,
    })
}

/// The unsubscribe secret: from the environment variable config names. The
/// outbox falls back to a development secret; SMTP refuses to start.
pub fn secret(newsroom: &Newsroom) -> Result<Vec<u8>> {
    let d = &newsroom.config.delivery;
    match std::env::var(&d.unsubscribe.secret_env) {
        Ok(s) if s.as_bytes() == DEV_SECRET && d.transport == TransportKind::Smtp => bail!(
            "refusing to send over SMTP with briefing's development secret in {}: it is published in briefing's source, so anyone could forge unsubscribe links; set a secret of your own",
            d.unsubscribe.secret_env
        ),
        Ok(s) if !s.is_empty() => Ok(s.into_bytes()),
        _ if d.transport == TransportKind::Outbox => {
            tracing::warn!(
                "{} is not set: unsubscribe links use the development secret (fine for the outbox, never for real mail)",
                d.unsubscribe.secret_env
            );
            Ok(DEV_SECRET.to_vec())
        }
        _ => bail!(
            "refusing to send over SMTP without an unsubscribe secret: set the environment variable {} (named by delivery.unsubscribe.secret_env)",
            d.unsubscribe.secret_env
        ),
    }
}

/// Checks, before anything is frozen or sent, what a send needs and a person
/// must fix: the unsubscribe secret, the From and Reply-To addresses, the
/// DKIM key, the SMTP URL and TLS policy, the password variable. A send that
/// cannot start must leave no trace in the ledger: a frozen edition is
/// finished by the next run however late that is, which would defeat
/// `max_delay`.
pub fn preflight(newsroom: &Newsroom, n: &Newsletter, slot: DateTime<Utc>) -> Result<()> {
    let secret = secret(newsroom)?;
    Composer::new(newsroom, n, "preflight", secret)?;
    if let Transport::Smtp(settings) = transport(newsroom, n, slot)? {
        SmtpConnector::new(&settings)?;
    }
    Ok(())
}

/// The transport for one edition (the outbox gets a folder per edition).
pub fn transport(newsroom: &Newsroom, n: &Newsletter, slot: DateTime<Utc>) -> Result<Transport> {
    let d = &newsroom.config.delivery;
    Ok(match d.transport {
        TransportKind::Outbox => Transport::Outbox {
            dir: d.outbox.join(&n.id).join(slot_stamp(slot, n.timezone)),
        },
        TransportKind::Smtp => {
            let s = d.smtp.as_ref().ok_or_else(|| {
                anyhow!("delivery.transport is smtp but delivery.smtp is missing")
            })?;
            Transport::Smtp(SmtpSettings {
                url: s.url.clone(),
                username: s.username.clone(),
                password_env: s.password_env.clone(),
                connections: s.connections,
                rate: s.rate,
                retries: s.retries,
                timeout: s.timeout.to_std().unwrap_or(StdDuration::from_secs(30)),
                allow_insecure: s.allow_insecure,
                ..SmtpSettings::default()
            })
        }
    })
}

/// Everything a message needs besides the recipient, shared by all jobs.
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    list_id: String,
    from_domain: String,
    newsletter: String,
    unsubscribe: String,
    unsubscribe_mailto: Option<String>,
    feedback_id: Option<String>,
    secret: Vec<u8>,
    dkim: Option<DkimSigner>,
    subject_prefix: String,
    /// Set for test copies: goes into their Message-ID, so that a copy never
    /// shares its id with the reader's real message (providers drop a
    /// message whose id they have seen) nor with an earlier copy.
    test_tag: Option<String>,
}

impl Composer {
    pub fn new(
        newsroom: &Newsroom,
        n: &Newsletter,
        edition_id: &str,
        secret: Vec<u8>,
    ) -> Result<Composer> {
        let d = &newsroom.config.delivery;
        let from: Mailbox = n.from.parse().with_context(|| {
            format!(
                "newsletter `{}`: `from` is not a valid address: {}",
                n.id, n.from
            )
        })?;
        let reply_to = n
            .reply_to
            .as_deref()
            .map(|r| r.parse::<Mailbox>())
            .transpose()
            .with_context(|| format!("newsletter `{}`: `reply_to` is not a valid address", n.id))?;
        let from_domain = from.email.domain().to_string();
        let dkim = d
            .dkim
            .as_ref()
            .map(DkimSigner::load)
            .transpose()
            .context("cannot load the DKIM key")?;
        Ok(Composer {
            list_id: format!("{} <{}.{}>", n.name, n.id, from_domain),
            from,
            reply_to,
            from_domain,
            newsletter: n.id.clone(),
            unsubscribe: d.unsubscribe.url.clone(),
            unsubscribe_mailto: d.unsubscribe.mailto.clone(),
            feedback_id: d
                .feedback_id
                .as_ref()
                .map(|s| format!("{edition_id}:{}:{s}", n.id)),
            secret,
            dkim,
            subject_prefix: String::new(),
            test_tag: None,
        })
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
        let unsubscribe_url =
            unsubscribe_url(&self.unsubscribe, &self.newsletter, email, &self.secret)?;
        let mut f = fields.clone();
        f.insert("unsubscribe_url".into(), unsubscribe_url.clone());
        f.insert("email".into(), email.to_string());
        let f = Fields(f);
        let (subject, html, text) = content;
        // Built from its parts, so that lettre quotes or encodes the name as
        // needed: "Lima, Ana" or "Ana <3" are names, not address syntax.
        let to = Mailbox::new(
            name.filter(|n| !n.is_empty()).map(str::to_owned),
            email.parse::<lettre::Address>()?,
        );
        let spec = MessageSpec {
            from: self.from.clone(),
            to,
            reply_to: self.reply_to.clone(),
            subject: format!("{}{}", self.subject_prefix, fill(subject, &f, false)),
            text: fill(text, &f, false),
            html: fill(html, &f, true),
            message_id: self.message_id(edition_id, email),
            list_id: self.list_id.clone(),
            unsubscribe_url,
            unsubscribe_mailto: self.unsubscribe_mailto.clone(),
            feedback_id: self.feedback_id.clone(),
            date: Utc::now(),
        };
        Ok(compose(&spec, self.dkim.as_ref())?)
    }
}

/// Reports progress: a line redrawn in place on a terminal, a log line
/// every few seconds otherwise.
pub fn progress_reporter(edition_id: &str) -> impl FnMut(Progress) + Send + 'static {
    let tty = std::io::stderr().is_terminal();
    let id = edition_id.to_string();
    let start = Instant::now();
    let mut last = Instant::now();
    move |p: Progress| {
        let done = p.done();
        if tty {
            let width = 30;
            let filled = if p.total == 0 {
                width
            } else {
                (done as usize * width) / p.total as usize
            };
            let _ = write!(
                std::io::stderr(),
                "\r{id} [{}{}] {done}/{} sent {} deferred {} failed {}   ",
                "#".repeat(filled),
                " ".repeat(width - filled.min(width)),
                p.total,
                p.sent,
                p.deferred,
                p.failed
            );
            if done == p.total {
                let _ = writeln!(std::io::stderr());
            }
        } else if last.elapsed() >= StdDuration::from_secs(5) || done == p.total {
            last = Instant::now();
            let rate = done as f64 / start.elapsed().as_secs_f64().max(0.001);
            tracing::info!(edition = %id, done, total = p.total, sent = p.sent, deferred = p.deferred, failed = p.failed, "{done}/{} delivered ({rate:.0}/s)", p.total);
        }
    }
}

/// This process, as a lease holder: `host:pid`.
pub fn holder() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// Whether a lease holder is a process of this machine that no longer runs
/// (a sender killed mid-edition): its lease can be taken at once.
pub fn holder_is_dead(holder: &str) -> bool {
    let me = self::holder();
    let my_host = me.rsplit_once(':').map(|(h, _)| h);
    match holder.rsplit_once(':') {
        Some((host, pid)) if Some(host) == my_host => match pid.parse::<u32>() {
            Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            Err(_) => false,
        },
        _ => false,
    }
}

/// How delivering a frozen edition went.
#[derive(Debug, Clone, Default)]
pub struct RunResult {
    pub progress: Progress,
    pub elapsed: StdDuration,
    /// Still pending or deferred after this run.
    pub unsent: u64,
    /// The run stopped early (relay refused us, lease lost): the reason.
    pub stopped: Option<String>,
    /// The send was limited by `--limit`.
    pub limited: bool,
}

/// Delivers the pending and deferred recipients of a frozen edition, at
/// most `limit` of them. The caller holds the lease.
pub fn deliver_frozen(
    newsroom: &Newsroom,
    n: &Newsletter,
    stored: StoredEdition,
    ledger: Ledger,
    holder: &str,
    limit: Option<usize>,
    stop: Option<Arc<AtomicBool>>,
) -> Result<RunResult> {
    let mut pending = ledger.pending(&stored.id)?;
    let total_unsent = pending.len();
    if let Some(l) = limit {
        pending.truncate(l);
    }
    let limited = pending.len() < total_unsent;
    let composer = Arc::new(Composer::new(newsroom, n, &stored.id, secret(newsroom)?)?);
    let transport = transport(newsroom, n, stored.slot_utc)?;
    let stored = Arc::new(stored);
    let jobs: Vec<Job> = pending
        .into_iter()
        .map(|d| {
            let composer = Arc::clone(&composer);
            let stored = Arc::clone(&stored);
            Job {
                message_id: Some(composer.message_id(&stored.id, &d.email)),
                email: d.email.clone(),
                message: MessageSource::Compose(Box::new(move || {
                    let content = stored
                        .content(&d.variant)
                        .or_else(|| stored.content(MAIN_VARIANT))
                        .ok_or("the frozen edition has no content for this recipient")?;
                    composer.compose(&stored.id, content, &d.email, d.name.as_deref(), &d.fields)
                })),
            }
        })
        .collect();
    let mut options = SendOptions::new(&stored.id, composer.envelope_from());
    options.stop = stop;
    let sink = LeasedLedger::new(ledger, &stored.id, holder, LEASE_TTL);
    let start = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(deliver(
        &transport,
        jobs,
        options,
        sink,
        progress_reporter(&stored.id),
    ));
    let elapsed = start.elapsed();
    let mut ledger = Ledger::open(&newsroom.config.state)?;
    let (progress, stopped) = match result {
        Ok((p, _sink)) => (p, None),
        // The relay is unreachable for now: nobody was tried, everyone is
        // left for the next run, which the exit code (75) asks for.
        Err(e) if e.is_transient() => {
            tracing::warn!(edition = %stored.id, "not sent, the relay is unavailable: {e}");
            (Progress::default(), None)
        }
        Err(e) => {
            let chain: Vec<String> = anyhow::Error::from(e)
                .chain()
                .map(|c| c.to_string())
                .collect();
            (Progress::default(), Some(chain.join(": ")))
        }
    };
    let counts = ledger.counts(&stored.id)?;
    if counts.unsent() == 0 {
        ledger.mark_complete(&stored.id)?;
    }
    Ok(RunResult {
        progress: if stopped.is_some() {
            Progress {
                total: counts.total(),
                sent: counts.sent,
                deferred: counts.deferred,
                failed: counts.failed,
                in_doubt: counts.in_doubt,
            }
        } else {
            progress
        },
        elapsed,
        unsent: counts.unsent(),
        stopped,
        limited,
    })
}

/// Acquires the edition's lease, reclaiming it from a dead sender of this
/// machine. `Err(holder)` when another live sender has it.
pub fn lease(ledger: &mut Ledger, edition_id: &str, holder: &str) -> Result<Result<(), String>> {
    match ledger.acquire_lease_reclaiming(edition_id, holder, LEASE_TTL, &holder_is_dead)? {
        LeaseOutcome::Acquired => Ok(Ok(())),
        LeaseOutcome::TakenOver { previous_holder } => {
            tracing::warn!(edition = %edition_id, previous_holder, "took over the edition from a sender that stopped; at most one message per connection of it may be sent twice");
            Ok(Ok(()))
        }
        LeaseOutcome::Busy { holder, expires_at } => Ok(Err(format!(
            "{holder} (lease until {})",
            expires_at.format("%H:%M:%S UTC")
        ))),
    }
}

/// Sends test copies of a plan's full edition to `to` (not recorded).
pub fn send_test_copies(
    newsroom: &Newsroom,
    n: &Newsletter,
    plan: &Plan,
    to: &[String],
) -> Result<Progress> {
    let composer =
        Arc::new(Composer::new(newsroom, n, &plan.frozen.id, secret(newsroom)?)?.test_copies());
    let mut transport = transport(newsroom, n, plan.frozen.slot_utc)?;
    if let Transport::Outbox { dir } = &mut transport {
        *dir = dir.join("test");
    }
    let content = Arc::new((
        plan.frozen.subject.clone(),
        plan.frozen.html.clone(),
        plan.frozen.text.clone(),
    ));
    let mut jobs = Vec::new();
    for addr in to {
        let email = audience::normalize_email(addr).map_err(|e| anyhow!("--to {addr}: {e}"))?;
        let composer = Arc::clone(&composer);
        let content = Arc::clone(&content);
        let id = plan.frozen.id.clone();
        jobs.push(Job {
            message_id: Some(composer.message_id(&id, &email)),
            email: email.clone(),
            message: MessageSource::Compose(Box::new(move || {
                let fields = [("name".to_string(), String::new())].into();
                composer.compose(
                    &id,
                    (&content.0, &content.1, &content.2),
                    &email,
                    None,
                    &fields,
                )
            })),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (p, _) = runtime.block_on(deliver(
        &transport,
        jobs,
        SendOptions::new(&plan.frozen.id, composer.envelope_from()),
        Discard,
        |_| {},
    ))?;
    Ok(p)
}

/// Test copies are not deliveries: their outcomes go nowhere.
struct Discard;

impl OutcomeSink for Discard {
    type Error = std::convert::Infallible;
    fn record(&mut self, _: &[Outcome]) -> Result<(), Self::Error> {
        Ok(())
    }
}
