//! The commands' flows, one module each, and what they share: the [`Session`] every
//! cluster command starts from, the [`Outcome`] a command answers with, and the one
//! [`CommandError`] whose [`CommandError::exit`] maps every failure to its exit code.
//!
//! A flow reads in one pass: spec → render (in [`session::prepare`], before the first
//! request to the cluster) → apply → health → dns → report.

pub mod apply;
pub mod docs;
pub mod render;
pub mod repair;
pub mod session;
pub mod status;
pub mod wait;

use std::error::Error as _;
use std::sync::Arc;

use thiserror::Error;

use crate::apply::ApplyError;
use crate::connect::ConnectError;
use crate::dns::DnsError;
use crate::exit::Exit;
use crate::health::HealthError;
use crate::render::RenderError;
use crate::report::{self, Reporter};
use crate::retry::RetryError;
use crate::spec::SpecError;

pub use session::{OutputFormat, RunArgs, Session, SpecArgs};

/// How a command that ran to its end answers: its exit code and its closing summary.
/// Not every answer is a success: `status` finding a release still installing answers
/// with exit 5, which is not an error of the command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit: Exit,
    pub summary: String,
}

impl Outcome {
    pub fn success(summary: String) -> Outcome {
        Outcome {
            exit: Exit::Success,
            summary,
        }
    }
}

/// Every way a command fails, one variant per module's error.
#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Render(#[from] RenderError),
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    Dns(#[from] DnsError),
    /// A read or write of `status` or `repair` that failed for good.
    #[error(transparent)]
    Api(#[from] RetryError),
    /// Output the command could not write (a closed stdout, an unwritable directory).
    #[error("cannot write {what}")]
    Output {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

impl CommandError {
    /// The documented exit code (README: exit codes). Exhaustive: a new variant does not
    /// compile until it is mapped.
    pub fn exit(&self) -> Exit {
        match self {
            CommandError::Spec(_) => Exit::BadInput,
            CommandError::Connect(e) => e.exit(),
            CommandError::Apply(e) => e.exit(),
            CommandError::Health(e) => e.exit(),
            CommandError::Dns(e) => e.exit(),
            CommandError::Api(e) => e.exit(),
            // A RenderError on a valid spec is a bug; failing to write output is the
            // environment's fault. Neither has a more specific code.
            CommandError::Render(_) | CommandError::Output { .. } | CommandError::Runtime(_) => {
                Exit::Internal
            }
        }
    }

    pub fn output(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CommandError {
        let what = what.into();
        move |source| CommandError::Output { what, source }
    }

    /// The message with its causes, `outer: cause: cause`.
    pub fn message(&self) -> String {
        let mut message = self.to_string();
        let mut source = self.source();
        // A transparent variant's source is its inner error's source.
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        message
    }

    /// Prints the error on stderr: one problem per line, each prefixed, so every line
    /// stands alone in a log.
    pub fn print(&self) {
        match self {
            CommandError::Spec(e) => {
                for line in e.to_string().lines() {
                    eprintln!("error: {line}");
                }
            }
            _ => eprintln!("error: {}", self.message()),
        }
    }
}

/// Runs a cluster command with its reporter on a small runtime, and ends the event stream
/// with the outcome.
pub fn run_async<F>(
    format: report::Format,
    command: impl FnOnce(Arc<Reporter>) -> F,
) -> Result<Outcome, CommandError>
where
    F: std::future::Future<Output = Result<Outcome, CommandError>>,
{
    let reporter = Arc::new(Reporter::new(format));
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)
        .and_then(|runtime| runtime.block_on(command(reporter.clone())));
    match &result {
        Ok(outcome) => {
            reporter.result(outcome.exit.code(), &outcome.summary);
            if format == report::Format::Text {
                eprintln!("{}", outcome.summary);
            }
        }
        Err(error) => reporter.result(error.exit().code(), &error.message()),
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Diagnostic;

    fn api(make: impl Fn(String, String) -> RetryError) -> RetryError {
        make("get x".into(), "m".into())
    }

    /// One row per kind of failure, through the one mapping at the boundary.
    #[test]
    fn every_error_maps_to_its_documented_exit_code() {
        let io = || std::io::Error::other("closed");
        let cases: Vec<(CommandError, Exit)> = vec![
            (
                SpecError::Invalid(Vec::<Diagnostic>::new()).into(),
                Exit::BadInput,
            ),
            (
                RenderError::Template {
                    template: "t".into(),
                    message: "m".into(),
                }
                .into(),
                Exit::Internal,
            ),
            (
                ConnectError::Kubeconfig {
                    where_: "f".into(),
                    problem: "p".into(),
                }
                .into(),
                Exit::BadInput,
            ),
            (
                ApplyError::ForeignApplySet {
                    parent: "p".into(),
                    tooling: "kubectl".into(),
                }
                .into(),
                Exit::BadInput,
            ),
            (
                DnsError::ApiKeyMissing {
                    source_desc: "unset".into(),
                }
                .into(),
                Exit::BadInput,
            ),
            (
                RetryError::Unreachable {
                    what: "w".into(),
                    elapsed: std::time::Duration::from_secs(1),
                    attempts: 2,
                    last: "refused".into(),
                }
                .into(),
                Exit::ApiserverUnreachable,
            ),
            (
                api(|what, message| RetryError::Unauthorized { what, message }).into(),
                Exit::PermissionDenied,
            ),
            (
                api(|what, cause| RetryError::Tls { what, cause }).into(),
                Exit::TlsUntrusted,
            ),
            (
                api(|what, message| RetryError::Conflict { what, message }).into(),
                Exit::Internal,
            ),
            (
                api(|what, message| RetryError::NotServed { what, message }).into(),
                Exit::Internal,
            ),
            (
                RetryError::Forbidden {
                    what: "get".into(),
                    verb: "get".into(),
                    resource: "helmreleases".into(),
                    message: "no".into(),
                }
                .into(),
                Exit::PermissionDenied,
            ),
            (
                CommandError::Output {
                    what: "the kit to stdout".into(),
                    source: io(),
                },
                Exit::Internal,
            ),
            (CommandError::Runtime(io()), Exit::Internal),
        ];
        for (error, exit) in cases {
            assert_eq!(error.exit(), exit, "{error:?}");
        }
    }

    /// The same apiserver answer exits the same from every command: a request rejected as
    /// invalid (400/422) is bad input whether `apply`, `status` or `repair` sent it.
    #[test]
    fn a_request_rejected_as_invalid_is_bad_input_from_every_command() {
        let invalid = || api(|what, message| RetryError::Invalid { what, message });
        let from_apply: CommandError = ApplyError::Api(invalid()).into();
        let from_status_or_repair: CommandError = invalid().into();
        let from_dns: CommandError = DnsError::Apiserver(invalid()).into();
        for error in [from_apply, from_status_or_repair, from_dns] {
            assert_eq!(error.exit(), Exit::BadInput, "{error:?}");
        }
    }

    #[test]
    fn messages_carry_their_causes_once() {
        let error = CommandError::Output {
            what: "the kit to stdout".into(),
            source: std::io::Error::other("broken pipe"),
        };
        assert_eq!(
            error.message(),
            "cannot write the kit to stdout: broken pipe"
        );
        let error: CommandError =
            api(|what, message| RetryError::NotFound { what, message }).into();
        assert_eq!(error.message(), "get x: not found: m");
    }
}
