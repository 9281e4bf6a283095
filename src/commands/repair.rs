//! `repair`: apply (a rerun), repair what waiting alone would not fix, then wait and prove
//! DNS as `up` does.

use std::sync::Arc;

use super::apply::{Mode, apply_kit};
use super::session::Session;
use super::wait::{Backoff, WaitArgs, wait_and_prove};
use super::{CommandError, Outcome};
use crate::repair;
use crate::report::{Phase, Reporter};

pub async fn run(args: &WaitArgs, reporter: Arc<Reporter>) -> Result<Outcome, CommandError> {
    let (session, verifier) = Session::open_proving(&args.spec, &args.run, reporter).await?;
    let summary = apply_kit(&session, Mode::Apply).await?;
    session.reporter.say(Phase::Apply, &summary);
    let repaired = repair::repair(
        &session.client,
        &session.prepared.targets,
        &session.retry,
        || jiff::Timestamp::now().to_string(),
    )
    .await?;
    let done = (repaired.actions.iter()).map(|a| (&a.resource, a.action.as_str(), &a.reason));
    let left_alone = (repaired.skipped.iter()).map(|s| (&s.resource, "left-alone", &s.reason));
    for (resource, state, reason) in done.chain(left_alone) {
        (session.reporter).event(Phase::Repair, Some(resource), state, reason, None);
    }
    if repaired.nothing_done() && repaired.skipped.is_empty() {
        session.reporter.say(
            Phase::Repair,
            "nothing to repair: every resource is ready or on its way",
        );
    }
    wait_and_prove(&session, &verifier, args.timeout, Backoff::Cut).await
}
