//! What every cluster command starts from: the spec and run arguments, everything that
//! needs no cluster checked once by [`prepare`] (spec, kit, the kit's objects and health
//! targets; and, for the commands that prove DNS, its API key and nameserver), then the client, the retry policy and
//! the reporter in one [`Session`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use super::CommandError;
use crate::apply::Desired;
use crate::connect::{self, ClusterConfig};
use crate::dns;
use crate::health::Target;
use crate::render::{self, Kit};
use crate::report::{self, Phase, Reporter, Sink};
use crate::retry::{RetryEvent, RetryPolicy};
use crate::spec::{self, Sovereign};

#[derive(Debug, Args)]
pub struct SpecArgs {
    /// The Sovereign spec, e.g. clusters/<name>/sovereign.yaml.
    #[arg(long, value_name = "FILE")]
    pub spec: PathBuf,
    /// Defaults merged under the spec. Without it: <spec dir>/../_template/sovereign.yaml
    /// if that exists, else the copy built into the binary.
    #[arg(long, value_name = "FILE")]
    pub defaults: Option<PathBuf>,
}

impl SpecArgs {
    /// Loads and validates the spec (warnings on stderr) and renders its kit.
    pub fn render(&self) -> Result<(Sovereign, Kit), CommandError> {
        let loaded = spec::load(&self.spec, self.defaults.as_deref())?;
        for warning in &loaded.warnings {
            eprintln!("warning: {warning}");
        }
        let kit = render::render(&loaded.sovereign)?;
        Ok((loaded.sovereign, kit))
    }
}

/// How to reach the cluster, how long to ride out its outages, and how to report.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The kubeconfig to use. Without it: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current one.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// How long the apiserver may stay unreachable or keep throttling, counted from its
    /// first consecutive failure, before the command gives up (exit 6).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub unreachable_timeout: Duration,
    /// How long `apply`, `diff`, `up` and `repair` wait for a kind of the kit to be served
    /// while its CRD (from Flux or Cilium) is being installed, before giving up (exit 5).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    pub crd_timeout: Duration,
    /// How to report progress and results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Do not verify the apiserver's TLS certificate (unsafe; prints a warning). Needed too
    /// when the kubeconfig itself sets insecure-skip-tls-verify, which is otherwise refused.
    #[arg(long)]
    pub insecure_skip_tls_verify: bool,
}

impl RunArgs {
    pub fn format(&self) -> report::Format {
        self.output.into()
    }

    fn cluster(&self) -> ClusterConfig {
        ClusterConfig {
            kubeconfig: self.kubeconfig.clone(),
            context: self.context.clone(),
            insecure_skip_tls_verify: self.insecure_skip_tls_verify,
        }
    }
}

/// Durations take hyphen values (`allow_hyphen_values`) so that `-5m` is refused here, as a
/// negative duration, rather than read as an unknown flag.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    spec::formats::parse_go_duration(value)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("expected a positive duration such as 30s, 5m or 1h30m, got {value:?}")
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Progress for people on stderr (a live display on a terminal), results on stdout.
    Text,
    /// NDJSON events on stdout, one per line, for the automation that runs the tool.
    Json,
}

impl From<OutputFormat> for report::Format {
    fn from(format: OutputFormat) -> Self {
        match format {
            OutputFormat::Text => report::Format::Text,
            OutputFormat::Json => report::Format::Json,
        }
    }
}

/// Everything a cluster command needs that needs no cluster, checked before its first
/// request: bad input is refused before anything is written.
pub struct Prepared {
    pub sovereign: Sovereign,
    /// The kit's objects, in apply order.
    pub desired: Vec<Desired>,
    /// What the health judgement looks at: the kit's HelmRelease and the pods its chart
    /// creates.
    pub targets: Vec<Target>,
}

pub fn prepare(spec: &SpecArgs) -> Result<Prepared, CommandError> {
    let (sovereign, kit) = spec.render()?;
    let (desired, targets) = kit.into_desired()?;
    Ok(Prepared {
        sovereign,
        desired,
        targets,
    })
}

/// A prepared command connected to its cluster.
pub struct Session {
    pub prepared: Prepared,
    pub client: kube::Client,
    pub retry: RetryPolicy,
    pub reporter: Arc<Reporter>,
    pub crd_timeout: Duration,
}

impl Session {
    /// Prepares (no request yet), then connects.
    pub async fn open(
        spec: &SpecArgs,
        run: &RunArgs,
        reporter: Arc<Reporter>,
    ) -> Result<Session, CommandError> {
        let prepared = prepare(spec)?;
        Session::connect(prepared, run, reporter).await
    }

    /// As [`Session::open`], for the commands that prove DNS sync: the PowerDNS API key
    /// and the nameserver are read before the first request to the cluster too.
    pub async fn open_proving(
        spec: &SpecArgs,
        run: &RunArgs,
        reporter: Arc<Reporter>,
    ) -> Result<(Session, dns::Verifier), CommandError> {
        let prepared = prepare(spec)?;
        let verifier = dns::Verifier::new(&prepared.sovereign.spec.verify)?;
        Ok((Session::connect(prepared, run, reporter).await?, verifier))
    }

    /// The client; says so, loudly, when TLS verification is off.
    async fn connect(
        prepared: Prepared,
        run: &RunArgs,
        reporter: Arc<Reporter>,
    ) -> Result<Session, CommandError> {
        let retry = retry_policy(run.unreachable_timeout, &reporter);
        reporter.count(&retry);
        let client = connect::client(&run.cluster(), retry.pressure()).await?;
        if run.insecure_skip_tls_verify {
            reporter.warn(Phase::Connect, connect::INSECURE_WARNING);
        }
        Ok(Session {
            prepared,
            client,
            retry,
            reporter,
            crd_timeout: run.crd_timeout,
        })
    }

    /// The closing figures of a run, as the result event carries them too.
    pub fn requests(&self) -> String {
        let counters = self.reporter.counters().unwrap_or_default();
        format!(
            "done in {:.1}s: {} apiserver requests, {} retries",
            self.reporter.elapsed().as_secs_f64(),
            counters.requests,
            counters.retries
        )
    }
}

fn retry_policy(unreachable_timeout: Duration, reporter: &Arc<Reporter>) -> RetryPolicy {
    let reporter = reporter.clone();
    RetryPolicy::default()
        .with_unreachable_budget(unreachable_timeout)
        .on_event(Sink::new(move |event: &RetryEvent| {
            let message = format!(
                "retrying in {:.1}s, failing for {}s: {}",
                event.delay.as_secs_f64(),
                event.failing_for.as_secs(),
                event.error
            );
            reporter.event(
                Phase::Retry,
                Some(&event.what),
                "retrying",
                &message,
                Some(event.attempt),
            );
        }))
}
