//! A YAML document as a plain tree, read once.
//!
//! `serde_yaml::Value` refuses a mapping with a repeated key, while SPK
//! (which deserializes straight from the YAML stream) lets the last one win
//! in the mappings it reads by hand (the spec's top level, `build:`, each
//! option and request) and refuses repeats only in the sections it reads
//! with derived structs (`install:`, components, embedded packages, tests).
//! This tree keeps every key, in order, so each reader can apply the rule
//! SPK applies there. YAML tags are dropped (their content is kept).

use std::fmt;

use serde::de::{
    self, Deserialize, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Map),
}

/// A mapping, keys in document order, repeats kept.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Map(pub(crate) Vec<(Node, Node)>);

impl Map {
    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Node, Node)> {
        self.0.iter()
    }

    fn is_key(k: &Node, key: &str) -> bool {
        matches!(k, Node::Str(s) if s == key)
    }

    /// The value of `key`, the last one if it repeats.
    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| Self::is_key(k, key))
            .map(|(_, v)| v)
    }

    /// The value of `key`, or `Err(())` if the key repeats.
    pub(crate) fn get_unique(&self, key: &str) -> Result<Option<&Node>, ()> {
        let mut found = None;
        for (k, v) in &self.0 {
            if Self::is_key(k, key) {
                if found.is_some() {
                    return Err(());
                }
                found = Some(v);
            }
        }
        Ok(found)
    }
}

impl Node {
    /// True if some mapping in this value repeats a key (SPK reads
    /// requirement lists through a generic YAML value, which refuses that).
    pub(crate) fn has_repeated_key(&self) -> bool {
        match self {
            Node::Map(m) => {
                m.0.iter()
                    .enumerate()
                    .any(|(i, (k, _))| m.0[..i].iter().any(|(p, _)| p == k))
                    || m.0.iter().any(|(_, v)| v.has_repeated_key())
            }
            Node::Seq(items) => items.iter().any(Node::has_repeated_key),
            _ => false,
        }
    }
}

impl fmt::Display for Node {
    /// What kind of value this is, for error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Node::Null => "nothing",
            Node::Bool(_) => "a boolean",
            Node::Int(_) | Node::UInt(_) | Node::Float(_) => "a number",
            Node::Str(_) => "a string",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        })
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Node, E> {
        Ok(Node::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_unit<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_none<E>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
        while let Some((k, v)) = map.next_entry()? {
            entries.push((k, v));
        }
        Ok(Node::Map(Map(entries)))
    }
    /// A value with a custom tag (`!tag value`): the tag is dropped.
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Node, A::Error> {
        let (_tag, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant()
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Node, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_repeated_keys_in_order() {
        let n: Node = serde_yaml::from_str("a: 1\nb: x\na: 2\n").unwrap();
        let Node::Map(m) = n else { panic!() };
        assert_eq!(m.0.len(), 3);
        assert_eq!(m.get("a"), Some(&Node::UInt(2)));
        assert_eq!(m.get_unique("a"), Err(()));
        assert_eq!(m.get_unique("b"), Ok(Some(&Node::Str("x".into()))));
        assert_eq!(m.get("c"), None);
        assert!(Node::Map(m).has_repeated_key());
        let n: Node = serde_yaml::from_str("a: {b: 1, c: [{d: 1, d: 2}]}").unwrap();
        assert!(n.has_repeated_key());
        let n: Node = serde_yaml::from_str("a: {b: 1, B: 2}").unwrap();
        assert!(!n.has_repeated_key());
    }

    #[test]
    fn scalars_and_tags() {
        let n: Node =
            serde_yaml::from_str("[~, true, -3, 3.5, x, !!str 1.0, !custom y, {}, []]").unwrap();
        assert_eq!(
            n,
            Node::Seq(vec![
                Node::Null,
                Node::Bool(true),
                Node::Int(-3),
                Node::Float(3.5),
                Node::Str("x".into()),
                Node::Str("1.0".into()),
                Node::Str("y".into()),
                Node::Map(Map::default()),
                Node::Seq(vec![]),
            ])
        );
    }
}
