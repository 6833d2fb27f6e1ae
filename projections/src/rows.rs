//! The rows of a read model, held in memory while a batch of events is folded into them.
//!
//! A read model's state per aggregate (its [`Entity`]) is loaded for all of a batch's aggregates
//! in one statement per table, every event of the batch is folded into it in memory, and only
//! the rows that changed are written back: one upsert per table and, where rows went away, one
//! delete. A batch of one event costs what hand-written SQL per event would; a batch of a
//! thousand costs the same handful of statements, which is what lets a rebuild run at the
//! speed of reading the log.
//!
//! Rows cross the wire as JSON (`jsonb_populate_recordset(null::<table>, $1)`): every row type
//! lists every column of its table by name, so one generic statement per table reads and writes
//! any of them, and the unqualified table name follows `search_path` (live `read`, or a
//! rebuild's schema) like the rest of the projection's SQL.
//!
//! A rebuild knows every row its own tables hold: the rows it compares with were loaded, or
//! kept as written. Its changes ([`Changes::copying_new_rows`]) copy in (`COPY`, see
//! [`crate::copy_text`]) every row whose key the entity did not have, and upsert only rows that
//! changed. The live projector never does this: it cannot know a row is absent.
use std::collections::HashMap;
use std::hash::Hash;

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;

use crate::copy_text::CopyIn;

/// One row of a read-model table: `FromRow` reads it, `Serialize` writes it; its fields are
/// the table's columns, all of them, by name.
pub(crate) trait Row:
    Serialize + for<'r> FromRow<'r, PgRow> + Clone + PartialEq + Send + Sync + Unpin + 'static
{
    /// The table, unqualified.
    const TABLE: &'static str;
    /// The column holding the id of the aggregate the row belongs to.
    const ENTITY: &'static str;
    /// The primary key's columns, comma-separated (the upsert's conflict target).
    const KEY: &'static str;
    /// What tells two rows of one aggregate apart (`()` for a table of one row per aggregate).
    type Key: Eq + Hash;

    fn key(&self) -> Self::Key;
}

/// One aggregate's rows in a read model, as loaded, folded and written back.
#[async_trait]
pub(crate) trait Entity: Clone + Default + PartialEq + Send + Sync + 'static {
    /// The tables, parents before children.
    const TABLES: &'static [&'static str];

    /// The stored rows of these aggregates (those with none are absent from the map).
    async fn load(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Self>, sqlx::Error>;

    /// Records what turns `before` into `self`.
    fn changes(&self, before: &Self, changes: &mut Changes);
}

/// A read model of one table: one row per aggregate, none before its first event.
#[async_trait]
impl<R: Row> Entity for Option<R> {
    const TABLES: &'static [&'static str] = &[R::TABLE];

    async fn load(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Self>, sqlx::Error> {
        let rows = load_rows::<R>(conn, ids).await?;
        Ok(rows.into_iter().map(|(id, row)| (id, Some(row))).collect())
    }

    fn changes(&self, before: &Self, changes: &mut Changes) {
        changes.diff(before.as_slice(), self.as_slice());
    }
}

/// A read model of a parent table and a child table (a quote and its lines).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WithChildren<P, C> {
    pub row: Option<P>,
    pub children: Vec<C>,
}

impl<P, C> Default for WithChildren<P, C> {
    fn default() -> Self {
        Self {
            row: None,
            children: Vec::new(),
        }
    }
}

#[async_trait]
impl<P: Row, C: Row> Entity for WithChildren<P, C> {
    const TABLES: &'static [&'static str] = &[P::TABLE, C::TABLE];

    async fn load(
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<HashMap<Uuid, Self>, sqlx::Error> {
        let mut entities: HashMap<Uuid, Self> = load_rows::<P>(conn, ids)
            .await?
            .into_iter()
            .map(|(id, row)| {
                let entity = Self {
                    row: Some(row),
                    children: Vec::new(),
                };
                (id, entity)
            })
            .collect();
        for (id, child) in load_rows::<C>(conn, ids).await? {
            entities.entry(id).or_default().children.push(child);
        }
        Ok(entities)
    }

    fn changes(&self, before: &Self, changes: &mut Changes) {
        changes.diff(before.row.as_slice(), self.row.as_slice());
        changes.diff(&before.children, &self.children);
    }
}

/// The rows of `R` belonging to `ids`, with the aggregate each belongs to, in key order.
async fn load_rows<R: Row>(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, R)>, sqlx::Error> {
    let sql = format!(
        "select t.{entity} as entity__, t.* from {table} t where t.{entity} = any($1) \
         order by {key}",
        entity = R::ENTITY,
        table = R::TABLE,
        key = R::KEY,
    );
    let rows: Vec<PgRow> = sqlx::query(&sql).bind(ids).fetch_all(conn).await?;
    rows.iter()
        .map(|row| {
            use sqlx::Row as _;
            Ok((row.try_get("entity__")?, R::from_row(row)?))
        })
        .collect()
}

/// A time from an event's payload as a `timestamptz` column holds it: to the microsecond,
/// truncated (as sqlx binds it). Written as JSON with its nanoseconds, Postgres would round
/// instead, and a row would differ by a microsecond from what the event says.
pub(crate) fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Rows to write and rows to delete, per table, in the order tables were first touched.
#[derive(Default)]
pub(crate) struct Changes {
    tables: Vec<TableChanges>,
    /// Whether rows of new keys are copied in (see [`Changes::copying_new_rows`]).
    copy_new_rows: bool,
}

struct TableChanges {
    table: &'static str,
    key: &'static str,
    upserts: Vec<serde_json::Value>,
    deletes: Vec<serde_json::Value>,
    /// Rows of keys that are not stored: copied in, no conflict possible (a rebuild).
    inserts: Vec<serde_json::Value>,
    /// The inserts encoded ahead of the write (see [`Changes::encode_inserts`]).
    encoded: Option<CopyIn>,
}

impl Changes {
    /// Changes whose rows of keys the entity did not have are copied in (`COPY`) rather than
    /// upserted: for a rebuild, which knows the rows it compares with are all the rows its
    /// tables hold for the entity (every key names its entity).
    pub(crate) fn copying_new_rows() -> Self {
        Self {
            copy_new_rows: true,
            ..Self::default()
        }
    }

    /// Records the rows of `after` that are new or differ from `before`, and the rows of
    /// `before` whose key `after` no longer has.
    pub(crate) fn diff<R: Row>(&mut self, before: &[R], after: &[R]) {
        let old: HashMap<R::Key, &R> = before.iter().map(|row| (row.key(), row)).collect();
        let kept: std::collections::HashSet<R::Key> = after.iter().map(Row::key).collect();
        let (mut upserts, mut inserts) = (Vec::new(), Vec::new());
        for row in after {
            match old.get(&row.key()) {
                Some(stored) if *stored == row => {}
                None if self.copy_new_rows => inserts.push(to_json(row)),
                _ => upserts.push(to_json(row)),
            }
        }
        let deletes: Vec<_> = before
            .iter()
            .filter(|row| !kept.contains(&row.key()))
            .map(to_json)
            .collect();
        if upserts.is_empty() && deletes.is_empty() && inserts.is_empty() {
            return;
        }
        let table = self.table::<R>();
        table.upserts.extend(upserts);
        table.deletes.extend(deletes);
        table.inserts.extend(inserts);
    }

    fn table<R: Row>(&mut self) -> &mut TableChanges {
        let at = match self.tables.iter().position(|t| t.table == R::TABLE) {
            Some(at) => at,
            None => {
                self.tables.push(TableChanges {
                    table: R::TABLE,
                    key: R::KEY,
                    upserts: Vec::new(),
                    deletes: Vec::new(),
                    inserts: Vec::new(),
                    encoded: None,
                });
                self.tables.len() - 1
            }
        };
        &mut self.tables[at]
    }

    /// Encodes the rows to copy in now, so that [`Changes::write`] only sends them.
    pub(crate) fn encode_inserts(&mut self) {
        for table in &mut self.tables {
            table.encoded = CopyIn::encode(table.table, &std::mem::take(&mut table.inserts));
        }
    }

    /// Writes everything: deletes children first (tables in reverse of `order`), then upserts
    /// and copies parents first.
    pub(crate) async fn write(
        self,
        conn: &mut PgConnection,
        order: &[&str],
    ) -> Result<(), sqlx::Error> {
        let rank = |table: &str| order.iter().position(|t| *t == table);
        let mut tables = self.tables;
        tables.sort_by_key(|t| rank(t.table));
        for table in tables.iter_mut().rev() {
            delete(conn, table).await?;
        }
        for table in &mut tables {
            upsert(conn, table).await?;
            let copy =
                (table.encoded.take()).or_else(|| CopyIn::encode(table.table, &table.inserts));
            if let Some(copy) = copy {
                copy.send(conn).await?;
            }
        }
        Ok(())
    }
}

fn to_json<R: Row>(row: &R) -> serde_json::Value {
    serde_json::to_value(row).expect("a row serializes")
}

async fn delete(conn: &mut PgConnection, table: &mut TableChanges) -> Result<(), sqlx::Error> {
    if table.deletes.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "delete from {name} t using jsonb_populate_recordset(null::{name}, $1) k \
         where ({key_t}) = ({key_k})",
        name = table.table,
        key_t = qualified("t", table.key),
        key_k = qualified("k", table.key),
    );
    sqlx::query(&sql)
        .bind(serde_json::Value::Array(std::mem::take(&mut table.deletes)))
        .execute(conn)
        .await?;
    Ok(())
}

async fn upsert(conn: &mut PgConnection, table: &mut TableChanges) -> Result<(), sqlx::Error> {
    if table.upserts.is_empty() {
        return Ok(());
    }
    let keys: Vec<&str> = table.key.split(',').map(str::trim).collect();
    let columns: Vec<&str> = match &table.upserts[0] {
        serde_json::Value::Object(fields) => fields
            .keys()
            .map(String::as_str)
            .filter(|c| !keys.contains(c))
            .collect(),
        _ => unreachable!("rows serialize as objects"),
    };
    let sql = format!(
        "insert into {name} select * from jsonb_populate_recordset(null::{name}, $1) \
         on conflict ({key}) do update set ({columns}) = row({excluded})",
        name = table.table,
        key = table.key,
        columns = columns.join(", "),
        excluded = qualified("excluded", &columns.join(",")),
    );
    sqlx::query(&sql)
        .bind(serde_json::Value::Array(std::mem::take(&mut table.upserts)))
        .execute(conn)
        .await?;
    Ok(())
}

/// `a, b` as `t.a, t.b`.
fn qualified(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|c| format!("{alias}.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}
