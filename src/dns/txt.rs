//! external-dns's TXT registry: the ownership record's names and content.
//!
//! v0.14 writes both formats, v0.18+ only the new one but still reads the old one, so a
//! verifier accepts either:
//! - old: `<prefix><name>`, e.g. `_externaldns.api.example.com`;
//! - new: `<prefix><type>-<first label>.<rest>`, e.g. `_externaldns.a-api.example.com`
//!   (external-dns's `toNewTXTName`: the type goes before the first label). A prefix holding
//!   `%{record_type}` carries the type itself, and no `<type>-` is added.

/// The TXT name in the old format.
pub fn old_txt_name(prefix: &str, name: &str) -> String {
    format!("{}{}", prefix.replace("%{record_type}", ""), name)
}

/// The TXT name in the new format for a record of type `rtype` (e.g. "A").
pub fn new_txt_name(prefix: &str, name: &str, rtype: &str) -> String {
    let rtype = rtype.to_ascii_lowercase();
    let (first, rest) = match name.split_once('.') {
        Some((first, rest)) => (first, Some(rest)),
        None => (name, None),
    };
    let first = if prefix.contains("%{record_type}") {
        first.to_owned()
    } else {
        format!("{rtype}-{first}")
    };
    let prefix = prefix.replace("%{record_type}", &rtype);
    match rest {
        Some(rest) => format!("{prefix}{first}.{rest}"),
        None => format!("{prefix}{first}"),
    }
}

/// What an ownership TXT record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ownership {
    pub owner: String,
    /// e.g. `service/ns/name`; empty when absent (older releases did not write it).
    pub resource: String,
}

/// Parses one TXT content as PowerDNS returns it (quoted, possibly split into several
/// quoted strings). None when it is not an external-dns registry record.
pub fn parse_ownership(content: &str) -> Option<Ownership> {
    // `"a" "b"` is one TXT value split in character-strings; join them back.
    let text: String = content
        .split('"')
        .enumerate()
        .filter(|(i, _)| content.trim_start().starts_with('"') == (i % 2 == 1))
        .map(|(_, s)| s)
        .collect();
    let text = if text.is_empty() {
        content.trim()
    } else {
        &text
    };
    let mut heritage = false;
    let mut owner = None;
    let mut resource = String::new();
    for pair in text.split(',') {
        match pair.trim().split_once('=') {
            Some(("heritage", "external-dns")) => heritage = true,
            Some(("external-dns/owner", v)) => owner = Some(v.to_owned()),
            Some(("external-dns/resource", v)) => resource = v.to_owned(),
            _ => {}
        }
    }
    if !heritage {
        return None;
    }
    Some(Ownership {
        owner: owner.unwrap_or_default(),
        resource,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_format_puts_the_type_before_the_first_label() {
        assert_eq!(
            new_txt_name("_externaldns.", "api.example.com", "A"),
            "_externaldns.a-api.example.com"
        );
        assert_eq!(
            new_txt_name("_externaldns.", "www.example.com", "CNAME"),
            "_externaldns.cname-www.example.com"
        );
        assert_eq!(new_txt_name("x-", "local", "AAAA"), "x-aaaa-local");
        assert_eq!(
            new_txt_name("%{record_type}-own.", "api.example.com", "A"),
            "a-own.api.example.com"
        );
    }

    #[test]
    fn old_format_is_prefix_and_name() {
        assert_eq!(
            old_txt_name("_externaldns.", "api.example.com"),
            "_externaldns.api.example.com"
        );
    }

    #[test]
    fn ownership_is_read_from_quoted_and_unquoted_content() {
        let quoted = r#""heritage=external-dns,external-dns/owner=openova,external-dns/resource=service/ns/web""#;
        assert_eq!(
            parse_ownership(quoted),
            Some(Ownership {
                owner: "openova".into(),
                resource: "service/ns/web".into()
            })
        );
        let bare = "heritage=external-dns,external-dns/owner=other";
        assert_eq!(parse_ownership(bare).unwrap().owner, "other");
        let split = r#""heritage=external-dns,external-dns/" "owner=openova""#;
        assert_eq!(parse_ownership(split).unwrap().owner, "openova");
        assert_eq!(parse_ownership(r#""v=spf1 -all""#), None);
        assert_eq!(
            parse_ownership(r#""heritage=other,external-dns/owner=x""#),
            None
        );
    }
}
