//! external-dns's Prometheus metrics: whether it synced after the run started, and whether
//! its error counters rise. /healthz says nothing (it answers 200 before the caches sync);
//! these do.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const LAST_SYNC: &str = "external_dns_controller_last_sync_timestamp_seconds";
pub const REGISTRY_ERRORS: &str = "external_dns_registry_errors_total";
pub const SOURCE_ERRORS: &str = "external_dns_source_errors_total";

/// The values that matter, from one scrape. Absent series are None.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Metrics {
    pub last_sync: Option<f64>,
    pub registry_errors: Option<f64>,
    pub source_errors: Option<f64>,
}

/// Parses the Prometheus text exposition format. Series with labels are summed per name
/// (the error counters are unlabelled in current releases, labelled in some older ones).
pub fn parse(text: &str) -> Metrics {
    let mut m = Metrics::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `name{labels} value [timestamp]`; label values may hold spaces, so cut after `}`.
        let (name, rest) = match line.find('{') {
            Some(open) => match line[open..].find('}') {
                Some(close) => (&line[..open], &line[open + close + 1..]),
                None => continue,
            },
            None => match line.split_once(char::is_whitespace) {
                Some((name, rest)) => (name, rest),
                None => continue,
            },
        };
        let Some(value) = rest.split_whitespace().next().and_then(parse_value) else {
            continue;
        };
        let slot = match name {
            LAST_SYNC => &mut m.last_sync,
            REGISTRY_ERRORS => &mut m.registry_errors,
            SOURCE_ERRORS => &mut m.source_errors,
            _ => continue,
        };
        *slot = Some(slot.unwrap_or(0.0) + value);
    }
    m
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// One GET of external-dns's metrics endpoint.
pub async fn scrape(http: &reqwest::Client, url: &str) -> Result<Metrics, String> {
    let resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| format!("metrics {url}: {}", e.without_url()))?;
    if !resp.status().is_success() {
        return Err(format!("metrics {url}: HTTP {}", resp.status()));
    }
    let text = resp
        .text()
        .await
        .map_err(|e| format!("metrics {url}: {}", e.without_url()))?;
    Ok(parse(&text))
}

/// The judgement of the first and the latest scrape of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Synced after the run started, error counters steady.
    Fresh,
    /// No successful sync since the run started (or none at all).
    NotSyncedSinceStart,
    /// The registry (the DNS provider) failed between the two scrapes.
    RegistryErrorsRising,
    /// A source (the apiserver side) failed between the two scrapes.
    SourceErrorsRising,
}

/// `first` is the run's first scrape, `latest` the newest; rising counters outrank an old
/// sync timestamp, since they name the cause.
pub fn judge(first: &Metrics, latest: &Metrics, run_started: SystemTime) -> Freshness {
    let rose = |a: Option<f64>, b: Option<f64>| b.unwrap_or(0.0) > a.unwrap_or(0.0);
    if rose(first.registry_errors, latest.registry_errors) {
        return Freshness::RegistryErrorsRising;
    }
    if rose(first.source_errors, latest.source_errors) {
        return Freshness::SourceErrorsRising;
    }
    let started = run_started
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64();
    match latest.last_sync {
        // external-dns reports whole seconds; a sync in the run's starting second counts.
        Some(t) if t >= started.floor() && t > 0.0 => Freshness::Fresh,
        _ => Freshness::NotSyncedSinceStart,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCRAPE: &str = r#"# HELP external_dns_controller_last_sync_timestamp_seconds Timestamp of last successful sync with the DNS provider
# TYPE external_dns_controller_last_sync_timestamp_seconds gauge
external_dns_controller_last_sync_timestamp_seconds 1.7e+09
# TYPE external_dns_registry_errors_total counter
external_dns_registry_errors_total 2
external_dns_source_errors_total{source="service"} 1
external_dns_source_errors_total{source="in gress, x"} 3
external_dns_controller_last_reconcile_timestamp_seconds 1.8e+09
go_goroutines 42
"#;

    #[test]
    fn parses_the_three_series_and_sums_labelled_ones() {
        let m = parse(SCRAPE);
        assert_eq!(m.last_sync, Some(1.7e9));
        assert_eq!(m.registry_errors, Some(2.0));
        assert_eq!(m.source_errors, Some(4.0));
        assert_eq!(parse("garbage\n{\n"), Metrics::default());
    }

    #[test]
    fn judges_freshness_and_rising_counters() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |sync: f64, reg: f64, src: f64| Metrics {
            last_sync: Some(sync),
            registry_errors: Some(reg),
            source_errors: Some(src),
        };
        let base = at(900.0, 1.0, 0.0);
        let cases = [
            (at(1_001.0, 1.0, 0.0), Freshness::Fresh),
            (at(900.0, 1.0, 0.0), Freshness::NotSyncedSinceStart),
            (Metrics::default(), Freshness::NotSyncedSinceStart),
            (at(1_001.0, 3.0, 0.0), Freshness::RegistryErrorsRising),
            (at(1_001.0, 1.0, 1.0), Freshness::SourceErrorsRising),
        ];
        for (now, freshness) in cases {
            assert_eq!(judge(&base, &now, start), freshness, "{now:?}");
        }
    }
}
