//! Moving a SQLite database to PostgreSQL (`userjourneys admin copy-to-postgres`), for a
//! server that outgrew one process: every table's rows, as they are, in one PostgreSQL
//! transaction, so the copy lands whole or not at all.
//!
//! Both schemas come from the same migrations, so each table has the same columns on both
//! sides; values are read from SQLite as text and cast to the PostgreSQL column's type
//! (timestamps, integers, booleans), `BYTEA` as hex. Rows are streamed a batch at a time:
//! memory stays bounded however many members an audience has.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sqlx::Row;

use crate::{PgStore, SqliteStore, StoreError};

/// Why a copy was refused or failed. A refusal leaves both databases as they were; a copy
/// that fails part-way leaves PostgreSQL with this release's schema and no rows.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("there is no SQLite database at {0}: set DATABASE_URL to the server's file")]
    NoSource(String),
    #[error(
        "the PostgreSQL database already holds a UserJourneys installation ({0}); copy into an \
         empty database"
    )]
    NotEmpty(String),
    #[error(
        "the PostgreSQL database holds tables of another application ({0}); copy into a \
         database of its own"
    )]
    Foreign(String),
    #[error("the two schemas differ: {0}")]
    Schema(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        CopyError::Store(error.into())
    }
}

/// Parameters per statement stay under PostgreSQL's 65,535.
const MAX_PARAMETERS: usize = 60_000;
/// Rows per statement at most.
const MAX_ROWS: usize = 1_000;

/// Copies every row of the SQLite database `from` into the empty PostgreSQL database `to`,
/// both migrated to this build's schema first. Holds the SQLite file as its server would,
/// so none serves it meanwhile. Returns each table's row count.
pub async fn copy_sqlite_to_postgres(
    from: &str,
    to: &str,
) -> Result<BTreeMap<String, u64>, CopyError> {
    // Looked at before either is opened: opening migrates (and would make a SQLite file).
    let file = SqliteStore::file_of(from)?;
    if !file.is_file() {
        return Err(CopyError::NoSource(file.display().to_string()));
    }
    refuse_unless_empty(to).await?;
    let source = SqliteStore::connect_as_server(from).await?;
    let target = PgStore::connect(to).await?;
    let (source, target) = (source.reader(), target.writer());
    let columns = target_columns(target).await?;
    let order = parents_first(target, columns.keys().cloned().collect()).await?;
    let mut tx = target.begin().await?;
    // A server started on the database once recorded its key: the copy's is the one kept.
    sqlx::query("DELETE FROM application_key")
        .execute(&mut *tx)
        .await?;
    let mut copied = BTreeMap::new();
    for table in order {
        let columns = &columns[&table];
        check_columns(source, &table, columns).await?;
        let rows = copy_table(source, &mut tx, &table, columns).await?;
        copied.insert(table, rows);
    }
    tx.commit().await?;
    // Statistics for the planner at once (autovacuum would gather them later).
    sqlx::query("ANALYZE").execute(target).await?;
    Ok(copied)
}

/// Refuses a PostgreSQL database that holds rows of an installation, or tables another
/// application made; a new one, or one a server of this or an older release only migrated
/// (and recorded its key in), is taken.
async fn refuse_unless_empty(to: &str) -> Result<(), CopyError> {
    use sqlx::Connection;
    let mut target = sqlx::PgConnection::connect(to).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT relname::text FROM pg_class
         WHERE relnamespace = current_schema()::regnamespace AND relkind IN ('r', 'p', 'f', 'v', 'm')
         ORDER BY relname",
    )
    .fetch_all(&mut target)
    .await?;
    if tables.is_empty() {
        return Ok(());
    }
    // Ours when its first migration is this project's (another sqlx application has the
    // bookkeeping table too).
    let ours = tables.iter().any(|t| t == "_sqlx_migrations")
        && sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM _sqlx_migrations WHERE version = 1 AND description = 'foundation')",
        )
        .fetch_one(&mut target)
        .await?;
    if !ours {
        let named: Vec<&str> = tables.iter().take(10).map(String::as_str).collect();
        return Err(CopyError::Foreign(named.join(", ")));
    }
    for table in &tables {
        if table == "_sqlx_migrations" || table == "application_key" {
            continue;
        }
        let rows: bool = sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM \"{table}\")"))
            .fetch_one(&mut target)
            .await?;
        if rows {
            return Err(CopyError::NotEmpty(format!("rows in {table}")));
        }
    }
    Ok(())
}

/// Each table of the PostgreSQL schema (migrations' bookkeeping aside) and its columns with
/// their types, in column order.
async fn target_columns(
    target: &sqlx::PgPool,
) -> Result<BTreeMap<String, Vec<(String, String)>>, CopyError> {
    let rows = sqlx::query(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, a.atttypmod)
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
           AND a.attnum > 0 AND NOT a.attisdropped AND c.relname <> '_sqlx_migrations'
         ORDER BY c.relname, a.attnum",
    )
    .fetch_all(target)
    .await?;
    let mut tables: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in rows {
        tables
            .entry(row.get(0))
            .or_default()
            .push((row.get(1), row.get(2)));
    }
    Ok(tables)
}

/// `tables` ordered so that each comes after the tables its foreign keys name.
async fn parents_first(
    target: &sqlx::PgPool,
    tables: BTreeSet<String>,
) -> Result<Vec<String>, CopyError> {
    let edges: Vec<(String, String)> = sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text
         FROM pg_constraint k
         JOIN pg_class child ON child.oid = k.conrelid
         JOIN pg_class parent ON parent.oid = k.confrelid
         WHERE k.contype = 'f' AND k.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(target)
    .await?;
    let mut order = Vec::with_capacity(tables.len());
    let mut left = tables;
    while !left.is_empty() {
        let ready: Vec<String> = left
            .iter()
            .filter(|table| {
                !edges.iter().any(|(child, parent)| {
                    child == *table && parent != *table && left.contains(parent)
                })
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(CopyError::Schema(format!(
                "the foreign keys of {left:?} form a cycle"
            )));
        }
        for table in ready {
            left.remove(&table);
            order.push(table);
        }
    }
    Ok(order)
}

/// The SQLite table has the same columns as PostgreSQL's (the same migrations made both).
async fn check_columns(
    source: &sqlx::SqlitePool,
    table: &str,
    columns: &[(String, String)],
) -> Result<(), CopyError> {
    let names: Vec<String> =
        sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
            .fetch_all(source)
            .await?;
    let ours: BTreeSet<&str> = names.iter().map(String::as_str).collect();
    let theirs: BTreeSet<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
    if ours != theirs {
        return Err(CopyError::Schema(format!(
            "table {table} has columns {ours:?} in SQLite and {theirs:?} in PostgreSQL"
        )));
    }
    Ok(())
}

/// Copies one table's rows a batch at a time; returns how many.
async fn copy_table(
    source: &sqlx::SqlitePool,
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    table: &str,
    columns: &[(String, String)],
) -> Result<u64, CopyError> {
    let read: Vec<String> = columns
        .iter()
        .map(|(name, kind)| match kind.as_str() {
            "bytea" => format!("hex(\"{name}\")"),
            _ => format!("CAST(\"{name}\" AS TEXT)"),
        })
        .collect();
    let select = format!("SELECT {} FROM \"{table}\"", read.join(", "));
    let names: Vec<String> = columns.iter().map(|(n, _)| format!("\"{n}\"")).collect();
    let per_batch = (MAX_PARAMETERS / columns.len()).clamp(1, MAX_ROWS);
    let mut rows = sqlx::query(&select).fetch(source);
    let mut batch: Vec<Vec<Option<String>>> = Vec::with_capacity(per_batch);
    let mut copied = 0;
    loop {
        let row = rows.try_next().await?;
        if let Some(row) = &row {
            batch.push(
                (0..columns.len())
                    .map(|i| row.try_get::<Option<String>, _>(i))
                    .collect::<Result<_, _>>()?,
            );
        }
        if batch.len() == per_batch || (row.is_none() && !batch.is_empty()) {
            let mut insert = format!("INSERT INTO \"{table}\" ({}) VALUES ", names.join(", "));
            let mut n = 0;
            for (r, _) in batch.iter().enumerate() {
                insert.push_str(if r == 0 { "(" } else { ", (" });
                for (c, (_, kind)) in columns.iter().enumerate() {
                    n += 1;
                    let value = match kind.as_str() {
                        "bytea" => format!("decode(${n}, 'hex')"),
                        _ => format!("${n}::{kind}"),
                    };
                    insert.push_str(if c == 0 { "" } else { ", " });
                    insert.push_str(&value);
                }
                insert.push(')');
            }
            let mut query = sqlx::query(&insert);
            for value in batch.drain(..).flatten() {
                query = query.bind(value);
            }
            copied += query.execute(&mut **tx).await?.rows_affected();
        }
        if row.is_none() {
            return Ok(copied);
        }
    }
}
