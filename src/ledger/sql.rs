//! What the ledger's queries need of a database, so that they are written
//! once for both backends (`store.rs`): run a statement with parameters,
//! read rows of integers and text, and a transaction that rolls back unless
//! committed. SQL is written in the dialect both share, with SQLite's `?N`
//! placeholders (the PostgreSQL backend turns them into `$N`); the few
//! places they differ ask [`Db::dialect`].

use std::ops::Deref;

use super::{DeliveryUpdate, LedgerError, Result};

/// One pending delivery as frozen; the audience is deduplicated already,
/// and if not, the first row wins.
pub const INSERT_PENDING: &str =
    "INSERT INTO deliveries (edition_num, email, name, rendering, fields, state, updated)
     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6)
     ON CONFLICT (edition_num, email) DO NOTHING";

/// Which database a [`Db`] is, for the statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Starts a transaction that writes: SQLite takes the write lock at
    /// once (so two writers queue instead of one failing on upgrade).
    fn begin(self) -> &'static str {
        match self {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        }
    }

    /// Appended to a `SELECT` in a transaction that decides on what it
    /// read: PostgreSQL locks the rows until the commit; SQLite's
    /// transaction holds the whole database's write lock already.
    pub fn for_update(self) -> &'static str {
        match self {
            Dialect::Sqlite => "",
            Dialect::Postgres => " FOR UPDATE",
        }
    }
}

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Text(String),
}

/// A parameter of a statement.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(s: &'a str) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(s: &'a String) -> Self {
        Param::Text(s)
    }
}

impl<'a> From<&'a &str> for Param<'a> {
    fn from(s: &'a &str) -> Self {
        Param::Text(s)
    }
}

impl From<i64> for Param<'_> {
    fn from(n: i64) -> Self {
        Param::Int(n)
    }
}

impl From<u32> for Param<'_> {
    fn from(n: u32) -> Self {
        Param::Int(i64::from(n))
    }
}

impl<'a, T> From<Option<T>> for Param<'a>
where
    Param<'a>: From<T>,
{
    fn from(v: Option<T>) -> Self {
        v.map_or(Param::Null, Param::from)
    }
}

impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        v.as_deref().map_or(Param::Null, Param::Text)
    }
}

impl<'a> From<&'a Value> for Param<'a> {
    fn from(v: &'a Value) -> Self {
        match v {
            Value::Null => Param::Null,
            Value::Int(n) => Param::Int(*n),
            Value::Text(s) => Param::Text(s),
        }
    }
}

/// `params![a, b]`: the parameters of a statement, each through
/// [`Param::from`].
macro_rules! params {
    ($($e:expr),* $(,)?) => {
        &[$($crate::ledger::sql::Param::from($e)),*][..]
    };
}
pub(super) use params;

/// One row of a result, its columns in the query's order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row(pub Vec<Value>);

impl Row {
    fn value(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    fn wrong(&self, i: usize, expected: &'static str) -> LedgerError {
        LedgerError::Column {
            index: i,
            expected,
            found: format!("{:?}", self.value(i)),
        }
    }

    pub fn text(&self, i: usize) -> Result<String> {
        match self.value(i) {
            Value::Text(s) => Ok(s.clone()),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.value(i) {
            Value::Null => Ok(None),
            Value::Text(s) => Ok(Some(s.clone())),
            _ => Err(self.wrong(i, "text or NULL")),
        }
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        match self.value(i) {
            Value::Int(n) => Ok(*n),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// A count or a small number that is never negative.
    pub fn count(&self, i: usize) -> Result<u64> {
        Ok(u64::try_from(self.int(i)?).unwrap_or(0))
    }

    pub fn u32(&self, i: usize) -> Result<u32> {
        u32::try_from(self.int(i)?).map_err(|_| self.wrong(i, "a small integer"))
    }
}

/// A connection the ledger's queries run on. Calls take `&self`: a backend
/// keeps what a call changes (its statement cache, its connection) inside.
pub trait Db: Send {
    fn dialect(&self) -> Dialect;
    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, params: &[Param<'_>]) -> Result<u64>;
    /// Runs one query; every row.
    fn query(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>>;
    /// Runs statements without parameters (a schema, `BEGIN`).
    fn batch(&self, sql: &str) -> Result<()>;

    /// Stores an edition's pending deliveries (in the caller's
    /// transaction). One statement a row here; a backend with a faster way
    /// (PostgreSQL's arrays) overrides it.
    fn insert_pending(&self, num: i64, rows: &[Pending<'_>], updated: i64) -> Result<()> {
        for p in rows {
            self.execute(INSERT_PENDING, &pending_params(num, p, updated))?;
        }
        Ok(())
    }

    /// Records outcomes of edition `num`'s deliveries (in the caller's
    /// transaction), in order, with `store::RECORD_OUTCOME`'s rules; the
    /// rows changed. One statement each here; PostgreSQL sends a batch in
    /// one.
    fn record_outcomes(&self, num: i64, outcomes: &[&DeliveryUpdate], now: i64) -> Result<u64> {
        record_one_by_one(self, num, outcomes, now)
    }

    /// The first row, if any.
    fn query_opt(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
}

/// A transaction on a [`Db`]: statements run on it through `Deref`; it
/// rolls back when dropped without [`Tx::commit`].
pub struct Tx<'a> {
    db: &'a (dyn Db + 'static),
    open: bool,
}

impl<'a> Tx<'a> {
    pub fn begin(db: &'a (dyn Db + 'static)) -> Result<Tx<'a>> {
        db.batch(db.dialect().begin())?;
        Ok(Tx { db, open: true })
    }

    pub fn commit(mut self) -> Result<()> {
        self.db.batch("COMMIT")?;
        self.open = false;
        Ok(())
    }
}

impl Deref for Tx<'_> {
    type Target = dyn Db + 'static;

    fn deref(&self) -> &Self::Target {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.batch("ROLLBACK");
        }
    }
}

/// One pending delivery as frozen: see [`Db::insert_pending`].
pub struct Pending<'a> {
    pub email: &'a str,
    pub name: Option<&'a str>,
    pub rendering: u32,
    /// The recipient's fields as a JSON object, or `None`.
    pub fields: Option<String>,
}

/// One outcome: only a delivery a run may still try changes (the
/// condition is `store::OPEN`'s).
pub(super) const RECORD_OUTCOME: &str = "UPDATE deliveries
     SET state = ?3, attempts = attempts + ?4,
         reply = CASE WHEN ?3 = 'sent' THEN NULL ELSE COALESCE(?5, reply) END,
         updated = ?6,
         doubts = doubts + CASE WHEN ?3 = 'in_doubt' THEN 1 ELSE 0 END,
         claim = CASE WHEN ?3 IN ('sent', 'failed', 'suppressed') THEN NULL ELSE claim END
     WHERE edition_num = ?1 AND email = ?2
       AND (state IN ('pending', 'deferred') OR (state = 'in_doubt' AND doubts < 2))";

/// Outcomes of edition `num` one statement each, in order: see
/// [`Db::record_outcomes`].
pub(super) fn record_one_by_one<D: Db + ?Sized>(
    db: &D,
    num: i64,
    outcomes: &[&DeliveryUpdate],
    now: i64,
) -> Result<u64> {
    let mut changed = 0;
    for o in outcomes {
        changed += db.execute(
            RECORD_OUTCOME,
            params![num, &o.email, o.state.as_str(), o.attempts, &o.reply, now],
        )?;
    }
    Ok(changed)
}

/// Parameters of one pending delivery for a backend's bulk insert.
pub(super) fn pending_params<'a>(num: i64, p: &'a Pending<'a>, updated: i64) -> [Param<'a>; 6] {
    [
        Param::Int(num),
        Param::Text(p.email),
        Param::from(p.name),
        Param::from(p.rendering),
        Param::from(p.fields.as_deref()),
        Param::Int(updated),
    ]
}
