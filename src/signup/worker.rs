//! The confirmation worker: one thread that takes accepted sign-ups from a
//! bounded queue and, for each, finds out whether the address may be
//! mailed (the ledger's suppressions, the suppression file), then composes
//! and delivers the message. The page has answered by then, the same for
//! every address: neither the answer nor its timing says whether anyone
//! is subscribed, suppressed or mailed. Failures are logged, never shown.

use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use anyhow::{Context as _, Result};
use chrono::Utc;

use super::link::Request;
use super::notice::Notices;
use crate::audience::{self, Suppressions};
use crate::config::{Newsletter, Newsroom};
use crate::ledger::{Ledger, SuppressionScope};

/// Confirmations waiting at most; a sign-up past it is answered 503.
pub const QUEUE: usize = 1000;

/// One accepted sign-up and its signed confirmation link.
pub struct Job {
    pub asked: Request,
    pub url: String,
}

/// The suppression file, read again only when it changes.
struct File {
    path: PathBuf,
    seen: Option<(SystemTime, u64)>,
    list: Suppressions,
}

impl File {
    fn contains(&mut self, email: &str) -> Result<bool> {
        let meta = std::fs::metadata(&self.path)
            .with_context(|| format!("cannot read {}", self.path.display()))?;
        let stamp = (meta.modified()?, meta.len());
        if self.seen != Some(stamp) {
            self.list = audience::load_suppressions(&self.path)?;
            self.seen = Some(stamp);
        }
        Ok(self.list.contains(email))
    }
}

struct Worker {
    notices: Notices,
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
) -> Result<(SyncSender<Job>, JoinHandle<()>)> {
    let cfg = &newsroom.config;
    let ledger = Ledger::open(&cfg.ledger)
        .with_context(|| format!("cannot open the ledger {}", cfg.ledger.display()))?;
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
        letters,
        ledger,
        file,
    };
    let thread = std::thread::Builder::new()
        .name("signup".into())
        .spawn(move || run(&mut w, &runtime, rx))
        .context("cannot start the confirmation worker")?;
    Ok((tx, thread))
}

fn run(w: &mut Worker, runtime: &tokio::runtime::Runtime, rx: Receiver<Job>) {
    for job in rx {
        let newsletters = job.asked.newsletters.join(",");
        match runtime.block_on(w.confirm(job)) {
            Ok(true) => tracing::info!(route = "signup", newsletters, "confirmation sent"),
            Ok(false) => {
                tracing::info!(
                    route = "signup",
                    newsletters,
                    "confirmation withheld: the address is suppressed"
                )
            }
            Err(e) => tracing::error!(route = "signup", newsletters, "confirmation failed: {e:#}"),
        }
    }
}

impl Worker {
    /// Sends the job's message for the newsletters its address may get;
    /// false when it may get none of them.
    async fn confirm(&mut self, mut job: Job) -> Result<bool> {
        let blocked = self.blocked(&job.asked.email)?;
        job.asked
            .newsletters
            .retain(|id| !blocked.iter().any(|b| b.as_ref().is_none_or(|b| b == id)));
        if job.asked.newsletters.is_empty() {
            return Ok(false);
        }
        let letters: Vec<&Newsletter> = (job.asked.newsletters.iter())
            .filter_map(|id| self.letters.iter().find(|n| &n.id == id))
            .collect();
        let (envelope, to, message) =
            (self.notices).compose(&job.asked, &letters, &job.url, Utc::now())?;
        let receipt = self.notices.deliver(&envelope, &to, message).await?;
        tracing::debug!(address = %job.asked.email, receipt, "confirmation delivered");
        Ok(true)
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
