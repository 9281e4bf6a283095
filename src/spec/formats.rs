//! Grammars of the values a Sovereign spec holds: names, domains, durations, versions,
//! URLs, quantities. Pure functions, shared by validation and rendering.

use std::cmp::Ordering;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// RFC 1123 label: what Kubernetes accepts for namespaces and most object names.
pub fn is_rfc1123_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what Kubernetes accepts for Secret names.
pub fn is_rfc1123_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_rfc1123_label)
}

/// A key inside a Secret's data, as the Kubernetes API validates it.
pub fn is_secret_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// A fully qualified DNS name without the trailing dot, in lower case, with at least two labels.
pub fn is_domain(s: &str) -> bool {
    s.len() <= 253 && s.contains('.') && s.split('.').all(is_rfc1123_label)
}

/// An environment variable name as POSIX shells accept it.
pub fn is_env_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `ip:port` (IPv6 as `[addr]:port`) with a non-zero port.
pub fn is_socket_addr(s: &str) -> bool {
    s.parse::<SocketAddr>().is_ok_and(|a| a.port() != 0)
}

/// Parses a Go `time.ParseDuration` string such as `30s`, `1m`, `1h30m` or `1.5h`.
/// Returns `None` for anything Go would reject, and for negative durations.
pub fn parse_go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total_nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_nanos += value * nanos_per_unit;
    }
    // Go's Duration is an int64 of nanoseconds.
    if total_nanos > i64::MAX as f64 {
        return None;
    }
    Some(Duration::from_nanos(total_nanos.round() as u64))
}

/// A `vMAJOR.MINOR.PATCH` release of external-dns, ordered by precedence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Release {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
}

impl Release {
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Release {
            major,
            minor,
            patch,
        }
    }

    /// Parses `vX.Y.Z` exactly (no pre-release suffix: the spec pins a released image).
    pub fn parse_tag(s: &str) -> Option<Self> {
        let (major, minor, patch) = parse_triple(s.strip_prefix('v')?)?;
        Some(Release::new(major, minor, patch))
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A semantic version (`1.21.1`, `2.0.0-rc.1+build.5`), as Helm chart versions are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SemVer {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    pub pre: Vec<String>,
}

impl SemVer {
    pub fn parse(s: &str) -> Option<Self> {
        let without_build = match s.split_once('+') {
            Some((v, build)) if is_dot_separated_idents(build, false) => v,
            Some(_) => return None,
            None => s,
        };
        let (core, pre) = match without_build.split_once('-') {
            Some((core, pre)) if is_dot_separated_idents(pre, true) => {
                (core, pre.split('.').map(str::to_owned).collect())
            }
            Some(_) => return None,
            None => (without_build, Vec::new()),
        };
        let (major, minor, patch) = parse_triple(core)?;
        Some(SemVer {
            major,
            minor,
            patch,
            pre,
        })
    }
}

impl Ord for SemVer {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                // A pre-release sorts before its release.
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_pre_release(&self.pre, &other.pre),
            })
    }
}

impl PartialOrd for SemVer {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

fn compare_pre_release(a: &[String], b: &[String]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

fn parse_triple(s: &str) -> Option<(u64, u64, u64)> {
    let mut parts = s.split('.');
    let mut next = || parts.next().and_then(parse_numeric_identifier);
    let triple = (next()?, next()?, next()?);
    parts.next().is_none().then_some(triple)
}

/// SemVer numeric identifiers: digits only, no leading zero.
fn parse_numeric_identifier(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
}

fn is_dot_separated_idents(s: &str, no_leading_zero: bool) -> bool {
    s.split('.').all(|id| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !(no_leading_zero
                && id.len() > 1
                && id.starts_with('0')
                && id.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// The parts of an absolute URL that the spec cares about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url<'a> {
    pub scheme: &'a str,
    pub host: &'a str,
    pub port: Option<u16>,
    pub path: &'a str,
}

impl Url<'_> {
    /// The explicit port, else the scheme's well-known one.
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            "http" => 80,
            _ => 443,
        })
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlProblem {
    Malformed,
    Scheme,
    Credentials,
}

/// Parses `scheme://host[:port][/path]` for one of `schemes`. User info is refused because
/// credentials belong in Secrets, never in the spec.
pub fn parse_url<'a>(s: &'a str, schemes: &[&str]) -> Result<Url<'a>, UrlProblem> {
    let (scheme, rest) = s.split_once("://").ok_or(UrlProblem::Malformed)?;
    if !schemes.contains(&scheme) {
        return Err(UrlProblem::Scheme);
    }
    if s.chars()
        .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '<' | '>' | '\\'))
    {
        return Err(UrlProblem::Malformed);
    }
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(UrlProblem::Credentials);
    }
    let (host, port) = split_host_port(authority).ok_or(UrlProblem::Malformed)?;
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            })
    };
    if !host_ok {
        return Err(UrlProblem::Malformed);
    }
    Ok(Url {
        scheme,
        host,
        port,
        path,
    })
}

fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let port_sep = if authority.starts_with('[') {
        authority
            .find(']')
            .map(|i| i + 1)
            .filter(|&i| i < authority.len())
    } else {
        authority.rfind(':')
    };
    match port_sep {
        Some(i) => {
            let port: u16 = authority[i + 1..].parse().ok().filter(|&p| p != 0)?;
            (authority.as_bytes()[i] == b':').then_some((&authority[..i], Some(port)))
        }
        None => Some((authority, None)),
    }
}

/// A Kubernetes resource quantity (`50m`, `64Mi`, `1.5`, `1e3`), returned as its value in
/// base units so requests and limits can be compared.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let suffixes: [(&str, f64); 16] = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("Pi", 1024f64.powi(5)),
        ("Ei", 1024f64.powi(6)),
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
        ("P", 1e15),
        ("E", 1e18),
        ("", 1.0),
    ];
    let body = s.strip_prefix('+').unwrap_or(s);
    let (number, multiplier) = suffixes
        .iter()
        .find_map(|(suffix, m)| body.strip_suffix(suffix).map(|n| (n, *m)))?;
    // Decimal exponent form (`1e3`), which Kubernetes also accepts.
    let (mantissa, exponent) = match number.split_once(['e', 'E']) {
        Some((m, e)) if multiplier == 1.0 => {
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (m, e.parse::<i32>().ok()?)
        }
        Some(_) => return None,
        None => (number, 0),
    };
    let valid_mantissa = !mantissa.is_empty()
        && mantissa != "."
        && mantissa.matches('.').count() <= 1
        && mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.');
    if !valid_mantissa {
        return None;
    }
    Some(mantissa.parse::<f64>().ok()? * 10f64.powi(exponent) * multiplier)
}

/// An OCI image repository such as `ghcr.io/org/image` or `registry:5000/image`.
pub fn is_image_repository(s: &str) -> bool {
    let mut parts: Vec<&str> = s.split('/').collect();
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let registry = parts.remove(0);
        let (host, port) = registry.split_once(':').unwrap_or((registry, ""));
        let host_ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        let port_ok = port.is_empty() || port.parse::<u16>().is_ok();
        if !host_ok || !port_ok {
            return false;
        }
    }
    !parts.is_empty()
        && parts.iter().all(|component| {
            !component.is_empty()
                && component
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
                && component.as_bytes()[0].is_ascii_alphanumeric()
                && component.as_bytes()[component.len() - 1].is_ascii_alphanumeric()
        })
}

/// An OCI image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn is_image_tag(s: &str) -> bool {
    s.len() <= 128
        && s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
}

/// A UUID in its canonical 8-4-4-4-12 hex form.
pub fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A Kubernetes label value: empty, or at most 63 letters, digits, `-`, `_` and `.`,
/// starting and ending with a letter or digit.
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric()))
}

/// A Kubernetes label key: an optional DNS-subdomain prefix and `/`, then a name that is
/// a non-empty label value.
pub fn is_label_key(s: &str) -> bool {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    prefix.is_none_or(is_rfc1123_subdomain) && !name.is_empty() && is_label_value(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values() {
        for key in ["tier", "sharding.fluxcd.io/key", "a.b/C_d-e.f", "x"] {
            assert!(is_label_key(key), "{key}");
        }
        for key in [
            "",
            "/x",
            "a/",
            "Upper.io/x",
            "a/b/c",
            "-x",
            "x-",
            "a b",
            &"k".repeat(64),
        ] {
            assert!(!is_label_key(key), "{key}");
        }
        for value in ["", "test-stand-in", "A.b_c", "1"] {
            assert!(is_label_value(value), "{value}");
        }
        for value in ["-a", "a-", "a/b", "a b", &"v".repeat(64)] {
            assert!(!is_label_value(value), "{value}");
        }
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1m"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("300ms"), Some(Duration::from_millis(300)));
        assert_eq!(
            parse_go_duration("2m0.5s"),
            Some(Duration::from_millis(120_500))
        );
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        for bad in [
            "", "10", "1x", "m", "-1s", "1.2.3s", "s1", "1 m", ".s", "1d",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn releases_order_numerically() {
        let v = |s| Release::parse_tag(s).unwrap();
        assert!(v("v0.20.0") < v("v0.21.0"));
        assert!(v("v0.9.9") < v("v0.10.0"));
        assert!(v("v0.22.0") > v("v0.21.99"));
        assert_eq!(v("v0.22.0").to_string(), "v0.22.0");
        for bad in [
            "0.22.0",
            "v0.22",
            "v0.22.0-rc1",
            "v01.2.3",
            "v1.2.3.4",
            "vx.y.z",
        ] {
            assert_eq!(Release::parse_tag(bad), None, "{bad}");
        }
    }

    #[test]
    fn semver_parses_and_orders() {
        let v = |s| SemVer::parse(s).unwrap();
        assert!(v("1.20.0") < v("1.21.1"));
        assert!(v("1.21.1-rc.1") < v("1.21.1"));
        assert!(v("1.0.0-alpha") < v("1.0.0-alpha.1"));
        assert!(v("1.0.0-2") < v("1.0.0-10"));
        assert_eq!(v("1.2.3+build.7"), v("1.2.3"));
        for bad in ["1.2", "v1.2.3", "1.2.3-", "1.2.3-01", "01.2.3", "1.2.x", ""] {
            assert_eq!(SemVer::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn names_and_domains() {
        assert!(is_rfc1123_label("external-dns"));
        assert!(!is_rfc1123_label("External"));
        assert!(!is_rfc1123_label("-a"));
        assert!(!is_rfc1123_label(&"a".repeat(64)));
        assert!(is_rfc1123_subdomain("powerdns.api"));
        assert!(!is_rfc1123_subdomain("powerdns..api"));
        assert!(is_secret_key("api-key_1.txt"));
        assert!(!is_secret_key("api key"));
        assert!(is_domain("example.openova.io"));
        assert!(!is_domain("localhost"));
        assert!(!is_domain("ex ample.io"));
        assert!(!is_domain("example.io."));
        assert!(is_env_name("PDNS_API_KEY"));
        assert!(!is_env_name("1KEY"));
        assert!(is_socket_addr("127.0.0.1:53"));
        assert!(is_socket_addr("[::1]:5353"));
        assert!(!is_socket_addr("127.0.0.1"));
        assert!(!is_socket_addr("localhost:53"));
    }

    #[test]
    fn urls() {
        let u = parse_url("http://powerdns.powerdns.svc:8081/api", &["http", "https"]).unwrap();
        assert_eq!(
            (u.host, u.port, u.path),
            ("powerdns.powerdns.svc", Some(8081), "/api")
        );
        assert_eq!(u.effective_port(), 8081);
        let u = parse_url("https://charts.example.io", &["http", "https"]).unwrap();
        assert_eq!(u.effective_port(), 443);
        assert_eq!(
            parse_url("http://[::1]:8081", &["http"]).unwrap().port,
            Some(8081)
        );
        assert_eq!(parse_url("ftp://x.io", &["http"]), Err(UrlProblem::Scheme));
        assert_eq!(
            parse_url("http://user:pw@x.io", &["http"]),
            Err(UrlProblem::Credentials)
        );
        for bad in [
            "http://",
            "http://x.io:0",
            "http://x.io:99999",
            "http:/x.io",
            "http://a b",
        ] {
            assert!(parse_url(bad, &["http"]).is_err(), "{bad}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("50m"), Some(0.05));
        assert_eq!(parse_quantity("64Mi"), Some(64.0 * 1024.0 * 1024.0));
        assert_eq!(parse_quantity("1.5"), Some(1.5));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("2k"), Some(2000.0));
        for bad in ["", "Mi", "64MB", "1.2.3", "-1", "1e", "abc", "1 Mi"] {
            assert_eq!(parse_quantity(bad), None, "{bad}");
        }
    }

    #[test]
    fn images_and_misc() {
        assert!(is_image_repository("ghcr.io/org/external-dns-webhook"));
        assert!(is_image_repository("localhost:5000/pdns-webhook"));
        assert!(is_image_repository("nginx"));
        assert!(!is_image_repository("Ghcr.io/Org/Img"));
        assert!(!is_image_repository("ghcr.io//img"));
        assert!(is_image_tag("v1.2.3"));
        assert!(!is_image_tag("-bad"));
        assert!(!is_image_tag("a:b"));
        assert!(is_uuid("0a1b2c3d-4e5f-6789-abcd-ef0123456789"));
        assert!(!is_uuid("0a1b2c3d4e5f6789abcdef0123456789"));
    }
}
