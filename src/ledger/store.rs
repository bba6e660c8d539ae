//! The ledger's operations, written once over [`Db`] for both backends:
//! SQLite (`sqlite.rs`, the embedded default) and PostgreSQL
//! (`postgres.rs`, shared by several hosts). Every write that decides on
//! what it read runs in one transaction that locks what it read.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, TimeDelta, TimeZone, Utc};

use super::sql::{Db, Dialect, Pending, Row, Tx, params};
use super::{
    Claimed, Counts, Delivery, DeliveryState, DeliveryUpdate, EditionState, EditionStub,
    EditionSummary, FrozenEdition, Joined, LedgerError, Location, PreferenceRecord, Preferences,
    Recipient, RelayTally, Rendering, Result, ReturnCounts, ReturnEvent, ReturnKind, StoredEdition,
    StoredSubscriber, Suppression, SuppressionReason, SuppressionScope, WebRendering,
};

/// SQL condition for the deliveries a run still tries: pending, deferred,
/// and in doubt fewer than [`super::MAX_DOUBTS`] times.
pub(super) const OPEN: &str =
    "(state IN ('pending', 'deferred') OR (state = 'in_doubt' AND doubts < 2))";

/// An open ledger. Writes take `&mut self`; open one per thread that needs
/// one, and hand it to the one ledger writer during a send.
pub struct Ledger {
    pub(super) db: Box<dyn Db>,
    location: Location,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("location", &self.location)
            .finish()
    }
}

/// Timestamps are stored as fixed-width RFC 3339 UTC text, so they sort and
/// compare correctly as strings.
pub(super) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn parse_ts(column: &'static str, value: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| LedgerError::Corrupt {
            column,
            value: value.to_owned(),
        })
}

fn opt_ts(column: &'static str, value: Option<String>) -> Result<Option<DateTime<Utc>>> {
    value.map(|v| parse_ts(column, &v)).transpose()
}

fn parse_ids(value: &str) -> Result<Vec<String>> {
    serde_json::from_str(value).map_err(|_| LedgerError::Corrupt {
        column: "item_ids",
        value: value.to_owned(),
    })
}

fn parse_json(column: &'static str, value: &str) -> Result<serde_json::Value> {
    serde_json::from_str(value).map_err(|_| LedgerError::Corrupt {
        column,
        value: value.to_owned(),
    })
}

fn ttl_delta(ttl: Duration) -> Result<TimeDelta> {
    TimeDelta::from_std(ttl).map_err(|_| LedgerError::InvalidTtl(ttl))
}

/// Milliseconds since 1970, what `deliveries.updated` holds.
fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(-1)
}

/// A rendering from `subject, html, text, item_ids`.
fn rendering(r: &Row) -> Result<Rendering> {
    Ok(Rendering {
        subject: r.text(0)?,
        html: r.text(1)?,
        text: r.text(2)?,
        item_ids: parse_ids(&r.text(3)?)?,
    })
}

/// A suppression from `address, scope, reason, created_at, evidence`.
fn suppression(r: &Row) -> Result<Suppression> {
    Ok(Suppression {
        address: r.text(0)?,
        scope: SuppressionScope::parse(&r.text(1)?),
        reason: r.text(2)?.parse()?,
        created_at: parse_ts("created_at", &r.text(3)?)?,
        evidence: parse_json("evidence", &r.text(4)?)?,
    })
}

impl Ledger {
    pub(super) fn new(db: Box<dyn Db>, location: Location) -> Ledger {
        Ledger { db, location }
    }

    /// Where this ledger is: a file, or a PostgreSQL server (without its
    /// password).
    pub fn location(&self) -> &Location {
        &self.location
    }

    pub(super) fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    fn tx(&self) -> Result<Tx<'_>> {
        Tx::begin(self.db.as_ref())
    }

    /// Stores the edition, its renderings and one pending delivery per
    /// recipient, all in one transaction. Freezing an id that already exists
    /// changes nothing and returns `false`: the first frozen copy is what
    /// gets sent, even if the content was edited since, and of two hosts
    /// freezing one edition at once exactly one copy is stored.
    pub fn freeze_edition(
        &mut self,
        edition: &FrozenEdition,
        recipients: &[Recipient],
    ) -> Result<bool> {
        for r in recipients {
            if r.rendering as usize >= edition.renderings.len() {
                return Err(LedgerError::UnknownRendering {
                    edition: edition.id.clone(),
                    email: r.email.clone(),
                    rendering: r.rendering,
                });
            }
        }
        let now = Utc::now();
        let tx = self.tx()?;
        lock_editions(&*tx)?;
        let exists = tx
            .query_opt("SELECT 1 FROM editions WHERE id = ?1", params![&edition.id])?
            .is_some();
        if exists {
            return Ok(false);
        }
        let num = tx
            .query_opt("SELECT COALESCE(MAX(num), 0) + 1 FROM editions", &[])?
            .map_or(Ok(1), |r| r.int(0))?;
        let main = edition.main();
        let web = edition.web.as_ref();
        let item_ids = serde_json::to_string(&main.map(|m| &m.item_ids))?;
        tx.execute(
            "INSERT INTO editions
                 (id, num, newsletter, slot_utc, zone, state, subject, item_ids, created_at,
                  web_subject, web_html, web_text)
             VALUES (?1, ?2, ?3, ?4, ?5, 'frozen', ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                &edition.id,
                num,
                &edition.newsletter,
                &ts(edition.slot_utc),
                &edition.zone,
                main.map(|m| m.subject.as_str()),
                &item_ids,
                &ts(now),
                web.map(|w| w.subject.as_str()),
                web.map(|w| w.html.as_str()),
                web.map(|w| w.text.as_str()),
            ],
        )?;
        for (idx, r) in edition.renderings.iter().enumerate() {
            tx.execute(
                "INSERT INTO renderings (edition_num, idx, subject, html, text, item_ids)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    num,
                    idx as i64,
                    &r.subject,
                    &r.html,
                    &r.text,
                    &serde_json::to_string(&r.item_ids)?
                ],
            )?;
        }
        let rows = recipients
            .iter()
            .map(|r| {
                let fields = match r.fields.is_empty() {
                    true => None,
                    // An object with sorted keys, as it always was.
                    false => Some(serde_json::to_string(
                        &(r.fields.iter())
                            .map(|(k, v)| (k.as_str(), v.as_str()))
                            .collect::<BTreeMap<_, _>>(),
                    )?),
                };
                Ok(Pending {
                    email: &r.email,
                    name: r.name.as_deref(),
                    rendering: r.rendering,
                    fields,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.insert_pending(num, &rows, millis(now))?;
        tx.commit()?;
        if self.dialect() == Dialect::Postgres {
            // The planner's view of the rows just added: without it, a
            // batch of outcomes is joined to the whole table instead of
            // looked up by key (50 ms a batch instead of 0.3 at 100,000
            // recipients, measured).
            if let Err(e) = self.db.batch("ANALYZE deliveries") {
                tracing::warn!("cannot update the ledger's statistics: {e}");
            }
        }
        Ok(true)
    }

    /// The number of edition `id`, if it exists.
    fn num(&self, id: &str) -> Result<Option<i64>> {
        (self.db)
            .query_opt("SELECT num FROM editions WHERE id = ?1", params![id])?
            .map(|r| r.int(0))
            .transpose()
    }

    /// The stored edition with its renderings, if it exists.
    pub fn edition(&self, id: &str) -> Result<Option<StoredEdition>> {
        let Some(r) = self.db.query_opt(
            "SELECT id, num, newsletter, slot_utc, zone, state, subject, reason, created_at,
                    completed_at
             FROM editions WHERE id = ?1",
            params![id],
        )?
        else {
            return Ok(None);
        };
        let num = r.int(1)?;
        let renderings = (self.db)
            .query(
                "SELECT subject, html, text, item_ids FROM renderings
                 WHERE edition_num = ?1 ORDER BY idx",
                params![num],
            )?
            .iter()
            .map(rendering)
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(StoredEdition {
            id: r.text(0)?,
            num: u64::try_from(num).unwrap_or_default(),
            newsletter: r.text(2)?,
            slot_utc: parse_ts("slot_utc", &r.text(3)?)?,
            zone: r.text(4)?,
            state: r.text(5)?.parse()?,
            subject: r.opt_text(6)?,
            renderings,
            reason: r.opt_text(7)?,
            created_at: parse_ts("created_at", &r.text(8)?)?,
            completed_at: opt_ts("completed_at", r.opt_text(9)?)?,
        }))
    }

    /// The anonymous rendering edition `id` was frozen with, if it exists
    /// and has one.
    pub fn web_rendering(&self, id: &str) -> Result<Option<WebRendering>> {
        let Some(r) = self.db.query_opt(
            "SELECT web_subject, web_html, web_text FROM editions WHERE id = ?1",
            params![id],
        )?
        else {
            return Ok(None);
        };
        Ok(match (r.opt_text(0)?, r.opt_text(1)?, r.opt_text(2)?) {
            (Some(subject), Some(html), Some(text)) => Some(WebRendering {
                subject,
                html,
                text,
            }),
            _ => None,
        })
    }

    /// Rendering `index` of edition `id` alone, without the others (an
    /// edition may have hundreds).
    pub fn rendering(&self, id: &str, index: u32) -> Result<Option<Rendering>> {
        (self.db)
            .query_opt(
                "SELECT r.subject, r.html, r.text, r.item_ids
                 FROM renderings r JOIN editions e ON e.num = r.edition_num
                 WHERE e.id = ?1 AND r.idx = ?2",
                params![id, index],
            )?
            .map(|r| rendering(&r))
            .transpose()
    }

    /// The id and newsletter of the edition numbered `num` (what a VERP tag
    /// carries).
    pub fn edition_id_of(&self, num: u64) -> Result<Option<(String, String)>> {
        (self.db)
            .query_opt(
                "SELECT id, newsletter FROM editions WHERE num = ?1",
                params![signed(num)],
            )?
            .map(|r| Ok((r.text(0)?, r.text(1)?)))
            .transpose()
    }

    /// Joins the senders of an edition: takes (or renews) `holder`'s own
    /// lease for `ttl`, and ends the leases that expired or whose holder
    /// `is_dead` says has gone (a sender of this machine that was killed),
    /// so that their claims are free at once. Several senders (on one
    /// machine or several) send one edition together, each claiming its
    /// own batches ([`Ledger::claim_batch`]).
    pub fn join_edition(
        &mut self,
        edition_id: &str,
        holder: &str,
        ttl: Duration,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Joined> {
        self.join_at(edition_id, holder, ttl, Utc::now(), is_dead)
    }

    pub(super) fn join_at(
        &mut self,
        edition_id: &str,
        holder: &str,
        ttl: Duration,
        now: DateTime<Utc>,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Joined> {
        let expires = ts(now + ttl_delta(ttl)?);
        let tx = self.tx()?;
        // The edition's row, locked: two senders joining at once take turns.
        let lock = format!(
            "SELECT num FROM editions WHERE id = ?1{}",
            tx.dialect().for_update()
        );
        if tx.query_opt(&lock, params![edition_id])?.is_none() {
            return Err(LedgerError::UnknownEdition(edition_id.to_owned()));
        }
        let joined = reap(&tx, edition_id, holder, now, is_dead)?;
        tx.execute(
            "INSERT INTO leases (edition_id, holder, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (edition_id, holder) DO UPDATE SET expires_at = ?3",
            params![edition_id, holder, &expires],
        )?;
        tx.commit()?;
        Ok(joined)
    }

    /// Claims at most `limit` of the edition's deliveries still to try for
    /// `holder`, who has joined it, by address: those nobody claimed, and
    /// those whose claimer's lease has ended (expired, or its holder dead as
    /// `is_dead` says; those leases are ended here). A claim holds while its
    /// holder's lease lives; a batch claimed is not claimed again by anyone
    /// until then, so two senders never get one recipient. PostgreSQL
    /// skips rows another sender is claiming at that moment (`SKIP
    /// LOCKED`); SQLite's write lock makes claims take turns.
    pub fn claim_batch(
        &mut self,
        edition_id: &str,
        holder: &str,
        limit: usize,
        is_dead: &dyn Fn(&str) -> bool,
    ) -> Result<Claimed> {
        let now = Utc::now();
        let tx = self.tx()?;
        let Some(num) = tx
            .query_opt(
                "SELECT num FROM editions WHERE id = ?1",
                params![edition_id],
            )?
            .map(|r| r.int(0))
            .transpose()?
        else {
            return Ok(Claimed::default());
        };
        let took_over = reap(&tx, edition_id, holder, now, is_dead)?.took_over;
        let skip = match tx.dialect() {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE OF d SKIP LOCKED",
        };
        let sql = format!(
            "UPDATE deliveries SET claim = ?2
             WHERE edition_num = ?1 AND email IN (
                 SELECT d.email FROM deliveries d
                 WHERE d.edition_num = ?1 AND {OPEN}
                   AND (d.claim IS NULL OR NOT EXISTS (
                       SELECT 1 FROM leases l WHERE l.edition_id = ?3 AND l.holder = d.claim))
                 ORDER BY d.email LIMIT ?4{skip})
             RETURNING email, name, rendering, state, attempts, reply, updated, fields, doubts"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = tx.query(&sql, params![num, holder, edition_id, limit])?;
        tx.commit()?;
        let mut deliveries = (rows.iter())
            .map(|r| delivery(edition_id, r))
            .collect::<Result<Vec<_>>>()?;
        deliveries.sort_by(|a, b| a.email.cmp(&b.email));
        Ok(Claimed {
            deliveries,
            took_over,
        })
    }

    /// The edition's deliveries still to try, and of them those that other
    /// senders with live leases have claimed (theirs to send, not left for
    /// a next run), counted in one statement so that the two agree.
    pub fn unsent_here_and_elsewhere(&self, edition_id: &str, holder: &str) -> Result<(u64, u64)> {
        let Some(num) = self.num(edition_id)? else {
            return Ok((0, 0));
        };
        let r = (self.db).query_opt(
            &format!(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN d.claim IS NOT NULL AND d.claim <> ?2
                     AND EXISTS (SELECT 1 FROM leases l WHERE l.edition_id = ?3
                                 AND l.holder = d.claim AND l.expires_at > ?4)
                     THEN 1 ELSE 0 END), 0)
                 FROM deliveries d WHERE d.edition_num = ?1 AND {OPEN}"
            ),
            params![num, holder, edition_id, &ts(Utc::now())],
        )?;
        match r {
            Some(r) => Ok((r.count(0)?, r.count(1)?)),
            None => Ok((0, 0)),
        }
    }

    /// Adds what each relay did in one run to the edition's tallies.
    pub fn add_relay_tallies(&mut self, edition_id: &str, tallies: &[RelayTally]) -> Result<()> {
        let tx = self.tx()?;
        for t in tallies {
            tx.execute(
                "INSERT INTO relay_counts
                     (edition_id, relay, sent, deferred, failed, in_doubt, connect_failures)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (edition_id, relay) DO UPDATE SET
                     sent = relay_counts.sent + ?3, deferred = relay_counts.deferred + ?4,
                     failed = relay_counts.failed + ?5, in_doubt = relay_counts.in_doubt + ?6,
                     connect_failures = relay_counts.connect_failures + ?7",
                params![
                    edition_id,
                    &t.relay,
                    signed(t.sent),
                    signed(t.deferred),
                    signed(t.failed),
                    signed(t.in_doubt),
                    signed(t.connect_failures)
                ],
            )?;
        }
        tx.commit()
    }

    /// What each relay did for the edition, by relay.
    pub fn relay_tallies(&self, edition_id: &str) -> Result<Vec<RelayTally>> {
        (self
            .db
            .query(
                "SELECT relay, sent, deferred, failed, in_doubt, connect_failures FROM relay_counts
             WHERE edition_id = ?1 ORDER BY relay",
                params![edition_id],
            )?
            .iter())
        .map(|r| {
            Ok(RelayTally {
                relay: r.text(0)?,
                sent: r.count(1)?,
                deferred: r.count(2)?,
                failed: r.count(3)?,
                in_doubt: r.count(4)?,
                connect_failures: r.count(5)?,
            })
        })
        .collect()
    }

    /// Extends our lease. `false` means it is no longer ours (it expired, and
    /// another sender may have claimed our recipients since): stop sending.
    pub fn renew_lease(&mut self, edition_id: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let now = Utc::now();
        let expires = ts(now + ttl_delta(ttl)?);
        let changed = self.db.execute(
            "UPDATE leases SET expires_at = ?3
             WHERE edition_id = ?1 AND holder = ?2 AND expires_at > ?4",
            params![edition_id, holder, &expires, &ts(now)],
        )?;
        Ok(changed == 1)
    }

    /// Gives our lease up, and with it our claims on what is still to try.
    pub fn release_lease(&mut self, edition_id: &str, holder: &str) -> Result<()> {
        let tx = self.tx()?;
        if let Some(r) = tx.query_opt(
            "SELECT num FROM editions WHERE id = ?1",
            params![edition_id],
        )? {
            tx.execute(
                "UPDATE deliveries SET claim = NULL WHERE edition_num = ?1 AND claim = ?2",
                params![r.int(0)?, holder],
            )?;
        }
        tx.execute(
            "DELETE FROM leases WHERE edition_id = ?1 AND holder = ?2",
            params![edition_id, holder],
        )?;
        tx.commit()
    }

    /// Deliveries still to try, by address: pending, deferred, and in doubt
    /// for the first time (see [`DeliveryState::InDoubt`]).
    pub fn pending(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, &format!("AND {OPEN}"))
    }

    /// Stores what the plan of an edition counted (suppressed, invalid,
    /// empty…), as JSON, for `status` and resumed sends.
    pub fn set_stats(&mut self, edition_id: &str, stats: &serde_json::Value) -> Result<()> {
        self.db.execute(
            "UPDATE editions SET stats = ?2 WHERE id = ?1",
            params![edition_id, &serde_json::to_string(stats)?],
        )?;
        Ok(())
    }

    /// What [`Ledger::set_stats`] stored, if anything.
    pub fn stats(&self, edition_id: &str) -> Result<Option<serde_json::Value>> {
        let raw = self.db.query_opt(
            "SELECT stats FROM editions WHERE id = ?1",
            params![edition_id],
        )?;
        Ok(match raw.map(|r| r.opt_text(0)).transpose()?.flatten() {
            Some(s) => Some(serde_json::from_str(&s)?),
            None => None,
        })
    }

    /// Every delivery of an edition, by address.
    pub fn deliveries(&self, edition_id: &str) -> Result<Vec<Delivery>> {
        self.deliveries_where(edition_id, "")
    }

    fn deliveries_where(&self, edition_id: &str, filter: &str) -> Result<Vec<Delivery>> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT email, name, rendering, state, attempts, reply, updated, fields, doubts
             FROM deliveries WHERE edition_num = ?1 {filter} ORDER BY email"
        );
        (self.db.query(&sql, params![num])?.iter())
            .map(|r| delivery(edition_id, r))
            .collect()
    }

    /// Records a group of outcomes in one transaction (one fsync). Only a
    /// delivery a run may still try changes: one `sent`, `failed` or in
    /// doubt for good never does, so a late or duplicate outcome cannot turn
    /// a sent message back into a pending one. An `InDoubt` outcome counts
    /// one more doubt. A relay's acceptance is not kept (it is the common
    /// case, and the ledger's size grows with the audience); every other
    /// reply is. Returns the number of deliveries updated.
    pub fn record_batch(&mut self, outcomes: &[DeliveryUpdate]) -> Result<usize> {
        let now = millis(Utc::now());
        let tx = self.tx()?;
        let mut nums: HashMap<&str, Option<i64>> = HashMap::new();
        // Each edition's outcomes, in order.
        let mut groups: Vec<(i64, Vec<&DeliveryUpdate>)> = Vec::new();
        for o in outcomes {
            let num = match nums.get(o.edition_id.as_str()) {
                Some(n) => *n,
                None => {
                    let n = tx
                        .query_opt(
                            "SELECT num FROM editions WHERE id = ?1",
                            params![&o.edition_id],
                        )?
                        .map(|r| r.int(0))
                        .transpose()?;
                    nums.insert(&o.edition_id, n);
                    n
                }
            };
            let Some(num) = num else { continue };
            match groups.iter_mut().find(|(n, _)| *n == num) {
                Some((_, group)) => group.push(o),
                None => groups.push((num, vec![o])),
            }
        }
        let mut changed = 0;
        for (num, group) in &groups {
            changed += tx.record_outcomes(*num, group, now)?;
        }
        tx.commit()?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    /// frozen -> sending, when a send starts. Already sending: no change.
    pub fn mark_sending(&mut self, edition_id: &str) -> Result<()> {
        self.transition(
            edition_id,
            EditionState::Sending,
            &[EditionState::Frozen],
            None,
        )
    }

    /// frozen/sending -> complete. Already complete: no change.
    pub fn mark_complete(&mut self, edition_id: &str) -> Result<()> {
        self.transition(
            edition_id,
            EditionState::Complete,
            &[EditionState::Frozen, EditionState::Sending],
            None,
        )
    }

    /// Records that a slot passed without being sent. Creates the edition row
    /// when the slot was never frozen; a frozen but unsent edition becomes
    /// missed. Recording it twice keeps the first reason.
    pub fn record_missed(&mut self, edition: &EditionStub, reason: &str) -> Result<()> {
        self.record_unsent(edition, EditionState::Missed, reason)
    }

    /// Records that a slot was deliberately not sent (no items, cancelled).
    pub fn record_skipped(&mut self, edition: &EditionStub, reason: &str) -> Result<()> {
        self.record_unsent(edition, EditionState::Skipped, reason)
    }

    fn record_unsent(
        &mut self,
        edition: &EditionStub,
        target: EditionState,
        reason: &str,
    ) -> Result<()> {
        let now = ts(Utc::now());
        let tx = self.tx()?;
        lock_editions(&*tx)?;
        let inserted = tx.execute(
            "INSERT INTO editions (id, num, newsletter, slot_utc, zone, state, reason, created_at, completed_at)
             VALUES (?1, (SELECT COALESCE(MAX(num), 0) + 1 FROM editions), ?2, ?3, ?4, ?5, ?6, ?7, ?7)
             ON CONFLICT (id) DO NOTHING",
            params![
                &edition.id,
                &edition.newsletter,
                &ts(edition.slot_utc),
                &edition.zone,
                target.as_str(),
                reason,
                &now
            ],
        )?;
        tx.commit()?;
        if inserted == 1 {
            return Ok(());
        }
        self.transition(&edition.id, target, &[EditionState::Frozen], Some(reason))
    }

    fn transition(
        &mut self,
        edition_id: &str,
        target: EditionState,
        from: &[EditionState],
        reason: Option<&str>,
    ) -> Result<()> {
        let tx = self.tx()?;
        let read = format!(
            "SELECT state FROM editions WHERE id = ?1{}",
            tx.dialect().for_update()
        );
        let state: EditionState = tx
            .query_opt(&read, params![edition_id])?
            .ok_or_else(|| LedgerError::UnknownEdition(edition_id.to_owned()))?
            .text(0)?
            .parse()?;
        if state == target {
            return Ok(());
        }
        if !from.contains(&state) {
            return Err(LedgerError::InvalidTransition {
                id: edition_id.to_owned(),
                state,
                target,
            });
        }
        let completed = match target {
            EditionState::Complete | EditionState::Missed | EditionState::Skipped => {
                Some(ts(Utc::now()))
            }
            EditionState::Frozen | EditionState::Sending => None,
        };
        tx.execute(
            "UPDATE editions SET state = ?2, completed_at = COALESCE(?3, completed_at),
                                 reason = COALESCE(?4, reason)
             WHERE id = ?1",
            params![edition_id, target.as_str(), &completed, reason],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Delivery counts by state.
    pub fn counts(&self, edition_id: &str) -> Result<Counts> {
        let mut counts = Counts::default();
        let Some(num) = self.num(edition_id)? else {
            return Ok(counts);
        };
        let rows = self.db.query(
            &format!(
                "SELECT state, COUNT(*), SUM(CASE WHEN {OPEN} THEN 1 ELSE 0 END) FROM deliveries
                 WHERE edition_num = ?1 GROUP BY state"
            ),
            params![num],
        )?;
        for r in rows {
            let (n, open) = (r.count(1)?, r.count(2)?);
            match r.text(0)?.parse()? {
                DeliveryState::Pending => counts.pending = n,
                DeliveryState::Sent => counts.sent = n,
                DeliveryState::Deferred => counts.deferred = n,
                DeliveryState::Failed => counts.failed = n,
                DeliveryState::InDoubt => {
                    counts.in_doubt = n;
                    counts.resend = open;
                }
                DeliveryState::Suppressed => counts.suppressed = n,
            }
        }
        Ok(counts)
    }

    /// Editions, newest slot first, optionally of one newsletter.
    pub fn editions(&self, newsletter: Option<&str>) -> Result<Vec<EditionSummary>> {
        let count =
            |condition: &str| format!("COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)");
        let sql = format!(
            "SELECT e.id, e.newsletter, e.slot_utc, e.zone, e.state, e.subject, e.reason,
                    e.created_at, e.completed_at, {}, {}, {}, {}, {}, {}, {}
             FROM editions e LEFT JOIN deliveries d ON d.edition_num = e.num
             WHERE CAST(?1 AS TEXT) IS NULL OR e.newsletter = ?1
             GROUP BY e.id
             ORDER BY e.slot_utc DESC, e.id",
            count("d.state = 'pending'"),
            count("d.state = 'sent'"),
            count("d.state = 'deferred'"),
            count("d.state = 'failed'"),
            count("d.state = 'in_doubt'"),
            count("d.state = 'in_doubt' AND d.doubts < 2"),
            count("d.state = 'suppressed'"),
        );
        (self.db.query(&sql, params![newsletter])?.iter())
            .map(|r| {
                Ok(EditionSummary {
                    id: r.text(0)?,
                    newsletter: r.text(1)?,
                    slot_utc: parse_ts("slot_utc", &r.text(2)?)?,
                    zone: r.text(3)?,
                    state: r.text(4)?.parse()?,
                    subject: r.opt_text(5)?,
                    reason: r.opt_text(6)?,
                    created_at: parse_ts("created_at", &r.text(7)?)?,
                    completed_at: opt_ts("completed_at", r.opt_text(8)?)?,
                    counts: Counts {
                        pending: r.count(9)?,
                        sent: r.count(10)?,
                        deferred: r.count(11)?,
                        failed: r.count(12)?,
                        in_doubt: r.count(13)?,
                        resend: r.count(14)?,
                        suppressed: r.count(15)?,
                    },
                })
            })
            .collect()
    }

    /// Failed deliveries with the server's reply, by address.
    pub fn failed(&self, edition_id: &str) -> Result<Vec<(String, String)>> {
        self.replies(edition_id, DeliveryState::Failed)
    }

    /// Deliveries in `state` with the last reply (the server's, or the local
    /// error), by address.
    pub fn replies(&self, edition_id: &str, state: DeliveryState) -> Result<Vec<(String, String)>> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(Vec::new());
        };
        (self
            .db
            .query(
                "SELECT email, COALESCE(reply, '') FROM deliveries
             WHERE edition_num = ?1 AND state = ?2 ORDER BY email",
                params![num, state.as_str()],
            )?
            .iter())
        .map(|r| Ok((r.text(0)?, r.text(1)?)))
        .collect()
    }

    /// The delivery of edition `num` to the address whose tag hash is
    /// `hash` (see `inbound::tag`): the edition's id and newsletter and the
    /// address. A scan of that edition's deliveries, so nothing per
    /// recipient is stored for it.
    pub fn delivery_by_hash(
        &self,
        num: u64,
        hash: impl Fn(&str) -> u64,
        want: u64,
    ) -> Result<Option<(String, String, String)>> {
        let Some((id, newsletter)) = self.edition_id_of(num)? else {
            return Ok(None);
        };
        let rows = self.db.query(
            "SELECT email FROM deliveries WHERE edition_num = ?1",
            params![signed(num)],
        )?;
        for r in rows {
            let email = r.text(0)?;
            if hash(&email) == want {
                return Ok(Some((id, newsletter, email)));
            }
        }
        Ok(None)
    }

    /// Whether the ledger has a delivery of `edition_id` to `email`.
    pub fn has_delivery(&self, edition_id: &str, email: &str) -> Result<bool> {
        let Some(num) = self.num(edition_id)? else {
            return Ok(false);
        };
        let lower = email.to_ascii_lowercase();
        Ok((self.db)
            .query_opt(
                "SELECT 1 FROM deliveries WHERE edition_num = ?1 AND email = ?2",
                params![num, &lower],
            )?
            .is_some()
            || (self.db)
                .query_opt(
                    "SELECT 1 FROM deliveries WHERE edition_num = ?1 AND lower(email) = ?2",
                    params![num, &lower],
                )?
                .is_some())
    }

    /// The editions that went to `email` (sent), newest slot first, at most
    /// `limit`: what the soft-bounce rule looks back over.
    pub fn editions_sent_to(&self, email: &str, limit: usize) -> Result<Vec<String>> {
        (self
            .db
            .query(
                "SELECT e.id FROM deliveries d JOIN editions e ON e.num = d.edition_num
             WHERE lower(d.email) = ?1 AND d.state = 'sent'
             ORDER BY e.slot_utc DESC LIMIT ?2",
                params![
                    &email.to_ascii_lowercase(),
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
            )?
            .iter())
        .map(|r| r.text(0))
        .collect()
    }

    // The return path: suppressions, what came back, preferences.

    /// Adds a suppression, durably (committed before this returns). An
    /// address already suppressed for that scope keeps its first entry;
    /// returns whether this one was new.
    pub fn suppress(&mut self, s: &Suppression) -> Result<bool> {
        insert_suppression(self.db.as_ref(), s)
    }

    /// [`Ledger::suppress`] and, when the entry is new, the event that says
    /// why, in one transaction: one commit, and never a suppression whose
    /// event a crash lost. Returns whether the entry was new.
    pub fn suppress_with_event(&mut self, s: &Suppression, e: &ReturnEvent) -> Result<bool> {
        let tx = self.tx()?;
        let new = insert_suppression(&*tx, s)?;
        if new {
            insert_event(&*tx, e)?;
        }
        tx.commit()?;
        Ok(new)
    }

    /// Removes the suppressions of `address` (for `scope`, or every scope).
    /// Only entries the person asked for themselves are lifted unless
    /// `force`; the others are returned in `kept`.
    pub fn unsuppress(
        &mut self,
        address: &str,
        scope: Option<&SuppressionScope>,
        force: bool,
    ) -> Result<(Vec<Suppression>, Vec<Suppression>)> {
        let address = address.to_ascii_lowercase();
        let entries: Vec<Suppression> = self
            .suppressions(None, None)?
            .into_iter()
            .filter(|s| s.address == address && scope.is_none_or(|sc| &s.scope == sc))
            .collect();
        let (lift, kept): (Vec<_>, Vec<_>) = entries
            .into_iter()
            .partition(|s| force || s.reason.is_a_request() || s.reason == SuppressionReason::File);
        let tx = self.tx()?;
        for s in &lift {
            tx.execute(
                "DELETE FROM suppressions WHERE address = ?1 AND scope = ?2",
                params![&s.address, s.scope.as_str()],
            )?;
        }
        tx.commit()?;
        Ok((lift, kept))
    }

    /// Suppressions, oldest first: those added since `since`, and those that
    /// cover `newsletter` (its own and the all-newsletters ones).
    pub fn suppressions(
        &self,
        since: Option<DateTime<Utc>>,
        newsletter: Option<&str>,
    ) -> Result<Vec<Suppression>> {
        (self
            .db
            .query(
                "SELECT address, scope, reason, created_at, evidence FROM suppressions
             WHERE (CAST(?1 AS TEXT) IS NULL OR created_at >= ?1)
               AND (CAST(?2 AS TEXT) IS NULL OR scope = '*' OR scope = ?2)
             ORDER BY created_at, address, scope",
                params![&since.map(ts), newsletter],
            )?
            .iter())
        .map(suppression)
        .collect()
    }

    /// The addresses that must not get newsletter `newsletter`.
    pub fn suppressed_for(&self, newsletter: &str) -> Result<HashSet<String>> {
        (self
            .db
            .query(
                "SELECT address FROM suppressions WHERE scope = '*' OR scope = ?1",
                params![newsletter],
            )?
            .iter())
        .map(|r| r.text(0))
        .collect()
    }

    /// Whether `address` must not get `newsletter`, now.
    pub fn is_suppressed(&self, address: &str, newsletter: &str) -> Result<bool> {
        Ok(self
            .db
            .query_opt(
                "SELECT 1 FROM suppressions WHERE address = ?1 AND (scope = '*' OR scope = ?2)",
                params![&address.to_ascii_lowercase(), newsletter],
            )?
            .is_some())
    }

    /// Every suppression of `address`, whatever its scope: what the reader's
    /// own pages show (unsubscribed from this newsletter, from all, bounced).
    pub fn suppressions_of(&self, address: &str) -> Result<Vec<Suppression>> {
        (self
            .db
            .query(
                "SELECT address, scope, reason, created_at, evidence FROM suppressions
             WHERE address = ?1 ORDER BY scope",
                params![&address.to_ascii_lowercase()],
            )?
            .iter())
        .map(suppression)
        .collect()
    }

    /// Whether the database answers a query (`serve`'s health check).
    pub fn ping(&self) -> Result<()> {
        self.db.query("SELECT 1", &[])?;
        Ok(())
    }

    /// Records what came back, durably.
    pub fn record_event(&mut self, e: &ReturnEvent) -> Result<()> {
        insert_event(self.db.as_ref(), e)
    }

    /// The events about `address`, oldest first.
    pub fn events_about(&self, address: &str) -> Result<Vec<ReturnEvent>> {
        (self
            .db
            .query(
                "SELECT address, newsletter, edition_id, kind, at, evidence FROM return_events
             WHERE address = ?1 ORDER BY at, id",
                params![&address.to_ascii_lowercase()],
            )?
            .iter())
        .map(|r| {
            Ok(ReturnEvent {
                address: r.text(0)?,
                newsletter: r.opt_text(1)?,
                edition_id: r.opt_text(2)?,
                kind: r.text(3)?.parse()?,
                at: parse_ts("at", &r.text(4)?)?,
                evidence: parse_json("evidence", &r.text(5)?)?,
            })
        })
        .collect()
    }

    /// What came back about one edition (`Some(id)`) or one newsletter.
    pub fn return_counts(
        &self,
        edition_id: Option<&str>,
        newsletter: Option<&str>,
    ) -> Result<ReturnCounts> {
        let rows = self.db.query(
            "SELECT kind, COUNT(DISTINCT address) FROM return_events
             WHERE (CAST(?1 AS TEXT) IS NULL OR edition_id = ?1) AND (CAST(?2 AS TEXT) IS NULL OR newsletter = ?2)
             GROUP BY kind",
            params![edition_id, newsletter],
        )?;
        let mut c = ReturnCounts::default();
        for r in rows {
            let n = r.count(1)?;
            match r.text(0)?.parse()? {
                ReturnKind::Unsubscribe => c.unsubscribes = n,
                ReturnKind::HardBounce => c.hard_bounces = n,
                ReturnKind::SoftBounce => c.soft_bounces = n,
                ReturnKind::Complaint => c.complaints = n,
                ReturnKind::PolicyBlock => c.policy_blocks = n,
                ReturnKind::Resubscribe => {}
            }
        }
        Ok(c)
    }

    /// Stores a subscriber's choice of sections for a newsletter.
    pub fn set_preferences(
        &mut self,
        address: &str,
        newsletter: &str,
        p: &Preferences,
    ) -> Result<()> {
        self.db.execute(
            "INSERT INTO preferences (address, newsletter, regions, topics, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (address, newsletter)
             DO UPDATE SET regions = ?3, topics = ?4, updated_at = ?5",
            params![
                &address.to_ascii_lowercase(),
                newsletter,
                &serde_json::to_string(&p.regions)?,
                &serde_json::to_string(&p.topics)?,
                &ts(Utc::now())
            ],
        )?;
        Ok(())
    }

    /// The sections `address` chose for `newsletter`, if they chose.
    pub fn preferences_of(&self, address: &str, newsletter: &str) -> Result<Option<Preferences>> {
        (self.db)
            .query_opt(
                "SELECT regions, topics FROM preferences WHERE address = ?1 AND newsletter = ?2",
                params![&address.to_ascii_lowercase(), newsletter],
            )?
            .map(|r| {
                Ok(Preferences {
                    regions: parse_ids(&r.text(0)?)?,
                    topics: parse_ids(&r.text(1)?)?,
                })
            })
            .transpose()
    }

    /// Stored choices, of one newsletter or all, by address.
    pub fn preferences(&self, newsletter: Option<&str>) -> Result<Vec<PreferenceRecord>> {
        (self
            .db
            .query(
                "SELECT address, newsletter, regions, topics, updated_at FROM preferences
             WHERE CAST(?1 AS TEXT) IS NULL OR newsletter = ?1 ORDER BY newsletter, address",
                params![newsletter],
            )?
            .iter())
        .map(|r| {
            Ok(PreferenceRecord {
                address: r.text(0)?,
                newsletter: r.text(1)?,
                preferences: Preferences {
                    regions: parse_ids(&r.text(2)?)?,
                    topics: parse_ids(&r.text(3)?)?,
                },
                updated_at: parse_ts("updated_at", &r.text(4)?)?,
            })
        })
        .collect()
    }

    /// Stores confirmed sign-ups in one transaction: a new (address,
    /// newsletter) is added; one already there keeps its row (its first
    /// spelling, and its name unless this one has one) and takes this
    /// consent when it is newer. Then the suppressions the reader asked for
    /// themselves (one-click, link, mailto) for these newsletters are
    /// lifted, with a `resubscribe` event, when they are older than
    /// `confirming.issued`: a sign-up is a later wish than an unsubscribe
    /// made before its link, never than one made after (a link used again
    /// does not undo it, and stores nothing for that newsletter).
    ///
    /// An unsubscribe from every newsletter is narrowed the same way: it
    /// becomes one per newsletter of `confirming.newsletters` (the
    /// newsroom's) that the reader did not sign up for now, so that
    /// confirming one letter does not resubscribe them to the rest.
    pub fn add_subscribers(
        &mut self,
        rows: &[StoredSubscriber],
        confirming: &Confirming,
    ) -> Result<SignedUp> {
        let tx = self.tx()?;
        let mut out = SignedUp::default();
        let before = ts(confirming.issued);
        for r in rows {
            let address = r.email.to_ascii_lowercase();
            // Unsubscribed since the link was made: that stands, and the
            // link confirms nothing for this newsletter.
            let since = tx
                .query_opt(
                    "SELECT 1 FROM suppressions WHERE address = ?1
                     AND (scope = ?2 OR scope = '*') AND reason IN ('one-click', 'link', 'mailto')
                     AND created_at >= ?3",
                    params![&address, &r.newsletter, &before],
                )?
                .is_some();
            if since {
                out.stale += 1;
                continue;
            }
            if insert_subscriber(&*tx, r)? {
                out.added += 1;
            } else {
                tx.execute(
                    "UPDATE subscribers SET consent_at = ?3, source = ?4, evidence = ?5,
                        name = COALESCE(?6, name)
                     WHERE address = ?1 AND newsletter = ?2 AND consent_at < ?3",
                    params![
                        &address,
                        &r.newsletter,
                        &ts(r.consent_at),
                        &r.source,
                        &r.evidence.to_string(),
                        &r.name
                    ],
                )?;
                out.renewed += 1;
            }
            let chosen: Vec<&str> = (rows.iter())
                .filter(|o| o.email.eq_ignore_ascii_case(&r.email))
                .map(|o| o.newsletter.as_str())
                .collect();
            let all = tx.query_opt(
                "SELECT reason, created_at, evidence FROM suppressions
                 WHERE address = ?1 AND scope = '*' AND reason IN ('one-click', 'link', 'mailto')
                 AND created_at < ?2",
                params![&address, &before],
            )?;
            let narrowed = all.is_some();
            if let Some(all) = all {
                tx.execute(
                    "DELETE FROM suppressions WHERE address = ?1 AND scope = '*'",
                    params![&address],
                )?;
                for other in
                    (confirming.newsletters.iter()).filter(|n| !chosen.contains(&n.as_str()))
                {
                    tx.execute(
                        "INSERT INTO suppressions (address, scope, reason, created_at, evidence)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                        params![&address, other, &all.0[0], &all.0[1], &all.0[2]],
                    )?;
                }
            }
            let lifted = tx.execute(
                "DELETE FROM suppressions WHERE address = ?1 AND scope = ?2
                 AND reason IN ('one-click', 'link', 'mailto') AND created_at < ?3",
                params![&address, &r.newsletter, &before],
            )?;
            if lifted > 0 || narrowed {
                tx.execute(
                    "INSERT INTO return_events (address, newsletter, edition_id, kind, at, evidence)
                     VALUES (?1, ?2, NULL, 'resubscribe', ?3, ?4) ON CONFLICT DO NOTHING",
                    params![
                        &address,
                        &r.newsletter,
                        &ts(r.consent_at),
                        &serde_json::json!({ "via": r.source, "scope": r.newsletter }).to_string()
                    ],
                )?;
                out.lifted += 1;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Stores imported subscribers in one transaction, with the sections
    /// their rows ask for. An import is the newsroom's claim, not the
    /// reader's act: a row already there (signed up, or imported before)
    /// is left as it is, sections a reader chose are kept, and no
    /// suppression is lifted.
    pub fn import_subscribers(
        &mut self,
        rows: &[(StoredSubscriber, Option<Preferences>)],
    ) -> Result<SignedUp> {
        let tx = self.tx()?;
        let mut out = SignedUp::default();
        for (r, p) in rows {
            if !insert_subscriber(&*tx, r)? {
                out.renewed += 1;
                continue;
            }
            out.added += 1;
            if let Some(p) = p {
                tx.execute(
                    "INSERT INTO preferences (address, newsletter, regions, topics, updated_at)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (address, newsletter) DO NOTHING",
                    params![
                        &r.email.to_ascii_lowercase(),
                        &r.newsletter,
                        &serde_json::to_string(&p.regions)?,
                        &serde_json::to_string(&p.topics)?,
                        &ts(r.consent_at)
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Records that a sign-up's confirmation went to `address`.
    pub fn record_confirmation(&mut self, address: &str, at: DateTime<Utc>) -> Result<()> {
        let address = address.to_ascii_lowercase();
        self.db.execute(
            "INSERT INTO confirmations (hash, address, sent_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (hash, address) DO UPDATE SET sent_at = ?3",
            params![
                &crate::mail::message::address_hash(&address),
                &address,
                &ts(at)
            ],
        )?;
        Ok(())
    }

    /// The address a confirmation whose Message-ID carries `hash` went to.
    pub fn confirmation_to(&self, hash: &str) -> Result<Option<String>> {
        (self.db)
            .query_opt(
                "SELECT address FROM confirmations WHERE hash = ?1 ORDER BY sent_at DESC LIMIT 1",
                params![&hash.to_ascii_lowercase()],
            )?
            .map(|r| r.text(0))
            .transpose()
    }

    /// The ledger's subscribers, of one newsletter or all, by newsletter
    /// then address.
    pub fn subscribers(&self, newsletter: Option<&str>) -> Result<Vec<StoredSubscriber>> {
        (self
            .db
            .query(
                "SELECT email, newsletter, name, consent_at, source, evidence FROM subscribers
             WHERE CAST(?1 AS TEXT) IS NULL OR newsletter = ?1 ORDER BY newsletter, address",
                params![newsletter],
            )?
            .iter())
        .map(|r| {
            Ok(StoredSubscriber {
                email: r.text(0)?,
                newsletter: r.text(1)?,
                name: r.opt_text(2)?,
                consent_at: parse_ts("consent_at", &r.text(3)?)?,
                source: r.text(4)?,
                evidence: parse_json("evidence", &r.text(5)?)?,
            })
        })
        .collect()
    }
}

/// A delivery from `email, name, rendering, state, attempts, reply,
/// updated, fields, doubts`.
fn delivery(edition_id: &str, r: &Row) -> Result<Delivery> {
    Ok(Delivery {
        edition_id: edition_id.to_owned(),
        email: r.text(0)?,
        name: r.opt_text(1)?,
        rendering: r.u32(2)?,
        state: r.text(3)?.parse()?,
        attempts: r.u32(4)?,
        last_reply: r.opt_text(5)?,
        updated_at: from_millis(r.int(6)?),
        fields: match r.opt_text(7)? {
            Some(f) => serde_json::from_str(&f)?,
            None => BTreeMap::new(),
        },
        doubts: r.u32(8)?,
    })
}

/// Ends the edition's leases, other than `holder`'s, that expired or whose
/// holder `is_dead`, in the caller's transaction: their claims are free.
fn reap(
    tx: &Tx<'_>,
    edition_id: &str,
    holder: &str,
    now: DateTime<Utc>,
    is_dead: &dyn Fn(&str) -> bool,
) -> Result<Joined> {
    let mut joined = Joined::default();
    let leases = tx.query(
        "SELECT holder, expires_at FROM leases WHERE edition_id = ?1 ORDER BY holder",
        params![edition_id],
    )?;
    for r in leases {
        let other = r.text(0)?;
        if other == holder {
            continue;
        }
        if parse_ts("expires_at", &r.text(1)?)? > now && !is_dead(&other) {
            joined.others.push(other);
            continue;
        }
        tx.execute(
            "DELETE FROM leases WHERE edition_id = ?1 AND holder = ?2",
            params![edition_id, &other],
        )?;
        joined.took_over.push(other);
    }
    Ok(joined)
}

/// Takes the lock that numbers editions: two hosts creating editions at
/// once must not both take the next number (SQLite's write transaction is
/// that lock already).
fn lock_editions(db: &dyn Db) -> Result<()> {
    if db.dialect() == Dialect::Postgres {
        db.batch("LOCK TABLE editions IN SHARE ROW EXCLUSIVE MODE")?;
    }
    Ok(())
}

fn insert_suppression(db: &dyn Db, s: &Suppression) -> Result<bool> {
    let n = db.execute(
        "INSERT INTO suppressions (address, scope, reason, created_at, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (address, scope) DO NOTHING",
        params![
            &s.address.to_ascii_lowercase(),
            s.scope.as_str(),
            s.reason.as_str(),
            &ts(s.created_at),
            &serde_json::to_string(&s.evidence)?
        ],
    )?;
    Ok(n == 1)
}

fn insert_event(db: &dyn Db, e: &ReturnEvent) -> Result<()> {
    db.execute(
        "INSERT INTO return_events (address, newsletter, edition_id, kind, at, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT DO NOTHING",
        params![
            &e.address.to_ascii_lowercase(),
            &e.newsletter,
            &e.edition_id,
            e.kind.as_str(),
            &ts(e.at),
            &serde_json::to_string(&e.evidence)?
        ],
    )?;
    Ok(())
}

/// Adds `r` unless its (address, newsletter) is there; whether it was new.
fn insert_subscriber(db: &dyn Db, r: &StoredSubscriber) -> Result<bool> {
    let n = db.execute(
        "INSERT INTO subscribers (address, newsletter, email, name, consent_at, source, evidence)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (address, newsletter) DO NOTHING",
        params![
            &r.email.to_ascii_lowercase(),
            &r.newsletter,
            &r.email,
            &r.name,
            &ts(r.consent_at),
            &r.source,
            &r.evidence.to_string()
        ],
    )?;
    Ok(n == 1)
}

/// What a confirmation may lift: see [`Ledger::add_subscribers`].
#[derive(Debug, Clone)]
pub struct Confirming {
    /// Every newsletter the newsroom has.
    pub newsletters: Vec<String>,
    /// When the confirmation link was made.
    pub issued: DateTime<Utc>,
}

/// What [`Ledger::add_subscribers`] and [`Ledger::import_subscribers`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SignedUp {
    /// Rows new to the ledger.
    pub added: usize,
    /// Rows that were there already (a confirmation renews their consent
    /// when it is newer; an import leaves them).
    pub renewed: usize,
    /// The reader's own unsubscribes lifted.
    pub lifted: usize,
    /// Rows not stored: the reader unsubscribed after the link was made.
    pub stale: usize,
}
