//! `apply` and `diff`: the kit server-side applied (or, for `diff` and `--dry-run`, what
//! applying would do, asked of the apiserver).

use std::sync::Arc;

use clap::Args;

use super::session::Session;
use super::{CommandError, Outcome, RunArgs, SpecArgs};
use crate::apply::{self, ApplyEvent, ApplyOptions, ApplyReport, Outcome as Applied};
use crate::report::{self, Phase, Reporter, Sink};

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub run: RunArgs,
    /// Server-side dry run: the apiserver validates everything, nothing is written or pruned.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

/// What an apply does and shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Write, and say per object what happened.
    Apply,
    /// Write nothing; say per object what would happen.
    DryRun,
    /// As a dry run, with the changed fields of each object.
    Diff,
}

impl Mode {
    fn dry_run(self) -> bool {
        self != Mode::Apply
    }
}

/// Validates and renders everything before the first request, then applies.
pub async fn run(
    spec: &SpecArgs,
    run: &RunArgs,
    mode: Mode,
    reporter: Arc<Reporter>,
) -> Result<Outcome, CommandError> {
    let session = Session::open(spec, run, reporter).await?;
    let summary = apply_kit(&session, mode).await?;
    Ok(Outcome::success(format!(
        "{summary}; {}",
        session.requests()
    )))
}

/// Applies the session's kit; returns the one-line summary. `up` and `repair` start here.
pub async fn apply_kit(session: &Session, mode: Mode) -> Result<String, CommandError> {
    let sovereign = &session.prepared.sovereign;
    let sink = session.reporter.clone();
    let dry_run = mode.dry_run();
    let options = ApplyOptions::new(
        sovereign.metadata.name.clone(),
        sovereign.spec.external_dns.namespace.clone(),
    )
    .with_dry_run(dry_run)
    .with_crd_timeout(session.crd_timeout)
    .with_retry(session.retry.clone())
    .on_event(Sink::new(move |event: &ApplyEvent| match event {
        ApplyEvent::WaitingForCrd(missing) => sink.event(
            Phase::Apply,
            Some(&missing.crd),
            "waiting-for-crd",
            &format!(
                "kind {} is not served yet; its CRD comes from {}",
                missing.kind, missing.installer
            ),
            None,
        ),
        ApplyEvent::Object(object) => {
            if sink.format() == report::Format::Json {
                sink.event(
                    Phase::Apply,
                    Some(&object.describe()),
                    outcome_state(dry_run, object.outcome),
                    &object.changed.join(" "),
                    None,
                );
            }
        }
    }));
    let report = apply::apply(&session.client, &session.prepared.desired, &options).await?;
    for object in &report.objects {
        let reporter = &session.reporter;
        reporter.line(
            &outcome_word(report.dry_run, object.outcome),
            &object.describe(),
        );
        if mode == Mode::Diff {
            for path in &object.changed {
                reporter.line("", &format!("  {path}"));
            }
        }
    }
    Ok(summary(&report))
}

/// What happened to an object, as people read it: the event state in words, and an
/// orphan's being kept said outright.
fn outcome_word(dry_run: bool, outcome: Applied) -> String {
    match outcome {
        Applied::Orphaned => "orphaned (not in the kit; kept)".to_owned(),
        _ => outcome_state(dry_run, outcome).replace('-', " "),
    }
}

/// The event `state` of an applied object (README: events).
fn outcome_state(dry_run: bool, outcome: Applied) -> &'static str {
    match (dry_run, outcome) {
        (true, Applied::Created) => "would-create",
        (true, Applied::Configured) => "would-change",
        (_, Applied::Created) => "created",
        (_, Applied::Configured) => "configured",
        (_, Applied::Unchanged) => "unchanged",
        (_, Applied::Pruned) => "pruned",
        (_, Applied::WouldPrune) => "would-prune",
        (_, Applied::Orphaned) => "orphaned",
    }
}

fn summary(report: &ApplyReport) -> String {
    let counts = [
        (Applied::Created, "created"),
        (Applied::Configured, "configured"),
        (Applied::Unchanged, "unchanged"),
        (Applied::Pruned, "pruned"),
        (Applied::WouldPrune, "to prune"),
        (Applied::Orphaned, "orphaned"),
    ]
    .iter()
    .filter_map(|(outcome, word)| match report.count(*outcome) {
        0 => None,
        n => Some(format!("{n} {word}")),
    })
    .collect::<Vec<_>>()
    .join(", ");
    let verb = if report.dry_run { "dry run" } else { "applied" };
    format!("{verb} {} objects ({counts})", report.objects.len())
}
