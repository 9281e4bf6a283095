//! What a run tells the people and the automation watching it.
//!
//! Every phase (apply, retries, wait) reports [`Event`]s to one [`Reporter`], which shows
//! them as a live display on a terminal (one line per resource, with its state and elapsed
//! time), as timestamped lines when stderr is not a terminal, or, with `--output json`, as
//! NDJSON on stdout: one JSON object per line, the schema documented in README.md.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::retry::RetryPolicy;

/// Where a phase sends its typed events (apply's, the retries', the health wait's and
/// the DNS proof's): a callback the command installs, usually one that hands them to the
/// [`Reporter`]. The default sends them nowhere; clones share the callback.
pub struct Sink<E>(Option<Callback<E>>);

type Callback<E> = Arc<dyn Fn(&E) + Send + Sync>;

impl<E> Sink<E> {
    pub fn new(callback: impl Fn(&E) + Send + Sync + 'static) -> Self {
        Sink(Some(Arc::new(callback)))
    }

    pub fn emit(&self, event: &E) {
        if let Some(callback) = &self.0 {
            callback(event);
        }
    }

    /// Emits the event `make` builds, building it only when someone listens.
    pub fn emit_with(&self, make: impl FnOnce() -> E) {
        if let Some(callback) = &self.0 {
            callback(&make());
        }
    }
}

impl<E> Default for Sink<E> {
    fn default() -> Self {
        Sink(None)
    }
}

impl<E> Clone for Sink<E> {
    fn clone(&self) -> Self {
        Sink(self.0.clone())
    }
}

impl<E> std::fmt::Debug for Sink<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Sink"
        } else {
            "Sink(none)"
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// For people: progress on stderr, results on stdout.
    Text,
    /// For automation: NDJSON events on stdout, nothing else there.
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Connecting to the cluster: warnings such as skipped TLS verification.
    Connect,
    Apply,
    Retry,
    Wait,
    /// DNS sync verification: one resource per expected record.
    Dns,
    Status,
    Repair,
    /// The last event of a run: its outcome and exit code.
    Result,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Apply => "apply",
            Phase::Retry => "retry",
            Phase::Wait => "wait",
            Phase::Dns => "dns",
            Phase::Status => "status",
            Phase::Repair => "repair",
            Phase::Result => "result",
        }
    }
}

/// One NDJSON line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// RFC 3339, UTC.
    pub ts: String,
    pub phase: Phase,
    /// "Kind namespace/name", "apiserver", or absent for the run as a whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    pub state: String,
    pub message: String,
    /// The failed attempt a retry follows, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// Only on the result event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<u8>,
    /// Only on the result event of a run that reached the cluster.
    #[serde(flatten)]
    pub counters: Option<Counters>,
    /// Seconds since the run started.
    pub elapsed_s: f64,
}

/// The figures a run's result event carries, so that automation need not read them from
/// its summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Every request sent to the apiserver: calls, their retries, watches and probes.
    pub requests: u64,
    /// Calls repeated after a transient failure.
    pub retries: u64,
    /// DNS records proven in PowerDNS, once the DNS proof ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_verified: Option<usize>,
}

pub struct Reporter {
    format: Format,
    started: Instant,
    live: Option<Live>,
    /// The run's retry policy, once it talks to the cluster: its counters.
    policy: OnceLock<RetryPolicy>,
    records_verified: OnceLock<usize>,
}

/// The terminal display: a line per resource, redrawn in place.
struct Live {
    multi: MultiProgress,
    lines: Mutex<BTreeMap<String, ProgressBar>>,
}

impl Reporter {
    /// A reporter for this process: the live display only when stderr is a terminal.
    pub fn new(format: Format) -> Reporter {
        let live = (format == Format::Text && std::io::stderr().is_terminal()).then(|| Live {
            multi: MultiProgress::new(),
            lines: Mutex::new(BTreeMap::new()),
        });
        Reporter {
            format,
            started: Instant::now(),
            live,
            policy: OnceLock::new(),
            records_verified: OnceLock::new(),
        }
    }

    /// Counts the run's requests and the retries of `policy` from now on.
    pub fn count(&self, policy: &RetryPolicy) {
        let _ = self.policy.set(policy.clone());
    }

    /// The DNS proof ended with `n` records verified.
    pub fn records_verified(&self, n: usize) {
        let _ = self.records_verified.set(n);
    }

    /// The run's figures so far; none before it talked to the cluster.
    pub fn counters(&self) -> Option<Counters> {
        let policy = self.policy.get()?;
        Some(Counters {
            requests: crate::retry::requests_sent(),
            retries: policy.stats().snapshot().retries,
            records_verified: self.records_verified.get().copied(),
        })
    }

    pub fn format(&self) -> Format {
        self.format
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn event(
        &self,
        phase: Phase,
        resource: Option<&str>,
        state: &str,
        message: &str,
        attempt: Option<u32>,
    ) {
        self.emit(Event {
            ts: jiff::Timestamp::now().to_string(),
            phase,
            resource: resource.map(str::to_owned),
            state: state.to_owned(),
            message: message.to_owned(),
            attempt,
            exit_code: None,
            counters: None,
            elapsed_s: self.elapsed().as_secs_f64(),
        });
    }

    /// A step's summary: a line on stderr for people, an `info` event for automation.
    pub fn say(&self, phase: Phase, message: &str) {
        match self.format {
            Format::Text => eprintln!("{message}"),
            Format::Json => self.event(phase, None, "info", message, None),
        }
    }

    /// A warning: on stderr always, and as a `warning` event for automation.
    pub fn warn(&self, phase: Phase, message: &str) {
        eprintln!("warning: {message}");
        if self.format == Format::Json {
            self.event(phase, None, "warning", message, None);
        }
    }

    /// A result line for people on stdout, `word` in a column of its own (text only: in
    /// JSON the events already carry the same facts).
    pub fn line(&self, word: &str, subject: &str) {
        if self.format == Format::Text {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{word:<13} {subject}");
        }
    }

    /// One resource's answer: a result line in text, an event in JSON.
    pub fn answer(&self, phase: Phase, resource: &str, state: &str, message: &str) {
        match self.format {
            Format::Text => self.line(state, &format!("{resource}: {message}")),
            Format::Json => self.event(phase, Some(resource), state, message, None),
        }
    }

    /// The run's last event. In text mode the caller prints errors itself.
    pub fn result(&self, exit_code: u8, message: &str) {
        let state = if exit_code == 0 {
            "succeeded"
        } else {
            "failed"
        };
        if let Some(live) = &self.live {
            for line in live.lines.lock().unwrap().values() {
                line.abandon();
            }
        }
        if self.format == Format::Json {
            self.emit(Event {
                ts: jiff::Timestamp::now().to_string(),
                phase: Phase::Result,
                resource: None,
                state: state.to_owned(),
                message: message.to_owned(),
                attempt: None,
                exit_code: Some(exit_code),
                counters: self.counters(),
                elapsed_s: self.elapsed().as_secs_f64(),
            });
        }
    }

    fn emit(&self, event: Event) {
        match (self.format, &self.live) {
            (Format::Json, _) => {
                let line = serde_json::to_string(&event).expect("events serialize");
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{line}");
                let _ = stdout.flush();
            }
            (Format::Text, Some(live)) => live.show(&event),
            (Format::Text, None) => eprintln!("{}", plain_line(&event)),
        }
    }
}

impl Live {
    fn show(&self, event: &Event) {
        let Some(resource) = &event.resource else {
            let _ = self
                .multi
                .println(format!("{}: {}", event.state, event.message));
            return;
        };
        let mut lines = self.lines.lock().unwrap();
        let line = lines.entry(resource.clone()).or_insert_with(|| {
            let bar = self.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<58} [{elapsed:>4}] {msg}")
                    .expect("a valid template"),
            );
            bar.set_prefix(resource.clone());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        line.set_message(format!("{}: {}", event.state, event.message));
        if matches!(event.state.as_str(), "ready" | "failed") {
            line.finish();
        }
    }
}

/// `<ts> <phase> <resource>: <state>: <message>`, one line per event for logs.
fn plain_line(event: &Event) -> String {
    let mut line = format!("{} {:<5}", event.ts, event.phase.as_str());
    if let Some(resource) = &event.resource {
        line.push(' ');
        line.push_str(resource);
        line.push(':');
    }
    line.push(' ');
    line.push_str(&event.state);
    if !event.message.is_empty() {
        line.push_str(": ");
        line.push_str(&event.message);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event {
            ts: "2026-11-22T04:50:01.5Z".into(),
            phase: Phase::Retry,
            resource: Some("HelmRelease external-dns/external-dns".into()),
            state: "retrying".into(),
            message: "connection refused".into(),
            attempt: Some(2),
            exit_code: None,
            counters: None,
            elapsed_s: 1.25,
        }
    }

    #[test]
    fn json_events_carry_the_documented_fields_and_omit_empty_ones() {
        let json: serde_json::Value = serde_json::to_value(event()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "ts": "2026-11-22T04:50:01.5Z", "phase": "retry",
                "resource": "HelmRelease external-dns/external-dns", "state": "retrying",
                "message": "connection refused", "attempt": 2, "elapsed_s": 1.25
            })
        );
        let mut whole_run = event();
        whole_run.resource = None;
        whole_run.attempt = None;
        let json = serde_json::to_value(&whole_run).unwrap();
        assert!(json.get("resource").is_none() && json.get("attempt").is_none());
        assert!(json.get("requests").is_none(), "{json}");
    }

    #[test]
    fn the_result_event_carries_the_runs_counters() {
        let reporter = Reporter::new(Format::Json);
        assert_eq!(reporter.counters(), None, "no figures before the cluster");
        reporter.count(&RetryPolicy::default());
        reporter.records_verified(2);
        let counters = reporter.counters().unwrap();
        assert_eq!((counters.retries, counters.records_verified), (0, Some(2)));
        let mut result = event();
        result.phase = Phase::Result;
        result.exit_code = Some(0);
        result.counters = Some(Counters {
            requests: 12,
            retries: 1,
            records_verified: None,
        });
        let json = serde_json::to_value(&result).unwrap();
        assert_eq!(
            (json["requests"].as_u64(), json["retries"].as_u64()),
            (Some(12), Some(1))
        );
        assert!(json.get("records_verified").is_none(), "{json}");
        assert!(json.get("counters").is_none(), "flattened: {json}");
    }

    #[test]
    fn plain_lines_read_as_one_log_line_each() {
        assert_eq!(
            plain_line(&event()),
            "2026-11-22T04:50:01.5Z retry HelmRelease external-dns/external-dns: retrying: connection refused"
        );
    }
}
