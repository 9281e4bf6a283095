//! The JSON Schema (draft 2020-12) of a Sovereign file, for editors and manifest checkers.
//!
//! It is derived, not written: the shape comes from the same serde types the loader decodes
//! into (through `schemars`, which reads their serde attributes), the defaults from the
//! defaults file the binary embeds, and the provider blocks from [`ProviderKind::ALL`].
//! What the loader adds to the types is applied here by rule:
//!
//! - the decoder refuses unknown fields in every struct, so every struct's object schema is
//!   closed (`additionalProperties: false`);
//! - a Sovereign file is merged over the defaults, so a field the defaults supply is
//!   optional in the file and carries the default; a field the types require and the
//!   defaults lack is required, in a Sovereign file only (a defaults file states no
//!   `apiVersion`, `kind` or `metadata`, and is checked for shape alone);
//! - `spec.dns.provider` chooses exactly one provider block (a `oneOf` keyed by it).
//!
//! tests/world/schema.rs holds the schema to the loader: every field, type, enum, default and
//! required field is tried on both, and the committed `schema/sovereign.schema.json` must
//! equal what this module prints.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::load::EMBEDDED_DEFAULTS;
use super::{API_VERSION, DEFAULT_WEBHOOK_PORT, Dns, KIND, ProviderKind, Sovereign};
use crate::external_dns::KNOWN_SOURCES;

/// Where the repository commits the schema, relative to its root.
pub const COMMITTED_PATH: &str = "schema/sovereign.schema.json";

/// The schema as the `schema` command prints it: pretty JSON ending in a newline.
pub fn to_text() -> String {
    let mut text = serde_json::to_string_pretty(&schema()).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// The JSON Schema of a Sovereign file.
pub fn schema() -> Value {
    let mut root = schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<Sovereign<Dns>>()
        .to_value();
    let defaults: Value =
        serde_saphyr::from_str(EMBEDDED_DEFAULTS).expect("the embedded defaults are YAML");

    // What the types require, by object path, before it is split by file role.
    let mut required = BTreeMap::new();
    close(&mut root, "", &mut required);

    let root_map = root.as_object_mut().expect("the root schema is an object");
    root_map.insert("title".into(), json!("Sovereign"));
    root_map.insert(
        "description".into(),
        json!(format!(
            "A catalyst-bootstrap Sovereign file (clusters/<name>/sovereign.yaml), merged over \
             the defaults of clusters/_template/sovereign.yaml; the defaults file itself \
             validates too. Fields the defaults supply are optional and show their default. \
             This schema checks fields, types and allowed names; catalyst-bootstrap checks \
             more when it loads the file (formats, cross-field rules; README.md, \"Editor \
             support\"). The schema of {API_VERSION}."
        )),
    );

    property(&mut root, "apiVersion").insert("const".into(), json!(API_VERSION));
    property(&mut root, "kind").insert("const".into(), json!(KIND));
    property(&mut root, "spec.externalDns.sources")
        .get_mut("items")
        .and_then(Value::as_object_mut)
        .expect("sources is a list")
        .insert("enum".into(), json!(KNOWN_SOURCES));

    set_defaults(&mut root, "", &defaults);
    property(&mut root, "spec.dns.webhook.port")
        .insert("default".into(), json!(DEFAULT_WEBHOOK_PORT));

    let default_provider = defaults
        .pointer("/spec/dns/provider")
        .and_then(Value::as_str);
    property(&mut root, "spec.dns").insert(
        "oneOf".into(),
        Value::Array(provider_branches(default_provider)),
    );

    // A Sovereign file is told from a defaults file by what the defaults never state.
    let mut then = skeleton(&root, "", &required, &defaults);
    let never_defaulted: Vec<Value> = required[""]
        .iter()
        .filter(|field| defaults.get(field.as_str()).is_none())
        .map(|field| json!({ "required": [field] }))
        .collect();
    let dns_blocks = ProviderKind::ALL
        .iter()
        .any(|kind| defaults.pointer(&format!("/spec/dns/{kind}")).is_some());
    if !dns_blocks {
        // No provider block is defaulted, so every Sovereign file sets one.
        let spec = skeleton_at(&mut then, "spec");
        push_required(spec, "dns");
        let dns = skeleton_at(&mut then, "spec.dns");
        dns.insert(
            "allOf".into(),
            Value::Array(chosen_block_required(default_provider)),
        );
    }
    let root_map = root.as_object_mut().expect("the root schema is an object");
    root_map.insert("if".into(), json!({ "anyOf": never_defaulted }));
    root_map.insert("then".into(), Value::Object(then));
    root
}

/// Closes every struct's object schema, moves its `required` list into `required` (by
/// path), and gives unsigned integers their range.
fn close(node: &mut Value, path: &str, required: &mut BTreeMap<String, Vec<String>>) {
    let Some(map) = node.as_object_mut() else {
        return;
    };
    if let Some(bits) = map
        .get("format")
        .and_then(Value::as_str)
        .and_then(|f| f.strip_prefix("uint"))
        .and_then(|bits| bits.parse::<u32>().ok())
    {
        map.remove("format");
        map.entry("maximum")
            .or_insert_with(|| json!((1u64 << bits) - 1));
    }
    if let Some(Value::Object(properties)) = map.get_mut("properties") {
        for (key, child) in properties.iter_mut() {
            close(child, &join(path, key), required);
        }
        let names = match map.remove("required") {
            Some(Value::Array(names)) => names
                .into_iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        required.insert(path.to_owned(), names);
        map.insert("additionalProperties".into(), Value::Bool(false));
        // A struct's `Default` (from `#[serde(default)]`) is not what a Sovereign gets: the
        // defaults file is merged in key by key, and its values show on the fields.
        map.remove("default");
    }
}

/// The object schema of the property at a dotted path.
fn property<'a>(root: &'a mut Value, path: &str) -> &'a mut Map<String, Value> {
    let mut node = root;
    for key in path.split('.') {
        node = node
            .get_mut("properties")
            .and_then(|p| p.get_mut(key))
            .unwrap_or_else(|| panic!("the schema has no property `{path}`"));
    }
    node.as_object_mut()
        .unwrap_or_else(|| panic!("`{path}` is not an object schema"))
}

/// Gives every scalar and list the defaults file sets its `default`.
fn set_defaults(root: &mut Value, path: &str, defaults: &Value) {
    match defaults {
        Value::Object(entries) => {
            for (key, value) in entries {
                set_defaults(root, &join(path, key), value);
            }
        }
        value => {
            property(root, path).insert("default".into(), value.clone());
        }
    }
}

/// One `oneOf` branch per provider: `provider` names it, and no other provider's block is
/// set (`null` is allowed: it removes a default). The default provider's branch also
/// matches when `provider` is left to the defaults.
fn provider_branches(default_provider: Option<&str>) -> Vec<Value> {
    ProviderKind::ALL
        .iter()
        .map(|&kind| {
            let mut properties = Map::new();
            properties.insert("provider".into(), json!({ "const": kind.as_str() }));
            for other in ProviderKind::ALL.iter().filter(|&&o| o != kind) {
                properties.insert(
                    other.as_str().into(),
                    json!({
                        "type": "null",
                        "description": format!(
                            "only the block of spec.dns.provider ({kind}) may be set"
                        ),
                    }),
                );
            }
            let mut branch = Map::new();
            branch.insert("title".into(), json!(kind.as_str()));
            branch.insert("properties".into(), Value::Object(properties));
            if default_provider != Some(kind.as_str()) {
                branch.insert("required".into(), json!(["provider"]));
            }
            Value::Object(branch)
        })
        .collect()
}

/// In a Sovereign file, the chosen provider's block is set (an object).
fn chosen_block_required(default_provider: Option<&str>) -> Vec<Value> {
    ProviderKind::ALL
        .iter()
        .map(|kind| {
            let chosen = json!({ "properties": { "provider": { "const": kind.as_str() } } });
            let when = if default_provider == Some(kind.as_str()) {
                chosen
            } else {
                json!({ "allOf": [chosen, { "required": ["provider"] }] })
            };
            json!({
                "if": when,
                "then": {
                    "required": [kind.as_str()],
                    "properties": { kind.as_str(): { "type": "object" } },
                },
            })
        })
        .collect()
}

/// What a Sovereign file must state under `path`: the fields the types require and the
/// defaults do not supply (or supply only in part), recursively.
fn skeleton(
    root: &Value,
    path: &str,
    required: &BTreeMap<String, Vec<String>>,
    defaults: &Value,
) -> Map<String, Value> {
    let mut out = Map::new();
    let Some(names) = required.get(path) else {
        return out;
    };
    let node = if path.is_empty() {
        root
    } else {
        let mut node = root;
        for key in path.split('.') {
            node = &node["properties"][key];
        }
        node
    };
    let mut must = Vec::new();
    let mut children = Map::new();
    if let Some(Value::Object(properties)) = node.get("properties") {
        for key in properties.keys() {
            let child_path = join(path, key);
            let child = skeleton(root, &child_path, required, defaults);
            let defaulted = defaults.pointer(&pointer(&child_path)).is_some();
            let types_require = names.iter().any(|n| n == key);
            if types_require && (!defaulted || child.contains_key("required")) {
                must.push(json!(key));
            }
            if !child.is_empty() {
                children.insert(key.clone(), Value::Object(child));
            }
        }
    }
    if !must.is_empty() {
        out.insert("required".into(), Value::Array(must));
    }
    if !children.is_empty() {
        out.insert("properties".into(), Value::Object(children));
    }
    out
}

/// The skeleton node at a dotted path, created as needed.
fn skeleton_at<'a>(skeleton: &'a mut Map<String, Value>, path: &str) -> &'a mut Map<String, Value> {
    let mut node = skeleton;
    for key in path.split('.') {
        node = node
            .entry("properties")
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("properties is an object")
            .entry(key)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a skeleton node is an object");
    }
    node
}

fn push_required(node: &mut Map<String, Value>, field: &str) {
    let list = node
        .entry("required")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .expect("required is a list");
    if !list.iter().any(|f| f == field) {
        list.push(json!(field));
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn pointer(path: &str) -> String {
    path.split('.').map(|key| format!("/{key}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_struct_is_closed_and_maps_are_not() {
        let schema = schema();
        let mut open = Vec::new();
        walk_fields(&schema, "", &mut |path, node| {
            if node.get("properties").is_some() && node["additionalProperties"] != json!(false) {
                open.push(path.to_owned());
            }
        });
        assert!(open.is_empty(), "open structs: {open:?}");
        // A label map takes any key, but only string values.
        let labels = &schema["properties"]["metadata"]["properties"]["labels"];
        assert_eq!(labels["additionalProperties"], json!({ "type": "string" }));
    }

    #[test]
    fn defaults_come_from_the_embedded_defaults_file() {
        let schema = schema();
        let probe = &schema["properties"]["spec"]["properties"]["externalDns"]["properties"]["probes"]
            ["properties"]["liveness"]["properties"]["initialDelaySeconds"];
        assert_eq!(probe["default"], json!(180));
        let verify = &schema["properties"]["spec"]["properties"]["verify"]["properties"];
        assert_eq!(verify["apiKeyEnv"]["default"], json!("PDNS_API_KEY"));
        assert!(verify["apiKeyFile"].get("default").is_none());
    }

    #[test]
    fn only_a_sovereign_file_has_required_fields() {
        let schema = schema();
        assert_eq!(
            schema["then"]["required"],
            json!(["apiVersion", "kind", "metadata", "spec"])
        );
        assert_eq!(
            schema["if"]["anyOf"],
            json!([
                { "required": ["apiVersion"] },
                { "required": ["kind"] },
                { "required": ["metadata"] }
            ])
        );
        let spec = &schema["then"]["properties"]["spec"];
        assert_eq!(spec["required"], json!(["domain", "dns"]));
        // Defaulted all the way down: nothing required.
        assert!(spec["properties"].get("externalDns").is_none());
        let mut required_in_shape = Vec::new();
        walk_fields(&schema, "", &mut |path, node| {
            if node.get("required").is_some() {
                required_in_shape.push(path.to_owned());
            }
        });
        assert!(required_in_shape.is_empty(), "{required_in_shape:?}");
    }

    /// Visits the schema of every field, following `properties` only.
    fn walk_fields(node: &Value, path: &str, visit: &mut dyn FnMut(&str, &Value)) {
        visit(path, node);
        if let Some(Value::Object(properties)) = node.get("properties") {
            for (key, child) in properties {
                walk_fields(child, &join(path, key), visit);
            }
        }
    }
}
