//! Bulk writes of an apply: rows go to PostgreSQL with `COPY` into a
//! temporary table and one `INSERT … SELECT`, and to SQLite as multi-row
//! `INSERT`s, both with the caller's conflict clause.

use std::borrow::Cow;

use async_trait::async_trait;

use crate::Result;

/// One value of a bulk-written row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Text(Cow<'a, str>),
    Null,
    Bool(bool),
    Int(i64),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(s: &'a str) -> Self {
        Cell::Text(Cow::Borrowed(s))
    }
}

impl From<String> for Cell<'_> {
    fn from(s: String) -> Self {
        Cell::Text(Cow::Owned(s))
    }
}

impl From<bool> for Cell<'_> {
    fn from(b: bool) -> Self {
        Cell::Bool(b)
    }
}

impl From<i64> for Cell<'_> {
    fn from(n: i64) -> Self {
        Cell::Int(n)
    }
}

impl<'a, T: Into<Cell<'a>>> From<Option<T>> for Cell<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// Rows of one table, one after another in a flat list: `cells.len()` is a
/// multiple of `columns.len()`.
pub struct Rows<'a> {
    pub table: &'static str,
    pub columns: &'static [&'static str],
    pub cells: Vec<Cell<'a>>,
}

impl<'a> Rows<'a> {
    pub fn new(table: &'static str, columns: &'static [&'static str]) -> Self {
        Self {
            table,
            columns,
            cells: Vec::new(),
        }
    }

    pub fn push(&mut self, row: impl IntoIterator<Item = Cell<'a>>) {
        let before = self.cells.len();
        self.cells.extend(row);
        debug_assert_eq!(self.cells.len() - before, self.columns.len());
    }

    pub fn is_empty(&self) -> bool {
        self.cells.is_empty()
    }
}

/// Rows per call that callers gather before writing: bounds the memory of
/// a large apply.
pub const ROWS_PER_WRITE: usize = 20_000;

/// Appends `cell` in PostgreSQL's COPY text format.
fn copy_text(out: &mut Vec<u8>, cell: &Cell<'_>) {
    match cell {
        Cell::Null => out.extend_from_slice(b"\\N"),
        Cell::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Cell::Int(n) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{n}");
        }
        Cell::Text(s) => {
            let bytes = s.as_bytes();
            // Most values hold nothing to escape: one pass that the
            // compiler vectorizes finds out, and they are copied whole.
            if !bytes
                .iter()
                .fold(false, |found, &b| found | (b == b'\\') | (b < 0x20))
            {
                out.extend_from_slice(bytes);
                return;
            }
            let mut from = 0;
            for (i, &b) in bytes.iter().enumerate() {
                let escaped: &[u8] = match b {
                    b'\\' => b"\\\\",
                    b'\n' => b"\\n",
                    b'\r' => b"\\r",
                    b'\t' => b"\\t",
                    _ => continue,
                };
                out.extend_from_slice(&bytes[from..i]);
                out.extend_from_slice(escaped);
                from = i + 1;
            }
            out.extend_from_slice(&bytes[from..]);
        }
    }
}

/// Encodes rows as COPY text, `columns` cells per line.
fn copy_lines(cells: &[Cell<'_>], columns: usize) -> Vec<u8> {
    // Room for every cell unescaped and its separator: one allocation for
    // nearly every piece.
    let size = cells
        .iter()
        .map(|c| match c {
            Cell::Text(s) => s.len() + 1,
            _ => 21,
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for row in cells.chunks(columns) {
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                out.push(b'\t');
            }
            copy_text(&mut out, cell);
        }
        out.push(b'\n');
    }
    out
}

#[async_trait]
pub trait Bulk: sqlx::Database {
    /// `INSERT INTO {table} ({columns}) …rows {tail}`, where `tail` is a
    /// conflict clause or empty. Without one, PostgreSQL copies the rows
    /// straight into the table.
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
}

/// `COPY {table} ({columns}) FROM STDIN` of the rows.
async fn copy_in(
    conn: &mut sqlx::PgConnection,
    table: &str,
    columns: &str,
    rows: &Rows<'_>,
) -> Result<()> {
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN"))
        .await?;
    // Sent in pieces: a piece is one COPY message.
    const PIECE: usize = 4096;
    for part in rows.cells.chunks(rows.columns.len() * PIECE) {
        copy.send(copy_lines(part, rows.columns.len())).await?;
    }
    copy.finish().await?;
    Ok(())
}

#[async_trait]
impl Bulk for sqlx::Postgres {
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
}

#[async_trait]
impl Bulk for sqlx::Sqlite {
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
                        Cell::Null => row.push_bind(None::<String>),
                        Cell::Bool(b) => row.push_bind(*b),
                        Cell::Int(n) => row.push_bind(*n),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let cells = [
            Cell::from("CN=a\\, b,OU=x"),
            Cell::from("line\nnext\ttab\rcr"),
            Cell::Null,
            Cell::Bool(true),
            Cell::Int(-42),
            Cell::from(None::<&str>),
            Cell::from(String::from("{\"k\":\"\\u00e9\"}")),
            Cell::Bool(false),
        ];
        let out =
            String::from_utf8(copy_lines(&cells, 4)).expect("COPY text of UTF-8 cells is UTF-8");
        assert_eq!(
            out,
            "CN=a\\\\, b,OU=x\tline\\nnext\\ttab\\rcr\t\\N\tt\n-42\t\\N\t{\"k\":\"\\\\u00e9\"}\tf\n"
        );
    }

    #[test]
    fn copy_text_escapes_at_either_end_and_copies_the_rest() {
        let cells = [
            Cell::from("\\lead"),
            Cell::from("trail\n"),
            Cell::from("\t"),
            Cell::from(""),
            Cell::from("plain ✓ \u{1}"),
            Cell::Int(i64::MIN),
        ];
        assert_eq!(
            String::from_utf8(copy_lines(&cells, 6)).expect("UTF-8"),
            "\\\\lead\ttrail\\n\t\\t\t\tplain ✓ \u{1}\t-9223372036854775808\n"
        );
    }

    #[test]
    fn rows_are_flat_cells() {
        let mut rows = Rows::new("t", &["a", "b"]);
        assert!(rows.is_empty());
        rows.push([Cell::from("x"), Cell::Int(1)]);
        rows.push([Cell::from("y"), Cell::Int(2)]);
        assert_eq!(copy_lines(&rows.cells, 2), b"x\t1\ny\t2\n");
    }
}
