//! The TOML documents as an owned tree in which every key and value remembers its file
//! and span, merged across `config.toml` and the `config.d` drop-ins.

use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::diag::{At, Diagnostic, Loc, SourceFile};

#[derive(Debug, Clone)]
pub(super) enum Value {
    String(String),
    Integer(i64),
    /// rolesh has no float or date-time keys; only the type is kept, for error messages.
    Float,
    Bool(bool),
    Datetime,
    Array(Vec<Node>),
    Table(Table),
}

impl Value {
    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float => "a float",
            Value::Bool(_) => "a boolean",
            Value::Datetime => "a date-time",
            Value::Array(_) => "an array",
            Value::Table(_) => "a table",
        }
    }
}

/// A value and where it was written.
pub(super) type Node = At<Value>;

/// A table's entries in file order, each key with its own position.
#[derive(Debug, Clone, Default)]
pub(super) struct Table {
    pub entries: Vec<(At<String>, Node)>,
}

impl Table {
    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k.value == key)
    }

    /// Lays `overlay` over `self`: tables merge key by key, arrays of tables append, and
    /// any other value in the overlay replaces the one it names.
    pub(super) fn merge(&mut self, overlay: Table) {
        for (key, node) in overlay.entries {
            let Some(i) = self.position(&key.value) else {
                self.entries.push((key, node));
                continue;
            };
            let existing = &mut self.entries[i].1;
            match (&mut existing.value, node.value) {
                (Value::Table(base), Value::Table(over)) => base.merge(over),
                (Value::Array(base), Value::Array(over))
                    if is_array_of_tables(base) && is_array_of_tables(&over) =>
                {
                    base.extend(over)
                }
                (_, value) => self.entries[i] = (key, At::new(value, node.loc)),
            }
        }
    }
}

fn is_array_of_tables(items: &[Node]) -> bool {
    !items.is_empty() && items.iter().all(|n| matches!(n.value, Value::Table(_)))
}

/// Parses one file. A syntax error stops this file (TOML cannot be read past it) and is
/// reported at the parser's position.
pub(super) fn parse(file: &Arc<SourceFile>) -> Result<Table, Diagnostic> {
    let loc = |span: std::ops::Range<usize>| Loc {
        file: Arc::clone(file),
        span,
    };
    let doc = DeTable::parse(&file.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        Diagnostic::at(&loc(span), e.message().trim_end().to_string())
    })?;
    convert_table(doc.get_ref(), &loc)
}

fn convert_table(
    table: &DeTable<'_>,
    loc: &impl Fn(std::ops::Range<usize>) -> Loc,
) -> Result<Table, Diagnostic> {
    let mut entries = Vec::with_capacity(table.len());
    for (key, value) in table.iter() {
        let key = At::new(key.get_ref().to_string(), loc(key.span()));
        let node = At::new(
            convert_value(value.get_ref(), value.span(), loc)?,
            loc(value.span()),
        );
        entries.push((key, node));
    }
    Ok(Table { entries })
}

fn convert_value(
    value: &DeValue<'_>,
    span: std::ops::Range<usize>,
    loc: &impl Fn(std::ops::Range<usize>) -> Loc,
) -> Result<Value, Diagnostic> {
    Ok(match value {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Integer(i) => {
            let digits = i.as_str().replace('_', "");
            let (sign, digits) = match digits.strip_prefix('-') {
                Some(rest) => (-1, rest.to_string()),
                None => (1, digits.trim_start_matches('+').to_string()),
            };
            let digits = digits
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            let n = i64::from_str_radix(digits, i.radix())
                .map_err(|_| Diagnostic::at(&loc(span), "integer out of range"))?;
            Value::Integer(sign * n)
        }
        DeValue::Float(_) => Value::Float,
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(_) => Value::Datetime,
        DeValue::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| {
                    Ok(At::new(
                        convert_value(v.get_ref(), v.span(), loc)?,
                        loc(v.span()),
                    ))
                })
                .collect::<Result<_, Diagnostic>>()?,
        ),
        DeValue::Table(t) => Value::Table(convert_table(t, loc)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Table {
        let file = Arc::new(SourceFile {
            path: "t.toml".into(),
            text: text.into(),
        });
        parse(&file).unwrap()
    }

    fn get<'a>(t: &'a Table, key: &str) -> &'a Value {
        &t.entries
            .iter()
            .find(|(k, _)| k.value == key)
            .unwrap()
            .1
            .value
    }

    #[test]
    fn merge_overrides_scalars_and_appends_arrays_of_tables() {
        let mut base = doc("a = 1\nlist = [1, 2]\n[t]\nx = 1\ny = 2\n[[c]]\nname = \"one\"\n");
        base.merge(doc(
            "a = 2\nlist = [3]\n[t]\ny = 3\n[[c]]\nname = \"two\"\n",
        ));
        assert!(matches!(get(&base, "a"), Value::Integer(2)));
        let Value::Array(list) = get(&base, "list") else {
            panic!()
        };
        assert_eq!(list.len(), 1, "plain arrays are replaced, not appended");
        let Value::Table(t) = get(&base, "t") else {
            panic!()
        };
        assert!(matches!(get(t, "x"), Value::Integer(1)));
        assert!(matches!(get(t, "y"), Value::Integer(3)));
        let Value::Array(c) = get(&base, "c") else {
            panic!()
        };
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn integers_in_every_radix() {
        let t = doc("a = 0x1f\nb = -1_000\nc = 0o17\nd = 0b11\n");
        assert!(matches!(get(&t, "a"), Value::Integer(31)));
        assert!(matches!(get(&t, "b"), Value::Integer(-1000)));
        assert!(matches!(get(&t, "c"), Value::Integer(15)));
        assert!(matches!(get(&t, "d"), Value::Integer(3)));
    }
}
