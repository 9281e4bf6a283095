//! Proof that DNS is synced: the records external-dns should have written are in PowerDNS,
//! owned by this external-dns, and served by the authoritative nameserver.
//!
//! external-dns's /healthz answers 200 before its caches sync, so a Ready pod proves nothing.
//! This module derives the expected records from what external-dns reads ([`expected`]),
//! reads each PowerDNS zone once per round ([`pdns`]), judges every record against the
//! rrsets and the TXT ownership registry ([`txt`]), asks the nameserver ([`query`]), reads
//! external-dns's metrics for a likely cause ([`metrics`]), and repeats until everything is
//! verified or time runs out ([`verify_until_synced`]). The tool never writes to PowerDNS.

pub mod changes;
pub mod evidence;
pub mod expected;
pub mod metrics;
pub mod pdns;
pub mod query;
pub mod txt;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use kube::Client;
use thiserror::Error;

use crate::exit::Exit;
use crate::health::clock::WaitClock;
use crate::report::Sink;
use crate::retry::{Jitter, RetryError, RetryPolicy, Schedule};
use crate::spec::Sovereign;
use changes::Changes;
pub use evidence::Evidence;

pub use expected::{
    Derived, ExpectedRecord, RecordType, Scope, classify_target, expected_records,
    expected_records_in,
};
pub use metrics::Freshness;
pub use pdns::{ApiKey, PdnsClient, PdnsError, Zone};

/// Where one expected record stands.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Verified,
    /// No rrset of that name and type.
    Missing,
    /// The rrset exists with other contents.
    WrongTargets {
        found: Vec<String>,
    },
    /// The rrset exists, but no TXT record of the registry says external-dns owns it.
    NoOwnership,
    /// Another external-dns (another txt-owner-id) owns the name; it is left alone.
    OwnedByOther {
        owner: String,
    },
    /// PowerDNS holds the record but the nameserver answers otherwise (or not at all).
    DnsMismatch {
        answered: Vec<String>,
    },
    /// Not checked: PowerDNS could not be read this round.
    Unchecked {
        reason: String,
    },
}

impl Verdict {
    /// Short state for events: `verified`, `missing`, `wrong-targets`, ...
    pub fn state(&self) -> &'static str {
        match self {
            Verdict::Verified => "verified",
            Verdict::Missing => "missing",
            Verdict::WrongTargets { .. } => "wrong-targets",
            Verdict::NoOwnership => "no-ownership",
            Verdict::OwnedByOther { .. } => "owned-by-other",
            Verdict::DnsMismatch { .. } => "dns-mismatch",
            Verdict::Unchecked { .. } => "unchecked",
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Verified => f.write_str("in PowerDNS, owned, served"),
            Verdict::Missing => f.write_str("not in PowerDNS"),
            Verdict::WrongTargets { found } => {
                write!(f, "in PowerDNS with other targets: {}", found.join(", "))
            }
            Verdict::NoOwnership => f.write_str("in PowerDNS without an ownership TXT record"),
            Verdict::OwnedByOther { owner } => {
                write!(
                    f,
                    "owned by another external-dns (owner {owner}); left alone"
                )
            }
            Verdict::DnsMismatch { answered } if answered.is_empty() => {
                f.write_str("in PowerDNS, but the nameserver gives no answer")
            }
            Verdict::DnsMismatch { answered } => write!(
                f,
                "in PowerDNS, but the nameserver answers {}",
                answered.join(", ")
            ),
            Verdict::Unchecked { reason } => write!(f, "not checked: {reason}"),
        }
    }
}

/// Why records did not sync, as far as the evidence goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LikelyCause {
    PowerDnsUnreachableOrCredentials,
    NotOwnedByThisExternalDns,
    OwnedByOther {
        owner: String,
    },
    SourceErrors,
    ExternalDnsNotSynced,
    NameserverDiffers,
    /// The webhook provider's sidecar logs a known failure ([`Evidence`]).
    Webhook {
        container: String,
        cause: &'static str,
    },
    /// external-dns logs a known failure ([`Evidence`]).
    Logged {
        container: String,
        cause: &'static str,
    },
}

impl std::fmt::Display for LikelyCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LikelyCause::PowerDnsUnreachableOrCredentials => {
                f.write_str("PowerDNS unreachable or credentials wrong")
            }
            LikelyCause::NotOwnedByThisExternalDns => {
                f.write_str("not written by this external-dns (owner id or txt prefix differ)")
            }
            LikelyCause::OwnedByOther { owner } => write!(
                f,
                "the names are owned by another external-dns (owner {owner}), which this one will not overwrite"
            ),
            LikelyCause::SourceErrors => {
                f.write_str("external-dns cannot read its sources (source error counter rising)")
            }
            LikelyCause::ExternalDnsNotSynced => {
                f.write_str("external-dns not running or still syncing its caches")
            }
            LikelyCause::NameserverDiffers => f.write_str(
                "PowerDNS holds the records but the nameserver answers otherwise (cache, or another server)",
            ),
            LikelyCause::Webhook { container, cause } => write!(
                f,
                "the webhook provider sidecar (container {container}) cannot do its work: {cause}"
            ),
            LikelyCause::Logged { container, cause } => {
                write!(f, "{cause} (the log of container {container})")
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum DnsError {
    /// Names the variable or file, never the key.
    #[error("PowerDNS API key: {source_desc}")]
    ApiKeyMissing { source_desc: String },
    #[error(transparent)]
    Apiserver(#[from] RetryError),
    /// The zone (and the server) must exist before external-dns can write to it.
    #[error("{0}")]
    Zone(PdnsError),
    /// No record was expected, and PowerDNS could not be read until the timeout.
    #[error("DNS sync not proven: {0}")]
    Unreadable(PdnsError),
    #[error(
        "DNS not synced: {} record(s) not verified ({}); likely cause: {likely_cause}{evidence}",
        missing.len(),
        summary(missing)
    )]
    NotSynced {
        /// "hostname TYPE" and its last verdict.
        missing: Vec<(String, Verdict)>,
        likely_cause: LikelyCause,
        /// What the release's containers logged (gathered by the command, which knows
        /// the pods).
        evidence: Evidence,
    },
    #[error("{0}")]
    Internal(String),
}

fn summary(missing: &[(String, Verdict)]) -> String {
    const SHOWN: usize = 5;
    let mut parts: Vec<String> = missing
        .iter()
        .take(SHOWN)
        .map(|(h, v)| format!("{h}: {v}"))
        .collect();
    if missing.len() > SHOWN {
        parts.push(format!("and {} more", missing.len() - SHOWN));
    }
    parts.join("; ")
}

impl DnsError {
    /// NotSynced and a missing zone → 7; a missing key → 3; apiserver
    /// errors as [`RetryError::exit`].
    pub fn exit(&self) -> Exit {
        match self {
            DnsError::NotSynced { .. } | DnsError::Zone(_) | DnsError::Unreadable(_) => {
                Exit::DnsNotSynced
            }
            DnsError::ApiKeyMissing { .. } => Exit::BadInput,
            DnsError::Apiserver(e) => e.exit(),
            DnsError::Internal(_) => Exit::Internal,
        }
    }
}

/// Judges one expected record against a zone read. Pure.
///
/// Ownership reads the new-format TXT (`<prefix><type>-<name>`) first and falls back to the
/// old one (`<prefix><name>`). A name owned by another owner is reported as such whatever
/// its rrset holds. Records from spec.verify.hostnames ([`RecordType::Any`]) need only exist.
pub fn check_record(
    zone: &Zone,
    rec: &ExpectedRecord,
    owner_id: &str,
    txt_prefix: &str,
) -> Verdict {
    if rec.rtype == RecordType::Any {
        let exists = ["A", "AAAA", "CNAME"]
            .iter()
            .any(|t| zone.get(&rec.hostname, t).is_some());
        return if exists {
            Verdict::Verified
        } else {
            Verdict::Missing
        };
    }
    let rtype = rec.rtype.as_str();
    let owners = |name: String| -> Vec<txt::Ownership> {
        zone.get(&name, "TXT")
            .into_iter()
            .flatten()
            .filter_map(|c| txt::parse_ownership(c))
            .collect()
    };
    let mut ownerships = owners(txt::new_txt_name(txt_prefix, &rec.hostname, rtype));
    if ownerships.is_empty() {
        ownerships = owners(txt::old_txt_name(txt_prefix, &rec.hostname));
    }
    let ours = ownerships.iter().any(|o| o.owner == owner_id);
    if !ours && let Some(other) = ownerships.first() {
        return Verdict::OwnedByOther {
            owner: other.owner.clone(),
        };
    }
    let Some(found) = zone.get(&rec.hostname, rtype) else {
        return Verdict::Missing;
    };
    if !ours {
        return Verdict::NoOwnership;
    }
    if pdns::target_set(rtype, found) != pdns::target_set(rtype, &rec.targets) {
        let mut found = found.clone();
        found.sort();
        return Verdict::WrongTargets { found };
    }
    Verdict::Verified
}

/// Judges records against PowerDNS, reading each zone they fall in exactly once. With no
/// record it still asks PowerDNS once (the server, not a zone), so that a wrong key or an
/// unreachable server is not first noticed when external-dns has records to write.
pub async fn check_records(
    pdns: &PdnsClient,
    records: &[ExpectedRecord],
    owner_id: &str,
    txt_prefix: &str,
) -> Result<Vec<Verdict>, PdnsError> {
    if records.is_empty() {
        return pdns.check_access().await.map(|()| Vec::new());
    }
    let zones: BTreeSet<&str> = records.iter().map(|r| r.zone.as_str()).collect();
    let mut read = HashMap::new();
    for zone in zones {
        read.insert(zone, pdns.zone(zone).await?);
    }
    Ok(records
        .iter()
        .map(|r| check_record(&read[r.zone.as_str()], r, owner_id, txt_prefix))
        .collect())
}

/// Asks the nameserver for a record PowerDNS holds; None when the answer matches.
pub async fn check_answer(
    server: SocketAddr,
    rec: &ExpectedRecord,
    timeout: Duration,
) -> Option<Verdict> {
    use hickory_proto::rr::RecordType as Q;
    let name = pdns::fqdn(&rec.hostname);
    let mismatch = |answered| Some(Verdict::DnsMismatch { answered });
    let ask = |q| query::query(server, &name, q, timeout);
    let texts = |a: &query::Answer| a.records.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>();
    match rec.rtype {
        RecordType::Any => {
            for q in [Q::A, Q::AAAA] {
                match ask(q).await {
                    Ok(a) if !a.records.is_empty() => return None,
                    Ok(_) => {}
                    Err(e) => return mismatch(vec![e]),
                }
            }
            mismatch(vec![])
        }
        rtype => {
            let q = match rtype {
                RecordType::A => Q::A,
                RecordType::Aaaa => Q::AAAA,
                _ => Q::CNAME,
            };
            match ask(q).await {
                Ok(a) => {
                    let got: Vec<String> = a
                        .records
                        .iter()
                        .filter(|(t, _)| *t == q)
                        .map(|(_, t)| t.clone())
                        .collect();
                    let want = pdns::target_set(rtype.as_str(), &rec.targets);
                    if pdns::target_set(rtype.as_str(), &got) == want {
                        None
                    } else {
                        mismatch(texts(&a))
                    }
                }
                Err(e) => mismatch(vec![e]),
            }
        }
    }
}

/// One line of progress for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsEvent {
    /// "hostname TYPE", e.g. "api.example.com A".
    pub hostname: String,
    /// [`Verdict::state`].
    pub state: String,
    pub message: String,
}

#[derive(Clone)]
pub struct VerifyOptions {
    pub timeout: Duration,
    /// A sync must be later than this to count as fresh (metrics).
    pub run_started: SystemTime,
    pub events: Sink<DnsEvent>,
    /// Limits which objects the expected records come from (tests: one namespace).
    pub scope: Scope,
    pub policy: RetryPolicy,
    /// Per DNS query and per metrics scrape.
    pub query_timeout: Duration,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            timeout: Duration::from_secs(5 * 60),
            run_started: SystemTime::now(),
            events: Sink::default(),
            scope: Scope::default(),
            policy: RetryPolicy::default(),
            query_timeout: Duration::from_secs(3),
        }
    }
}

/// A record and its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordStatus {
    pub record: ExpectedRecord,
    pub verdict: Verdict,
}

/// A synced DNS.
#[derive(Debug, Clone)]
pub struct DnsReport {
    pub records: Vec<RecordStatus>,
    pub rounds: u32,
    /// Times the expected records were derived (listed from the cluster): the first round,
    /// and a round after a change to their sources ([`changes`]).
    pub derivations: u32,
    /// Zone GETs sent to PowerDNS in all rounds.
    pub zone_reads: u64,
    /// None when spec.verify.metricsUrl is empty or unreadable.
    pub metrics: Option<Freshness>,
}

/// The event subject for PowerDNS itself, when no record is expected.
const POWERDNS_API: &str = "PowerDNS API";

const FIRST_DELAY: Duration = Duration::from_millis(250);
/// PowerDNS cannot be watched; a cap of 2 s keeps the wait short once external-dns writes.
const MAX_DELAY: Duration = Duration::from_secs(2);

/// What the proof takes from the spec and the environment: the PowerDNS client with its API
/// key, and the nameserver to ask. Built before the first request to the cluster, so a
/// missing key is refused as bad input before anything is applied.
#[derive(Clone)]
pub struct Verifier {
    pdns: PdnsClient,
    nameserver: Option<SocketAddr>,
}

impl Verifier {
    /// Reads the API key (spec.verify.apiKeyEnv or apiKeyFile).
    pub fn new(verify: &crate::spec::Verify) -> Result<Verifier, DnsError> {
        let pdns = PdnsClient::new(verify, ApiKey::from_verify(verify)?)?;
        let nameserver = verify.nameserver.map(|ns| ns.0);
        Ok(Verifier { pdns, nameserver })
    }
}

/// Re-checks until every expected record is verified (and served, when spec.verify.nameserver
/// is set), or `timeout` passes: then [`DnsError::NotSynced`] with a likely cause.
///
/// PowerDNS is read every round; the expected records are listed from the cluster in the
/// first round and again only after their sources changed ([`changes`]), picking up new
/// Services on the way without listing the cluster every round.
pub async fn verify_until_synced(
    client: &Client,
    sovereign: &Sovereign,
    verifier: &Verifier,
    opts: VerifyOptions,
) -> Result<DnsReport, DnsError> {
    let verify = &sovereign.spec.verify;
    let edns = &sovereign.spec.external_dns;
    let Verifier { pdns, nameserver } = verifier;
    let nameserver = *nameserver;
    let http = reqwest::Client::builder()
        .timeout(opts.query_timeout)
        .build()
        .map_err(|e| DnsError::Internal(format!("HTTP client: {e}")))?;
    // The wait's outage clock: time riding out apiserver failures pauses the timeout.
    let mut clock = WaitClock::new(Instant::now(), opts.timeout, opts.policy.unreachable_budget);
    let mut delays = Schedule::new(FIRST_DELAY, MAX_DELAY, Jitter::None);
    let mut rounds = 0;
    let mut first_metrics = None;
    let mut freshness = None;
    let mut last: BTreeMap<String, Verdict> = BTreeMap::new();
    let mut derivations = 0;
    // The records derived last, and the watch for a change of their sources.
    let mut current: Option<(Derived, Changes)> = None;

    loop {
        rounds += 1;
        let asked = Instant::now();
        let (derived, watching) = match current.take() {
            Some((derived, changes)) if !changes.stale(asked) => (derived, Some(changes)),
            previous => {
                derivations += 1;
                let retries_before = opts.policy.stats().snapshot().retries;
                let derived =
                    expected_records_in(client, sovereign, &opts.policy, &opts.scope).await?;
                // Time spent riding out apiserver failures does not count against the
                // timeout, as in the wait: outages have their own budget (the policy's), and
                // a record external-dns could not write while the apiserver was gone is not
                // its fault. A derivation that had to retry, or that waited longer than a
                // connection may take to be made, met an apiserver that did not answer (a
                // frozen one answers its requests late, when it resumes, without a retry).
                // Between derivations the watches are all the proof hears of the apiserver,
                // so such an outage began no later than their last word.
                let retried = opts.policy.stats().snapshot().retries > retries_before;
                if retried || asked.elapsed() > crate::retry::CONNECT_TIMEOUT {
                    let since = previous.map_or(asked, |(_, changes)| changes.last_heard());
                    clock.unreachable(since.min(asked));
                    clock.reachable(Instant::now());
                }
                (derived, None)
            }
        };
        let records = &derived.records;
        let read = check_records(pdns, records, &edns.txt_owner_id, &edns.txt_prefix).await;
        let (mut verdicts, pdns_error) = match read {
            Ok(v) => (v, None),
            Err(e @ (PdnsError::ZoneNotFound { .. } | PdnsError::ServerNotFound { .. })) => {
                return Err(DnsError::Zone(e));
            }
            Err(e) => {
                let reason = e.to_string();
                let v = vec![Verdict::Unchecked { reason }; records.len()];
                (v, Some(e))
            }
        };
        if let Some(server) = nameserver {
            for (rec, verdict) in records.iter().zip(verdicts.iter_mut()) {
                if *verdict == Verdict::Verified
                    && let Some(m) = check_answer(server, rec, opts.query_timeout).await
                {
                    *verdict = m;
                }
            }
        }
        if !verify.metrics_url.is_empty() {
            freshness = Some(match metrics::scrape(&http, &verify.metrics_url).await {
                Ok(m) => {
                    let first = *first_metrics.get_or_insert(m);
                    metrics::judge(&first, &m, opts.run_started)
                }
                // No metrics endpoint answering: external-dns is not running.
                Err(_) => Freshness::NotSyncedSinceStart,
            });
        }

        // One event per change of a subject's verdict: each record, and PowerDNS itself when
        // no record could carry what went wrong reading it.
        let unreadable = match (&pdns_error, records.is_empty()) {
            (Some(e), true) => Some(Verdict::Unchecked {
                reason: e.to_string(),
            }),
            _ => None,
        };
        let subjects = records
            .iter()
            .zip(&verdicts)
            .map(|(rec, v)| (format!("{} {}", rec.hostname, rec.rtype), v, Some(rec)))
            .chain(
                unreadable
                    .iter()
                    .map(|v| (POWERDNS_API.to_owned(), v, None)),
            );
        let mut now: BTreeMap<String, Verdict> = BTreeMap::new();
        for (key, verdict, rec) in subjects {
            if last.get(&key) != Some(verdict) {
                opts.events.emit_with(|| DnsEvent {
                    hostname: key.clone(),
                    state: verdict.state().to_owned(),
                    message: match rec {
                        Some(rec) => format!("{verdict} (from {})", rec.source),
                        None => verdict.to_string(),
                    },
                });
            }
            now.insert(key, verdict.clone());
        }
        last = now;

        if pdns_error.is_none() && verdicts.iter().all(|v| *v == Verdict::Verified) {
            return Ok(DnsReport {
                records: derived
                    .records
                    .into_iter()
                    .zip(verdicts)
                    .map(|(record, verdict)| RecordStatus { record, verdict })
                    .collect(),
                rounds,
                derivations,
                zone_reads: pdns.zone_reads(),
                metrics: freshness,
            });
        }
        let remaining = clock.deadline().saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            // Out of time on records derived earlier: derive them once more before failing,
            // a fresh look at the cluster that also finds an apiserver gone quiet meanwhile
            // (the time it did not answer then does not count).
            if let Some(changes) = watching {
                changes.expire();
                current = Some((derived, changes));
                continue;
            }
            if records.is_empty()
                && let Some(e) = pdns_error
            {
                return Err(DnsError::Unreadable(e));
            }
            let likely_cause = likely_cause(&verdicts, pdns_error.as_ref(), freshness.as_ref());
            let missing = records
                .iter()
                .zip(verdicts)
                .filter(|(_, v)| *v != Verdict::Verified)
                .map(|(r, v)| (format!("{} {}", r.hostname, r.rtype), v))
                .collect();
            return Err(DnsError::NotSynced {
                missing,
                likely_cause,
                evidence: Evidence::default(),
            });
        }
        // Watched from here on, once the proof goes on: the last round starts no watch.
        let changes = watching.unwrap_or_else(|| {
            let watch_secs = crate::retry::watch_timeout_secs(opts.policy.pressure());
            Changes::watch(client, &derived, &opts.scope, watch_secs, Instant::now())
        });
        current = Some((derived, changes));
        tokio::time::sleep(delays.next_delay().min(remaining)).await;
    }
}

/// The most telling explanation for what is not verified. Pure.
pub fn likely_cause(
    verdicts: &[Verdict],
    pdns_error: Option<&PdnsError>,
    freshness: Option<&Freshness>,
) -> LikelyCause {
    if pdns_error.is_some() || freshness == Some(&Freshness::RegistryErrorsRising) {
        return LikelyCause::PowerDnsUnreachableOrCredentials;
    }
    if let Some(Verdict::OwnedByOther { owner }) = verdicts
        .iter()
        .find(|v| matches!(v, Verdict::OwnedByOther { .. }))
    {
        return LikelyCause::OwnedByOther {
            owner: owner.clone(),
        };
    }
    if verdicts.contains(&Verdict::NoOwnership) {
        return LikelyCause::NotOwnedByThisExternalDns;
    }
    if freshness == Some(&Freshness::SourceErrorsRising) {
        return LikelyCause::SourceErrors;
    }
    let only_dns = verdicts
        .iter()
        .all(|v| matches!(v, Verdict::Verified | Verdict::DnsMismatch { .. }));
    if only_dns && freshness != Some(&Freshness::NotSyncedSinceStart) {
        return LikelyCause::NameserverDiffers;
    }
    LikelyCause::ExternalDnsNotSynced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(rrsets: &[(&str, &str, &[&str])]) -> Zone {
        let mut z = Zone::default();
        for (name, t, contents) in rrsets {
            z.rrsets.insert(
                (pdns::fqdn(name), (*t).to_owned()),
                contents.iter().map(|c| (*c).to_owned()).collect(),
            );
        }
        z
    }

    fn rec(host: &str, rtype: RecordType, targets: &[&str]) -> ExpectedRecord {
        ExpectedRecord {
            hostname: host.into(),
            rtype,
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            source: "service/ns/web".into(),
            zone: "example.com".into(),
        }
    }

    const OURS: &str = r#""heritage=external-dns,external-dns/owner=openova,external-dns/resource=service/ns/web""#;
    const THEIRS: &str = r#""heritage=external-dns,external-dns/owner=someone""#;
    const P: &str = "_externaldns.";

    #[test]
    fn both_txt_formats_prove_ownership() {
        let a = rec("api.example.com", RecordType::A, &["192.0.2.1"]);
        let new = zone(&[
            ("api.example.com", "A", &["192.0.2.1"]),
            ("_externaldns.a-api.example.com", "TXT", &[OURS]),
        ]);
        assert_eq!(check_record(&new, &a, "openova", P), Verdict::Verified);
        let old = zone(&[
            ("api.example.com", "A", &["192.0.2.1"]),
            ("_externaldns.api.example.com", "TXT", &[OURS]),
        ]);
        assert_eq!(check_record(&old, &a, "openova", P), Verdict::Verified);
        let none = zone(&[("api.example.com", "A", &["192.0.2.1"])]);
        assert_eq!(check_record(&none, &a, "openova", P), Verdict::NoOwnership);
        assert_eq!(
            check_record(&new, &a, "other-id", P),
            Verdict::OwnedByOther {
                owner: "openova".into()
            }
        );
    }

    #[test]
    fn targets_owners_and_absence_are_told_apart() {
        let cname = rec("www.example.com", RecordType::Cname, &["LB.example.net"]);
        let z = zone(&[
            ("www.example.com", "CNAME", &["lb.example.net."]),
            ("_externaldns.cname-www.example.com", "TXT", &[OURS]),
        ]);
        assert_eq!(check_record(&z, &cname, "openova", P), Verdict::Verified);
        let a = rec(
            "api.example.com",
            RecordType::A,
            &["192.0.2.1", "192.0.2.2"],
        );
        let wrong = zone(&[
            ("api.example.com", "A", &["192.0.2.9"]),
            ("_externaldns.a-api.example.com", "TXT", &[OURS]),
        ]);
        assert_eq!(
            check_record(&wrong, &a, "openova", P),
            Verdict::WrongTargets {
                found: vec!["192.0.2.9".into()]
            }
        );
        assert_eq!(
            check_record(&Zone::default(), &a, "openova", P),
            Verdict::Missing
        );
        let theirs = zone(&[
            ("api.example.com", "A", &["192.0.2.1", "192.0.2.2"]),
            ("_externaldns.a-api.example.com", "TXT", &[THEIRS]),
        ]);
        assert_eq!(
            check_record(&theirs, &a, "openova", P),
            Verdict::OwnedByOther {
                owner: "someone".into()
            }
        );
        let any = rec("app.example.com", RecordType::Any, &[]);
        assert_eq!(
            check_record(&Zone::default(), &any, "openova", P),
            Verdict::Missing
        );
        let any_z = zone(&[("app.example.com", "AAAA", &["2001:db8::1"])]);
        assert_eq!(check_record(&any_z, &any, "openova", P), Verdict::Verified);
    }

    #[test]
    fn likely_cause_follows_the_evidence() {
        let creds = PdnsError::Credentials { status: 401 };
        assert_eq!(
            likely_cause(&[Verdict::Missing], Some(&creds), None),
            LikelyCause::PowerDnsUnreachableOrCredentials
        );
        assert_eq!(
            likely_cause(
                &[Verdict::Missing],
                None,
                Some(&Freshness::RegistryErrorsRising)
            ),
            LikelyCause::PowerDnsUnreachableOrCredentials
        );
        assert_eq!(
            likely_cause(&[Verdict::Missing, Verdict::NoOwnership], None, None),
            LikelyCause::NotOwnedByThisExternalDns
        );
        assert_eq!(
            likely_cause(
                &[Verdict::Missing],
                None,
                Some(&Freshness::NotSyncedSinceStart)
            ),
            LikelyCause::ExternalDnsNotSynced
        );
        assert_eq!(
            likely_cause(&[Verdict::Missing], None, None),
            LikelyCause::ExternalDnsNotSynced
        );
        assert_eq!(
            likely_cause(&[Verdict::DnsMismatch { answered: vec![] }], None, None),
            LikelyCause::NameserverDiffers
        );
        let err = DnsError::NotSynced {
            missing: vec![("a.example.com A".into(), Verdict::Missing)],
            likely_cause: LikelyCause::ExternalDnsNotSynced,
            evidence: Evidence::default(),
        };
        assert_eq!(err.exit(), Exit::DnsNotSynced);
        assert!(
            err.to_string().contains("a.example.com A: not in PowerDNS"),
            "{err}"
        );
        assert_eq!(
            DnsError::ApiKeyMissing {
                source_desc: "x".into()
            }
            .exit(),
            Exit::BadInput
        );
    }
}
