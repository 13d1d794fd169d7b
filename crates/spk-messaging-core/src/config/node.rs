//! A config tree that remembers where each value came from.
//!
//! Layers (files, then the environment) are merged key by key; every node
//! keeps the name of the layer that set it, so that an error can name the
//! file or environment variable an operator must edit.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::Value;

#[derive(Debug, Clone)]
pub enum Kind {
    Table(BTreeMap<String, Node>),
    List(Vec<Node>),
    Scalar(Value),
}

#[derive(Debug, Clone)]
pub struct Node {
    pub kind: Kind,
    pub source: Arc<str>,
}

impl Node {
    pub fn empty_table(source: Arc<str>) -> Node {
        Node {
            kind: Kind::Table(BTreeMap::new()),
            source,
        }
    }

    pub fn from_value(v: Value, source: &Arc<str>) -> Node {
        let kind = match v {
            Value::Object(m) => Kind::Table(
                m.into_iter()
                    .map(|(k, v)| (k, Node::from_value(v, source)))
                    .collect(),
            ),
            Value::Array(a) => {
                Kind::List(a.into_iter().map(|v| Node::from_value(v, source)).collect())
            }
            other => Kind::Scalar(other),
        };
        Node {
            kind,
            source: source.clone(),
        }
    }

    /// Lays `over` on top of `self`: tables merge key by key, a list is
    /// patched by index when the overlay is a table of numeric keys (as
    /// environment variables address list entries), anything else replaces.
    pub fn merge(&mut self, over: Node) {
        match (&mut self.kind, over.kind) {
            (Kind::Table(mine), Kind::Table(theirs)) => {
                for (k, v) in theirs {
                    match mine.get_mut(&k) {
                        Some(existing) => existing.merge(v),
                        None => {
                            mine.insert(k, v);
                        }
                    }
                }
            }
            (Kind::List(mine), Kind::Table(theirs))
                if theirs.keys().all(|k| k.parse::<usize>().is_ok()) =>
            {
                for (k, v) in theirs {
                    let i: usize = k.parse().unwrap_or(usize::MAX);
                    if let Some(existing) = mine.get_mut(i) {
                        existing.merge(v);
                    } else if i == mine.len() {
                        mine.push(v);
                    }
                }
            }
            (_, kind) => {
                self.kind = kind;
                self.source = over.source;
            }
        }
    }

    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Table(_) => "a table",
            Kind::List(_) => "a list",
            Kind::Scalar(Value::Bool(_)) => "a boolean",
            Kind::Scalar(Value::Number(_)) => "a number",
            Kind::Scalar(Value::String(_)) => "a string",
            Kind::Scalar(Value::Null) => "null",
            Kind::Scalar(_) => "a value",
        }
    }
}
