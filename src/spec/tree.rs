//! A YAML document as a tree whose every node remembers the file, line and column it
//! came from, so errors found after merging and decoding can still point into a file.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// Which of the two input files supplied a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    Sovereign,
    Defaults,
}

/// A place in an input file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub origin: Origin,
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<Entry>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub key: String,
    pub key_at: Position,
    pub value: Node,
}

/// A YAML syntax error with the parser's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub line: Option<usize>,
    pub col: Option<usize>,
    pub message: String,
}

impl Node {
    /// Parses one YAML document. An empty or comment-only document parses to `Null`.
    pub fn parse(text: &str, origin: Origin) -> Result<Node, SyntaxError> {
        let raw: Spanned<Raw> = serde_saphyr::from_str(text).map_err(|e| {
            let location = e.location();
            let line = location.map(|l| l.line() as usize);
            let col = location.map(|l| l.column() as usize);
            // The plain rendering ends with " at line L, column C", which the caller prints
            // in its own `file:line:col` form.
            let mut message = e.without_snippet().to_string();
            if let (Some(l), Some(c)) = (line, col) {
                let suffix = format!(" at line {l}, column {c}");
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            SyntaxError { line, col, message }
        })?;
        Ok(Node::from_raw(raw, origin))
    }

    fn from_raw(raw: Spanned<Raw>, origin: Origin) -> Node {
        let at = position(&raw.referenced, origin);
        let value = match raw.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(b),
            Raw::Int(i) => Value::Int(i),
            Raw::Float(f) => Value::Float(f),
            Raw::Str(s) => Value::Str(s),
            Raw::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .map(|n| Node::from_raw(n, origin))
                    .collect(),
            ),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Entry {
                        key_at: position(&k.referenced, origin),
                        key: k.value,
                        value: Node::from_raw(v, origin),
                    })
                    .collect(),
            ),
        };
        Node { value, at }
    }

    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Deep-merges `over` onto `self`: mappings merge key by key, anything else from `over`
    /// replaces. `exclusive` lists mappings (by path) whose listed keys are alternatives:
    /// when `over` sets one of them, the base's other alternatives are dropped, so choosing
    /// e.g. `apiKeyFile` in a Sovereign is not undone by a default `apiKeyEnv`.
    pub fn merge(self, over: Node, exclusive: &[(&str, &[&str])]) -> Node {
        self.merge_at(over, "", exclusive)
    }

    fn merge_at(self, over: Node, path: &str, exclusive: &[(&str, &[&str])]) -> Node {
        let (Value::Map(base), Value::Map(over_entries)) = (self.value, &over.value) else {
            return over;
        };
        let alternatives: &[&str] = exclusive
            .iter()
            .find(|(p, _)| *p == path)
            .map_or(&[], |(_, keys)| keys);
        let over_chooses = over_entries
            .iter()
            .any(|e| alternatives.contains(&e.key.as_str()));
        let Value::Map(over_entries) = over.value else {
            unreachable!("matched as a mapping above")
        };
        let mut over_entries: Vec<Option<Entry>> = over_entries.into_iter().map(Some).collect();
        let mut merged = Vec::with_capacity(base.len() + over_entries.len());
        for entry in base {
            let replacement = over_entries
                .iter_mut()
                .find(|e| e.as_ref().is_some_and(|e| e.key == entry.key))
                .and_then(Option::take);
            match replacement {
                Some(o) => {
                    let child_path = join(path, &o.key);
                    merged.push(Entry {
                        key: o.key,
                        key_at: o.key_at,
                        value: entry.value.merge_at(o.value, &child_path, exclusive),
                    });
                }
                None if over_chooses && alternatives.contains(&entry.key.as_str()) => {}
                None => merged.push(entry),
            }
        }
        merged.extend(over_entries.into_iter().flatten());
        Node {
            value: Value::Map(merged),
            at: over.at,
        }
    }

    /// Finds the node at a dotted path such as `spec.externalDns.sources[1]`, returning the
    /// position to report: a scalar's own position, a mapping's or list's key.
    pub fn locate(&self, path: &str) -> Option<Position> {
        let mut node = self;
        let mut at = self.at;
        for segment in split_path(path) {
            match segment {
                Segment::Key(key) => {
                    let entry = node.entries()?.iter().find(|e| e.key == key)?;
                    node = &entry.value;
                    at = match node.value {
                        Value::Map(_) | Value::Seq(_) => entry.key_at,
                        _ => node.at,
                    };
                }
                Segment::Index(i) => match &node.value {
                    Value::Seq(items) => {
                        node = items.get(i)?;
                        at = node.at;
                    }
                    _ => return None,
                },
            }
        }
        Some(at)
    }

    /// Replaces the value at `path`, or adds it when only its last key is missing.
    /// Returns whether the path could be reached.
    pub fn set(&mut self, path: &str, value: Value) -> bool {
        let segments = split_path(path);
        let Some((last, parents)) = segments.split_last() else {
            return false;
        };
        let mut node = self;
        for segment in parents {
            let child = match (segment, &mut node.value) {
                (Segment::Key(key), Value::Map(entries)) => entries
                    .iter_mut()
                    .find(|e| e.key == *key)
                    .map(|e| &mut e.value),
                (Segment::Index(i), Value::Seq(items)) => items.get_mut(*i),
                _ => None,
            };
            match child {
                Some(child) => node = child,
                None => return false,
            }
        }
        let at = node.at;
        match (last, &mut node.value) {
            (Segment::Key(key), Value::Map(entries)) => {
                match entries.iter_mut().find(|e| e.key == *key) {
                    Some(entry) => entry.value.value = value,
                    None => entries.push(Entry {
                        key: (*key).to_owned(),
                        key_at: at,
                        value: Node { value, at },
                    }),
                }
            }
            (Segment::Index(i), Value::Seq(items)) => match items.get_mut(*i) {
                Some(item) => item.value = value,
                None => return false,
            },
            _ => return false,
        }
        true
    }

    /// Like [`Node::locate`], falling back to the deepest ancestor that exists: a missing
    /// field is reported where its parent is.
    pub fn locate_nearest(&self, path: &str) -> Position {
        let mut candidate = path;
        loop {
            if let Some(at) = self.locate(candidate) {
                return at;
            }
            match candidate.rfind(['.', '[']) {
                Some(i) => candidate = &candidate[..i],
                None => return self.at,
            }
        }
    }
}

/// Appends a mapping key to a dotted path.
pub fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

enum Segment<'a> {
    Key(&'a str),
    Index(usize),
}

fn split_path(path: &str) -> Vec<Segment<'_>> {
    let mut segments = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indices) = part
            .split_once('[')
            .map_or((part, ""), |(k, rest)| (k, rest));
        if !key.is_empty() {
            segments.push(Segment::Key(key));
        }
        for index in indices.split('[') {
            if let Some(i) = index.strip_suffix(']').and_then(|i| i.parse().ok()) {
                segments.push(Segment::Index(i));
            }
        }
    }
    segments
}

fn position(location: &serde_saphyr::Location, origin: Origin) -> Position {
    Position {
        origin,
        line: location.line() as usize,
        col: location.column() as usize,
    }
}

/// What serde-saphyr hands over before origins are attached.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(b))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Raw, E> {
        Ok(Raw::Int(i.into()))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Raw, E> {
        Ok(Raw::Int(u.into()))
    }

    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Raw, E> {
        Ok(Raw::Int(i))
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Raw, E> {
        Ok(Raw::Float(f))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Raw, E> {
        Ok(Raw::Str(s.to_owned()))
    }

    fn visit_string<E: de::Error>(self, s: String) -> Result<Raw, E> {
        Ok(Raw::Str(s))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, origin: Origin) -> Node {
        Node::parse(text, origin).unwrap()
    }

    #[test]
    fn positions_point_at_keys_for_collections_and_values_for_scalars() {
        let doc = parse(
            "spec:\n  external:\n    interval: 1m\n    sources:\n      - a\n      - b\n",
            Origin::Sovereign,
        );
        let at = |p| doc.locate(p).map(|a| (a.line, a.col));
        assert_eq!(at("spec.external.interval"), Some((3, 15)));
        assert_eq!(at("spec.external.sources"), Some((4, 5)));
        assert_eq!(at("spec.external.sources[1]"), Some((6, 9)));
        assert_eq!(at("spec.missing"), None);
        let nearest = doc.locate_nearest("spec.external.missing.deeper");
        assert_eq!((nearest.line, nearest.col), (2, 3));
    }

    #[test]
    fn merge_recurses_into_mappings_and_replaces_everything_else() {
        let base = parse(
            "a:\n  keep: 1\n  over: 2\n  list: [1, 2]\nb: x\n",
            Origin::Defaults,
        );
        let over = parse("a:\n  over: 3\n  list: [9]\n  new: 4\n", Origin::Sovereign);
        let merged = base.merge(over, &[]);
        let expected = parse(
            "a:\n  keep: 1\n  over: 3\n  list: [9]\n  new: 4\nb: x\n",
            Origin::Sovereign,
        );
        assert_eq!(strip(&merged), strip(&expected));
        // Values remember which file supplied them.
        assert_eq!(merged.locate("a.keep").unwrap().origin, Origin::Defaults);
        assert_eq!(merged.locate("a.over").unwrap().origin, Origin::Sovereign);
        assert_eq!(merged.locate("b").unwrap().origin, Origin::Defaults);
    }

    #[test]
    fn merge_drops_default_alternatives_when_the_override_picks_one() {
        let base = parse("v:\n  env: KEY\n  url: u\n", Origin::Defaults);
        let over = parse("v:\n  file: /k\n", Origin::Sovereign);
        let merged = base.merge(over.clone(), &[("v", &["env", "file"])]);
        assert_eq!(merged.locate("v.env"), None);
        assert!(merged.locate("v.file").is_some());
        assert!(merged.locate("v.url").is_some());
        let merged = parse("v:\n  env: KEY\n", Origin::Defaults).merge(over, &[]);
        assert!(merged.locate("v.env").is_some());
    }

    #[test]
    fn syntax_errors_carry_the_parser_location() {
        let err = Node::parse("a: [1\n", Origin::Sovereign).unwrap_err();
        assert_eq!((err.line, err.col), (Some(1), Some(4)));
        assert!(!err.message.contains("line 1"), "{}", err.message);
    }

    #[test]
    fn empty_and_comment_only_documents_are_null() {
        assert_eq!(parse("", Origin::Sovereign).value, Value::Null);
        assert_eq!(parse("# nothing\n", Origin::Sovereign).value, Value::Null);
    }

    /// Structure and scalars without positions, for comparing trees.
    fn strip(node: &Node) -> String {
        match &node.value {
            Value::Map(entries) => {
                let inner: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{}={}", e.key, strip(&e.value)))
                    .collect();
                format!("{{{}}}", inner.join(","))
            }
            Value::Seq(items) => {
                let inner: Vec<String> = items.iter().map(strip).collect();
                format!("[{}]", inner.join(","))
            }
            other => format!("{other:?}"),
        }
    }
}
