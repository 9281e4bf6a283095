//! The JSON Schema against the loader it is derived from. The loader is the oracle: every
//! field, type, enum, default and required field the schema states is tried on both, on
//! specs for every provider, and two laws must hold for every try:
//!
//! - what the schema refuses, the loader refuses (the schema is never stricter);
//! - what the loader refuses for its shape (unknown field, wrong type, missing field,
//!   unknown name, a number out of range, a provider block other than the chosen one or
//!   none), the schema refuses too.
//!
//! The checks only the loader makes are listed in README.md ("Editor support"); the last
//! test holds that list to the truth.

use crate::support::kits;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use catalyst_bootstrap::spec::{self, Diagnostic, Provider, SpecError, schema};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn validator() -> jsonschema::Validator {
    jsonschema::draft202012::new(&schema::schema()).expect("the schema compiles")
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads documents through the real loader, over the repository's defaults.
struct Loader {
    dir: tempfile::TempDir,
}

impl Loader {
    fn new() -> Self {
        Loader {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// JSON is YAML, so the document is written as the loader's input as it is.
    fn load(&self, doc: &Value) -> Result<spec::Loaded, Vec<Diagnostic>> {
        let path = self.dir.path().join("sovereign.yaml");
        std::fs::write(&path, serde_json::to_string_pretty(doc).unwrap()).unwrap();
        match spec::load(&path, Some(Path::new(kits::TEMPLATE))) {
            Ok(loaded) => Ok(loaded),
            Err(SpecError::Invalid(diagnostics)) => Err(diagnostics),
            Err(other) => panic!("{other}"),
        }
    }
}

/// What kind of shape refusal a diagnostic is, if it is one.
fn shape_kind(d: &Diagnostic) -> Option<&'static str> {
    let p = d.problem.as_str();
    if p.starts_with("unknown field") || p.starts_with("a literal credential") {
        Some("unknown field")
    } else if p.starts_with("found ") {
        Some("wrong type")
    } else if p == "is required but missing" {
        Some("missing field")
    } else if p.starts_with("unknown value") {
        Some("unknown name")
    } else if p.ends_with("is out of range") {
        Some("out of range")
    } else if p.starts_with("spec.dns.provider is")
        || p.contains("block is set but spec.dns.provider")
    {
        // The schema's oneOf keyed by spec.dns.provider states this rule too.
        Some("provider block")
    } else {
        None
    }
}

/// Runs one document through both and records every broken law.
struct Trial<'a> {
    loader: &'a Loader,
    validator: &'a jsonschema::Validator,
    failures: Vec<String>,
    /// The kinds of shape refusal seen, so the corpus cannot pass by trying nothing.
    kinds: BTreeSet<&'static str>,
    tries: usize,
}

impl Trial<'_> {
    fn check(&mut self, what: &str, doc: &Value) -> Result<spec::Loaded, Vec<Diagnostic>> {
        self.tries += 1;
        let loaded = self.loader.load(doc);
        let schema_errors: Vec<String> = self
            .validator
            .iter_errors(doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        match &loaded {
            Ok(_) if !schema_errors.is_empty() => self.failures.push(format!(
                "{what}: the loader accepts it, the schema refuses it: {schema_errors:?}"
            )),
            Err(diagnostics) => {
                let shape: Vec<&Diagnostic> = diagnostics
                    .iter()
                    .filter(|d| shape_kind(d).is_some())
                    .collect();
                self.kinds
                    .extend(shape.iter().filter_map(|d| shape_kind(d)));
                if !shape.is_empty() && schema_errors.is_empty() {
                    let lines: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
                    self.failures.push(format!(
                        "{what}: the loader refuses its shape, the schema accepts it: {lines:?}"
                    ));
                }
            }
            Ok(_) => {}
        }
        loaded
    }

    /// Checks `doc`, which the loader must refuse with a diagnostic at a path `at` accepts,
    /// listing the names the schema lists (`names`, which the loader `verb`s).
    fn names_listed(
        &mut self,
        what: &str,
        doc: &Value,
        at: impl Fn(&str) -> bool,
        verb: &str,
        names: &BTreeSet<String>,
    ) {
        let failure = match self.check(what, doc) {
            Err(diagnostics) => match diagnostics
                .iter()
                .find(|d| d.path.as_deref().is_some_and(&at))
            {
                Some(d) if expected_names(d) == *names => return,
                Some(d) => format!(
                    "{what}: the loader {verb} {:?}, the schema {names:?}",
                    expected_names(d)
                ),
                None => format!("{what}: not named: {diagnostics:?}"),
            },
            Ok(_) => format!("{what}: the loader accepts it"),
        };
        self.failures.push(failure);
    }
}

/// Every field the schema describes, as a path of keys, with its schema. A map's values
/// are reached through the key `some-key`.
fn fields(node: &Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    if let Some(Value::Object(properties)) = node.get("properties") {
        for (key, child) in properties {
            path.push(key.clone());
            out.push((path.clone(), child.clone()));
            fields(child, path, out);
            path.pop();
        }
    }
    if let Some(values @ Value::Object(_)) = node.get("additionalProperties") {
        path.push("some-key".to_owned());
        out.push((path.clone(), values.clone()));
        path.pop();
    }
}

fn set(doc: &mut Value, path: &[String], value: Value) {
    let (last, parents) = path.split_last().unwrap();
    let mut node = doc;
    for key in parents {
        if !node.get(key).is_some_and(Value::is_object) {
            node[key] = json!({});
        }
        node = &mut node[key];
    }
    node[last] = value;
}

fn remove(doc: &mut Value, path: &[String]) -> bool {
    let (last, parents) = path.split_last().unwrap();
    let mut node = doc;
    for key in parents {
        match node.get_mut(key) {
            Some(child) => node = child,
            None => return false,
        }
    }
    node.as_object_mut()
        .is_some_and(|map| map.remove(last).is_some())
}

fn types(node: &Value) -> Vec<&str> {
    match &node["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// A value of a kind the field does not take.
fn wrong_value(node: &Value) -> Value {
    let types = types(node);
    if types.contains(&"object") {
        json!("not a mapping")
    } else if types.contains(&"array") {
        json!("not a list")
    } else if types.contains(&"string") {
        // What YAML makes of an unquoted 0.22.
        json!(0.22)
    } else if types.contains(&"integer") {
        json!("soon")
    } else if types.contains(&"boolean") {
        json!("maybe")
    } else {
        panic!("a field of no known type: {node}")
    }
}

/// Names in backticks or a comma-separated `one of` list, as the loader's diagnostics
/// state what they expected.
fn expected_names(d: &Diagnostic) -> BTreeSet<String> {
    let expected = d.expected.as_deref().unwrap_or_default();
    let list = expected.strip_prefix("one of ").unwrap_or(expected);
    list.split(", ")
        .map(|name| name.trim_matches('`').to_owned())
        .collect()
}

/// The Sovereigns the corpus starts from: the example, and one per provider and chart kind
/// from the snapshot tests' fixtures.
fn bases() -> Vec<(String, Value)> {
    let mut bases = vec![(
        "clusters/example".to_owned(),
        yaml(&read(
            &Path::new(ROOT).join("clusters/example/sovereign.yaml"),
        )),
    )];
    for (name, dns) in kits::all_providers() {
        bases.push((
            format!("{name} fixture"),
            yaml(&kits::sovereign("cilium", "", dns)),
        ));
    }
    bases.push((
        "wrapper chart fixture".to_owned(),
        yaml(&kits::sovereign("calico", kits::WRAPPER_CHART, kits::PDNS)),
    ));
    bases
}

fn provider(doc: &Value) -> String {
    doc.pointer("/spec/dns/provider")
        .and_then(Value::as_str)
        .unwrap_or("pdns")
        .to_owned()
}

fn other_providers_block(path: &[String], chosen: &str) -> bool {
    path.len() >= 3
        && path[0] == "spec"
        && path[1] == "dns"
        && path[2] != "provider"
        && path[2] != chosen
}

#[test]
fn the_committed_schema_is_what_the_command_prints() {
    let out = cargo_bin_cmd!("catalyst-bootstrap")
        .arg("schema")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    assert_eq!(printed, schema::to_text());
    let committed = read(&Path::new(ROOT).join(schema::COMMITTED_PATH));
    assert!(
        committed == printed,
        "{} is out of date; regenerate it with `cargo run -q -- schema > {}`",
        schema::COMMITTED_PATH,
        schema::COMMITTED_PATH
    );
}

#[test]
fn the_schema_is_a_draft_2020_12_schema() {
    let schema = schema::schema();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    jsonschema::meta::validate(&schema).expect("the schema is valid against its meta-schema");
    let spec = &schema["properties"]["spec"]["properties"];
    let dns = &spec["dns"];
    let branches: Vec<&str> = dns["oneOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["properties"]["provider"]["const"].as_str().unwrap())
        .collect();
    let kinds: Vec<&str> = spec::ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(
        branches, kinds,
        "one oneOf branch per provider, keyed by provider"
    );
    assert_eq!(dns["properties"]["provider"]["enum"], json!(kinds));
    // Every field says what it is.
    let mut all = Vec::new();
    fields(&schema, &mut Vec::new(), &mut all);
    let undescribed: Vec<String> = all
        .iter()
        .filter(|(path, node)| {
            path.last().unwrap() != "some-key" && node.get("description").is_none()
        })
        .map(|(path, _)| path.join("."))
        .collect();
    assert!(
        undescribed.is_empty(),
        "fields without a description: {undescribed:?}"
    );
}

#[test]
fn the_editor_modeline_names_the_committed_schema() {
    for file in [
        "clusters/example/sovereign.yaml",
        "clusters/_template/sovereign.yaml",
    ] {
        let path = Path::new(ROOT).join(file);
        let text = read(&path);
        let first = text.lines().next().unwrap();
        let target = first
            .strip_prefix("# yaml-language-server: $schema=")
            .unwrap_or_else(|| panic!("{file} does not start with the modeline: {first}"));
        let resolved = path.parent().unwrap().join(target);
        assert_eq!(
            resolved.canonicalize().unwrap(),
            Path::new(ROOT)
                .join(schema::COMMITTED_PATH)
                .canonicalize()
                .unwrap(),
            "{file}"
        );
    }
}

/// The specs of the repository: clusters/*/sovereign.yaml and the snapshot fixtures.
fn repository_specs() -> Vec<(String, String)> {
    let mut specs = Vec::new();
    let clusters = Path::new(ROOT).join("clusters");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&clusters)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("sovereign.yaml").is_file())
        .collect();
    dirs.sort();
    for dir in dirs {
        let file = dir.join("sovereign.yaml");
        specs.push((file.display().to_string(), read(&file)));
    }
    for (name, dns) in kits::all_providers() {
        for cni in ["cilium", "calico"] {
            for (chart, external_dns) in [
                ("", ""),
                ("wrapper", kits::WRAPPER_CHART),
                ("oci", kits::OCI_CHART),
            ] {
                specs.push((
                    format!("fixture {name} {cni} {chart}"),
                    kits::sovereign(cni, external_dns, dns),
                ));
            }
        }
    }
    specs.push((
        "fixture with labels".to_owned(),
        kits::sovereign("cilium", "", kits::PDNS).replacen(
            "  name: example\n",
            "  name: example\n  labels:\n    sharding.fluxcd.io/key: shard-a\n    team: dns\n",
            1,
        ),
    ));
    specs
}

#[test]
fn every_spec_in_the_repository_validates() {
    let validator = validator();
    let mut failures = Vec::new();
    let specs = repository_specs();
    assert!(
        specs
            .iter()
            .any(|(name, _)| name.ends_with("clusters/example/sovereign.yaml"))
    );
    assert!(
        specs
            .iter()
            .any(|(name, _)| name.ends_with("clusters/_template/sovereign.yaml"))
    );
    for (name, text) in &specs {
        let doc = yaml(text);
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        if !errors.is_empty() {
            failures.push(format!("{name}: {errors:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The template is a defaults file: nothing is required of it, but its shape is checked.
    let template = yaml(&read(Path::new(kits::TEMPLATE)));
    let mut broken = template.clone();
    broken["spec"]["externalDns"]["intervall"] = json!("1m");
    assert!(!validator.is_valid(&broken));
    let mut broken = template;
    broken["spec"]["externalDns"]["probes"]["liveness"]["periodSeconds"] = json!("30");
    assert!(!validator.is_valid(&broken));
}

#[test]
fn schema_and_loader_agree_on_every_field_type_enum_and_required_field() {
    let loader = Loader::new();
    let validator = validator();
    let schema = schema::schema();
    let mut all = Vec::new();
    fields(&schema, &mut Vec::new(), &mut all);
    let mut trial = Trial {
        loader: &loader,
        validator: &validator,
        failures: Vec::new(),
        kinds: BTreeSet::new(),
        tries: 0,
    };
    for (base_name, base) in bases() {
        assert!(
            trial.check(&base_name, &base).is_ok(),
            "{base_name} must be valid: {:?}",
            loader.load(&base).err()
        );
        let chosen = provider(&base);
        let mut objects = vec![(Vec::new(), schema.clone())];
        objects.extend(
            all.iter()
                .filter(|(_, node)| node.get("properties").is_some())
                .cloned(),
        );
        // Unknown fields, and the loader's list of the known ones.
        for (path, node) in &objects {
            if other_providers_block(path, &chosen) {
                continue;
            }
            let mut field = path.clone();
            field.push("zzzUnknown".to_owned());
            let what = format!("{base_name}: unknown field {}", field.join("."));
            let mut doc = base.clone();
            set(&mut doc, &field, json!("x"));
            let known: BTreeSet<String> = node["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            let at = field.join(".");
            trial.names_listed(&what, &doc, |p| p == at, "knows", &known);
        }
        for (path, node) in &all {
            if other_providers_block(path, &chosen) {
                continue;
            }
            let name = format!("{base_name}: {}", path.join("."));
            // A value of the wrong kind.
            let mut doc = base.clone();
            set(&mut doc, path, wrong_value(node));
            if trial
                .check(&format!("{name} of the wrong type"), &doc)
                .is_ok()
            {
                trial.failures.push(format!(
                    "{name}: the loader takes a value of the wrong type"
                ));
            }
            // The schema's own examples, default and allowed names.
            let mut candidates: Vec<Value> = Vec::new();
            if let Some(Value::Array(examples)) = node.get("examples") {
                candidates.extend(examples.iter().cloned());
            }
            candidates.extend(node.get("default").cloned());
            candidates.extend(node.get("const").cloned());
            if let Some(Value::Array(names)) = node.get("enum") {
                candidates.extend(names.iter().cloned());
            }
            if let Some(Value::Array(names)) = node.pointer("/items/enum") {
                candidates.extend(names.iter().map(|n| json!([n])));
            }
            // Just outside an integer's range.
            if let Some(min) = node.get("minimum").and_then(Value::as_i64) {
                candidates.push(json!(min - 1));
            }
            if let Some(max) = node.get("maximum").and_then(Value::as_u64) {
                candidates.push(json!(max + 1));
            }
            candidates.push(Value::Null);
            for value in candidates {
                let mut doc = base.clone();
                set(&mut doc, path, value.clone());
                let _ = trial.check(&format!("{name} = {value}"), &doc);
            }
            // A name outside the enum, and the loader's list of the allowed ones.
            let (names, wrap): (_, fn(Value) -> Value) =
                match (node.get("enum"), node.pointer("/items/enum")) {
                    (Some(names), _) => (names, |v| v),
                    (None, Some(names)) => (names, |v| json!([v])),
                    _ => (&Value::Null, |v| v),
                };
            if let Value::Array(names) = names {
                let what = format!("{name} = an unknown name");
                let mut doc = base.clone();
                set(&mut doc, path, wrap(json!("not-a-known-name")));
                let allowed: BTreeSet<String> = names
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect();
                let at = path.join(".");
                trial.names_listed(&what, &doc, |p| p.starts_with(&at), "allows", &allowed);
            }
            // Left out: the defaults supply it, the file must state it, or the loader
            // refuses it for a rule of its own.
            let mut doc = base.clone();
            if remove(&mut doc, path) {
                let _ = trial.check(&format!("{name} left out"), &doc);
            }
        }
    }
    assert!(
        trial.failures.is_empty(),
        "{} disagreements:\n{}",
        trial.failures.len(),
        trial.failures.join("\n")
    );
    let kinds: Vec<&str> = trial.kinds.iter().copied().collect();
    assert_eq!(
        kinds,
        [
            "missing field",
            "out of range",
            "provider block",
            "unknown field",
            "unknown name",
            "wrong type"
        ],
        "the corpus must reach every kind of shape refusal"
    );
    assert!(
        trial.tries > 1000,
        "only {} documents were tried",
        trial.tries
    );
}

#[test]
fn every_default_in_the_schema_is_what_the_loader_uses() {
    let loader = Loader::new();
    let schema = schema::schema();
    let mut all = Vec::new();
    fields(&schema, &mut Vec::new(), &mut all);
    let defaulted: Vec<&(Vec<String>, Value)> = all
        .iter()
        .filter(|(_, node)| node.get("default").is_some())
        .collect();
    assert!(defaulted.len() > 30, "{}", defaulted.len());
    let mut checked = BTreeSet::new();
    let mut failures = Vec::new();
    for (base_name, base) in bases() {
        let chosen = provider(&base);
        for (path, node) in &defaulted {
            // Leaving out another provider than the default's would choose the default.
            if other_providers_block(path, &chosen)
                || (path.join(".") == "spec.dns.provider" && node["default"] != json!(chosen))
            {
                continue;
            }
            let mut doc = base.clone();
            remove(&mut doc, path);
            let loaded = loader
                .load(&doc)
                .unwrap_or_else(|d| panic!("{base_name} without {}: {d:?}", path.join(".")));
            let pointer: String = path.iter().map(|k| format!("/{k}")).collect();
            let mut used = serde_json::to_value(&loaded.sovereign)
                .unwrap()
                .pointer(&pointer)
                .cloned()
                .unwrap_or(Value::Null);
            if pointer == "/spec/dns/webhook/port" {
                // The type keeps "not set"; the kit gets the port the getter gives.
                assert_eq!(used, Value::Null);
                let Provider::Webhook(webhook) = &loaded.sovereign.spec.dns else {
                    panic!("{base_name}: the webhook provider was not chosen");
                };
                used = json!(webhook.port());
            }
            if used != node["default"] {
                failures.push(format!(
                    "{base_name}: {}: the schema says {}, the loader uses {used}",
                    path.join("."),
                    node["default"]
                ));
            }
            checked.insert(path.join("."));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let unchecked: Vec<String> = defaulted
        .iter()
        .map(|(p, _)| p.join("."))
        .filter(|p| !checked.contains(p))
        .collect();
    assert!(unchecked.is_empty(), "defaults never tried: {unchecked:?}");
}

/// A change to a spec, named for what it breaks.
type Edit = Box<dyn Fn(&mut Value)>;

/// Shape mistakes people make, each refused by the schema as by the loader.
#[test]
fn the_schema_refuses_the_usual_shape_mistakes() {
    let loader = Loader::new();
    let validator = validator();
    let example = yaml(&read(
        &Path::new(ROOT).join("clusters/example/sovereign.yaml"),
    ));
    let cases: Vec<(&str, Edit)> = vec![
        (
            "a misspelt field",
            Box::new(|d| {
                d["spec"]["externalDns"] =
                    json!({ "probes": { "liveness": { "intialDelaySeconds": 180 } } })
            }),
        ),
        (
            "a literal credential",
            Box::new(|d| d["spec"]["dns"]["pdns"]["apiKey"] = json!("hunter2")),
        ),
        (
            "a version YAML reads as a number",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "version": 0.22 })),
        ),
        (
            "a negative probe delay",
            Box::new(|d| {
                d["spec"]["externalDns"] =
                    json!({ "probes": { "liveness": { "initialDelaySeconds": -5 } } })
            }),
        ),
        (
            "a label value that is a number",
            Box::new(|d| d["metadata"]["labels"] = json!({ "tier": 1 })),
        ),
        (
            "an unknown policy",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "policy": "delete-everything" })),
        ),
        (
            "an unknown provider",
            Box::new(|d| d["spec"]["dns"]["provider"] = json!("powerdns")),
        ),
        (
            "no apiVersion",
            Box::new(|d| {
                d.as_object_mut().unwrap().remove("apiVersion");
            }),
        ),
        ("no metadata.name", Box::new(|d| d["metadata"] = json!({}))),
        (
            "no secret reference",
            Box::new(|d| {
                d["spec"]["dns"]["pdns"]
                    .as_object_mut()
                    .unwrap()
                    .remove("apiKeySecretRef");
            }),
        ),
        (
            "another provider's block",
            Box::new(|d| {
                d["spec"]["dns"]["cloudflare"] =
                    json!({ "apiTokenSecretRef": { "name": "cf", "key": "token" } })
            }),
        ),
        (
            "no block for the provider",
            Box::new(|d| d["spec"]["dns"]["provider"] = json!("aws")),
        ),
        (
            "no spec.dns at all",
            Box::new(|d| {
                d["spec"].as_object_mut().unwrap().remove("dns");
            }),
        ),
        (
            "a wrong apiVersion",
            Box::new(|d| d["apiVersion"] = json!("catalyst.openova.io/v1beta1")),
        ),
        (
            "an unknown source",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "sources": ["service", "ingres"] })),
        ),
    ];
    for (name, edit) in cases {
        let mut doc = example.clone();
        edit(&mut doc);
        assert!(loader.load(&doc).is_err(), "{name}: the loader accepts it");
        assert!(!validator.is_valid(&doc), "{name}: the schema accepts it");
    }
}

/// README.md lists what only the loader checks; each of these must stay true, or the list
/// (and this test) must change with the schema.
#[test]
fn the_checks_only_the_loader_makes_are_not_in_the_schema() {
    let loader = Loader::new();
    let validator = validator();
    let example = yaml(&read(
        &Path::new(ROOT).join("clusters/example/sovereign.yaml"),
    ));
    let cases: Vec<(&str, Edit)> = vec![
        (
            "a name that is not an RFC 1123 label",
            Box::new(|d| d["metadata"]["name"] = json!("Example_1")),
        ),
        (
            "a domain with one label",
            Box::new(|d| d["spec"]["domain"] = json!("example")),
        ),
        (
            "a label key Kubernetes refuses",
            Box::new(|d| d["metadata"]["labels"] = json!({ "Shard.Example/key": "a" })),
        ),
        (
            "one of the tool's own labels",
            Box::new(|d| {
                d["metadata"]["labels"] = json!({ "catalyst.openova.io/sovereign": "other" })
            }),
        ),
        (
            "a duration Go cannot parse",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "interval": "1 minute" })),
        ),
        (
            "a version that is not vX.Y.Z",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "version": "0.22.0" })),
        ),
        (
            "a source listed twice",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "sources": ["service", "service"] })),
        ),
        (
            "no sources",
            Box::new(|d| d["spec"]["externalDns"] = json!({ "sources": [] })),
        ),
        (
            "a request above its limit",
            Box::new(|d| {
                d["spec"]["externalDns"] =
                    json!({ "resources": { "requests": { "memory": "512Mi" } } })
            }),
        ),
        (
            "a quantity Kubernetes refuses",
            Box::new(|d| {
                d["spec"]["externalDns"] =
                    json!({ "resources": { "requests": { "memory": "64MB" } } })
            }),
        ),
        (
            "an annotation prefix the release cannot take",
            Box::new(|d| {
                d["spec"]["externalDns"] = json!({ "version": "v0.19.0", "annotationPrefix": "external-dns.kubernetes.io/" })
            }),
        ),
        (
            "credentials in a URL",
            Box::new(|d| {
                d["spec"]["dns"]["pdns"]["apiUrl"] =
                    json!("http://admin:hunter2@powerdns.powerdns.svc:8081")
            }),
        ),
        (
            "a URL with another scheme",
            Box::new(|d| d["spec"]["verify"]["apiUrl"] = json!("ftp://127.0.0.1")),
        ),
        (
            "a Secret name Kubernetes refuses",
            Box::new(|d| {
                d["spec"]["dns"]["pdns"]["apiKeySecretRef"]["name"] = json!("PowerDNS_API")
            }),
        ),
        (
            "both apiKeyEnv and apiKeyFile",
            Box::new(|d| d["spec"]["verify"]["apiKeyFile"] = json!("/run/secrets/pdns-api-key")),
        ),
        (
            "neither apiKeyEnv nor apiKeyFile",
            Box::new(|d| d["spec"]["verify"]["apiKeyEnv"] = Value::Null),
        ),
        (
            "a relative apiKeyFile",
            Box::new(|d| {
                d["spec"]["verify"]["apiKeyEnv"] = Value::Null;
                d["spec"]["verify"]["apiKeyFile"] = json!("secrets/key");
            }),
        ),
        (
            "a nameserver that is not ip:port",
            Box::new(|d| d["spec"]["verify"]["nameserver"] = json!("localhost:53")),
        ),
        (
            "a hostname outside the zones",
            Box::new(|d| d["spec"]["verify"]["hostnames"] = json!(["api.example.com"])),
        ),
    ];
    for (name, edit) in cases {
        let mut doc = example.clone();
        edit(&mut doc);
        assert!(loader.load(&doc).is_err(), "{name}: the loader accepts it");
        let errors: Vec<String> = validator.iter_errors(&doc).map(|e| e.to_string()).collect();
        assert!(
            errors.is_empty(),
            "{name}: the schema refuses it now; move it out of README.md's list of loader-only checks: {errors:?}"
        );
    }
    // A liveness delay below the cache sync is a warning of the loader, not an error.
    let mut doc = example.clone();
    doc["spec"]["externalDns"] = json!({ "probes": { "liveness": { "initialDelaySeconds": 30 } } });
    let loaded = loader.load(&doc).expect("a short delay only warns");
    assert_eq!(loaded.warnings.len(), 1);
    assert!(validator.is_valid(&doc));
}
