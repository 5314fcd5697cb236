//! IAM policy documents, typed: what `rolesh rbac` writes for the roles it maps.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// An IAM policy (`{"Version": "2012-10-17", "Statement": [...]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct PolicyDocument {
    pub(crate) version: String,
    pub(crate) statement: Vec<Statement>,
}

impl PolicyDocument {
    pub(crate) fn new(statement: Vec<Statement>) -> PolicyDocument {
        PolicyDocument {
            version: "2012-10-17".into(),
            statement,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Statement {
    pub(crate) sid: String,
    pub(crate) effect: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) principal: Option<Principal>,
    pub(crate) action: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) resource: Option<Vec<String>>,
    /// Operator → condition key → value(s).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) condition: BTreeMap<String, BTreeMap<String, ConditionValue>>,
}

impl Statement {
    /// `Allow` `actions` (on `resources`, if given).
    pub(crate) fn allow(sid: &str, actions: &[&str], resources: Option<Vec<String>>) -> Statement {
        Statement {
            sid: sid.into(),
            effect: "Allow".into(),
            principal: None,
            action: actions.iter().map(|a| a.to_string()).collect(),
            resource: resources,
            condition: BTreeMap::new(),
        }
    }

    pub(crate) fn when(mut self, operator: &str, key: &str, value: ConditionValue) -> Statement {
        self.condition
            .entry(operator.into())
            .or_default()
            .insert(key.into(), value);
        self
    }
}

/// `{"AWS": ARN}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Principal {
    #[serde(rename = "AWS")]
    pub(crate) aws: String,
}

/// One value or several, as IAM writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum ConditionValue {
    One(String),
    Many(Vec<String>),
}
