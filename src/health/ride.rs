//! Judging a failing workload by its cause, not by its count: what time heals is ridden
//! out, what it does not fails early.
//!
//! A fresh Sovereign's apiserver is CPU-saturated; external-dns's start-up cache sync misses
//! its hard-coded 60 s, external-dns exits, and the kubelet restarts it with a growing
//! back-off, 5-10 times, until the apiserver calms down. That crash loop is transient when
//! the apiserver is, or recently was, slow for this tool too ([`super::pressure`]). The same
//! crash while the apiserver has answered in milliseconds for longer than two cache-sync
//! windows is not saturation: egress from the pod to the apiserver is being dropped, and
//! waiting will not fix it. Any other crash signature (bad flags, invalid configuration,
//! missing credentials, RBAC) is permanent whatever the apiserver does.

use std::time::Duration;

use super::pressure::Condition;
use super::signatures::Signature;

/// Signatures of a crash that a saturated apiserver causes.
pub const TRANSIENT: &[&str] = &["apiserver-cache-sync", "apiserver-egress"];
/// The apiserver counts as recently slow for this long after its last slow window.
pub const RECENT: Duration = Duration::from_secs(5 * 60);
/// Two of external-dns's 60 s cache-sync windows: a cache-sync crash while the apiserver
/// was fast for this long is dropped egress, not saturation.
pub const FAST_PROOF: Duration = Duration::from_secs(120);
/// How long the apiserver must be fast again, after being slow, before a pod waiting out a
/// long kubelet back-off is replaced (`up` and `repair` only).
pub const CALM: Duration = Duration::from_secs(10);
/// A back-off at least this long is worth cutting short once the apiserver is calm.
pub const CUT_BACKOFF_FROM: Duration = Duration::from_secs(20);

/// What to do with a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Time heals it: keep waiting (up to `--timeout`), saying why.
    RideOut { why: String },
    /// It will not heal: fail now, with what the judgement adds to the diagnosis.
    Fail { judgement: Option<String> },
    /// No known cause: judged by the usual count and grace period (a crash loop fails
    /// after a few restarts).
    ByCount,
}

/// Judges a crash-looping container from the causes its diagnosis found (termination,
/// previous logs, events; most specific first), whether its previous log could be read,
/// and the apiserver as this tool sees it.
pub fn crash_loop(
    container: &str,
    restarts: i32,
    causes: &[&Signature],
    logs_read: bool,
    apiserver: Condition,
) -> Verdict {
    let permanent = causes.iter().any(|c| !TRANSIENT.contains(&c.id));
    if permanent {
        return Verdict::Fail { judgement: None };
    }
    let what = match causes.first().map(|c| c.id) {
        Some("apiserver-cache-sync") => "its start-up cache sync",
        Some(_) => "reaching the apiserver",
        // Its logs could not be read: on a saturated apiserver that is the saturation
        // speaking, otherwise nothing tells the cause.
        None if !logs_read && matches!(apiserver, Condition::Slow { .. }) => {
            "a cause its logs could not tell (they could not be read)"
        }
        None => return Verdict::ByCount,
    };
    let restarted = format!(
        "{container} restarted {restarts} time{} on {what}",
        if restarts == 1 { "" } else { "s" }
    );
    match apiserver {
        Condition::Unknown | Condition::Slow { .. } => Verdict::RideOut {
            why: format!("{restarted}; {}", apiserver.describe()),
        },
        Condition::Fast {
            for_,
            slow_before: true,
            ..
        } if for_ < RECENT => Verdict::RideOut {
            why: format!(
                "{restarted}; {} (it was saturated {}s ago: the restarts lag behind)",
                apiserver.describe(),
                for_.as_secs()
            ),
        },
        Condition::Fast { for_, .. } if for_ < FAST_PROOF && !causes.is_empty() => {
            Verdict::RideOut {
                why: format!(
                    "{restarted}; {}: watching for another cache-sync window to tell a \
                     saturated apiserver from dropped egress",
                    apiserver.describe()
                ),
            }
        }
        Condition::Fast { median, for_, .. } if !causes.is_empty() => Verdict::Fail {
            judgement: Some(format!(
                "not saturation: the apiserver answered this tool in {} throughout the last \
                 {}s while {restarted}, so egress from the pod to the apiserver is being \
                 dropped (under Cilium allow the kube-apiserver entity: an ipBlock 0.0.0.0/0 \
                 rule does not match it)",
                median.map_or("milliseconds".to_owned(), |m| format!(
                    "{} ms",
                    m.as_millis().max(1)
                )),
                for_.as_secs()
            )),
        },
        Condition::Fast { .. } => Verdict::ByCount,
    }
}

/// Texts of a Flux failure caused by a slow or throttling apiserver rather than by the
/// chart or its values.
const APISERVER_TROUBLE: &[&str] = &[
    "context deadline exceeded",
    "the server was unable to return a response in the time allotted",
    "etcdserver: request timed out",
    "etcdserver: leader changed",
    "Too Many Requests",
    "the server is currently unable to handle the request",
    "client rate limiter",
    "TLS handshake timeout",
    "i/o timeout",
    "http2: client connection lost",
];

/// Judges a HelmRelease failure: helm-controller's install or upgrade failing on apiserver
/// timeouts or throttling while the apiserver is, or recently was, slow is ridden out; a
/// chart that does not exist, a values or schema error fails at once.
pub fn helm_release(message: &str, apiserver: Condition) -> Verdict {
    let trouble = APISERVER_TROUBLE.iter().find(|t| message.contains(**t));
    let recently_slow = match apiserver {
        Condition::Slow { .. } => true,
        Condition::Fast {
            for_, slow_before, ..
        } => slow_before && for_ < RECENT,
        Condition::Unknown => false,
    };
    match trouble {
        Some(t) if recently_slow => Verdict::RideOut {
            why: format!(
                "helm-controller failed on the apiserver ({t}); {}",
                apiserver.describe()
            ),
        },
        _ => Verdict::Fail { judgement: None },
    }
}

/// The back-off a `CrashLoopBackOff` waiting message states ("back-off 2m40s restarting
/// failed container=..."), as Go prints durations.
pub fn stated_backoff(message: &str) -> Option<Duration> {
    let text = message.strip_prefix("back-off ")?.split(' ').next()?;
    let mut total = 0u64;
    let mut number = String::new();
    for ch in text.chars() {
        match ch {
            '0'..='9' => number.push(ch),
            'h' | 'm' | 's' => {
                let n: u64 = number.parse().ok()?;
                number.clear();
                total += n * match ch {
                    'h' => 3600,
                    'm' => 60,
                    _ => 1,
                };
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::signatures::SIGNATURES;

    fn sig(id: &str) -> &'static Signature {
        SIGNATURES.iter().find(|s| s.id == id).expect(id)
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn slow() -> Condition {
        Condition::Slow {
            median: Some(MS(2300)),
            throttled: 0,
            failed: 0,
        }
    }

    fn fast(for_: u64, slow_before: bool) -> Condition {
        Condition::Fast {
            median: Some(MS(3)),
            for_: S(for_),
            slow_before,
        }
    }

    #[test]
    fn a_cache_sync_crash_on_a_saturated_apiserver_is_ridden_out_with_the_figures() {
        let v = crash_loop(
            "external-dns",
            4,
            &[sig("apiserver-cache-sync")],
            true,
            slow(),
        );
        assert_eq!(
            v,
            Verdict::RideOut {
                why: "external-dns restarted 4 times on its start-up cache sync; the apiserver \
                      answers in 2.3 s (saturated)"
                    .into()
            }
        );
    }

    #[test]
    fn the_restarts_lag_behind_a_recovery_for_a_while() {
        let v = crash_loop(
            "external-dns",
            5,
            &[sig("apiserver-cache-sync")],
            true,
            fast(90, true),
        );
        assert!(matches!(v, Verdict::RideOut { why } if why.contains("saturated 90s ago")));
        let v = crash_loop(
            "external-dns",
            6,
            &[sig("apiserver-cache-sync")],
            true,
            fast(400, true),
        );
        assert!(matches!(v, Verdict::Fail { judgement: Some(j) } if j.contains("egress")));
    }

    #[test]
    fn a_cache_sync_crash_while_the_apiserver_stays_fast_is_dropped_egress_after_two_windows() {
        let early = crash_loop(
            "external-dns",
            1,
            &[sig("apiserver-cache-sync")],
            true,
            fast(70, false),
        );
        assert!(
            matches!(early, Verdict::RideOut { why } if why.contains("another cache-sync window"))
        );
        let proven = crash_loop(
            "external-dns",
            2,
            &[sig("apiserver-cache-sync")],
            true,
            fast(130, false),
        );
        let Verdict::Fail { judgement: Some(j) } = proven else {
            panic!("{proven:?}")
        };
        assert!(
            j.starts_with(
                "not saturation: the apiserver answered this tool in 3 ms throughout the last 130s"
            ),
            "{j}"
        );
        assert!(j.contains("kube-apiserver entity"), "{j}");
    }

    #[test]
    fn any_other_signature_fails_even_on_a_saturated_apiserver() {
        for id in ["missing-config", "rbac", "pdns-credentials"] {
            let v = crash_loop(
                "external-dns",
                3,
                &[sig(id), sig("apiserver-cache-sync")],
                true,
                slow(),
            );
            assert_eq!(v, Verdict::Fail { judgement: None }, "{id}");
        }
    }

    #[test]
    fn an_unknown_cause_is_judged_by_count_unless_the_logs_could_not_be_read_on_a_slow_apiserver() {
        assert_eq!(crash_loop("c", 3, &[], true, slow()), Verdict::ByCount);
        assert!(matches!(
            crash_loop("c", 3, &[], false, slow()),
            Verdict::RideOut { .. }
        ));
        assert_eq!(
            crash_loop("c", 3, &[], false, fast(300, false)),
            Verdict::ByCount
        );
        assert_eq!(
            crash_loop("c", 3, &[], false, Condition::Unknown),
            Verdict::ByCount
        );
    }

    #[test]
    fn helm_controller_failures_on_the_apiserver_ride_out_only_while_it_is_slow() {
        let msg =
            "install retries exhausted: Unable to continue with install: context deadline exceeded";
        assert!(matches!(helm_release(msg, slow()), Verdict::RideOut { .. }));
        assert!(matches!(
            helm_release(msg, fast(60, true)),
            Verdict::RideOut { .. }
        ));
        assert_eq!(
            helm_release(msg, fast(600, false)),
            Verdict::Fail { judgement: None }
        );
        let chart = "no 'external-dns' chart with version matching '9.9.9' found";
        assert_eq!(
            helm_release(chart, slow()),
            Verdict::Fail { judgement: None }
        );
    }

    #[test]
    fn the_stated_backoff_is_read_from_the_kubelets_message() {
        let m = |b: &str| format!("back-off {b} restarting failed container=c pod=p_ns(u)");
        assert_eq!(stated_backoff(&m("10s")), Some(S(10)));
        assert_eq!(stated_backoff(&m("1m20s")), Some(S(80)));
        assert_eq!(stated_backoff(&m("5m0s")), Some(S(300)));
        assert_eq!(stated_backoff("Back-off pulling image"), None);
    }
}
