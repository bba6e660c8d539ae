//! Delivering a list of messages: N concurrent SMTP sessions (or the outbox),
//! a shared rate that halves when providers throttle, retries with backoff,
//! and one ledger writer that makes every outcome durable before the session
//! that produced it moves on.
//!
//! # What can be sent twice
//!
//! - **A crash or power cut.** A worker does not finish its next
//!   transaction (write the final dot) until the ledger writer has committed
//!   the outcome of its previous one (SQLite `synchronous=FULL`); the next
//!   envelope and message travel meanwhile, and a relay discards a message
//!   whose dot never came. So after a crash, at most **one message per
//!   connection** is in doubt: accepted by the relay but still
//!   `pending`/`deferred` in the ledger, and sent again on resume. Every
//!   other accepted message is recorded `sent`. Interim transient failures
//!   are recorded too (as `deferred`), so a retry waiting in the queue is
//!   never in doubt. The bound holds per crash: each crash can add one copy
//!   per connection.
//! - **A lost final-dot reply.** When the whole message was written and the
//!   reply to its final dot never came (connection dropped, `data_timeout`),
//!   the relay may have accepted it. It is not retried in this run but
//!   recorded `in_doubt`; the next run resends it once, and a second loss
//!   ends it (see [`DeliveryState::InDoubt`]).
//!
//! Any other failure happened before the relay had the whole message, and is
//! retried (4xx, lost connections) or final (5xx) as usual.

use std::collections::VecDeque;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, mpsc};
use std::time::{Duration, Instant};

use lettre::Address;
use thiserror::Error;
use tokio::sync::{Notify, oneshot};

use crate::ledger::{DeliveryState, DeliveryUpdate, Ledger, LedgerError, RelayTally};
use crate::mail::outbox::{Outbox, OutboxError};
use crate::mail::smtp::session::Gate;
use crate::mail::smtp::{SettingsError, SmtpConnector, SmtpFailure, SmtpSession, SmtpSettings};
use crate::mail::transport::Transport;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The message for one recipient: ready bytes, or a closure that composes
/// them when a worker gets to it (so a large send never holds every message
/// in memory at once).
pub enum MessageSource {
    Bytes(Vec<u8>),
    Compose(Box<dyn FnOnce() -> Result<Vec<u8>, BoxError> + Send>),
}

/// One delivery to make.
pub struct Job {
    /// Recipient (RCPT TO) and ledger key.
    pub email: String,
    /// Names the outbox file; the job's position is used when absent.
    pub message_id: Option<String>,
    pub message: MessageSource,
    /// This message's envelope sender (`MAIL FROM`), when it has its own: a
    /// VERP address that says whose message a bounce is about. Otherwise
    /// [`SendOptions::envelope_from`].
    pub envelope_from: Option<Address>,
}

/// The deliveries of one send, taken as they are needed: a large edition
/// is read from the ledger batch by batch, never held whole in memory.
pub struct Jobs {
    /// How many the source yields: the progress total, and the most
    /// sessions worth opening.
    pub total: u64,
    source: Box<dyn Iterator<Item = Job> + Send>,
}

impl Jobs {
    /// `total` jobs from `source`, composed as the sessions get to them.
    pub fn streamed(total: u64, source: impl Iterator<Item = Job> + Send + 'static) -> Jobs {
        Jobs {
            total,
            source: Box::new(source),
        }
    }
}

impl From<Vec<Job>> for Jobs {
    fn from(jobs: Vec<Job>) -> Jobs {
        Jobs::streamed(jobs.len() as u64, jobs.into_iter())
    }
}

/// Where outcomes are recorded. [`Ledger`] is one; [`LeasedLedger`] also keeps
/// the edition's send lease alive.
pub trait OutcomeSink: Send + 'static {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Records a group of outcomes durably (one transaction).
    fn record(&mut self, outcomes: &[DeliveryUpdate]) -> Result<(), Self::Error>;

    /// Called after each commit and at least every few seconds while idle.
    /// An error stops the send.
    fn keep_alive(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl OutcomeSink for Ledger {
    type Error = LedgerError;

    fn record(&mut self, outcomes: &[DeliveryUpdate]) -> Result<(), LedgerError> {
        self.record_batch(outcomes).map(|_| ())
    }
}

#[derive(Debug, Error)]
pub enum LeasedLedgerError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("lost the send lease of edition {0}: another sender took over")]
    LeaseLost(String),
}

/// A ledger plus the lease under which we send: renewed every third of its
/// time-to-live, and the send stops if another sender took it over.
pub struct LeasedLedger {
    pub ledger: Ledger,
    pub edition_id: String,
    pub holder: String,
    pub ttl: Duration,
    last_renewal: Instant,
}

impl LeasedLedger {
    /// Wraps a ledger whose lease `holder` has just acquired.
    pub fn new(ledger: Ledger, edition_id: &str, holder: &str, ttl: Duration) -> Self {
        LeasedLedger {
            ledger,
            edition_id: edition_id.to_owned(),
            holder: holder.to_owned(),
            ttl,
            last_renewal: Instant::now(),
        }
    }
}

impl OutcomeSink for LeasedLedger {
    type Error = LeasedLedgerError;

    fn record(&mut self, outcomes: &[DeliveryUpdate]) -> Result<(), LeasedLedgerError> {
        self.ledger.record_batch(outcomes)?;
        Ok(())
    }

    fn keep_alive(&mut self) -> Result<(), LeasedLedgerError> {
        if self.last_renewal.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        if !self
            .ledger
            .renew_lease(&self.edition_id, &self.holder, self.ttl)?
        {
            return Err(LeasedLedgerError::LeaseLost(self.edition_id.clone()));
        }
        self.last_renewal = Instant::now();
        Ok(())
    }
}

/// Final outcomes so far, for a progress bar. Interim retries are not counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: u64,
    pub sent: u64,
    pub deferred: u64,
    pub failed: u64,
    /// The final-dot reply was lost: the relay may have the message.
    pub in_doubt: u64,
    /// Suppressed after the edition was frozen (an unsubscribe or a bounce
    /// that came in while it was sending): not sent.
    pub suppressed: u64,
}

impl Progress {
    pub fn done(&self) -> u64 {
        self.sent + self.deferred + self.failed + self.in_doubt + self.suppressed
    }
}

/// What a [`MessageSource::Compose`] returns, as its error, for a recipient
/// who must not get the message after all (suppressed since the edition was
/// frozen): recorded as `suppressed`, and the run goes on.
#[derive(Debug)]
pub struct Skip(pub String);

impl std::fmt::Display for Skip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Skip {}

/// Asked just before each attempt: `Some(why)` when the recipient must not
/// be mailed after all (suppressed while the edition was sending).
pub type LastCheck = Arc<dyn Fn(&str) -> Result<Option<String>, BoxError> + Send + Sync>;

/// How a send behaves, beyond the transport's own settings.
#[derive(Clone)]
pub struct SendOptions {
    pub edition_id: String,
    /// SMTP envelope sender (`MAIL FROM`), where bounces go.
    pub envelope_from: Address,
    /// Delay before the first retry; doubles per attempt (with jitter).
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Most outcomes committed in one transaction.
    pub max_batch: usize,
    /// When set to true (e.g. by SIGTERM), workers finish the message in
    /// flight, record it, and take no more: the rest stay pending.
    pub stop: Option<Arc<AtomicBool>>,
    /// The check before each attempt, if any. Messages are composed a
    /// little ahead of the sessions, so a check when composing could be
    /// overtaken by an unsubscribe; this one is not.
    pub last_check: Option<LastCheck>,
    /// Filled at the end of an SMTP send with what each relay did.
    pub relay_report: Option<Arc<Mutex<Vec<RelayTally>>>>,
}

impl std::fmt::Debug for SendOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendOptions")
            .field("edition_id", &self.edition_id)
            .field("envelope_from", &self.envelope_from)
            .field("backoff", &self.backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_batch", &self.max_batch)
            .field("stop", &self.stop)
            .field("last_check", &self.last_check.is_some())
            .finish()
    }
}

impl SendOptions {
    pub fn new(edition_id: &str, envelope_from: Address) -> Self {
        SendOptions {
            edition_id: edition_id.to_owned(),
            envelope_from,
            backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            max_batch: 50,
            stop: None,
            last_check: None,
            relay_report: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum SendError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
    /// The first session could not be opened, after `retries` retries with
    /// backoff when the failure was transient: nothing was attempted and
    /// every recipient is still pending. See [`SendError::is_transient`].
    #[error("cannot open an SMTP session: {0}")]
    Connect(SmtpFailure),
    /// Recording failed (disk full, lease lost): sending stopped. See the
    /// module docs for what may be in doubt.
    #[error("stopped: recording outcomes failed")]
    Ledger(#[source] BoxError),
    #[error("the ledger writer thread stopped unexpectedly")]
    WriterGone,
    /// The relay started refusing us mid-send (e.g. the password was
    /// rotated); readers not yet tried are still pending.
    #[error("stopped after {sent} sent: {failure}")]
    Stopped { failure: SmtpFailure, sent: u64 },
}

impl SendError {
    /// The relay could not be reached for now (refused or dropped
    /// connections, a 421 greeting, timeouts): nothing was attempted, and a
    /// later run may well succeed (exit 75, EX_TEMPFAIL). Everything else is
    /// a problem a person must fix.
    pub fn is_transient(&self) -> bool {
        matches!(self, SendError::Connect(failure) if !failure.is_fatal())
    }
}

/// Delivers `jobs` through `transport`, recording every outcome in `sink`.
/// Returns the final counts and the sink.
///
/// SMTP: `connections` workers (never more than there are jobs) each own one
/// session. The first session is opened before any recipient is tried,
/// retried with backoff like a message when the failure is transient; a
/// relay still unreachable after that is [`SendError::Connect`] with every
/// recipient untouched. Transient failures (4xx, timeouts, dropped
/// connections) are retried up to `retries` times with exponential backoff
/// and then left `deferred`; 5xx replies are `failed` at once with the
/// server's text; a lost final-dot reply is `in_doubt`, never retried here.
/// Throttling replies (421, 450, 451, 452, 454) halve the shared rate (never
/// above the configured one), which recovers by 10% per 20 successes.
/// Outbox: one worker writes `<message-id>.eml` files.
///
/// `progress` is called from the ledger writer after each commit.
pub async fn deliver<S: OutcomeSink>(
    transport: &Transport,
    jobs: impl Into<Jobs>,
    options: SendOptions,
    sink: S,
    progress: impl FnMut(Progress) + Send + 'static,
) -> Result<(Progress, S), SendError> {
    let jobs = jobs.into();
    let total = jobs.total;
    let outbox = match transport {
        Transport::Outbox { dir } => Some(Outbox::new(dir)?),
        Transport::Smtp(_) | Transport::Relays(_) => None,
    };
    let relays: Vec<Arc<Relay>> = (transport.relays().iter())
        .map(|s| Relay::new(s).map(Arc::new))
        .collect::<Result<_, _>>()?;
    let connections: usize = match &outbox {
        Some(_) => 1,
        None => relays.iter().map(|r| r.connections).sum(),
    };
    let retries = relays.iter().map(|r| r.retries).max().unwrap_or(0);
    // A session per recipient at most: an idle one only costs the relay.
    let workers = connections.min(usize::try_from(total).unwrap_or(usize::MAX));
    // Composing and signing run on threads of their own, one per core, a
    // little ahead of the sessions: the async workers only talk SMTP.
    let preparers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(usize::try_from(total).unwrap_or(usize::MAX))
        .max(1);

    // The writer runs from the start: it also keeps the lease alive while
    // the first connection is retried.
    let (record_tx, record_rx) = mpsc::channel::<Record>();
    let (done_tx, done_rx) = oneshot::channel();
    let max_batch = options.max_batch.max(1);
    std::thread::Builder::new()
        .name("ledger-writer".to_owned())
        .spawn(move || {
            let result = ledger_writer(sink, record_rx, max_batch, total, progress);
            let _ = done_tx.send(result);
        })
        .map_err(|e| SendError::Ledger(Box::new(e)))?;

    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            ready: VecDeque::new(),
            delayed: Vec::new(),
            busy: 0,
            next_index: 0,
            turn_waiters: 0,
        }),
        source: Mutex::new((0, jobs.source)),
        room: Condvar::new(),
        ahead: (workers * 4).max(PREPARED_AHEAD),
        preparing: AtomicUsize::new(preparers),
        notify: Notify::new(),
        limiter: RateLimiter::new(None),
        relays: relays.clone(),
        abort: AtomicBool::new(false),
        retries,
        options,
        record_tx: Mutex::new(Some(record_tx)),
        fatal: Mutex::new(None),
    });

    // Fail fast on a wrong password or a relay that refuses us, and wait out
    // a short outage, before any recipient is touched. With several relays
    // one that answers is enough: the others are backed off on their own.
    let mut first_sessions: Vec<Option<SmtpSession>> = Vec::new();
    if !relays.is_empty() && workers > 0 {
        match shared.first_sessions().await {
            Ok(sessions) => first_sessions = sessions,
            Err(failure) => {
                shared.preparing.store(0, Ordering::SeqCst);
                shared.close_records();
                shared.report_relays();
                drop(shared);
                // A writer that failed (lease lost) says more than the relay.
                done_rx.await.map_err(|_| SendError::WriterGone)??;
                return Err(SendError::Connect(failure));
            }
        }
    }

    tracing::info!(total, workers, preparers, "delivering");
    let mut preparing = Vec::with_capacity(preparers);
    for i in 0..preparers {
        let mine = Arc::clone(&shared);
        let handle = std::thread::Builder::new()
            .name(format!("compose-{i}"))
            .spawn(move || prepare(&mine));
        match handle {
            Ok(h) => preparing.push(h),
            Err(e) => {
                shared.preparing.fetch_sub(1, Ordering::SeqCst);
                tracing::warn!("cannot start a composing thread: {e}");
            }
        }
    }
    if preparing.is_empty() {
        shared.fail(SmtpFailure::Fatal(
            "no composing thread could start".to_owned(),
        ));
    }
    let mut handles = Vec::with_capacity(workers);
    let remaining = usize::try_from(total).unwrap_or(usize::MAX);
    match &outbox {
        Some(outbox) => handles.push(tokio::spawn(
            Worker::new(&shared, Channel::Outbox(outbox.clone()), None).run(),
        )),
        None => {
            for (relay, first) in relays.iter().zip(first_sessions) {
                if relay.is_disabled() {
                    continue;
                }
                let mut first = first;
                for _ in 0..relay.connections.min(remaining) {
                    let channel = Channel::Smtp(Arc::clone(relay));
                    let worker = Worker::new(&shared, channel, first.take());
                    handles.push(tokio::spawn(worker.run()));
                }
            }
        }
    }
    for handle in handles {
        // A panicking worker is a bug; the others finish and the ledger
        // still holds everything recorded.
        if let Err(err) = handle.await {
            tracing::error!("delivery worker panicked: {err}");
            shared.abort.store(true, Ordering::SeqCst);
        }
    }
    // The composers have stopped (the workers only finish after them, or
    // on a stop they also see); their last records are in the channel.
    shared.stop_preparing();
    let joined = tokio::task::spawn_blocking(move || {
        for h in preparing {
            if h.join().is_err() {
                tracing::error!("a composing thread panicked");
            }
        }
    });
    let _ = joined.await;
    shared.close_records();
    shared.report_relays();
    let fatal = shared.fatal.lock().ok().and_then(|mut f| f.take());
    drop(shared);
    let (progress, sink) = done_rx.await.map_err(|_| SendError::WriterGone)??;
    if let Some(failure) = fatal {
        return Err(SendError::Stopped {
            failure,
            sent: progress.sent,
        });
    }
    tracing::info!(
        sent = progress.sent,
        deferred = progress.deferred,
        failed = progress.failed,
        in_doubt = progress.in_doubt,
        "delivery finished"
    );
    Ok((progress, sink))
}

/// An outcome on its way to the writer, with the worker waiting for it.
struct Record {
    outcome: DeliveryUpdate,
    /// Set when this is the delivery's last outcome in this run.
    is_final: bool,
    durable: oneshot::Sender<bool>,
}

/// How often a waiting worker looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(200);

/// How often an idle writer calls `keep_alive` (lease renewal).
const WRITER_TICK: Duration = Duration::from_secs(2);

/// The one place outcomes are written. Group commit: it takes whatever has
/// arrived (up to `max_batch`) and commits it in one transaction. It does not
/// wait to fill a batch, because every worker is blocked until its outcome is
/// durable; while one commit's fsync runs, the next group gathers.
fn ledger_writer<S: OutcomeSink>(
    mut sink: S,
    records: mpsc::Receiver<Record>,
    max_batch: usize,
    total: u64,
    mut progress: impl FnMut(Progress),
) -> Result<(Progress, S), SendError> {
    let mut counts = Progress {
        total,
        ..Progress::default()
    };
    let mut batch: Vec<Record> = Vec::with_capacity(max_batch);
    let mut outcomes: Vec<DeliveryUpdate> = Vec::with_capacity(max_batch);
    loop {
        match records.recv_timeout(WRITER_TICK) {
            Ok(record) => batch.push(record),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                sink.keep_alive()
                    .map_err(|e| SendError::Ledger(Box::new(e)))?;
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        while batch.len() < max_batch {
            match records.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        outcomes.clear();
        outcomes.extend(batch.iter().map(|r| r.outcome.clone()));
        if let Err(err) = sink.record(&outcomes) {
            // Dropping the batch (and, on return, the receiver) tells every
            // waiting worker that its outcome is not durable: they stop.
            return Err(SendError::Ledger(Box::new(err)));
        }
        for record in batch.drain(..) {
            if record.is_final {
                match record.outcome.state {
                    DeliveryState::Sent => counts.sent += 1,
                    DeliveryState::Deferred | DeliveryState::Pending => counts.deferred += 1,
                    DeliveryState::Failed => counts.failed += 1,
                    DeliveryState::InDoubt => counts.in_doubt += 1,
                    DeliveryState::Suppressed => counts.suppressed += 1,
                }
            }
            let _ = record.durable.send(true);
        }
        progress(counts);
        sink.keep_alive()
            .map_err(|e| SendError::Ledger(Box::new(e)))?;
    }
    Ok((counts, sink))
}

#[derive(Clone)]
enum Channel {
    Outbox(Outbox),
    Smtp(Arc<Relay>),
}

/// One relay's part in a send: its sessions' connector, its own pacing
/// (halved on throttling), its backoff after refused connections, its
/// weight in the split, and what it did.
struct Relay {
    name: String,
    connector: SmtpConnector,
    limiter: RateLimiter,
    connections: usize,
    retries: u32,
    weight: u32,
    /// Jobs its workers took.
    taken: AtomicU64,
    /// Its workers waiting for a job right now.
    idle: AtomicUsize,
    /// Its workers still running.
    active: AtomicUsize,
    /// Connection failures in a row, and until when it is left alone.
    down: Mutex<(u32, Option<Instant>)>,
    /// Refused us for good (a wrong password): no more sessions.
    disabled: AtomicBool,
    counts: Mutex<RelayTally>,
}

impl Relay {
    fn new(s: &SmtpSettings) -> Result<Relay, SettingsError> {
        let name = s.display_name();
        Ok(Relay {
            connector: SmtpConnector::new(s)?,
            limiter: RateLimiter::new(s.rate),
            connections: s.connections.max(1),
            retries: s.retries,
            weight: s.weight.max(1),
            taken: AtomicU64::new(0),
            idle: AtomicUsize::new(0),
            active: AtomicUsize::new(0),
            down: Mutex::new((0, None)),
            disabled: AtomicBool::new(false),
            counts: Mutex::new(RelayTally {
                relay: name.clone(),
                ..RelayTally::default()
            }),
            name,
        })
    }

    fn count(&self, f: impl FnOnce(&mut RelayTally)) {
        if let Ok(mut c) = self.counts.lock() {
            f(&mut c);
        }
    }

    fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::SeqCst)
    }

    /// Backed off after refused connections, until then.
    fn down_until(&self) -> Option<Instant> {
        let down = self.down.lock().ok()?;
        down.1.filter(|until| *until > Instant::now())
    }

    fn is_up(&self) -> bool {
        !self.is_disabled() && self.down_until().is_none()
    }

    /// A session would not open: leave the relay alone for a while, longer
    /// each time in a row.
    fn connect_failed(&self, shared: &Shared) {
        self.count(|c| c.connect_failures += 1);
        if let Ok(mut down) = self.down.lock() {
            down.0 += 1;
            let wait = shared.backoff(&self.name, down.0);
            down.1 = Some(Instant::now() + wait);
        }
    }

    fn connected(&self) {
        if let Ok(mut down) = self.down.lock() {
            *down = (0, None);
        }
    }

    /// Jobs taken per unit of weight: the split's measure.
    fn load(&self) -> f64 {
        self.taken.load(Ordering::SeqCst) as f64 / f64::from(self.weight)
    }
}

/// Who a job is for; separate from the message source, which need not be
/// `Sync`, so workers can hold it across awaits.
struct Target {
    index: usize,
    email: String,
    message_id: Option<String>,
    envelope_from: Option<Address>,
}

struct Pending {
    target: Target,
    /// The composed message, kept for retries, or why it could not be
    /// composed: a worker that reaches it stops the send there, in order,
    /// as if it had composed it itself.
    bytes: Result<Arc<Vec<u8>>, String>,
    /// Attempts made in this run.
    attempts: u32,
}

/// Composed messages kept ready ahead of the sessions, at least: enough to
/// keep every session busy, little enough that memory does not grow with
/// the audience.
const PREPARED_AHEAD: usize = 64;

struct Queue {
    ready: VecDeque<Pending>,
    /// Jobs waiting for their retry time.
    delayed: Vec<(Instant, Pending)>,
    /// Jobs taken by a worker and not yet finished or requeued.
    busy: usize,
    /// The index of the next job to join `ready`: composers finish out of
    /// order, the queue keeps the source's order.
    next_index: usize,
    /// Composers waiting for their turn (not for room).
    turn_waiters: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    /// The jobs not yet composed, and the index the next one gets.
    source: Mutex<(usize, Box<dyn Iterator<Item = Job> + Send>)>,
    /// Signalled when a worker takes a ready job: a composer waiting for
    /// room may go on.
    room: Condvar,
    /// How many composed messages may wait in `ready`.
    ahead: usize,
    /// Composing threads still running; the send is done only once they
    /// have all stopped.
    preparing: AtomicUsize,
    notify: Notify,
    /// The outbox's pacing (none); each relay has its own.
    limiter: RateLimiter,
    /// The relays of an SMTP send, in the order configured.
    relays: Vec<Arc<Relay>>,
    abort: AtomicBool,
    retries: u32,
    options: SendOptions,
    /// Taken (closed) when all workers are done.
    record_tx: Mutex<Option<mpsc::Sender<Record>>>,
    /// The failure that stopped the send, if any.
    fatal: Mutex<Option<SmtpFailure>>,
}

enum Next {
    Job(Pending),
    /// Nothing ready; wake at this time (or when notified).
    WaitUntil(Option<Instant>),
    Done,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A worker that panicked while holding the lock left the queue in a
        // consistent state (every mutation is a single push or pop).
        self.queue
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// The next job for a worker of `relay` (none: the outbox's). A relay
    /// ahead of its share by weight, while another relay has a worker
    /// waiting, leaves the job to that worker: decided under the queue's
    /// lock, so that the job goes straight to the relay behind.
    fn take(&self, relay: Option<&Relay>) -> Next {
        let mut queue = self.lock();
        let now = Instant::now();
        if let Some(r) = relay
            && self.ahead_of_share(r)
            && (!queue.ready.is_empty() || !queue.delayed.is_empty())
        {
            return Next::WaitUntil(Some(now + Duration::from_millis(1)));
        }
        let taken = |job| {
            if let Some(r) = relay {
                r.taken.fetch_add(1, Ordering::SeqCst);
            }
            Next::Job(job)
        };
        if let Some(pos) = queue
            .delayed
            .iter()
            .enumerate()
            .filter(|(_, (due, _))| *due <= now)
            .min_by_key(|(_, (due, _))| *due)
            .map(|(i, _)| i)
        {
            let (_, job) = queue.delayed.swap_remove(pos);
            queue.busy += 1;
            return taken(job);
        }
        if let Some(job) = queue.ready.pop_front() {
            queue.busy += 1;
            // Composers waiting for room are woken once half of it is free,
            // not at every message: fewer wake-ups, same look-ahead.
            if queue.ready.len() == self.ahead / 2 {
                self.room.notify_all();
            }
            return taken(job);
        }
        if queue.delayed.is_empty() && queue.busy == 0 && self.preparing.load(Ordering::SeqCst) == 0
        {
            return Next::Done;
        }
        Next::WaitUntil(queue.delayed.iter().map(|(due, _)| *due).min())
    }

    async fn next_job(&self, relay: Option<&Relay>) -> Option<Pending> {
        if let Some(r) = relay {
            r.idle.fetch_add(1, Ordering::SeqCst);
        }
        let job = self.wait_for_job(relay).await;
        if let Some(r) = relay {
            r.idle.fetch_sub(1, Ordering::SeqCst);
        }
        job
    }

    async fn wait_for_job(&self, relay: Option<&Relay>) -> Option<Pending> {
        loop {
            if self.abort.load(Ordering::SeqCst) || self.stop_requested() {
                // A stop leaves the jobs not yet taken untouched: they are
                // still pending in the ledger for the next run.
                return None;
            }
            // Register for wake-ups before looking, so a notify between the
            // look and the wait is not lost.
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match self.take(relay) {
                Next::Job(job) => return Some(job),
                Next::Done => return None,
                Next::WaitUntil(due) => {
                    // With a stop flag to watch, never sleep long without looking at it.
                    let cap = self
                        .options
                        .stop
                        .as_ref()
                        .map(|_| Instant::now() + STOP_POLL);
                    let until = match (due, cap) {
                        (Some(d), Some(c)) => Some(d.min(c)),
                        (d, c) => d.or(c),
                    };
                    match until {
                        Some(t) => {
                            tokio::select! {
                                _ = tokio::time::sleep_until(t.into()) => {}
                                _ = notified => {}
                            }
                        }
                        None => notified.await,
                    }
                }
            }
        }
    }

    fn stop_requested(&self) -> bool {
        self.options
            .stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::SeqCst))
    }

    fn finish(&self, requeue: Option<(Instant, Pending)>, front: bool) {
        {
            let mut queue = self.lock();
            queue.busy = queue.busy.saturating_sub(1);
            match requeue {
                Some((_, job)) if front => queue.ready.push_front(job),
                Some(entry) => queue.delayed.push(entry),
                None => {}
            }
        }
        self.notify.notify_waiters();
    }

    fn stop(&self) {
        self.abort.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
        self.room.notify_all();
    }

    /// Wakes composers waiting for room, so that they see a stop.
    fn stop_preparing(&self) {
        let _queue = self.lock();
        self.room.notify_all();
    }

    /// The next job to compose, with its index, unless the send stops.
    fn next_to_compose(&self) -> Option<(usize, Job)> {
        if self.abort.load(Ordering::SeqCst) || self.stop_requested() {
            return None;
        }
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner());
        let job = source.1.next()?;
        let index = source.0;
        source.0 += 1;
        Some((index, job))
    }

    /// Queues a composed message for the sessions (`None`: job `index`
    /// needs no message), in the source's order, waiting while enough are
    /// ready. False when the send stopped meanwhile.
    fn push_ready(&self, index: usize, job: Option<Pending>) -> bool {
        let mut queue = self.lock();
        while queue.next_index != index || (job.is_some() && queue.ready.len() >= self.ahead) {
            if self.abort.load(Ordering::SeqCst) || self.stop_requested() {
                return false;
            }
            let turn = queue.next_index != index;
            queue.turn_waiters += usize::from(turn);
            queue = match self.room.wait_timeout(queue, STOP_POLL) {
                Ok((q, _)) => q,
                Err(poison) => poison.into_inner().0,
            };
            queue.turn_waiters -= usize::from(turn);
        }
        queue.next_index += 1;
        let some = job.is_some();
        queue.ready.extend(job);
        let turn_waiters = queue.turn_waiters;
        drop(queue);
        if turn_waiters > 0 {
            // Another composer is waiting for its turn.
            self.room.notify_all();
        }
        if some {
            self.notify.notify_one();
        }
        true
    }

    /// Hands an outcome to the writer without waiting for it (a recipient
    /// suppressed while the edition was sending: nothing was sent to them,
    /// so nothing can be in doubt).
    fn record_now(&self, target: &Target, state: DeliveryState, reply: String) {
        let (durable, _) = oneshot::channel();
        let record = Record {
            outcome: DeliveryUpdate {
                edition_id: self.options.edition_id.clone(),
                email: target.email.clone(),
                state,
                attempts: 0,
                reply: Some(reply),
            },
            is_final: true,
            durable,
        };
        let sent = match self.record_tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(record).is_ok()),
            Err(_) => false,
        };
        if !sent {
            self.stop();
        }
    }

    /// Closing the channel lets the writer finish once it has drained it.
    fn close_records(&self) {
        if let Ok(mut tx) = self.record_tx.lock() {
            tx.take();
        }
    }

    /// A first session on every relay, before any recipient is tried:
    /// retried with backoff (as a message would be) while every relay
    /// fails for now (a relay restarting, a 421 "too busy" greeting, a
    /// banner that does not come). A relay that refuses us for good (a
    /// wrong password) is left out, with an error, while another relay
    /// answers; when none does, the first failure comes back.
    async fn first_sessions(&self) -> Result<Vec<Option<SmtpSession>>, SmtpFailure> {
        let mut attempts = 0;
        loop {
            let mut sessions = Vec::with_capacity(self.relays.len());
            let mut first_failure = None;
            for relay in &self.relays {
                if relay.is_disabled() {
                    sessions.push(None);
                    continue;
                }
                match relay.connector.connect().await {
                    Ok(session) => {
                        relay.connected();
                        sessions.push(Some(session));
                    }
                    Err(failure) => {
                        relay.count(|c| c.connect_failures += 1);
                        if failure.is_fatal() {
                            relay.disabled.store(true, Ordering::SeqCst);
                        }
                        if self.relays.len() > 1 {
                            tracing::warn!(relay = %relay.name, "cannot open an SMTP session: {failure}");
                        }
                        first_failure.get_or_insert(failure);
                        sessions.push(None);
                    }
                }
            }
            if sessions.iter().any(Option::is_some) {
                for (relay, session) in self.relays.iter().zip(&sessions) {
                    if session.is_none() && relay.is_disabled() {
                        tracing::error!(relay = %relay.name, "this relay refused us; sending through the others");
                    } else if session.is_none() {
                        relay.connect_failed(self);
                    }
                }
                return Ok(sessions);
            }
            let failure = first_failure
                .unwrap_or_else(|| SmtpFailure::Fatal("no relay to send through".to_owned()));
            attempts += 1;
            let all_refused = self.relays.iter().all(|r| r.is_disabled());
            if all_refused || attempts > self.retries || self.stop_requested() {
                return Err(failure);
            }
            let wait = self.backoff(&self.relays[0].connector.endpoint().host, attempts);
            tracing::warn!(
                "cannot open an SMTP session ({failure}); retry {attempts} of {} in {:.1} s",
                self.retries,
                wait.as_secs_f64()
            );
            let until = Instant::now() + wait;
            // Short naps, so that a stop (SIGTERM) is not held up by a long backoff.
            while Instant::now() < until && !self.stop_requested() {
                tokio::time::sleep(
                    until
                        .saturating_duration_since(Instant::now())
                        .min(STOP_POLL),
                )
                .await;
            }
        }
    }

    /// Every job is done: none ready, waiting or in a worker's hands, and
    /// nothing left to compose.
    fn drained(&self) -> bool {
        let queue = self.lock();
        queue.ready.is_empty()
            && queue.delayed.is_empty()
            && queue.busy == 0
            && self.preparing.load(Ordering::SeqCst) == 0
    }

    /// Another relay than `me` takes sessions now.
    fn other_relay_up(&self, me: &Relay) -> bool {
        (self.relays.iter()).any(|r| !std::ptr::eq(r.as_ref(), me) && r.is_up())
    }

    /// Whether `me` is ahead of its share: a relay under its share by
    /// weight has a worker waiting for a job, which should have this one.
    fn ahead_of_share(&self, me: &Relay) -> bool {
        let mine = me.load();
        (self.relays.iter()).any(|r| {
            !std::ptr::eq(r.as_ref(), me)
                && r.is_up()
                && r.idle.load(Ordering::SeqCst) > 0
                && r.load() < mine
        })
    }

    /// Hands each relay's counts to the caller, if it asked.
    fn report_relays(&self) {
        let Some(report) = &self.options.relay_report else {
            return;
        };
        if let Ok(mut out) = report.lock() {
            *out = (self.relays.iter())
                .filter_map(|r| r.counts.lock().ok().map(|c| c.clone()))
                .collect();
        }
    }

    /// Stops the send because of a failure no retry can fix.
    fn fail(&self, failure: SmtpFailure) {
        tracing::error!("stopping the send: {failure}");
        if let Ok(mut fatal) = self.fatal.lock() {
            fatal.get_or_insert(failure);
        }
        self.stop();
    }

    fn backoff(&self, email: &str, attempts: u32) -> Duration {
        let options = &self.options;
        let exp = attempts.saturating_sub(1).min(20);
        let base = options
            .backoff
            .saturating_mul(1u32 << exp)
            .min(options.max_backoff);
        // +-20% jitter, so retries of a throttled wave do not arrive together.
        let mut hasher = DefaultHasher::new();
        (email, attempts).hash(&mut hasher);
        let jitter = (hasher.finish() % 401) as f64 / 1000.0 - 0.2;
        base.mul_f64(1.0 + jitter)
    }
}

struct Worker {
    shared: Arc<Shared>,
    channel: Channel,
    session: Option<SmtpSession>,
    connect_failures: u32,
    /// The durability of this worker's last `sent` outcome, not yet awaited:
    /// the next message's envelope and body go out meanwhile, its final dot
    /// only once this comes true (the crash bound: at most one message per
    /// connection in doubt). See [`Worker::confirm`].
    unconfirmed: Option<Gate>,
}

impl Worker {
    fn new(shared: &Arc<Shared>, channel: Channel, session: Option<SmtpSession>) -> Worker {
        if let Channel::Smtp(relay) = &channel {
            relay.active.fetch_add(1, Ordering::SeqCst);
        }
        Worker {
            shared: Arc::clone(shared),
            channel,
            session,
            connect_failures: 0,
            unconfirmed: None,
        }
    }

    fn relay(&self) -> Option<&Arc<Relay>> {
        match &self.channel {
            Channel::Smtp(relay) => Some(relay),
            Channel::Outbox(_) => None,
        }
    }

    fn limiter(&self) -> &RateLimiter {
        self.relay().map_or(&self.shared.limiter, |r| &r.limiter)
    }

    fn retries(&self) -> u32 {
        self.relay().map_or(0, |r| r.retries)
    }

    /// The next job for this worker. With several relays, a worker whose
    /// relay is backed off waits while another relay takes sessions, and
    /// one whose relay is ahead of its share by weight leaves the job to a
    /// waiting worker of a relay behind.
    async fn next_job(&self) -> Option<Pending> {
        let Some(relay) = self.relay().cloned() else {
            return self.shared.next_job(None).await;
        };
        loop {
            if let Some(until) = relay.down_until()
                && self.shared.other_relay_up(&relay)
            {
                if self.shared.drained() || self.shared.stop_requested() {
                    return None;
                }
                let nap = until
                    .saturating_duration_since(Instant::now())
                    .min(STOP_POLL);
                tokio::time::sleep(nap).await;
                continue;
            }
            return self.shared.next_job(Some(&relay)).await;
        }
    }

    async fn run(mut self) {
        self.work().await;
        if let Some(relay) = self.relay() {
            relay.active.fetch_sub(1, Ordering::SeqCst);
        }
    }

    async fn work(&mut self) {
        while let Some(job) = self.next_job().await {
            let bytes = match &job.bytes {
                Ok(bytes) => Arc::clone(bytes),
                Err(why) => {
                    // Our failure, not the recipient's: nobody is marked
                    // failed. The run stops with this recipient and the
                    // rest still pending, so fixing the cause and running
                    // again delivers them.
                    self.shared.fail(SmtpFailure::Fatal(why.clone()));
                    self.shared.finish(Some((Instant::now(), job)), true);
                    return;
                }
            };
            let skip = match &self.shared.options.last_check {
                Some(check) => check(&job.target.email),
                None => Ok(None),
            };
            match skip {
                Ok(None) => {}
                Ok(Some(why)) => {
                    let ok =
                        (self.record(&job.target, DeliveryState::Suppressed, 0, why, true)).await;
                    self.shared.finish(None, false);
                    if !ok {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    let why = format!("cannot check {} before sending: {e}", job.target.email);
                    self.shared.fail(SmtpFailure::Fatal(why));
                    self.shared.finish(Some((Instant::now(), job)), true);
                    return;
                }
            }

            if self.session.is_none()
                && let Some(relay) = self.relay().cloned()
            {
                match relay.connector.connect().await {
                    Ok(session) => {
                        self.session = Some(session);
                        self.connect_failures = 0;
                        relay.connected();
                    }
                    Err(failure @ SmtpFailure::Fatal(_)) if self.shared.other_relay_up(&relay) => {
                        // This relay refuses us for good; the others carry on.
                        tracing::error!(relay = %relay.name, "this relay refused us; sending through the others: {failure}");
                        relay.count(|c| c.connect_failures += 1);
                        relay.disabled.store(true, Ordering::SeqCst);
                        self.shared.finish(Some((Instant::now(), job)), true);
                        return;
                    }
                    Err(failure @ SmtpFailure::Fatal(_)) => {
                        // Nothing will get through: stop, leave readers pending.
                        self.shared.fail(failure);
                        self.shared.finish(Some((Instant::now(), job)), true);
                        return;
                    }
                    Err(failure) if self.shared.other_relay_up(&relay) => {
                        // Not the recipient's fault, nor worth their retry:
                        // the job goes to another relay's worker, and this
                        // relay is left alone for a while.
                        tracing::warn!(relay = %relay.name, "cannot open an SMTP session, backing this relay off: {failure}");
                        relay.connect_failed(&self.shared);
                        self.shared.finish(Some((Instant::now(), job)), true);
                        continue;
                    }
                    Err(failure) => {
                        self.connect_failures += 1;
                        relay.count(|c| c.connect_failures += 1);
                        let others = relay.active.load(Ordering::SeqCst) > 1;
                        if others && self.connect_failures > self.retries() {
                            // The relay will not take this many sessions:
                            // leave the job to the workers that have one.
                            tracing::warn!(
                                "giving up a connection after repeated failures: {failure}"
                            );
                            self.shared.finish(Some((Instant::now(), job)), true);
                            return;
                        }
                        if failure.is_throttle() {
                            self.limiter().throttle(Instant::now());
                        }
                        if !self.after_failure(job, failure).await {
                            return;
                        }
                        continue;
                    }
                }
            }

            self.limiter().acquire().await;
            let started = Instant::now();
            let result = self.attempt(&job.target, &bytes).await;
            let keep_going = match result {
                Ok(reply) => {
                    self.limiter().success();
                    let ok = self.record_sent(&job.target, reply).await;
                    self.shared.finish(None, false);
                    ok
                }
                Err(failure) => {
                    if failure.is_throttle() {
                        self.limiter().throttle(started);
                    }
                    if !self.session.as_ref().is_some_and(SmtpSession::is_usable) {
                        self.session = None;
                    }
                    match failure {
                        SmtpFailure::Fatal(_) => {
                            self.shared.fail(failure);
                            self.shared.finish(Some((Instant::now(), job)), true);
                            return;
                        }
                        SmtpFailure::InDoubt(reply) => {
                            // Retrying could deliver it twice: the next run
                            // decides, from the ledger.
                            tracing::warn!(email = %job.target.email, "{reply}");
                            let ok = self
                                .record(&job.target, DeliveryState::InDoubt, 1, reply, true)
                                .await;
                            self.shared.finish(None, false);
                            ok
                        }
                        failure => self.after_failure(job, failure).await,
                    }
                }
            };
            if !keep_going {
                return;
            }
        }
        if let Some(session) = self.session.take() {
            session.quit().await;
        }
    }

    /// Records a failed attempt and decides: failed for good, retry later, or
    /// deferred to the next run. Returns false when the send must stop.
    async fn after_failure(&mut self, mut job: Pending, failure: SmtpFailure) -> bool {
        job.attempts += 1;
        let reply = failure.to_string();
        if failure.is_permanent() {
            let ok = self
                .record(&job.target, DeliveryState::Failed, 1, reply, true)
                .await;
            self.shared.finish(None, false);
            return ok;
        }
        let last = job.attempts > self.retries();
        tracing::debug!(email = %job.target.email, attempt = job.attempts, last, "transient failure: {reply}");
        // Recorded even when it will be retried, so nothing waiting in the
        // queue is in doubt after a crash.
        if !self
            .record(&job.target, DeliveryState::Deferred, 1, reply, last)
            .await
        {
            self.shared.finish(None, false);
            return false;
        }
        if last {
            self.shared.finish(None, false);
        } else {
            let due = Instant::now() + self.shared.backoff(&job.target.email, job.attempts);
            self.shared.finish(Some((due, job)), false);
        }
        true
    }

    async fn attempt(&mut self, job: &Target, bytes: &Arc<Vec<u8>>) -> Result<String, SmtpFailure> {
        match &self.channel {
            Channel::Outbox(outbox) => {
                let outbox = outbox.clone();
                let stem = job
                    .message_id
                    .clone()
                    .unwrap_or_else(|| format!("{:06}", job.index));
                let bytes = Arc::clone(bytes);
                let written =
                    tokio::task::spawn_blocking(move || outbox.write(&stem, &bytes)).await;
                match written {
                    Ok(Ok(path)) => Ok(format!("written to {}", path.display())),
                    Ok(Err(err)) => Err(SmtpFailure::Connection(format!(
                        "outbox write failed: {err}"
                    ))),
                    Err(err) => Err(SmtpFailure::Connection(format!(
                        "outbox writer failed: {err}"
                    ))),
                }
            }
            Channel::Smtp(_) => {
                let to: Address = job.email.parse().map_err(|e| {
                    SmtpFailure::Unsendable(format!("invalid recipient address: {e}"))
                })?;
                let Some(session) = self.session.as_mut() else {
                    return Err(SmtpFailure::Connection("no SMTP session".to_owned()));
                };
                let from =
                    (job.envelope_from.as_ref()).unwrap_or(&self.shared.options.envelope_from);
                session.send(from, &to, bytes, &mut self.unconfirmed).await
            }
        }
    }

    /// Waits until this worker's last `sent` outcome is durable. False (and
    /// the send stops) when it could not be recorded.
    async fn confirm(&mut self) -> bool {
        let Some(durable) = self.unconfirmed.take() else {
            return true;
        };
        let ok = durable.await.unwrap_or(false);
        if !ok {
            self.shared.stop();
        }
        ok
    }

    /// Records a message the relay accepted. Over SMTP the worker goes on
    /// without waiting: the next message on this session waits for it
    /// before its final dot. The outbox has no dot to hold back, so there
    /// it waits at once.
    async fn record_sent(&mut self, job: &Target, reply: String) -> bool {
        if !self.confirm().await {
            return false;
        }
        let Some(durable) = self.submit(job, DeliveryState::Sent, 1, reply, true) else {
            self.shared.stop();
            return false;
        };
        self.unconfirmed = Some(durable);
        match self.channel {
            Channel::Smtp(_) => true,
            Channel::Outbox(_) => self.confirm().await,
        }
    }

    /// Hands an outcome to the writer and waits until it is durable (and
    /// the last `sent` one before it).
    async fn record(
        &mut self,
        job: &Target,
        state: DeliveryState,
        attempts: u32,
        reply: String,
        is_final: bool,
    ) -> bool {
        if !self.confirm().await {
            return false;
        }
        if let Some(durable) = self.submit(job, state, attempts, reply, is_final)
            && durable.await.unwrap_or(false)
        {
            return true;
        }
        self.shared.stop();
        false
    }

    /// Queues an outcome for the writer; the receiver comes true once it is
    /// durable. None when the writer is gone.
    fn submit(
        &self,
        job: &Target,
        state: DeliveryState,
        attempts: u32,
        reply: String,
        is_final: bool,
    ) -> Option<Gate> {
        let (durable_tx, durable_rx) = oneshot::channel();
        let record = Record {
            outcome: DeliveryUpdate {
                edition_id: self.shared.options.edition_id.clone(),
                email: job.email.clone(),
                state,
                attempts,
                reply: Some(reply),
            },
            is_final,
            durable: durable_tx,
        };
        let sent = match self.shared.record_tx.lock() {
            Ok(tx) => tx.as_ref().is_some_and(|tx| tx.send(record).is_ok()),
            Err(_) => false,
        };
        if sent
            && is_final
            && let Some(relay) = self.relay()
        {
            relay.count(|c| match state {
                DeliveryState::Sent => c.sent += 1,
                DeliveryState::Deferred => c.deferred += 1,
                DeliveryState::Failed => c.failed += 1,
                DeliveryState::InDoubt => c.in_doubt += 1,
                DeliveryState::Pending | DeliveryState::Suppressed => {}
            });
        }
        sent.then_some(durable_rx)
    }
}

fn compose(source: MessageSource) -> Result<Vec<u8>, BoxError> {
    match source {
        MessageSource::Bytes(bytes) => Ok(bytes),
        MessageSource::Compose(make) => make(),
    }
}

/// A composing thread: takes the next job, composes (and signs) its
/// message, queues it for the sessions; until the jobs run out or the send
/// stops.
fn prepare(shared: &Shared) {
    while let Some((index, job)) = shared.next_to_compose() {
        let target = Target {
            index,
            email: job.email,
            message_id: job.message_id,
            envelope_from: job.envelope_from,
        };
        // A panic is a bug of ours; caught so that it stops this send like
        // any composing failure instead of leaving the queue waiting for
        // this job forever.
        let composed =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| compose(job.message)))
                .unwrap_or_else(|_| Err("composing it panicked".into()));
        let (bytes, last) = match composed {
            Ok(bytes) => (Ok(Arc::new(bytes)), false),
            Err(err) if err.downcast_ref::<Skip>().is_some() => {
                shared.record_now(&target, DeliveryState::Suppressed, err.to_string());
                if !shared.push_ready(index, None) {
                    break;
                }
                continue;
            }
            // Handed on like a message: the send stops when a worker gets
            // to it, after the ones before it went out.
            Err(err) => (
                Err(format!(
                    "cannot compose the message to {}: {err}",
                    target.email
                )),
                true,
            ),
        };
        let ready = Pending {
            target,
            bytes,
            attempts: 0,
        };
        if !shared.push_ready(index, Some(ready)) || last {
            break;
        }
    }
    shared.preparing.fetch_sub(1, Ordering::SeqCst);
    shared.notify.notify_waiters();
}

/// Lowest rate throttling can push a send down to (messages per second).
const MIN_RATE: f64 = 0.5;
/// Successes at the current rate before it is raised by 10%.
const RECOVER_EVERY: u32 = 20;

/// Shared pacing: a token bucket of one (messages are spaced 1/rate apart)
/// whose rate halves on throttling replies and recovers slowly.
struct RateLimiter {
    state: Mutex<RateState>,
}

struct RateState {
    configured: Option<f64>,
    /// `None`: unlimited.
    current: Option<f64>,
    next_free: Instant,
    /// Throttles from attempts started before this were already answered.
    last_cut: Option<Instant>,
    successes_since_change: u32,
    /// Where an unconfigured rate returns to unlimited.
    ceiling: f64,
    attempts: u64,
    started: Instant,
}

impl RateLimiter {
    fn new(rate: Option<f64>) -> Self {
        let now = Instant::now();
        RateLimiter {
            state: Mutex::new(RateState {
                configured: rate,
                current: rate,
                next_free: now,
                last_cut: None,
                successes_since_change: 0,
                ceiling: f64::INFINITY,
                attempts: 0,
                started: now,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateState> {
        self.state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Waits for this attempt's slot.
    async fn acquire(&self) {
        let wait = {
            let mut s = self.lock();
            s.attempts += 1;
            match s.current {
                None => Duration::ZERO,
                Some(rate) => {
                    let now = Instant::now();
                    let slot = s.next_free.max(now);
                    s.next_free = slot + Duration::from_secs_f64(1.0 / rate);
                    slot - now
                }
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    fn success(&self) {
        let mut s = self.lock();
        let Some(rate) = s.current else {
            return;
        };
        if s.configured == Some(rate) {
            return;
        }
        s.successes_since_change += 1;
        if s.successes_since_change < RECOVER_EVERY {
            return;
        }
        s.successes_since_change = 0;
        let raised = rate * 1.1;
        s.current = match s.configured {
            Some(max) => Some(raised.min(max)),
            None if raised >= s.ceiling => None,
            None => Some(raised),
        };
        tracing::info!(rate = ?s.current, "relay accepting again: raising the send rate");
    }

    /// Halves the rate, once per wave: throttles from attempts that started
    /// before the last cut were sent at the old rate and are ignored. The
    /// floor is [`MIN_RATE`], or the configured rate when that is lower: a
    /// send configured slower than the floor stays at its own pace, since
    /// backing off must never speed it up.
    fn throttle(&self, attempt_started: Instant) -> Option<f64> {
        let mut s = self.lock();
        if s.last_cut.is_some_and(|cut| attempt_started < cut) {
            return None;
        }
        let base = match s.current {
            Some(rate) => rate,
            None => {
                // Unlimited so far: start from the pace actually achieved.
                let elapsed = s.started.elapsed().as_secs_f64().max(0.001);
                let observed = (s.attempts as f64 / elapsed).max(1.0);
                s.ceiling = observed;
                observed
            }
        };
        let floor = s.configured.map_or(MIN_RATE, |c| c.min(MIN_RATE));
        let new = (base / 2.0).max(floor);
        s.current = Some(new);
        s.last_cut = Some(Instant::now());
        s.successes_since_change = 0;
        if new < base {
            tracing::warn!(rate = new, "relay is throttling: halving the send rate");
        } else {
            tracing::warn!(
                rate = new,
                "relay is throttling; already at the lowest send rate"
            );
        }
        Some(new)
    }

    #[cfg(test)]
    fn current(&self) -> Option<f64> {
        self.lock().current
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_halves_once_per_wave_and_recovers() {
        let limiter = RateLimiter::new(Some(100.0));
        let before = Instant::now();
        assert_eq!(limiter.throttle(before), Some(50.0));
        // Another reply from an attempt sent before the cut: same wave.
        assert_eq!(limiter.throttle(before), None);
        assert_eq!(limiter.throttle(Instant::now()), Some(25.0));
        for _ in 0..RECOVER_EVERY {
            limiter.success();
        }
        assert!((limiter.current().unwrap() - 27.5).abs() < 1e-9);
        for _ in 0..RECOVER_EVERY * 20 {
            limiter.success();
        }
        assert_eq!(
            limiter.current(),
            Some(100.0),
            "never above the configured rate"
        );
    }

    #[test]
    fn throttle_has_a_floor() {
        let limiter = RateLimiter::new(Some(0.6));
        limiter.throttle(Instant::now());
        assert_eq!(limiter.current(), Some(MIN_RATE));
        limiter.throttle(Instant::now());
        assert_eq!(limiter.current(), Some(MIN_RATE));
    }

    #[test]
    fn throttle_never_raises_a_slow_configured_rate() {
        // Issue 9.15: with rate 0.1, (0.1 / 2).max(0.5) made it 0.5/s.
        for configured in [0.1, 0.3, 0.5, 0.9, 2.0] {
            let limiter = RateLimiter::new(Some(configured));
            for _ in 0..3 {
                limiter.throttle(Instant::now());
                let now = limiter.current().unwrap();
                assert!(now <= configured, "{configured} became {now}");
                assert!(now > 0.0);
            }
            for _ in 0..RECOVER_EVERY * 20 {
                limiter.success();
            }
            assert_eq!(limiter.current(), Some(configured));
        }
    }

    #[test]
    fn unlimited_rate_returns_to_unlimited() {
        let limiter = RateLimiter::new(None);
        assert_eq!(limiter.current(), None);
        limiter.throttle(Instant::now());
        let cut = limiter.current().unwrap();
        assert!(cut >= MIN_RATE);
        for _ in 0..RECOVER_EVERY * 20 {
            limiter.success();
        }
        assert_eq!(limiter.current(), None);
    }

    #[tokio::test]
    async fn pacing_spaces_attempts() {
        let limiter = RateLimiter::new(Some(50.0));
        let start = Instant::now();
        for _ in 0..6 {
            limiter.acquire().await;
        }
        // Five gaps of 20 ms.
        assert!(
            start.elapsed() >= Duration::from_millis(95),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_cap() {
        let shared = Shared {
            queue: Mutex::new(Queue {
                ready: VecDeque::new(),
                delayed: Vec::new(),
                busy: 0,
                next_index: 0,
                turn_waiters: 0,
            }),
            source: Mutex::new((0, Box::new(std::iter::empty()))),
            room: Condvar::new(),
            ahead: PREPARED_AHEAD,
            preparing: AtomicUsize::new(0),
            notify: Notify::new(),
            limiter: RateLimiter::new(None),
            relays: Vec::new(),
            abort: AtomicBool::new(false),
            retries: 3,
            options: SendOptions {
                backoff: Duration::from_secs(1),
                max_backoff: Duration::from_secs(10),
                ..SendOptions::new("e", "bounce@example.com".parse().unwrap())
            },
            record_tx: Mutex::new(None),
            fatal: Mutex::new(None),
        };
        let d1 = shared.backoff("a@example.com", 1).as_secs_f64();
        let d2 = shared.backoff("a@example.com", 2).as_secs_f64();
        let d9 = shared.backoff("a@example.com", 9).as_secs_f64();
        assert!((0.8..=1.2).contains(&d1), "{d1}");
        assert!((1.6..=2.4).contains(&d2), "{d2}");
        assert!((8.0..=12.0).contains(&d9), "{d9}");
    }
}
