//! `wait` and `up`: the kit's workloads healthy, then DNS sync proven, with the judgement
//! running all the way through (`up` applies first).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::apply::{Mode, apply_kit};
use super::session::Session;
use super::{CommandError, Outcome, RunArgs, SpecArgs};
use crate::dns;
use crate::health;
use crate::report::{Phase, Reporter, Sink};

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// How long the workloads may take to turn healthy. Time the apiserver is unreachable
    /// does not count (that has its own budget, --unreachable-timeout).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = super::session::parse_duration, allow_hyphen_values = true)]
    pub timeout: Duration,
}

/// Whether the command writes before it waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `wait`: never writes.
    Wait,
    /// `up`: applies the kit first, and may replace a pod waiting out a long back-off.
    Up,
}

pub async fn run(
    args: &WaitArgs,
    start: Start,
    reporter: Arc<Reporter>,
) -> Result<Outcome, CommandError> {
    let (session, verifier) = Session::open_proving(&args.spec, &args.run, reporter).await?;
    if start == Start::Up {
        let summary = apply_kit(&session, Mode::Apply).await?;
        session.reporter.say(Phase::Apply, &summary);
    }
    let backoff = match start {
        Start::Wait => Backoff::Leave,
        Start::Up => Backoff::Cut,
    };
    wait_and_prove(&session, &verifier, args.timeout, backoff).await
}

/// Whether the wait may replace a pod of the kit's release waiting out a long kubelet
/// back-off once the apiserver calmed (`up` and `repair`; never `wait`, which never
/// writes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backoff {
    Leave,
    Cut,
}

/// Waits until the kit's HelmRelease is Ready for its current generation and the
/// external-dns pods are not failing, then proves DNS sync while the judgement keeps
/// watching: external-dns turns Ready before its start-up cache sync has run out, so its
/// crash comes after.
pub async fn wait_and_prove(
    session: &Session,
    verifier: &dns::Verifier,
    timeout: Duration,
    backoff: Backoff,
) -> Result<Outcome, CommandError> {
    let sink = session.reporter.clone();
    let options = health::WaitOptions::default()
        .with_timeout(timeout)
        .with_retry_policy(&session.retry)
        .with_backoff_cut(backoff == Backoff::Cut)
        .on_event(Sink::new(move |event: &health::HealthEvent| {
            let state = serde_json::to_value(event.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            sink.event(
                Phase::Wait,
                Some(&event.resource),
                &state,
                &event.message,
                None,
            );
        }));
    let targets = &session.prepared.targets;
    let (report, verified) =
        health::wait_then_watch(&session.client, targets, &options, |healthy| {
            for (resource, at) in &healthy.ready {
                let subject = format!("{resource} (after {:.1}s)", at.as_secs_f64());
                session.reporter.line("ready", &subject);
            }
            prove_dns(session, verifier, timeout)
        })
        .await?;
    let verified = verified?;
    for why in &report.ridden_out {
        session.reporter.line("rode out", why);
    }
    let rode_out = match report.ridden_out.as_slice() {
        [] => String::new(),
        ridden => format!(" after riding out: {}", ridden.join("; ")),
    };
    Ok(Outcome::success(format!(
        "healthy{rode_out}; {verified}; {}",
        session.requests()
    )))
}

/// The proof that DNS sync works: every record external-dns should have written is in
/// PowerDNS with our ownership, and answered by the authoritative server when one is set.
async fn prove_dns(
    session: &Session,
    verifier: &dns::Verifier,
    timeout: Duration,
) -> Result<String, CommandError> {
    let sink = session.reporter.clone();
    let sink = Sink::new(move |event: &dns::DnsEvent| {
        sink.event(
            Phase::Dns,
            Some(&event.hostname),
            &event.state,
            &event.message,
            None,
        );
    });
    let options = dns::VerifyOptions {
        timeout,
        run_started: std::time::SystemTime::now() - session.reporter.elapsed(),
        events: sink,
        policy: session.retry.clone(),
        ..dns::VerifyOptions::default()
    };
    let proven = dns::verify_until_synced(
        &session.client,
        &session.prepared.sovereign,
        verifier,
        options,
    )
    .await;
    let report = match proven {
        // Why external-dns did not write them is in its pods' logs: its own, and its
        // webhook sidecar's, which alone knows what the DNS provider answered.
        Err(dns::DnsError::NotSynced {
            missing,
            likely_cause,
            ..
        }) => {
            let containers =
                dns::evidence::writing_containers(&session.prepared.sovereign.spec.dns);
            let evidence =
                dns::Evidence::gather(&session.client, &session.prepared.targets, containers).await;
            return Err(dns::DnsError::NotSynced {
                missing,
                likely_cause: evidence.refine(likely_cause),
                evidence,
            }
            .into());
        }
        other => other?,
    };
    session.reporter.records_verified(report.records.len());
    for record in &report.records {
        let subject = format!(
            "{} {}",
            record.record.hostname,
            record.record.rtype.as_str()
        );
        session.reporter.line("in dns", &subject);
    }
    Ok(if report.records.is_empty() {
        "no DNS records expected yet; PowerDNS answers and takes the API key".to_owned()
    } else {
        format!(
            "{} DNS records verified in PowerDNS ({} zone reads)",
            report.records.len(),
            report.zone_reads
        )
    })
}
