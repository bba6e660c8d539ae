//! The confirmation worker: one thread that takes accepted sign-ups from a
//! bounded queue and, for each, finds out whether the address may be
//! mailed (the ledger's suppressions, the suppression file), then composes
//! and delivers the message. The page has answered by then, the same for
//! every address: neither the answer nor its timing says whether anyone
//! is subscribed, suppressed or mailed. Failures are logged, never shown.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};
use chrono::Utc;

use super::limit::{Limiter, PER_ADDRESS};
use super::link::Request;
use super::notice::Notices;
use crate::audience::{self, Suppressions};
use crate::config::{Newsletter, Newsroom};
use crate::ledger::{Ledger, SuppressionScope};

/// Confirmations waiting at most; a sign-up past it is answered 503.
pub const QUEUE: usize = 1000;

/// One accepted sign-up.
pub struct Job {
    pub asked: Request,
}

/// How the worker makes confirmation links: signed after it has dropped
/// the newsletters the address must not get, so that a link confirms
/// exactly what its message shows.
pub struct Signing {
    pub secret: Vec<u8>,
    /// `<signup.url>/confirm`.
    pub confirm_url: String,
}

/// The worker's side of a `serve` that is stopping: jobs still queued then
/// are dropped (their readers may sign up again), not sent one by one
/// while the service manager waits.
pub type Stopping = Arc<AtomicBool>;

/// The suppression file, read again only when it changes.
struct File {
    path: PathBuf,
    /// What the file was when read: modified, length, inode, changed (a
    /// same-length edit within the clock's grain changes the last two).
    seen: Option<(SystemTime, u64, u64, i64, i64)>,
    list: Suppressions,
}

impl File {
    fn contains(&mut self, email: &str) -> Result<bool> {
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        use std::os::unix::fs::MetadataExt as _;
        let stamp = (
            meta.modified()?,
            meta.len(),
            meta.ino(),
            meta.ctime(),
            meta.ctime_nsec(),
        );
        if self.seen != Some(stamp) {
            self.list = audience::load_suppressions(&self.path)?;
            self.seen = Some(stamp);
        }
        Ok(self.list.contains(email))
    }
}

struct Worker {
    notices: Notices,
    signing: Signing,
    /// Two confirmations an address, then one every two hours. Kept here,
    /// after the answer, so that it says nothing and a full queue spends
    /// nothing.
    addresses: Limiter,
    letters: Vec<Newsletter>,
    ledger: Ledger,
    file: Option<File>,
}

/// Starts the worker; everything it needs is opened here, so that a
/// missing ledger fails at startup.
pub fn start(
    notices: Notices,
    letters: Vec<Newsletter>,
    newsroom: &Newsroom,
    signing: Signing,
    stopping: Stopping,
) -> Result<(SyncSender<Job>, JoinHandle<()>)> {
    let cfg = &newsroom.config;
    let ledger = Ledger::open(&cfg.ledger)
        .with_context(|| format!("cannot open the ledger {}", cfg.ledger))?;
    let file = (cfg.delivery.suppressions.clone()).map(|path| File {
        path,
        seen: None,
        list: Suppressions::default(),
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the confirmation worker's runtime")?;
    let (tx, rx) = sync_channel(QUEUE);
    let mut w = Worker {
        notices,
        signing,
        addresses: Limiter::new(PER_ADDRESS),
        letters,
        ledger,
        file,
    };
    let thread = std::thread::Builder::new()
        .name("signup".into())
        .spawn(move || run(&mut w, &runtime, rx, &stopping))
        .context("cannot start the confirmation worker")?;
    Ok((tx, thread))
}

fn run(w: &mut Worker, runtime: &tokio::runtime::Runtime, rx: Receiver<Job>, stop: &Stopping) {
    let mut dropped = 0;
    for job in rx {
        if stop.load(Ordering::Relaxed) {
            dropped += 1;
            continue;
        }
        let newsletters = job.asked.newsletters.join(",");
        match runtime.block_on(w.confirm(job)) {
            Ok(Outcome::Sent) => {
                tracing::info!(route = "signup", newsletters, "confirmation sent")
            }
            Ok(Outcome::Withheld) => tracing::info!(
                route = "signup",
                newsletters,
                "confirmation withheld: the address is suppressed"
            ),
            Ok(Outcome::Limited) => tracing::info!(
                route = "signup",
                newsletters,
                "confirmation withheld: the address has had its share"
            ),
            Err(e) => tracing::error!(route = "signup", newsletters, "confirmation failed: {e:#}"),
        }
    }
    if dropped > 0 {
        tracing::warn!(
            "stopped with {dropped} confirmation(s) unsent; those readers may sign up again"
        );
    }
}

/// What became of one job.
enum Outcome {
    Sent,
    /// The address must not get any of the newsletters asked for.
    Withheld,
    Limited,
}

impl Worker {
    /// Sends the job's message for the newsletters its address may get,
    /// with a link for those alone.
    async fn confirm(&mut self, mut job: Job) -> Result<Outcome> {
        let key = job.asked.email.to_ascii_lowercase();
        if !self.addresses.allow(&key, Instant::now()) {
            return Ok(Outcome::Limited);
        }
        let blocked = self.blocked(&job.asked.email)?;
        job.asked
            .newsletters
            .retain(|id| !blocked.iter().any(|b| b.as_ref().is_none_or(|b| b == id)));
        if job.asked.newsletters.is_empty() {
            return Ok(Outcome::Withheld);
        }
        let url = format!(
            "{}?{}",
            self.signing.confirm_url,
            job.asked.query(&self.signing.secret)
        );
        let letters: Vec<&Newsletter> = (job.asked.newsletters.iter())
            .filter_map(|id| self.letters.iter().find(|n| &n.id == id))
            .collect();
        let (envelope, to, message) =
            (self.notices).compose(&job.asked, &letters, &url, Utc::now())?;
        let receipt = self.notices.deliver(&envelope, &to, message).await?;
        // Sent: a failure to note it only means a bounce of it goes unread.
        if let Err(e) = self
            .ledger
            .record_confirmation(&job.asked.email, Utc::now())
        {
            tracing::warn!("cannot record a confirmation sent: {e}");
        }
        tracing::debug!(address = %job.asked.email, receipt, "confirmation delivered");
        Ok(Outcome::Sent)
    }

    /// The newsletters `email` must not be mailed about (`None`: every
    /// one). Only what the reader asked for themselves may be undone by
    /// signing up again; a bounce, a complaint, the suppression file or
    /// the newsroom's own entry may not.
    fn blocked(&mut self, email: &str) -> Result<Vec<Option<String>>> {
        let mut out: Vec<Option<String>> = (self.ledger.suppressions_of(email)?.into_iter())
            .filter(|s| !s.reason.is_the_readers_own())
            .map(|s| match s.scope {
                SuppressionScope::All => None,
                SuppressionScope::Newsletter(id) => Some(id),
            })
            .collect();
        if let Some(f) = &mut self.file
            && f.contains(email)?
        {
            out.push(None);
        }
        Ok(out)
    }
}
