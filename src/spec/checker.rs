//! The checks of single values that validation is made of: each records an [`Issue`] at
//! its field path, with what was expected.

use super::formats;
use super::parsed::{self, Rejected};
use super::validate::{Issue, Report};
use super::{Image, SecretKeyRef};

#[derive(Default)]
pub(super) struct Checker {
    pub(super) report: Report,
}

impl Checker {
    pub(super) fn error(&mut self, path: &str, problem: String, expected: impl Into<String>) {
        self.report.errors.push(Issue {
            path: path.to_owned(),
            problem,
            expected: Some(expected.into()),
        });
    }

    pub(super) fn warn(&mut self, path: &str, problem: String, expected: impl Into<String>) {
        self.report.warnings.push(Issue {
            path: path.to_owned(),
            problem,
            expected: Some(expected.into()),
        });
    }

    pub(super) fn label(&mut self, path: &str, value: &str, max: usize) {
        if !formats::is_rfc1123_label(value) || value.len() > max {
            self.error(
                path,
                format!("`{value}` is not a valid name"),
                format!(
                    "an RFC 1123 label: lowercase letters, digits and `-`, starting and ending \
                     with a letter or digit, at most {max} characters"
                ),
            );
        }
    }

    pub(super) fn domain(&mut self, path: &str, value: &str) -> bool {
        let ok = formats::is_domain(value);
        if !ok {
            self.error(
                path,
                format!("`{value}` is not a domain name"),
                "a lowercase DNS name with at least two labels and no trailing dot, e.g. \
                 `example.openova.io`",
            );
        }
        ok
    }

    pub(super) fn duration(&mut self, path: &str, value: &str) {
        if formats::parse_go_duration(value).is_none_or(|d| d.is_zero()) {
            self.error(
                path,
                format!("`{value}` is not a positive duration"),
                "a Go duration such as `30s`, `1m` or `1h30m`",
            );
        }
    }

    pub(super) fn url(&mut self, path: &str, value: &str, schemes: &[&str]) {
        if let Err(problem) = formats::parse_url(value, schemes) {
            let Rejected { problem, expected } = parsed::url_rejected(problem, value, schemes);
            self.error(path, problem, expected);
        }
    }

    pub(super) fn server_id(&mut self, path: &str, value: &str) {
        let ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !ok {
            self.error(
                path,
                format!("`{value}` is not a PowerDNS server id"),
                "letters, digits, `-`, `_` or `.`; usually `localhost`",
            );
        }
    }

    pub(super) fn image(&mut self, path: &str, image: &Image) {
        if !formats::is_image_repository(&image.repository) {
            self.error(
                &format!("{path}.repository"),
                format!("`{}` is not an image repository", image.repository),
                "a repository such as `ghcr.io/org/image`",
            );
        }
        if !formats::is_image_tag(&image.tag) {
            self.error(
                &format!("{path}.tag"),
                format!("`{}` is not an image tag", image.tag),
                "a tag such as `v1.2.3`",
            );
        }
    }

    pub(super) fn secret_ref(&mut self, path: &str, r: &SecretKeyRef) {
        self.secret_name(&format!("{path}.name"), &r.name);
        self.secret_key(&format!("{path}.key"), &r.key);
    }

    pub(super) fn secret_name(&mut self, path: &str, name: &str) {
        if !formats::is_rfc1123_subdomain(name) {
            self.error(
                path,
                format!("`{name}` is not a Secret name"),
                "an RFC 1123 subdomain: lowercase letters, digits, `-` and `.`",
            );
        }
    }

    pub(super) fn secret_key(&mut self, path: &str, key: &str) {
        if !formats::is_secret_key(key) {
            self.error(
                path,
                format!("`{key}` is not a Secret key"),
                "letters, digits, `-`, `_` or `.`",
            );
        }
    }
}
