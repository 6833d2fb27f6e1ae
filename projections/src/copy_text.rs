//! Rows written with `COPY ... FROM STDIN` in text format: how a rebuild fills tables that start
//! empty, at a fraction of an upsert's cost per row (no JSON parsed by Postgres, no conflict
//! check). Rows come as the JSON objects [`crate::rows`] already makes of them (every column
//! by name), so a row type needs nothing of its own to be copied.
use std::fmt::Write as _;

use serde_json::Value;
use sqlx::PgConnection;

/// Rows (JSON objects of one row type) encoded for `COPY` into a table named unqualified
/// (`search_path` decides which copy of it), ready to send. Encoding is the CPU half of a copy: a rebuild does
/// it while Postgres is still writing the batch before.
pub(crate) struct CopyIn {
    statement: String,
    text: String,
}

impl CopyIn {
    /// `None` when there are no rows.
    pub(crate) fn encode(table: &str, rows: &[Value]) -> Option<Self> {
        let Some(Value::Object(first)) = rows.first() else {
            return None;
        };
        let columns: Vec<&str> = first.keys().map(String::as_str).collect();
        Some(Self {
            statement: format!("copy {table} ({}) from stdin", columns.join(", ")),
            text: encode(&columns, rows),
        })
    }

    /// Sends the rows; returns how many were copied.
    pub(crate) async fn send(self, conn: &mut PgConnection) -> Result<u64, sqlx::Error> {
        let mut copy = conn.copy_in_raw(&self.statement).await?;
        copy.send(self.text.into_bytes()).await?;
        copy.finish().await
    }
}

/// The rows as COPY text: one line per row, `columns` in order, tab-separated.
fn encode(columns: &[&str], rows: &[Value]) -> String {
    let mut text = String::with_capacity(rows.len() * 64 * columns.len().min(8));
    for row in rows {
        let Value::Object(fields) = row else {
            unreachable!("rows serialize as objects")
        };
        for (at, column) in columns.iter().enumerate() {
            if at > 0 {
                text.push('\t');
            }
            field(&mut text, fields.get(*column).unwrap_or(&Value::Null));
        }
        text.push('\n');
    }
    text
}

/// One column's value. A JSON array is a Postgres array column (the read models have no
/// `jsonb` column holding an array); an object is a `jsonb` column.
fn field(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("\\N"),
        Value::Bool(true) => out.push('t'),
        Value::Bool(false) => out.push('f'),
        Value::Number(number) => {
            let _ = write!(out, "{number}");
        }
        Value::String(text) => escape(out, text),
        Value::Array(items) => escape(out, &array_literal(items)),
        Value::Object(_) => escape(out, &value.to_string()),
    }
}

/// Backslash, tab, newline and carriage return are COPY's own syntax.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
}

/// `{"a","b"}`: every element quoted, so commas, braces and blanks in it need no thought.
fn array_literal(items: &[Value]) -> String {
    let mut literal = String::from("{");
    for (at, item) in items.iter().enumerate() {
        if at > 0 {
            literal.push(',');
        }
        let text = match item {
            Value::Null => {
                literal.push_str("NULL");
                continue;
            }
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        literal.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                literal.push('\\');
            }
            literal.push(c);
        }
        literal.push('"');
    }
    literal.push('}');
    literal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_are_written_in_the_order_named_and_missing_ones_are_null() {
        let rows = [
            json!({"a": 1, "b": "x", "c": true}),
            json!({"b": "y", "a": 2}),
        ];
        assert_eq!(encode(&["b", "a", "c"], &rows), "x\t1\tt\ny\t2\t\\N\n");
    }

    #[test]
    fn copy_syntax_in_text_is_escaped() {
        let rows = [json!({"t": "tab\there\nnew\\line\r", "n": null, "f": false})];
        assert_eq!(
            encode(&["t", "n", "f"], &rows),
            "tab\\there\\nnew\\\\line\\r\t\\N\tf\n"
        );
    }

    #[test]
    fn arrays_become_array_literals_and_objects_json() {
        let rows = [json!({"roles": ["Admin", "a \"b\", {c}", null], "doc": {"k": [1]}})];
        assert_eq!(
            encode(&["roles", "doc"], &rows),
            "{\"Admin\",\"a \\\\\"b\\\\\", {c}\",NULL}\t{\"k\":[1]}\n"
        );
    }
}
