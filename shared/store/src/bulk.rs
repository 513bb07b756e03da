//! Values the store writes ([`Cell`]), rows of them ([`Rows`]) for the
//! bulk writes of an apply (see [`crate::dialect::Dialect::insert_rows`]),
//! and PostgreSQL's `COPY` text of rows.

use std::borrow::Cow;

use crate::Result;

/// A value the store writes: a statement's argument, or a cell of a
/// bulk-written row.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Text(Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Bytes(Cow<'a, [u8]>),
    /// NULL of a column of that kind (PostgreSQL types its arguments).
    Null(Kind),
}

/// The kind of value a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Bool,
    Int,
    Bytes,
}

/// A value that may be NULL: the kind of its column.
pub trait Kinded {
    const KIND: Kind;
}

impl Kinded for &str {
    const KIND: Kind = Kind::Text;
}
impl Kinded for &String {
    const KIND: Kind = Kind::Text;
}
impl Kinded for String {
    const KIND: Kind = Kind::Text;
}
impl Kinded for bool {
    const KIND: Kind = Kind::Bool;
}
impl Kinded for i64 {
    const KIND: Kind = Kind::Int;
}
impl Kinded for Vec<u8> {
    const KIND: Kind = Kind::Bytes;
}
impl Kinded for &Vec<u8> {
    const KIND: Kind = Kind::Bytes;
}
impl Kinded for &[u8] {
    const KIND: Kind = Kind::Bytes;
}

impl<'a> From<&'a String> for Cell<'a> {
    fn from(s: &'a String) -> Self {
        Cell::Text(Cow::Borrowed(s))
    }
}

impl<'a> From<&'a [u8]> for Cell<'a> {
    fn from(b: &'a [u8]) -> Self {
        Cell::Bytes(Cow::Borrowed(b))
    }
}

impl<'a> From<&'a Vec<u8>> for Cell<'a> {
    fn from(b: &'a Vec<u8>) -> Self {
        Cell::Bytes(Cow::Borrowed(b))
    }
}

impl From<Vec<u8>> for Cell<'_> {
    fn from(b: Vec<u8>) -> Self {
        Cell::Bytes(Cow::Owned(b))
    }
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

impl<'a, T: Into<Cell<'a>> + Kinded> From<Option<T>> for Cell<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null(T::KIND), Into::into)
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
        Cell::Null(_) => out.extend_from_slice(b"\\N"),
        Cell::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Cell::Int(n) => {
            use std::io::Write;
            // Writing to a Vec cannot fail.
            let _ = write!(out, "{n}");
        }
        Cell::Bytes(b) => {
            // bytea's hex form, its backslash escaped.
            out.extend_from_slice(b"\\\\x");
            for byte in b.iter() {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push(HEX[usize::from(byte >> 4)]);
                out.push(HEX[usize::from(byte & 15)]);
            }
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
            Cell::Bytes(b) => 2 * b.len() + 4,
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

/// `COPY {table} ({columns}) FROM STDIN` of the rows.
pub(crate) async fn copy_in(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_the_format_reserves() {
        let cells = [
            Cell::from("CN=a\\, b,OU=x"),
            Cell::from("line\nnext\ttab\rcr"),
            Cell::Null(Kind::Text),
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
            Cell::from(&[0x00, 0xab, 0x5c][..]),
        ];
        assert_eq!(
            String::from_utf8(copy_lines(&cells, 7)).expect("UTF-8"),
            "\\\\lead\ttrail\\n\t\\t\t\tplain ✓ \u{1}\t-9223372036854775808\t\\\\x00ab5c\n"
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
