//! Where PostgreSQL and SQLite differ, named in one trait: how a statement
//! runs and its rows are read, bulk writes, locks, statistics, collation
//! and case folding. The store's SQL is otherwise the same for both (both
//! accept `$N` placeholders, `ON CONFLICT` and `RETURNING`).

use std::sync::Arc;

use async_trait::async_trait;
use futures::TryStreamExt as _;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use crate::bulk::{Cell, Rows, copy_in};
use crate::row::{Row, Value};
use crate::{Result, StoreError};
use dirsync_core::UnixMillis;

#[async_trait]
pub trait Dialect: sqlx::Database {
    /// The collation under which text compares bytewise, as ranks and
    /// anchors are meant to (` COLLATE "C"`; SQLite's default already).
    const BYTEWISE: &'static str;
    /// The function a search folds case with before `LIKE` (SQLite's
    /// `LIKE` ignores ASCII case already, and its `lower()` folds only
    /// ASCII: none).
    const FOLD: &'static str;

    /// Hands each row `sql` gives with `args` bound to `$1`, `$2`, … to
    /// `each` as it arrives.
    async fn fetch_each(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Cell<'_>],
        each: &mut (dyn FnMut(Row) -> Result<()> + Send),
    ) -> Result<()>;

    /// The rows `sql` gives with `args` bound.
    async fn fetch(conn: &mut Self::Connection, sql: &str, args: &[Cell<'_>]) -> Result<Vec<Row>> {
        let mut rows = Vec::new();
        Self::fetch_each(conn, sql, args, &mut |r| {
            rows.push(r);
            Ok(())
        })
        .await?;
        Ok(rows)
    }

    /// Runs `sql` with `args`; the rows it changed.
    async fn execute(conn: &mut Self::Connection, sql: &str, args: &[Cell<'_>]) -> Result<u64>;

    /// `INSERT INTO {table} ({columns}) …rows {tail}`, where `tail` is a
    /// conflict clause or empty. PostgreSQL copies rows (`COPY`), straight
    /// into the table without a tail; SQLite inserts many rows a statement.
    async fn insert_rows(
        conn: &mut Self::Connection,
        rows: &Rows<'_>,
        tail: &'static str,
    ) -> Result<()>;

    /// Creates an empty temporary table for this transaction.
    async fn temp_table(
        conn: &mut Self::Connection,
        name: &'static str,
        columns: &'static str,
    ) -> Result<()>;

    /// Makes the transaction the only one changing the account's objects
    /// and address claims until it ends. PostgreSQL takes a
    /// transaction-level advisory lock; SQLite has one writer at a time
    /// anyway.
    async fn lock_account(conn: &mut Self::Connection, account: &str) -> Result<()>;

    /// Whether the database's statistics no longer describe the tables
    /// once an apply wrote `written` objects: past its own auto-analyze
    /// threshold (50 rows and a tenth of the rows its statistics count in
    /// `objects`), or never gathered.
    async fn statistics_stale(conn: &mut Self::Connection, written: usize) -> Result<bool>;

    /// Gathers the statistics of the tables an apply wrote, within its
    /// transaction.
    async fn analyze_applied(conn: &mut Self::Connection) -> Result<()>;

    /// Gathers a temporary table's statistics, where the database does not
    /// on its own.
    async fn analyze_temp(conn: &mut Self::Connection, table: &'static str) -> Result<()>;

    /// Settings for a transaction that reads large sets (an apply's).
    async fn prepare_large_reads(conn: &mut Self::Connection) -> Result<()>;

    /// When the database server started, if that loses anything: a
    /// PostgreSQL crash empties unlogged tables (staging); SQLite keeps
    /// them, `None`.
    async fn started_at(conn: &mut Self::Connection) -> Result<Option<UnixMillis>>;
}

/// The names of a result's columns, once per result.
fn names<R: sqlx::Row>(row: &R) -> Arc<[String]> {
    row.columns().iter().map(|c| c.name().to_owned()).collect()
}

fn unread_type(column: usize, type_name: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "column {column} of a result is of type {type_name}, which the store does not read"
    ))
}

fn pg_row(row: &sqlx::postgres::PgRow, names: &Arc<[String]>) -> Result<Row> {
    let mut values = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        let type_name = raw.type_info().name().to_owned();
        values.push(match type_name.as_str() {
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" => Value::Text(row.try_get(i)?),
            "INT8" => Value::Int(row.try_get(i)?),
            "INT4" => Value::Int(row.try_get::<i32, _>(i)?.into()),
            "INT2" => Value::Int(row.try_get::<i16, _>(i)?.into()),
            "BOOL" => Value::Bool(row.try_get(i)?),
            "BYTEA" => Value::Bytes(row.try_get(i)?),
            "FLOAT8" => Value::Real(row.try_get(i)?),
            "FLOAT4" => Value::Real(row.try_get::<f32, _>(i)?.into()),
            other => return Err(unread_type(i, other)),
        });
    }
    Ok(Row::new(names.clone(), values))
}

fn sqlite_row(row: &sqlx::sqlite::SqliteRow, names: &Arc<[String]>) -> Result<Row> {
    let mut values = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let raw = row.try_get_raw(i)?;
        if raw.is_null() {
            values.push(Value::Null);
            continue;
        }
        // The value's own storage class (SQLite types values, not columns).
        let type_name = raw.type_info().name().to_owned();
        values.push(match type_name.as_str() {
            "TEXT" => Value::Text(row.try_get(i)?),
            "INTEGER" | "BIGINT" | "INT8" | "BOOLEAN" => Value::Int(row.try_get(i)?),
            "REAL" => Value::Real(row.try_get(i)?),
            "BLOB" => Value::Bytes(row.try_get(i)?),
            other => return Err(unread_type(i, other)),
        });
    }
    Ok(Row::new(names.clone(), values))
}

/// `sqlx::query` of `sql` with `args` bound, for database `$db`.
macro_rules! bound {
    ($db:ty, $sql:expr, $args:expr) => {{
        let mut q = sqlx::query::<$db>(sqlx::AssertSqlSafe($sql));
        for cell in $args {
            q = match cell {
                Cell::Text(s) => q.bind(s.as_ref()),
                Cell::Bool(b) => q.bind(*b),
                Cell::Int(n) => q.bind(*n),
                Cell::Bytes(b) => q.bind(b.as_ref()),
                Cell::Null(crate::bulk::Kind::Text) => q.bind(None::<&str>),
                Cell::Null(crate::bulk::Kind::Bool) => q.bind(None::<bool>),
                Cell::Null(crate::bulk::Kind::Int) => q.bind(None::<i64>),
                Cell::Null(crate::bulk::Kind::Bytes) => q.bind(None::<&[u8]>),
            };
        }
        q
    }};
}

#[async_trait]
impl Dialect for sqlx::Postgres {
    const BYTEWISE: &'static str = " COLLATE \"C\"";
    const FOLD: &'static str = "lower";

    async fn fetch_each(
        conn: &mut sqlx::PgConnection,
        sql: &str,
        args: &[Cell<'_>],
        each: &mut (dyn FnMut(Row) -> Result<()> + Send),
    ) -> Result<()> {
        let mut rows = bound!(sqlx::Postgres, sql, args).fetch(conn);
        let mut columns = None;
        while let Some(r) = rows.try_next().await? {
            let columns = columns.get_or_insert_with(|| names(&r));
            each(pg_row(&r, columns)?)?;
        }
        Ok(())
    }

    async fn execute(conn: &mut sqlx::PgConnection, sql: &str, args: &[Cell<'_>]) -> Result<u64> {
        Ok(bound!(sqlx::Postgres, sql, args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn insert_rows(
        conn: &mut sqlx::PgConnection,
        rows: &Rows<'_>,
        tail: &'static str,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = rows.columns.join(", ");
        if tail.is_empty() {
            // Nothing to resolve: straight into the table.
            return copy_in(conn, rows.table, &columns, rows).await;
        }
        let stage = format!("bulk_{}", rows.table);
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE {stage} ON COMMIT DROP AS SELECT {columns} FROM {} WITH NO DATA",
            rows.table
        )))
        .execute(&mut *conn)
        .await?;
        copy_in(conn, &stage, &columns, rows).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} {tail}; DROP TABLE {stage}",
            table = rows.table
        )))
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    async fn temp_table(
        conn: &mut sqlx::PgConnection,
        name: &'static str,
        columns: &'static str,
    ) -> Result<()> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE TEMP TABLE {name} ({columns}) ON COMMIT DROP"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn lock_account(conn: &mut sqlx::PgConnection, account: &str) -> Result<()> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('dirsync account ' || $1, 0))")
            .bind(account)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn statistics_stale(conn: &mut sqlx::PgConnection, written: usize) -> Result<bool> {
        let counted: f32 =
            sqlx::query_scalar("SELECT reltuples FROM pg_class WHERE oid = 'objects'::regclass")
                .fetch_one(conn)
                .await?;
        // -1: never analyzed.
        Ok(counted < 0.0 || written as f64 > 50.0 + 0.1 * f64::from(counted))
    }

    async fn analyze_applied(conn: &mut sqlx::PgConnection) -> Result<()> {
        // Statistics that include what this transaction wrote (ANALYZE
        // counts its own uncommitted rows): without them PostgreSQL
        // believes the tables of a first sync hold a few hundred rows and
        // plans the apply's joins for that. Holds the tables' ANALYZE lock
        // until commit, so large applies take turns here. The columns the
        // statements of an apply look rows up by, not the wide ones (the
        // record, the DN, names), whose statistics cost as much again and
        // serve no plan here; autovacuum's ANALYZE after the commit
        // gathers those.
        sqlx::raw_sql(
            "ANALYZE objects (account_id, anchor, integration_id, kind, managed, manager_anchor), \
             address_claims (account_id, address, anchor, owner, contested), \
             members (account_id, group_anchor, member_anchor)",
        )
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn analyze_temp(conn: &mut sqlx::PgConnection, table: &'static str) -> Result<()> {
        // Temporary tables are never analyzed on their own.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn prepare_large_reads(conn: &mut sqlx::PgConnection) -> Result<()> {
        sqlx::raw_sql("SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL work_mem = '64MB'")
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn started_at(conn: &mut sqlx::PgConnection) -> Result<Option<UnixMillis>> {
        let started: i64 = sqlx::query_scalar(
            "SELECT CAST(EXTRACT(EPOCH FROM pg_postmaster_start_time()) * 1000 AS BIGINT)",
        )
        .fetch_one(conn)
        .await?;
        Ok(Some(started))
    }
}

#[async_trait]
impl Dialect for sqlx::Sqlite {
    const BYTEWISE: &'static str = "";
    const FOLD: &'static str = "";

    async fn fetch_each(
        conn: &mut sqlx::SqliteConnection,
        sql: &str,
        args: &[Cell<'_>],
        each: &mut (dyn FnMut(Row) -> Result<()> + Send),
    ) -> Result<()> {
        let mut rows = bound!(sqlx::Sqlite, sql, args).fetch(conn);
        let mut columns = None;
        while let Some(r) = rows.try_next().await? {
            let columns = columns.get_or_insert_with(|| names(&r));
            each(sqlite_row(&r, columns)?)?;
        }
        Ok(())
    }

    async fn execute(
        conn: &mut sqlx::SqliteConnection,
        sql: &str,
        args: &[Cell<'_>],
    ) -> Result<u64> {
        Ok(bound!(sqlx::Sqlite, sql, args)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn insert_rows(
        conn: &mut sqlx::SqliteConnection,
        rows: &Rows<'_>,
        tail: &'static str,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let width = rows.columns.len();
        // Within SQLite's 32766 bound parameters.
        let per_statement = (32_000 / width).max(1);
        for part in rows.cells.chunks(width * per_statement) {
            let mut qb = sqlx::QueryBuilder::<sqlx::Sqlite>::new(format!(
                "INSERT INTO {} ({}) ",
                rows.table,
                rows.columns.join(", ")
            ));
            qb.push_values(part.chunks(width), |mut row, cells| {
                for cell in cells {
                    match cell {
                        Cell::Text(s) => row.push_bind(s.as_ref()),
                        Cell::Null(_) => row.push_bind(None::<String>),
                        Cell::Bool(b) => row.push_bind(*b),
                        Cell::Int(n) => row.push_bind(*n),
                        Cell::Bytes(b) => row.push_bind(b.as_ref()),
                    };
                }
            });
            qb.push(" ");
            qb.push(tail);
            qb.build().execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn temp_table(
        conn: &mut sqlx::SqliteConnection,
        name: &'static str,
        columns: &'static str,
    ) -> Result<()> {
        // SQLite has no ON COMMIT DROP: a table left by an earlier
        // transaction on this connection is replaced.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP TABLE IF EXISTS temp.{name}; CREATE TEMP TABLE {name} ({columns})"
        )))
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn lock_account(_: &mut sqlx::SqliteConnection, _: &str) -> Result<()> {
        Ok(())
    }

    async fn statistics_stale(conn: &mut sqlx::SqliteConnection, written: usize) -> Result<bool> {
        // SQLite has statistics only once ANALYZE wrote them: without, it
        // believes an index on the account alone narrows a million rows to
        // a few, and walks them all.
        let analyzed: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
                .fetch_one(&mut *conn)
                .await?;
        if analyzed == 0 {
            return Ok(true);
        }
        let stat: Option<String> =
            sqlx::query_scalar("SELECT stat FROM sqlite_stat1 WHERE tbl = 'objects' LIMIT 1")
                .fetch_optional(conn)
                .await?;
        let counted: f64 = stat
            .as_deref()
            .and_then(|s| s.split(' ').next()?.parse().ok())
            .unwrap_or(0.0);
        Ok(written as f64 > 50.0 + 0.1 * counted)
    }

    async fn analyze_applied(conn: &mut sqlx::SqliteConnection) -> Result<()> {
        // Sampled (analysis_limit: the first 100,000 entries of each
        // index): 0.3 s at a million objects, where a full ANALYZE reads
        // every row; enough to tell an index on the account alone from a
        // selective one.
        sqlx::raw_sql(
            "PRAGMA analysis_limit = 100000; ANALYZE objects; ANALYZE members; \
             ANALYZE address_claims",
        )
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn analyze_temp(_: &mut sqlx::SqliteConnection, _: &'static str) -> Result<()> {
        Ok(())
    }

    async fn prepare_large_reads(_: &mut sqlx::SqliteConnection) -> Result<()> {
        Ok(())
    }

    async fn started_at(_: &mut sqlx::SqliteConnection) -> Result<Option<UnixMillis>> {
        Ok(None)
    }
}
