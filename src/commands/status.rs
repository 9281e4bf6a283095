//! `status`: one round of the wait's judgement, changing nothing. Its answer is the exit
//! code (0 ready, 4 failed, 5 progressing or missing), not an error of the command.

use std::sync::Arc;

use clap::Args;

use super::session::Session;
use super::{CommandError, Outcome, RunArgs, SpecArgs};
use crate::report::{Phase, Reporter};
use crate::status::{self, State};

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

pub async fn run(args: &StatusArgs, reporter: Arc<Reporter>) -> Result<Outcome, CommandError> {
    let session = Session::open(&args.spec, &args.run, reporter).await?;
    let report = status::status(&session.client, &session.prepared.targets, &session.retry).await?;
    for r in &report.resources {
        let state = r.state.as_str();
        (session.reporter).answer(Phase::Status, &r.resource, state, &r.message);
    }
    let ready = report
        .resources
        .iter()
        .filter(|r| r.state == State::Ready)
        .count();
    Ok(Outcome {
        exit: report.exit(),
        summary: format!(
            "{ready} of {} ready; {}",
            report.resources.len(),
            session.requests()
        ),
    })
}
