//! Reading the merged TOML tree: typed getters that put every wrong type or value at its
//! own position and keep going, so that all errors are reported together.
//!
//! Each key is written once: a getter records the key it was asked for, and when a table
//! is done (its [`Fields`] dropped) every key nobody asked for is reported as unknown, with
//! a "did you mean" among the keys that were asked for.

use std::cell::RefCell;
use std::time::Duration;

use super::super::diag::{At, Diagnostic, Loc, did_you_mean};
use super::super::tree::{Node, Table, Value};
use super::super::{Template, Vars, values};

/// Collects diagnostics while the tree is read.
#[derive(Default)]
pub(in crate::config) struct Reader {
    errors: RefCell<Vec<Diagnostic>>,
}

impl Reader {
    pub(super) fn into_errors(self) -> Vec<Diagnostic> {
        self.errors.into_inner()
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.borrow().is_empty()
    }

    pub(super) fn error(&self, loc: &Loc, message: impl Into<String>) {
        self.errors.borrow_mut().push(Diagnostic::at(loc, message));
    }

    /// `result`'s error at `loc`, if it has one.
    pub(super) fn checked<T>(&self, loc: &Loc, result: Result<T, String>) -> Option<T> {
        result.map_err(|e| self.error(loc, e)).ok()
    }

    pub(super) fn type_error(&self, node: &Node, path: &str, expected: &str) {
        self.error(
            &node.loc,
            format!(
                "`{path}` must be {expected}, not {}",
                node.value.type_name()
            ),
        );
    }

    /// The table at `node`, read as `path` (`aws`, `cluster[0]`, …).
    pub(super) fn table<'a>(&'a self, node: &'a Node, path: &str) -> Option<Fields<'a>> {
        match &node.value {
            Value::Table(t) => Some(Fields::new(self, t, node.loc.clone(), path)),
            _ => {
                self.type_error(node, path, "a table");
                None
            }
        }
    }

    /// The tables of an array of tables (`[[path]]`).
    pub(super) fn tables<'a>(&'a self, node: &'a Node, path: &str) -> Vec<Fields<'a>> {
        let Value::Array(items) = &node.value else {
            self.type_error(node, path, &format!("an array of tables ([[{path}]])"));
            return vec![];
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.table(item, &format!("{path}[{i}]")))
            .collect()
    }

    /// A template (`{user}`, `{uid}`, `{hostname}`).
    pub(super) fn template(&self, text: &At<String>) -> Option<Template> {
        self.checked(&text.loc, Template::parse(text))
    }

    /// A role ARN template, checked on a sample rendering.
    pub(super) fn role_template(&self, text: &At<String>) -> Option<Template> {
        let template = self.template(text)?;
        let sample = template.render(&Vars {
            user: "user",
            uid: 1000,
            hostname: "host",
        });
        self.checked(&text.loc, values::role_arn(&sample))?;
        Some(template)
    }
}

/// One table being read. Dropping it reports the keys nobody asked for.
pub(super) struct Fields<'a> {
    reader: &'a Reader,
    table: &'a Table,
    pub(super) loc: Loc,
    pub(super) path: String,
    asked: RefCell<Vec<String>>,
}

impl<'a> Fields<'a> {
    /// The top level of the configuration.
    pub(super) fn root(reader: &'a Reader, table: &'a Table, loc: Loc) -> Fields<'a> {
        Fields::new(reader, table, loc, "")
    }

    fn new(reader: &'a Reader, table: &'a Table, loc: Loc, path: &str) -> Fields<'a> {
        Fields {
            reader,
            table,
            loc,
            path: path.to_string(),
            asked: RefCell::new(Vec::new()),
        }
    }

    pub(super) fn reader(&self) -> &'a Reader {
        self.reader
    }

    /// The node at `key`, if present; `key` is known to this table from now on.
    pub(super) fn get(&self, key: &str) -> Option<&'a Node> {
        let mut asked = self.asked.borrow_mut();
        if !asked.iter().any(|k| k == key) {
            asked.push(key.to_string());
        }
        self.table
            .entries
            .iter()
            .find(|(k, _)| k.value == key)
            .map(|(_, v)| v)
    }

    /// `path.key`, as messages name it.
    pub(super) fn key_path(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// The required sub-table `[key]`.
    pub(super) fn required_table(&self, key: &str) -> Option<&'a Node> {
        let node = self.get(key);
        if node.is_none() {
            self.reader
                .error(&self.loc, format!("missing required section [{key}]"));
        }
        node
    }

    pub(super) fn string(&self, key: &str) -> Option<At<String>> {
        let node = self.get(key)?;
        match &node.value {
            Value::String(s) => Some(At::new(s.clone(), node.loc.clone())),
            _ => {
                self.reader
                    .type_error(node, &self.key_path(key), "a string");
                None
            }
        }
    }

    pub(super) fn required_string(&self, key: &str) -> Option<At<String>> {
        if self.get(key).is_none() {
            self.reader.error(
                &self.loc,
                format!("missing required key `{key}` in [{}]", self.path),
            );
        }
        self.string(key)
    }

    pub(super) fn bool(&self, key: &str) -> Option<bool> {
        let node = self.get(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.reader
                    .type_error(node, &self.key_path(key), "true or false");
                None
            }
        }
    }

    pub(super) fn integer(&self, key: &str, min: i64, max: i64) -> Option<i64> {
        let node = self.get(key)?;
        match node.value {
            Value::Integer(n) if (min..=max).contains(&n) => Some(n),
            Value::Integer(n) => {
                self.reader.error(
                    &node.loc,
                    format!(
                        "`{}` = {n} is out of range ({min}..={max})",
                        self.key_path(key)
                    ),
                );
                None
            }
            _ => {
                self.reader
                    .type_error(node, &self.key_path(key), "an integer");
                None
            }
        }
    }

    pub(super) fn strings(&self, key: &str) -> Option<Vec<At<String>>> {
        let node = self.get(key)?;
        let Value::Array(items) = &node.value else {
            self.reader
                .type_error(node, &self.key_path(key), "an array of strings");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match &item.value {
                Value::String(s) => out.push(At::new(s.clone(), item.loc.clone())),
                _ => self.reader.type_error(
                    item,
                    &format!("{}[{i}]", self.key_path(key)),
                    "a string",
                ),
            }
        }
        Some(out)
    }

    pub(super) fn duration(&self, key: &str, min: Duration, max: Duration) -> Option<Duration> {
        let text = self.string(key)?;
        self.reader
            .checked(&text.loc, values::duration(&text, min, max))
    }

    /// One of a word enum's values (`mode = "shell"`).
    pub(super) fn word<T: Copy>(
        &self,
        key: &str,
        parse: fn(&str) -> Option<T>,
        choices: fn() -> String,
    ) -> Option<T> {
        let text = self.string(key)?;
        let parsed = parse(&text)
            .ok_or_else(|| format!("`{key}` must be {}, not {:?}", choices(), text.value));
        self.reader.checked(&text.loc, parsed)
    }

    /// An absolute path.
    pub(super) fn absolute_path(&self, key: &str) -> Option<At<String>> {
        let p = self.string(key)?;
        if p.starts_with('/') {
            return Some(p);
        }
        self.reader.error(
            &p.loc,
            format!("`{}` must be an absolute path", self.key_path(key)),
        );
        None
    }
}

impl Drop for Fields<'_> {
    fn drop(&mut self) {
        let asked = self.asked.borrow();
        for (key, _) in &self.table.entries {
            if asked.contains(&key.value) {
                continue;
            }
            let place = if self.path.is_empty() {
                "at the top level".to_string()
            } else {
                format!("in [{}]", self.path)
            };
            self.reader.error(
                &key.loc,
                format!(
                    "unknown key `{}` {place}{}",
                    key.value,
                    did_you_mean(&key.value, asked.iter().map(String::as_str))
                ),
            );
        }
    }
}
