//! Readiness and diagnosis for `wait`: judges the kit's workloads from what their
//! controllers report, waits on watches until they are healthy, fails early when one will
//! not get there, and explains why in plain language.
//!
//! - [`judge`]: pure verdicts on a HelmRelease, a Deployment, a Pod.
//! - [`signatures`]: known failure texts mapped to causes (a table), and redaction.
//! - [`diagnose`]: events, probe failures and previous logs gathered on failure.
//! - [`clock`]: the health timeout that pauses during apiserver outages, and the outage
//!   budget.
//! - [`pressure`]: how the apiserver answers this tool (slow, throttling, fast).
//! - [`ride`]: a failure judged by its cause: ridden out when time heals it, failed early
//!   when it does not.
//! - [`target`]: what is judged, and the one judgement of a target shared by `wait`,
//!   `status` and `repair`.
//! - [`outcome`]: the wait's options, events, report and errors.
//! - [`watch`]: the engine, [`wait_until_healthy`], on watch streams (`streams`), riding
//!   out what time heals (`riding`).

pub mod clock;
pub mod diagnose;
pub mod judge;
pub mod outcome;
pub mod pressure;
pub mod ride;
mod riding;
pub mod signatures;
mod streams;
pub mod target;
pub mod watch;

pub use diagnose::{Diagnosis, EventSummary, Logs};
pub use judge::Health;
pub use outcome::{EventState, HealthError, HealthEvent, Pending, Report, WaitOptions};
pub use streams::SILENCE;
pub use target::{PodSelection, Target, TargetKind};
pub use watch::{wait_then_watch, wait_until_healthy};
