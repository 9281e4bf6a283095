//! Turns the merged [`Node`] tree into the typed spec with serde. Unlike a stock YAML
//! deserializer it reports every unknown field (with its full path, position and a "did
//! you mean" suggestion) and every type error (with the path and position of the value),
//! not just the first problem.

use std::cell::RefCell;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, Visitor,
};

use super::parsed;
use super::tree::{Entry, Node, Position, Value, join};

mod error;

use error::DecodeError;

/// A problem found while decoding, before it is given a file name.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub path: String,
    pub at: Position,
    pub problem: String,
    pub expected: Option<String>,
}

/// Upper bound on decoding passes; each pass patches one bad value. Specs are small, so
/// this is only a guard against a placeholder that never satisfies the type.
const MAX_PASSES: usize = 256;

/// The outcome of [`decode`].
#[derive(Debug)]
pub struct Decoded<T> {
    /// The decoded value, possibly built around placeholders; `None` when decoding could
    /// not get past an error.
    pub value: Option<T>,
    /// Unknown fields and type errors, in file order.
    pub findings: Vec<Finding>,
    /// Paths whose value was replaced by a placeholder.
    pub patched: Vec<String>,
}

impl<T> Decoded<T> {
    /// Whether `path` is, or lies inside, a value that was replaced by a placeholder:
    /// anything said about it is a consequence of an error already reported.
    pub fn covers(&self, path: &str) -> bool {
        self.patched.iter().any(|p| p == path || is_within(path, p))
    }
}

/// Decodes `root` into `T`, finding every unknown field and every type error.
///
/// Serde stops at the first type error, so after one the bad value is replaced in a copy
/// of the tree by a placeholder of the expected kind and decoding runs again; errors
/// inside a replaced value are consequences, not reported.
pub fn decode<T: DeserializeOwned>(root: &Node) -> Decoded<T> {
    let mut tree = root.clone();
    let mut errors = Vec::new();
    // Paths already replaced, with how many placeholders were tried there.
    let mut patched: Vec<(String, usize)> = Vec::new();
    let mut unknown = Vec::new();
    let mut value = None;
    for _ in 0..MAX_PASSES {
        let found = RefCell::new(Vec::new());
        let result = T::deserialize(Decoder {
            node: &tree,
            path: String::new(),
            unknown: &found,
        });
        unknown = found.into_inner();
        let error = match result {
            Ok(decoded) => {
                value = Some(decoded);
                break;
            }
            Err(error) => error,
        };
        let path = error.path.clone().unwrap_or_default();
        let consequence = patched
            .iter()
            .any(|(p, _)| p != &path && is_within(&path, p));
        let attempt = match patched.iter_mut().find(|(p, _)| *p == path) {
            Some((_, attempts)) => {
                *attempts += 1;
                *attempts
            }
            None => {
                patched.push((path.clone(), 0));
                0
            }
        };
        let placeholder = error.placeholder(attempt);
        if attempt == 0 && !consequence {
            errors.push(error.into_finding(root));
        }
        if !placeholder.is_some_and(|value| tree.set(&path, value)) {
            break;
        }
    }
    unknown.extend(errors);
    unknown.sort_by_key(|f| f.at);
    Decoded {
        value,
        findings: unknown,
        patched: patched.into_iter().map(|(p, _)| p).collect(),
    }
}

/// Whether `path` lies inside the value at `ancestor`.
fn is_within(path: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || path
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
}

/// The closest candidate to `word`, if any is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word.to_lowercase(), &c.to_lowercase()),
                *c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Whether an unknown field is a credential written literally (`apiKey: ...`) rather than
/// a typo of a known field. Such fields are answered with where the credential belongs.
fn is_literal_credential(field: &str, known: &[&str]) -> bool {
    let f: String = field
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_ascii_lowercase();
    const EXACT: [&str; 13] = [
        "apikey",
        "apitoken",
        "token",
        "password",
        "secret",
        "accesskeyid",
        "secretaccesskey",
        "secretkey",
        "privatekey",
        "credentials",
        "clientsecret",
        "bearertoken",
        "authtoken",
    ];
    const WORDS: [&str; 7] = [
        "password",
        "passwd",
        "token",
        "secret",
        "apikey",
        "privatekey",
        "credential",
    ];
    EXACT.contains(&f.as_str())
        || (WORDS.iter().any(|w| f.contains(w))
            && !f.contains("ref")
            && !f.ends_with("env")
            && !f.ends_with("file")
            && suggest(field, known).is_none())
}

fn unknown_field(field: &str, known: &[&str], path: &str, at: Position) -> Finding {
    let path = join(path, field);
    if is_literal_credential(field, known) {
        let secret_fields: Vec<&str> = known
            .iter()
            .copied()
            .filter(|k| k.ends_with("SecretRef") || k.ends_with("Env") || k.ends_with("File"))
            .collect();
        let expected = match secret_fields.as_slice() {
            [] => "no credentials in the spec".to_owned(),
            fields => format!(
                "a reference instead: {}",
                fields
                    .iter()
                    .map(|f| format!("`{f}`"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        };
        return Finding {
            path,
            at,
            problem: "a literal credential is refused: credentials must be given as \
                      `...SecretRef` (a reference to a Kubernetes Secret), never written in \
                      the spec"
                .to_owned(),
            expected: Some(expected),
        };
    }
    let problem = match suggest(field, known) {
        Some(s) => format!("unknown field `{field}`, did you mean `{s}`?"),
        None => format!("unknown field `{field}`"),
    };
    Finding {
        path,
        at,
        problem,
        expected: Some(one_of(known)),
    }
}

fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.as_slice() {
        [] => "nothing here".to_owned(),
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

struct Decoder<'a> {
    node: &'a Node,
    path: String,
    unknown: &'a RefCell<Vec<Finding>>,
}

impl<'a> Decoder<'a> {
    fn child(&self, node: &'a Node, path: String) -> Decoder<'a> {
        Decoder {
            node,
            path,
            unknown: self.unknown,
        }
    }

    fn invalid_type(&self, expected: &dyn de::Expected) -> DecodeError {
        let unexpected = match &self.node.value {
            Value::Null => Unexpected::Unit,
            Value::Bool(b) => Unexpected::Bool(*b),
            Value::Int(i) => match i64::try_from(*i) {
                Ok(i) => Unexpected::Signed(i),
                Err(_) => Unexpected::Other("a very large number"),
            },
            Value::Float(f) => Unexpected::Float(*f),
            Value::Str(s) => Unexpected::Str(s),
            Value::Seq(_) => Unexpected::Seq,
            Value::Map(_) => Unexpected::Map,
        };
        de::Error::invalid_type(unexpected, expected)
    }
}

impl<'de> Deserializer<'de> for Decoder<'_> {
    type Error = DecodeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        let result = match &self.node.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => match (i64::try_from(*i), u64::try_from(*i)) {
                (Ok(i), _) => visitor.visit_i64(i),
                (_, Ok(u)) => visitor.visit_u64(u),
                _ => visitor.visit_i128(*i),
            },
            Value::Float(f) => visitor.visit_f64(*f),
            Value::Str(s) => visitor.visit_str(s),
            Value::Seq(items) => visitor.visit_seq(Items {
                items: items.iter().enumerate(),
                parent: &self,
            }),
            Value::Map(entries) => visitor.visit_map(Entries {
                entries: entries.iter().collect::<Vec<_>>().into_iter(),
                value: None,
                parent: &self,
            }),
        };
        result.map_err(|e| e.within(&self.path, self.node.at))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        match self.node.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let Value::Map(entries) = &self.node.value else {
            return Err(self.invalid_type(&visitor).within(&self.path, self.node.at));
        };
        let mut known = Vec::with_capacity(entries.len());
        for entry in entries {
            if fields.contains(&entry.key.as_str()) {
                known.push(entry);
            } else {
                self.unknown.borrow_mut().push(unknown_field(
                    &entry.key,
                    fields,
                    &self.path,
                    entry.key_at,
                ));
            }
        }
        visitor
            .visit_map(Entries {
                entries: known.into_iter(),
                value: None,
                parent: &self,
            })
            .map_err(|e| e.within(&self.path, self.node.at))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        // The spec only has enums of plain names (`policy: sync`).
        let result = match &self.node.value {
            Value::Str(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => {
                let mut error = self.invalid_type(&visitor);
                error.expected = Some(one_of(variants));
                error.hint = variants.first().map(|v| Value::Str((*v).to_owned()));
                Err(error)
            }
        };
        result.map_err(|e| e.within(&self.path, self.node.at))
    }

    /// A spec string type that refuses its value is decoded on past with its placeholder.
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DecodeError> {
        let (path, at) = (self.path.clone(), self.node.at);
        visitor.visit_newtype_struct(self).map_err(|mut error| {
            if error.hint.is_none() {
                error.hint = parsed::placeholder(name).map(|p| Value::Str(p.to_owned()));
            }
            error.within(&path, at)
        })
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DecodeError> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct Items<'p, 'a, I> {
    items: I,
    parent: &'p Decoder<'a>,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for Items<'_, 'a, I> {
    type Error = DecodeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DecodeError> {
        match self.items.next() {
            Some((i, node)) => {
                let path = format!("{}[{i}]", self.parent.path);
                seed.deserialize(self.parent.child(node, path)).map(Some)
            }
            None => Ok(None),
        }
    }
}

struct Entries<'p, 'a, I> {
    entries: I,
    value: Option<&'a Entry>,
    parent: &'p Decoder<'a>,
}

impl<'de, 'a, I: Iterator<Item = &'a Entry>> MapAccess<'de> for Entries<'_, 'a, I> {
    type Error = DecodeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DecodeError> {
        match self.entries.next() {
            Some(entry) => {
                self.value = Some(entry);
                seed.deserialize(entry.key.as_str().into_deserializer())
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, DecodeError> {
        let entry = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value requested before its key"))?;
        let path = join(&self.parent.path, &entry.key);
        seed.deserialize(self.parent.child(&entry.value, path))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;
    use crate::spec::tree::Origin;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        initial_delay_seconds: u32,
        period_seconds: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    enum Policy {
        Sync,
        UpsertOnly,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        probe: Probe,
        policy: Policy,
        name: Option<String>,
        #[serde(default)]
        tags: Vec<String>,
    }

    fn decode_text(text: &str) -> Result<Doc, Vec<Finding>> {
        let decoded = decode(&Node::parse(text, Origin::Sovereign).unwrap());
        match decoded.value {
            Some(value) if decoded.findings.is_empty() => Ok(value),
            _ => Err(decoded.findings),
        }
    }

    #[test]
    fn decodes_a_valid_document() {
        let doc = decode_text(
            "probe: {initialDelaySeconds: 180, periodSeconds: 30}\npolicy: sync\ntags: [a]\n",
        )
        .unwrap();
        assert_eq!(doc.probe.initial_delay_seconds, 180);
        assert_eq!(doc.policy, Policy::Sync);
        assert_eq!(doc.name, None);
        assert_eq!(doc.tags, ["a"]);
    }

    #[test]
    fn collects_every_unknown_field_with_path_and_suggestion() {
        let findings = decode_text(
            "probe:\n  intialDelaySeconds: 1\n  initialDelaySeconds: 1\n  periodSeconds: 1\n\
             policy: sync\nzzz: 1\n",
        )
        .unwrap_err();
        assert_eq!(findings.len(), 2, "{findings:?}");
        assert_eq!(findings[0].path, "probe.intialDelaySeconds");
        assert!(
            findings[0]
                .problem
                .contains("did you mean `initialDelaySeconds`?")
        );
        assert_eq!((findings[0].at.line, findings[0].at.col), (2, 3));
        assert_eq!(findings[1].path, "zzz");
        assert!(!findings[1].problem.contains("did you mean"));
    }

    #[test]
    fn type_errors_carry_path_and_position_without_echoing_strings() {
        let findings = decode_text(
            "probe:\n  initialDelaySeconds: s3cr3t\n  periodSeconds: 1\npolicy: sync\n",
        )
        .unwrap_err();
        let f = &findings[0];
        assert_eq!(f.path, "probe.initialDelaySeconds");
        assert_eq!((f.at.line, f.at.col), (2, 24));
        assert!(!f.problem.contains("s3cr3t"), "{}", f.problem);
        assert!(f.expected.as_deref().unwrap().starts_with("a whole number"));
    }

    #[test]
    fn keeps_going_after_type_errors_without_reporting_their_consequences() {
        let findings = decode_text(
            "probe:\n  initialDelaySeconds: x\n  periodSeconds: -1\n  extra: 1\n\
             policy: [sync]\nname: [1]\ntags: 7\n",
        )
        .unwrap_err();
        let mut paths: Vec<&str> = findings.iter().map(|f| f.path.as_str()).collect();
        paths.sort_unstable();
        assert_eq!(
            paths,
            [
                "name",
                "policy",
                "probe.extra",
                "probe.initialDelaySeconds",
                "probe.periodSeconds",
                "tags"
            ]
        );
        // A mapping replaced by a placeholder does not then report its missing fields.
        let findings = decode_text("probe: 5\npolicy: sync\n").unwrap_err();
        assert_eq!(findings.len(), 1, "{findings:?}");
        assert_eq!(findings[0].path, "probe");
        assert_eq!(findings[0].expected.as_deref(), Some("a mapping"));
    }

    #[test]
    fn missing_fields_and_bad_variants_are_named() {
        let findings = decode_text("probe: {initialDelaySeconds: 1}\npolicy: sync\n").unwrap_err();
        assert_eq!(findings[0].path, "probe.periodSeconds");
        assert!(findings[0].problem.contains("required"));
        let findings =
            decode_text("probe: {initialDelaySeconds: 1, periodSeconds: 1}\npolicy: upsertOnyl\n")
                .unwrap_err();
        assert_eq!(findings[0].path, "policy");
        assert!(findings[0].problem.contains("did you mean `upsertOnly`?"));
    }

    #[test]
    fn literal_credentials_are_refused_as_such() {
        let findings = decode_text(
            "probe: {initialDelaySeconds: 1, periodSeconds: 1}\npolicy: sync\napiToken: x\n",
        )
        .unwrap_err();
        assert_eq!(findings[0].path, "apiToken");
        assert!(findings[0].problem.contains("SecretRef"));
    }

    #[test]
    fn suggestions_need_a_close_match() {
        let known = ["initialDelaySeconds", "periodSeconds", "timeoutSeconds"];
        assert_eq!(
            suggest("intialDelaySeconds", &known),
            Some("initialDelaySeconds")
        );
        assert_eq!(suggest("periodseconds", &known), Some("periodSeconds"));
        assert_eq!(suggest("replicas", &known), None);
    }
}
