//! How decoding words what it found: the error serde's calls produce, in the words of a
//! YAML author, with the value to decode on with in place of the bad one.

use std::fmt;

use serde::de::{self, Unexpected};

use super::{Finding, one_of, suggest};
use crate::spec::parsed::EXPECTED_SEPARATOR;
use crate::spec::tree::{Node, Position, Value, join};

#[derive(Debug)]
pub struct DecodeError {
    pub(super) path: Option<String>,
    at: Option<Position>,
    problem: String,
    pub(super) expected: Option<String>,
    /// Set by `missing_field`: the path gets the field appended when it is attached.
    pub(super) missing: Option<&'static str>,
    /// A value that would satisfy the type, to decode on past this error.
    pub(super) hint: Option<Value>,
}

impl DecodeError {
    pub(super) fn new(problem: String, expected: Option<String>) -> Self {
        DecodeError {
            path: None,
            at: None,
            problem,
            expected,
            missing: None,
            hint: None,
        }
    }

    /// The `attempt`-th value to try in place of the bad one: the expected kind first,
    /// then every kind in turn (a missing field does not say its type).
    pub(super) fn placeholder(&self, attempt: usize) -> Option<Value> {
        let any = [
            Value::Str(String::new()),
            Value::Int(1),
            Value::Map(Vec::new()),
            Value::Seq(Vec::new()),
            Value::Bool(false),
        ];
        // A hint that somehow fails is retried a few times before falling back.
        match &self.hint {
            Some(hint) if attempt < 3 => Some(hint.clone()),
            _ => any
                .get(attempt % any.len())
                .cloned()
                .filter(|_| attempt < 16),
        }
    }

    /// Attaches the path and position of the node being decoded, unless a deeper node
    /// already did.
    pub(super) fn within(mut self, path: &str, at: Position) -> Self {
        if self.path.is_none() {
            self.path = Some(match self.missing {
                Some(field) => join(path, field),
                None => path.to_owned(),
            });
            self.at = Some(at);
        }
        self
    }

    pub(super) fn into_finding(self, root: &Node) -> Finding {
        let path = self.path.unwrap_or_default();
        // A missing field is reported where its parent is, as a semantic error would be.
        let at = match (self.missing, self.at) {
            (None, Some(at)) => at,
            _ => root.locate_nearest(&path),
        };
        Finding {
            at,
            path,
            problem: self.problem,
            expected: self.expected,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problem)?;
        if let Some(expected) = &self.expected {
            write!(f, "; expected {expected}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DecodeError {}

impl de::Error for DecodeError {
    /// A message worded as a [`Rejected`] keeps its expectation apart.
    fn custom<T: fmt::Display>(msg: T) -> Self {
        let msg = msg.to_string();
        match msg.split_once(EXPECTED_SEPARATOR) {
            Some((problem, expected)) => {
                DecodeError::new(problem.to_owned(), Some(expected.to_owned()))
            }
            None => DecodeError::new(msg, None),
        }
    }

    // Values are described by kind only: a misplaced credential must not be echoed.
    fn invalid_type(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        let expected = plain_expected(&expected.to_string());
        let hint = match unexpected {
            Unexpected::Signed(_)
            | Unexpected::Unsigned(_)
            | Unexpected::Float(_)
            | Unexpected::Bool(_)
                if expected == "a string" =>
            {
                " (YAML reads it as a number or boolean: put it in quotes)"
            }
            _ => "",
        };
        let placeholder = match expected.as_str() {
            "a string" => Some(Value::Str(String::new())),
            "a mapping" => Some(Value::Map(Vec::new())),
            "a list" => Some(Value::Seq(Vec::new())),
            "`true` or `false`" => Some(Value::Bool(false)),
            e if e.starts_with("a whole number") => Some(Value::Int(1)),
            _ => None,
        };
        let mut error = DecodeError::new(
            format!("found {}{hint}", describe(unexpected)),
            Some(expected),
        );
        error.hint = placeholder;
        error
    }

    fn invalid_value(unexpected: Unexpected<'_>, expected: &dyn de::Expected) -> Self {
        DecodeError::new(
            format!("{} is out of range", describe(unexpected)),
            Some(plain_expected(&expected.to_string())),
        )
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let problem = match suggest(variant, expected) {
            Some(s) => format!("unknown value `{variant}`, did you mean `{s}`?"),
            None => format!("unknown value `{variant}`"),
        };
        let mut error = DecodeError::new(problem, Some(one_of(expected)));
        error.hint = expected.first().map(|v| Value::Str((*v).to_owned()));
        error
    }

    fn missing_field(field: &'static str) -> Self {
        let mut error = DecodeError::new("is required but missing".to_owned(), None);
        error.missing = Some(field);
        error
    }

    fn duplicate_field(field: &'static str) -> Self {
        DecodeError::new(
            format!("`{field}` is given twice"),
            Some("each field once".to_owned()),
        )
    }
}

fn describe(unexpected: Unexpected<'_>) -> String {
    match unexpected {
        Unexpected::Bool(b) => format!("the boolean `{b}`"),
        Unexpected::Signed(i) => format!("the number {i}"),
        Unexpected::Unsigned(u) => format!("the number {u}"),
        Unexpected::Float(f) => format!("the number {f}"),
        Unexpected::Str(_) | Unexpected::Char(_) => "a string".to_owned(),
        Unexpected::Unit | Unexpected::Option => "an empty value".to_owned(),
        Unexpected::Seq => "a list".to_owned(),
        Unexpected::Map => "a mapping".to_owned(),
        other => other.to_string(),
    }
}

/// Serde's expectations in the words of a YAML author.
fn plain_expected(expected: &str) -> String {
    if expected.starts_with("enum ") {
        "one of the allowed names".to_owned()
    } else if expected.starts_with("struct ") || expected == "a map" {
        "a mapping".to_owned()
    } else if expected == "a sequence" {
        "a list".to_owned()
    } else if let Some(bits) = expected.strip_prefix('u') {
        let bits: u32 = bits.parse().unwrap_or(64);
        format!("a whole number from 0 to {}", (1u128 << bits) - 1)
    } else if expected.starts_with('i') && expected[1..].parse::<u32>().is_ok() {
        "a whole number".to_owned()
    } else if expected == "a boolean" {
        "`true` or `false`".to_owned()
    } else {
        expected.to_owned()
    }
}
