//! The ledger for the web endpoint: one connection owned by one thread, to
//! which requests hand their work and wait for the answer. SQLite writes one
//! transaction at a time anyway; a single owner keeps hundreds of concurrent
//! requests from becoming hundreds of blocked threads, and the bounded queue
//! makes requests wait their turn instead of piling up without limit.

use std::thread::JoinHandle;

use anyhow::{Context as _, Result};
use tokio::sync::{mpsc, oneshot};

use crate::ledger::{self, Ledger, Location};

/// Work queued for the ledger beyond the one being done: requests past it
/// wait to be queued.
const QUEUE: usize = 256;

type Job = Box<dyn FnOnce(&mut Ledger) + Send>;

/// The ledger could not answer: the thread is gone or the database failed.
/// The request is answered 503 and nothing is claimed to be done.
#[derive(Debug)]
pub struct Unavailable;

pub struct Store {
    tx: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Store {
    /// Opens the ledger here, so that a bad path fails at startup, then
    /// hands it to its thread.
    pub fn open(at: &Location) -> Result<Store> {
        let mut ledger =
            Ledger::open(at).with_context(|| format!("cannot open the ledger {at}"))?;
        let (tx, mut rx) = mpsc::channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ledger".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    job(&mut ledger);
                }
            })
            .context("cannot start the ledger's thread")?;
        Ok(Store {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Runs `f` on the ledger and waits for its answer. Each call is done
    /// (and, for a write, committed) before the next one starts.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Ledger) -> ledger::Result<T> + Send + 'static,
    ) -> Result<T, Unavailable> {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |l| {
            let out = f(l);
            if let Err(e) = &out {
                tracing::error!("ledger: {}", crate::diag::causes(e));
            }
            // The request may have timed out meanwhile: its work is done all
            // the same, only nobody waits for the answer.
            let _ = reply.send(out);
        });
        let tx = self.tx.as_ref().ok_or(Unavailable)?;
        tx.send(job).await.map_err(|_| Unavailable)?;
        match answer.await {
            Ok(Ok(v)) => Ok(v),
            _ => Err(Unavailable),
        }
    }
}

impl Drop for Store {
    /// Lets the thread finish the work queued, so the last write is on disk
    /// before the process exits.
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
