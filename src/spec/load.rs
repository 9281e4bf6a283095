//! Reads a Sovereign file and its defaults, merges them, decodes and validates the result,
//! and points every problem at the file, line and column that supplied the value.

use std::path::{Path, PathBuf};

use super::decode::{self, Finding};
use super::tree::{Node, Origin, Value};
use super::validate::{self, Issue};
use super::{Diagnostic, Dns, EXCLUSIVE_GROUPS, Sovereign, SpecError};

/// clusters/_template/sovereign.yaml as it was when the binary was built, used when no
/// defaults file is given or found, so the binary works on its own.
pub const EMBEDDED_DEFAULTS: &str = include_str!("../../clusters/_template/sovereign.yaml");

/// How diagnostics name the embedded defaults.
pub const DEFAULTS_LABEL: &str = "<built-in clusters/_template/sovereign.yaml>";

/// A valid Sovereign and what is worth a warning about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub sovereign: Sovereign,
    pub warnings: Vec<Diagnostic>,
    /// The defaults file used, or [`DEFAULTS_LABEL`].
    pub defaults: String,
}

struct Source {
    label: String,
    text: String,
}

/// Loads `spec_path` deep-merged over the defaults: `defaults_path` if given, else
/// `<spec dir>/../_template/sovereign.yaml` if it exists, else the embedded copy.
pub fn load(spec_path: &Path, defaults_path: Option<&Path>) -> Result<Loaded, SpecError> {
    let sovereign_source = read(spec_path)?;
    let defaults_source = match defaults_path {
        Some(path) => read(path)?,
        None => match sibling_template(spec_path) {
            Some(path) => read(&path)?,
            None => Source {
                label: DEFAULTS_LABEL.to_owned(),
                text: EMBEDDED_DEFAULTS.to_owned(),
            },
        },
    };
    let label = |origin: Origin| match origin {
        Origin::Sovereign => sovereign_source.label.as_str(),
        Origin::Defaults => defaults_source.label.as_str(),
    };

    // Parse both before reporting, so a broken spec and broken defaults show up together.
    let parsed = [
        parse_document(&sovereign_source, Origin::Sovereign),
        parse_document(&defaults_source, Origin::Defaults),
    ];
    let [sovereign_doc, defaults_doc] = match parsed {
        [Ok(s), Ok(d)] => [s, d],
        [s, d] => {
            let errors = [s.err(), d.err()].into_iter().flatten().collect();
            return Err(SpecError::Invalid(errors));
        }
    };

    let merged = defaults_doc.merge(sovereign_doc, EXCLUSIVE_GROUPS);
    let diagnostics = |mut findings: Vec<Finding>| {
        // In file order, the Sovereign file first.
        findings.sort_by_key(|f| f.at);
        findings
            .into_iter()
            .map(
                |Finding {
                     path,
                     at,
                     problem,
                     expected,
                 }| Diagnostic {
                    file: label(at.origin).to_owned(),
                    location: Some((at.line, at.col)),
                    path: Some(path),
                    problem,
                    expected,
                },
            )
            .collect::<Vec<_>>()
    };
    let mut decoded = decode::decode::<Sovereign<Dns>>(&merged);
    let mut findings = std::mem::take(&mut decoded.findings);
    let Some(sovereign) = decoded.value.take() else {
        return Err(SpecError::Invalid(diagnostics(findings)));
    };

    // Semantic problems are reported where the value came from: the Sovereign file if it
    // sets the field, else the defaults file. Those about placeholders that stand in for
    // values with type errors are consequences of errors already found.
    let (report, sovereign) = validate::validate(sovereign);
    let locate = |issues: Vec<Issue>| {
        issues
            .into_iter()
            .filter(|issue| !decoded.covers(&issue.path))
            .map(
                |Issue {
                     path,
                     problem,
                     expected,
                 }| Finding {
                    at: merged.locate_nearest(&path),
                    path,
                    problem,
                    expected,
                },
            )
            .collect::<Vec<_>>()
    };
    findings.extend(locate(report.errors));
    let Some(sovereign) = sovereign.filter(|_| findings.is_empty()) else {
        return Err(SpecError::Invalid(diagnostics(findings)));
    };
    Ok(Loaded {
        sovereign,
        warnings: diagnostics(locate(report.warnings)),
        defaults: defaults_source.label.clone(),
    })
}

fn read(path: &Path) -> Result<Source, SpecError> {
    let label = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Source { label, text }),
        Err(source) => Err(SpecError::Unreadable {
            file: label,
            source,
        }),
    }
}

fn sibling_template(spec_path: &Path) -> Option<PathBuf> {
    let dir = match spec_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let candidate = dir.join("../_template/sovereign.yaml");
    candidate.is_file().then_some(candidate)
}

/// Parses a file that must hold one YAML mapping.
fn parse_document(source: &Source, origin: Origin) -> Result<Node, Diagnostic> {
    let diagnostic = |location, problem: String, expected: &str| Diagnostic {
        file: source.label.clone(),
        location,
        path: None,
        problem,
        expected: Some(expected.to_owned()),
    };
    let node = Node::parse(&source.text, origin).map_err(|e| {
        // The parser words this one for programmers (naming its own multi-document API).
        if e.message.starts_with("multiple YAML documents") {
            return diagnostic(
                e.line.zip(e.col),
                "the file holds more than one YAML document (a second starts here)".to_owned(),
                "exactly one document, the Sovereign",
            );
        }
        diagnostic(
            e.line.zip(e.col),
            format!("YAML syntax error: {}", e.message),
            "valid YAML",
        )
    })?;
    match node.value {
        Value::Map(_) => Ok(node),
        Value::Null if source.text.trim().is_empty() => Err(diagnostic(
            None,
            "the file is empty".to_owned(),
            "a Sovereign manifest",
        )),
        Value::Null => Err(diagnostic(
            None,
            "the file holds no YAML document, only comments".to_owned(),
            "a Sovereign manifest",
        )),
        _ => Err(diagnostic(
            Some((node.at.line, node.at.col)),
            "the document is not a mapping".to_owned(),
            "a mapping with apiVersion, kind, metadata and spec",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_defaults_parse_as_a_mapping() {
        let source = Source {
            label: DEFAULTS_LABEL.to_owned(),
            text: EMBEDDED_DEFAULTS.to_owned(),
        };
        assert!(parse_document(&source, Origin::Defaults).is_ok());
    }

    #[test]
    fn the_template_is_found_beside_the_spec_directory() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("clusters/a/sovereign.yaml");
        std::fs::create_dir_all(spec.parent().unwrap()).unwrap();
        assert_eq!(sibling_template(&spec), None);
        let template = dir.path().join("clusters/_template/sovereign.yaml");
        std::fs::create_dir_all(template.parent().unwrap()).unwrap();
        std::fs::write(&template, "x: 1\n").unwrap();
        assert_eq!(
            sibling_template(&spec).map(|p| p.canonicalize().unwrap()),
            Some(template.canonicalize().unwrap())
        );
    }
}
