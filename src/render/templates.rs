//! The handlebars templates, embedded so the binary is standalone, and the one helper they
//! need: `yaml`, which writes a scalar so YAML reads it back as the same type.

use std::sync::OnceLock;

use handlebars::{
    Context, Handlebars, Helper, HelperResult, Output, RenderContext, RenderErrorReason,
};
use serde_json::Value;

use super::RenderError;

/// When a manifest belongs in the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Needs {
    Always,
    /// Only on clusters whose CNI is Cilium.
    Cilium,
}

/// One manifest template per kit file, in apply order.
pub(super) const MANIFESTS: [(&str, &str, Needs); 5] = [
    (
        "10-namespace.yaml",
        include_str!("../../templates/10-namespace.yaml.hbs"),
        Needs::Always,
    ),
    (
        "11-chart-source.yaml",
        include_str!("../../templates/11-chart-source.yaml.hbs"),
        Needs::Always,
    ),
    (
        "12-external-dns.yaml",
        include_str!("../../templates/12-external-dns.yaml.hbs"),
        Needs::Always,
    ),
    (
        "13-networkpolicy.yaml",
        include_str!("../../templates/13-networkpolicy.yaml.hbs"),
        Needs::Always,
    ),
    (
        "14-ciliumnetworkpolicy.yaml",
        include_str!("../../templates/14-ciliumnetworkpolicy.yaml.hbs"),
        Needs::Cilium,
    ),
];

const PARTIALS: [(&str, &str); 4] = [
    ("_header", include_str!("../../templates/_header.hbs")),
    ("_labels", include_str!("../../templates/_labels.hbs")),
    (
        "_pod-labels",
        include_str!("../../templates/_pod-labels.hbs"),
    ),
    (
        "_external-dns-values",
        include_str!("../../templates/_external-dns-values.hbs"),
    ),
];

/// The registry with every template and partial: strict (a missing variable is an error)
/// and without HTML escaping (the output is YAML). Built once per process, since parsing
/// the templates costs more than rendering them.
pub(super) fn registry() -> Result<&'static Handlebars<'static>, RenderError> {
    static REGISTRY: OnceLock<Result<Handlebars<'static>, (String, String)>> = OnceLock::new();
    REGISTRY
        .get_or_init(build_registry)
        .as_ref()
        .map_err(|(template, message)| RenderError::Template {
            template: template.clone(),
            message: message.clone(),
        })
}

/// Any error names the template or partial and says what is wrong with it.
fn build_registry() -> Result<Handlebars<'static>, (String, String)> {
    let mut hb = Handlebars::new();
    hb.set_strict_mode(true);
    hb.register_escape_fn(handlebars::no_escape);
    hb.register_helper("yaml", Box::new(yaml_helper));
    let failed = |name: &str| {
        let name = name.to_owned();
        move |e: handlebars::TemplateError| (name, e.to_string())
    };
    for (name, source) in PARTIALS {
        hb.register_partial(name, source).map_err(failed(name))?;
    }
    for (name, source, _) in MANIFESTS {
        hb.register_template_string(name, source)
            .map_err(failed(name))?;
    }
    Ok(hb)
}

fn yaml_helper(
    h: &Helper<'_>,
    _: &Handlebars<'_>,
    _: &Context,
    _: &mut RenderContext<'_, '_>,
    out: &mut dyn Output,
) -> HelperResult {
    let param = h
        .param(0)
        .ok_or(RenderErrorReason::ParamNotFoundForIndex("yaml", 0))?;
    let text = yaml_scalar(param.value()).ok_or_else(|| {
        RenderErrorReason::Other(format!(
            "`yaml` takes a string, number or boolean, got {} at {}",
            param.value(),
            param.relative_path().map_or("?", String::as_str)
        ))
    })?;
    out.write(&text)?;
    Ok(())
}

/// A scalar as YAML text: strings plain when no YAML 1.1 or 1.2 reader could take them for
/// anything else, double-quoted (JSON quoting is valid YAML) otherwise.
pub(super) fn yaml_scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if is_plain_safe(s) => Some(s.clone()),
        Value::String(s) => Some(Value::String(s.clone()).to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null | Value::Array(_) | Value::Object(_) => None,
    }
}

fn is_plain_safe(s: &str) -> bool {
    const RESERVED: [&str; 11] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "nan", "inf",
    ];
    let bytes = s.as_bytes();
    let Some(&first) = bytes.first() else {
        return false;
    };
    let word_like = first.is_ascii_alphabetic()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-._/".contains(b));
    // Numbers with a unit, such as `120s`, `50m` or `64Mi`, are strings in every schema.
    let digits_then_letters = {
        let split = bytes
            .iter()
            .position(|b| !b.is_ascii_digit())
            .unwrap_or(bytes.len());
        split > 0 && split < bytes.len() && bytes[split..].iter().all(u8::is_ascii_alphabetic)
    };
    (word_like && !RESERVED.contains(&s.to_ascii_lowercase().as_str())) || digits_then_letters
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scalars_read_back_as_what_they_were() {
        let cases = [
            (json!("external-dns"), "external-dns"),
            (json!("v0.22.0"), "v0.22.0"),
            (json!("120s"), "120s"),
            (json!("64Mi"), "64Mi"),
            (json!("1.21.1"), "\"1.21.1\""),
            (json!("on"), "\"on\""),
            (json!("No"), "\"No\""),
            (json!("8081"), "\"8081\""),
            (json!("1e3"), "\"1e3\""),
            (json!("_externaldns."), "\"_externaldns.\""),
            (json!("http://x:1"), "\"http://x:1\""),
            (json!(""), "\"\""),
            (json!("a \"b\""), "\"a \\\"b\\\"\""),
            (json!(180), "180"),
            (json!(true), "true"),
        ];
        for (value, text) in cases {
            assert_eq!(yaml_scalar(&value).as_deref(), Some(text), "{value}");
            let back: Value = serde_saphyr::from_str(text).unwrap();
            assert_eq!(back, value, "{text} must read back as {value}");
        }
        assert_eq!(yaml_scalar(&json!(null)), None);
        assert_eq!(yaml_scalar(&json!([1])), None);
    }
}
