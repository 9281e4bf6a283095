//! Spec fields that are parsed from their YAML string while the spec is decoded, so that
//! the loaded spec holds a typed value and later phases never re-parse or re-check it.
//!
//! A value that does not parse is a decoding finding at the value's own file position,
//! worded as every other spec problem (`<problem>; expected <expectation>`). Decoding
//! then goes on with the type's placeholder in place of the bad value, so one run still
//! reports every other problem in the file.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::formats::{self, Release, UrlProblem};

/// A spec value with a string form.
pub trait SpecString: Sized + fmt::Display {
    /// The name the decoder is given (`deserialize_newtype_struct`), to find the placeholder.
    const NAME: &'static str;
    /// A value that parses, decoded in place of a bad one so decoding finds the rest.
    const PLACEHOLDER: &'static str;
    fn parse(text: &str) -> Result<Self, Rejected>;
}

/// Why a string was refused: the problem and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub problem: String,
    pub expected: String,
}

/// The separator between the problem and the expectation in a rejection's message; the
/// decoder splits a custom error there.
pub const EXPECTED_SEPARATOR: &str = "; expected ";

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{EXPECTED_SEPARATOR}{}", self.problem, self.expected)
    }
}

/// The placeholder of the spec string type the decoder knows by `name`.
pub fn placeholder(name: &str) -> Option<&'static str> {
    [
        (Release::NAME, Release::PLACEHOLDER),
        (ApiUrl::NAME, ApiUrl::PLACEHOLDER),
        (Nameserver::NAME, Nameserver::PLACEHOLDER),
    ]
    .into_iter()
    .find_map(|(known, placeholder)| (known == name).then_some(placeholder))
}

struct SpecStringVisitor<T>(PhantomData<T>);

impl<'de, T: SpecString> Visitor<'de> for SpecStringVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::parse(&text).map_err(de::Error::custom)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::parse(text).map_err(E::custom)
    }
}

macro_rules! spec_string_serde {
    ($($t:ty),*) => {$(
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_newtype_struct(<$t>::NAME, SpecStringVisitor(PhantomData))
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}

spec_string_serde!(Release, ApiUrl, Nameserver);

impl SpecString for Release {
    const NAME: &'static str = "Release";
    // Recent enough that no check for an older release fires on it.
    const PLACEHOLDER: &'static str = "v999.0.0";

    fn parse(text: &str) -> Result<Self, Rejected> {
        Release::parse_tag(text).ok_or_else(|| Rejected {
            problem: format!("`{text}` is not a release pin"),
            expected: "`vMAJOR.MINOR.PATCH`, e.g. `v0.22.0`".to_owned(),
        })
    }
}

/// An `http://` or `https://` URL without user info, such as a PowerDNS API's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    text: String,
    port: u16,
}

impl ApiUrl {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The explicit port, else the scheme's well-known one.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl fmt::Display for ApiUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl SpecString for ApiUrl {
    const NAME: &'static str = "ApiUrl";
    const PLACEHOLDER: &'static str = "http://localhost";

    fn parse(text: &str) -> Result<Self, Rejected> {
        const SCHEMES: [&str; 2] = ["http", "https"];
        let url = formats::parse_url(text, &SCHEMES)
            .map_err(|problem| url_rejected(problem, text, &SCHEMES))?;
        Ok(ApiUrl {
            port: url.effective_port(),
            text: text.to_owned(),
        })
    }
}

/// Why a URL of one of `schemes` was refused, in the spec's words. A URL with user info is
/// not echoed: it carries a credential.
pub fn url_rejected(problem: UrlProblem, text: &str, schemes: &[&str]) -> Rejected {
    let expected = || {
        let schemes: Vec<String> = schemes.iter().map(|s| format!("{s}://")).collect();
        format!("a URL starting with {}", schemes.join(" or "))
    };
    match problem {
        UrlProblem::Credentials => Rejected {
            problem: "the URL carries credentials; credentials must be given as a \
                      `...SecretRef`, never in the spec"
                .to_owned(),
            expected: "a URL without user info".to_owned(),
        },
        UrlProblem::Scheme => Rejected {
            problem: format!("`{text}` has an unsupported scheme"),
            expected: expected(),
        },
        UrlProblem::Malformed => Rejected {
            problem: format!("`{text}` is not a URL"),
            expected: expected(),
        },
    }
}

/// The `ip:port` of a DNS listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nameserver(pub SocketAddr);

impl fmt::Display for Nameserver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl SpecString for Nameserver {
    const NAME: &'static str = "Nameserver";
    const PLACEHOLDER: &'static str = "127.0.0.1:53";

    fn parse(text: &str) -> Result<Self, Rejected> {
        text.parse().map(Nameserver).map_err(|_| Rejected {
            problem: format!("`{text}` is not an ip:port address"),
            expected: "an IP address and port such as `127.0.0.1:53` or `[::1]:53`".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_parses_and_is_found_by_its_name() {
        assert_eq!(placeholder(Release::NAME), Some(Release::PLACEHOLDER));
        Release::parse(Release::PLACEHOLDER).unwrap();
        ApiUrl::parse(placeholder(ApiUrl::NAME).unwrap()).unwrap();
        Nameserver::parse(placeholder(Nameserver::NAME).unwrap()).unwrap();
        assert_eq!(placeholder("String"), None);
    }

    #[test]
    fn a_url_knows_its_port_and_keeps_its_text() {
        let url = ApiUrl::parse("https://pdns.example:8443/x").unwrap();
        assert_eq!(
            (url.as_str(), url.port()),
            ("https://pdns.example:8443/x", 8443)
        );
        assert_eq!(ApiUrl::parse("http://pdns").unwrap().port(), 80);
        assert_eq!(ApiUrl::parse("https://pdns").unwrap().port(), 443);
    }

    #[test]
    fn a_url_with_credentials_is_refused_without_echoing_them() {
        let refused = ApiUrl::parse("http://admin:s3cret@pdns").unwrap_err();
        assert!(!refused.to_string().contains("s3cret"), "{refused}");
        assert_eq!(refused.expected, "a URL without user info");
    }

    #[test]
    fn values_serialize_as_their_text() {
        let json = serde_json::to_value(Nameserver::parse("[::1]:5353").unwrap()).unwrap();
        assert_eq!(json, "[::1]:5353");
        let back: Release = serde_json::from_value(serde_json::json!("v0.21.0")).unwrap();
        assert_eq!(back, Release::new(0, 21, 0));
        let bad = serde_json::from_value::<Release>(serde_json::json!("0.21")).unwrap_err();
        assert!(bad.to_string().contains("is not a release pin"), "{bad}");
    }
}
