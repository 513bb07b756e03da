//! The one way the store's SQL is run: a statement, its arguments as
//! [`Cell`]s, and rows read back as [`Row`]s of plain values, whatever the
//! database. Generic code names no sqlx type bound; each [`Dialect`] turns
//! cells into its own arguments and its rows into [`Row`]s.

use std::borrow::Cow;
use std::sync::Arc;

use crate::bulk::Cell;
use crate::dialect::Dialect;
use crate::{Result, StoreError};

/// A value read from a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Bytes(Vec<u8>),
    Bool(bool),
}

/// A row of a result: its columns' names (shared by the rows of one
/// result) and values.
#[derive(Debug, Clone)]
pub struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    pub(crate) fn new(names: Arc<[String]>, values: Vec<Value>) -> Self {
        debug_assert_eq!(names.len(), values.len());
        Self { names, values }
    }

    /// The value of column `name`, as a `T`.
    pub fn get<T: FromValue>(&self, name: &str) -> Result<T> {
        let at = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Corrupt(format!("a result has no column {name:?}")))?;
        self.at(at)
            .map_err(|e| StoreError::Corrupt(format!("column {name:?}: {e}")))
    }

    /// Takes the value of column `name` out of the row, as a `T` (no copy
    /// of a text or bytes).
    pub fn take<T: FromValue>(&mut self, name: &str) -> Result<T> {
        let at = self
            .names
            .iter()
            .position(|n| n == name)
            .ok_or_else(|| StoreError::Corrupt(format!("a result has no column {name:?}")))?;
        let value = std::mem::replace(&mut self.values[at], Value::Null);
        T::from_value(value).map_err(|e| StoreError::Corrupt(format!("column {name:?}: {e}")))
    }

    /// The value of the `n`-th column (from 0), as a `T`.
    pub fn at<T: FromValue>(&self, n: usize) -> Result<T, String> {
        let value = self
            .values
            .get(n)
            .ok_or_else(|| format!("a result has no column {n}"))?;
        T::from_value(value.clone())
    }
}

/// A Rust value a [`Value`] converts to.
pub trait FromValue: Sized {
    fn from_value(value: Value) -> Result<Self, String>;
}

fn mismatch(want: &str, got: &Value) -> String {
    let got = match got {
        Value::Null => "NULL",
        Value::Int(_) => "an integer",
        Value::Real(_) => "a real number",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a boolean",
    };
    format!("{want} expected, {got} found")
}

impl FromValue for String {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s),
            other => Err(mismatch("text", &other)),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(n),
            other => Err(mismatch("an integer", &other)),
        }
    }
}

impl FromValue for f64 {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Real(x) => Ok(x),
            Value::Int(n) => Ok(n as f64),
            other => Err(mismatch("a number", &other)),
        }
    }
}

/// SQLite keeps booleans as integers 0 and 1.
impl FromValue for bool {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bool(b) => Ok(b),
            Value::Int(0) => Ok(false),
            Value::Int(1) => Ok(true),
            other => Err(mismatch("a boolean", &other)),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Bytes(b) => Ok(b),
            other => Err(mismatch("bytes", &other)),
        }
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

/// Where a statement runs: on a connection taken from the pool for it, or
/// on a connection (a transaction's) the caller holds.
pub enum On<'c, D: Dialect> {
    Pool(&'c sqlx::Pool<D>),
    Conn(&'c mut D::Connection),
}

impl<'c, D: Dialect> From<&'c sqlx::Pool<D>> for On<'c, D> {
    fn from(pool: &'c sqlx::Pool<D>) -> Self {
        On::Pool(pool)
    }
}

impl<'c, D: Dialect> From<&'c mut sqlx::Transaction<'_, D>> for On<'c, D> {
    fn from(tx: &'c mut sqlx::Transaction<'_, D>) -> Self {
        On::Conn(&mut **tx)
    }
}

/// A statement and its arguments (`$1`, `$2`, … in the order bound).
#[must_use]
pub struct Query<'a> {
    sql: Cow<'a, str>,
    args: Vec<Cell<'a>>,
}

/// A statement written in the code.
pub fn query(sql: &'static str) -> Query<'static> {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
    }
}

/// A statement put together from the code's own text: never from a value,
/// which is bound instead (or, where a caller says so, text it checked).
pub fn query_built(sql: String) -> Query<'static> {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
    }
}

impl<'a> Query<'a> {
    /// Binds the next argument.
    pub fn bind<'b>(self, value: impl Into<Cell<'b>>) -> Query<'b>
    where
        'a: 'b,
    {
        let mut args: Vec<Cell<'b>> = self.args;
        args.push(value.into());
        Query {
            sql: self.sql,
            args,
        }
    }

    /// Appends `sql`, the code's own text (a value is bound, never put
    /// in the text).
    pub fn push(mut self, sql: &'static str) -> Self {
        self.sql.to_mut().push_str(sql);
        self
    }

    /// Appends the next placeholder (`$n`) and binds `value` to it.
    pub fn push_bind<'b>(self, value: impl Into<Cell<'b>>) -> Query<'b>
    where
        'a: 'b,
    {
        let mut q = self.bind(value);
        let n = q.args.len();
        q.sql.to_mut().push_str(&format!("${n}"));
        q
    }

    /// Appends ` IN (SELECT column1 FROM (VALUES ($n), …) AS k)` of
    /// `values`: with statistics, PostgreSQL probes an index once per key.
    pub fn push_in<'b>(self, values: &'b [String]) -> Query<'b>
    where
        'a: 'b,
    {
        let mut q = self.push(" IN (SELECT column1 FROM (VALUES ");
        for (i, v) in values.iter().enumerate() {
            q = q
                .push(if i == 0 { "(" } else { ", (" })
                .push_bind(v)
                .push(")");
        }
        q.push(") AS k)")
    }

    /// Every row of the result.
    pub async fn fetch_all<'c, D: Dialect>(self, on: impl Into<On<'c, D>>) -> Result<Vec<Row>> {
        match on.into() {
            On::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                D::fetch(&mut conn, &self.sql, &self.args).await
            }
            On::Conn(conn) => D::fetch(conn, &self.sql, &self.args).await,
        }
    }

    /// The first row of the result, if any.
    pub async fn fetch_optional<'c, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
    ) -> Result<Option<Row>> {
        Ok(self.fetch_all(on).await?.into_iter().next())
    }

    /// The first row of the result, which must have one.
    pub async fn fetch_one<'c, D: Dialect>(self, on: impl Into<On<'c, D>>) -> Result<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or_else(|| StoreError::Database(sqlx::Error::RowNotFound))
    }

    /// Hands each row of the result to `each` as it is read: a large
    /// result is never held whole.
    pub async fn for_each<'c, D: Dialect>(
        self,
        on: impl Into<On<'c, D>>,
        mut each: impl FnMut(Row) -> Result<()> + Send,
    ) -> Result<()> {
        match on.into() {
            On::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                D::fetch_each(&mut conn, &self.sql, &self.args, &mut each).await
            }
            On::Conn(conn) => D::fetch_each(conn, &self.sql, &self.args, &mut each).await,
        }
    }

    /// Runs the statement; the rows it changed.
    pub async fn execute<'c, D: Dialect>(self, on: impl Into<On<'c, D>>) -> Result<u64> {
        match on.into() {
            On::Pool(pool) => {
                let mut conn = pool.acquire().await?;
                D::execute(&mut conn, &self.sql, &self.args).await
            }
            On::Conn(conn) => D::execute(conn, &self.sql, &self.args).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        Row::new(
            Arc::from(vec![
                "id".to_owned(),
                "n".to_owned(),
                "flag".to_owned(),
                "none".to_owned(),
            ]),
            vec![
                Value::Text("a".into()),
                Value::Int(3),
                Value::Int(1),
                Value::Null,
            ],
        )
    }

    #[test]
    fn values_convert_by_column_name() {
        let mut r = row();
        assert_eq!(r.get::<String>("id").expect("text"), "a");
        assert_eq!(r.get::<i64>("n").expect("int"), 3);
        assert!(r.get::<bool>("flag").expect("an SQLite boolean"));
        assert_eq!(r.get::<Option<String>>("none").expect("null"), None);
        assert_eq!(r.take::<String>("id").expect("text"), "a");
        assert_eq!(r.get::<Option<String>>("id").expect("taken"), None);
    }

    #[test]
    fn placeholders_follow_the_arguments() {
        let keys = ["a".to_owned(), "b".to_owned()];
        let q = query("SELECT 1 FROM t WHERE x = ")
            .push_bind("x")
            .push(" AND k")
            .push_in(&keys)
            .push(" LIMIT ")
            .push_bind(5_i64);
        assert_eq!(
            q.sql,
            "SELECT 1 FROM t WHERE x = $1 AND k IN (SELECT column1 FROM (VALUES ($2), ($3)) AS k) LIMIT $4"
        );
        assert_eq!(
            q.args,
            [
                Cell::from("x"),
                Cell::from("a"),
                Cell::from("b"),
                Cell::Int(5)
            ]
        );
    }

    #[test]
    fn a_mismatch_names_the_column_and_the_types() {
        let r = row();
        let e = r.get::<String>("n").expect_err("an integer is not text");
        assert_eq!(
            e.to_string(),
            "stored data is corrupt: column \"n\": text expected, an integer found"
        );
        let e = r.get::<i64>("missing").expect_err("no such column");
        assert!(e.to_string().contains("no column \"missing\""), "{e}");
        assert!(r.get::<bool>("n").is_err(), "3 is not a boolean");
    }
}
