//! The command line: parses arguments into plain config types, runs the command, and maps
//! the typed errors to the documented exit codes. anyhow is used only here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::apply::{self, ApplyError, ApplyEvent, ApplyOptions, ApplyReport, Outcome};
use crate::connect::{self, ClusterConfig, ConnectError};
use crate::dns;
use crate::exit::Exit;
use crate::health;
use crate::render;
use crate::repair;
use crate::report::{self, Phase, Reporter};
use crate::retry::RetryPolicy;
use crate::spec::{self, SpecError};
use crate::status;

#[derive(Debug, Parser)]
#[command(
    name = "catalyst-bootstrap",
    version,
    about = "Renders, applies and proves healthy the bootstrap kit of an OpenOva Sovereign",
    after_help = "Examples:
  catalyst-bootstrap up --spec clusters/example/sovereign.yaml
  catalyst-bootstrap render --spec clusters/example/sovereign.yaml --out clusters/example/bootstrap-kit"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render the bootstrap kit of a Sovereign as Kubernetes manifests.
    #[command(after_help = "Examples:
  catalyst-bootstrap render --spec clusters/example/sovereign.yaml
  catalyst-bootstrap render --spec clusters/example/sovereign.yaml --out clusters/example/bootstrap-kit")]
    Render(RenderArgs),
    /// Server-side apply the kit to the cluster, pruning objects this tool applied earlier
    /// that the kit no longer holds.
    #[command(after_help = "Examples:
  catalyst-bootstrap apply --spec clusters/example/sovereign.yaml
  catalyst-bootstrap apply --spec clusters/example/sovereign.yaml --dry-run --context staging")]
    Apply(ApplyArgs),
    /// Show what `apply` would change (server-side dry run), changing nothing.
    #[command(after_help = "Examples:
  catalyst-bootstrap diff --spec clusters/example/sovereign.yaml
  catalyst-bootstrap diff --spec clusters/example/sovereign.yaml --output json")]
    Diff(DiffArgs),
    /// Wait until the kit's workloads are healthy: the HelmRelease Ready for its current
    /// generation and external-dns's pods not failing.
    #[command(after_help = "Examples:
  catalyst-bootstrap wait --spec clusters/example/sovereign.yaml
  catalyst-bootstrap wait --spec clusters/example/sovereign.yaml --timeout 20m --output json")]
    Wait(WaitArgs),
    /// Render, apply and wait: the one-shot command automation runs. Safe to rerun.
    #[command(after_help = "Examples:
  catalyst-bootstrap up --spec clusters/example/sovereign.yaml
  catalyst-bootstrap up --spec clusters/example/sovereign.yaml --timeout 15m --output json")]
    Up(WaitArgs),
    /// Report the kit's current health once, changing nothing. Exit 0 when ready, 4 when
    /// something failed, 5 when something is still progressing or missing.
    #[command(after_help = "Examples:
  catalyst-bootstrap status --spec clusters/example/sovereign.yaml
  catalyst-bootstrap status --spec clusters/example/sovereign.yaml --output json")]
    Status(StatusArgs),
    /// Rerun `up`, first asking Flux to reconcile a HelmRelease that is not ready (resetting
    /// one whose retries are exhausted) and rollout-restarting a crash-looping external-dns.
    #[command(after_help = "Examples:
  catalyst-bootstrap repair --spec clusters/example/sovereign.yaml
  catalyst-bootstrap repair --spec clusters/example/sovereign.yaml --timeout 20m")]
    Repair(WaitArgs),
    /// Print the JSON Schema (draft 2020-12) of a Sovereign file, for editors and manifest
    /// checkers. Needs no cluster.
    #[command(after_help = "Examples:
  catalyst-bootstrap schema > schema/sovereign.schema.json
  catalyst-bootstrap schema | jq '.properties.spec.properties.externalDns.properties.interval'")]
    Schema,
    /// Print the shell completion script for bash, zsh or fish. Needs no cluster.
    #[command(after_help = "Examples:
  catalyst-bootstrap completions bash > ~/.local/share/bash-completion/completions/catalyst-bootstrap
  catalyst-bootstrap completions fish > ~/.config/fish/completions/catalyst-bootstrap.fish")]
    Completions(CompletionsArgs),
    /// Print the man page (roff), or with --out write one page per command. Needs no cluster.
    #[command(after_help = "Examples:
  catalyst-bootstrap man | man -l -
  catalyst-bootstrap man --out ~/.local/share/man/man1")]
    Man(ManArgs),
}

#[derive(Debug, Args)]
struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl From<CompletionShell> for clap_complete::Shell {
    fn from(shell: CompletionShell) -> Self {
        match shell {
            CompletionShell::Bash => clap_complete::Shell::Bash,
            CompletionShell::Zsh => clap_complete::Shell::Zsh,
            CompletionShell::Fish => clap_complete::Shell::Fish,
        }
    }
}

#[derive(Debug, Args)]
struct ManArgs {
    /// Write catalyst-bootstrap.1 and one catalyst-bootstrap-<command>.1 per command into
    /// DIR (created if needed) instead of the main page on stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SpecArgs {
    /// The Sovereign spec, e.g. clusters/<name>/sovereign.yaml.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// Defaults merged under the spec. Without it: <spec dir>/../_template/sovereign.yaml
    /// if that exists, else the copy built into the binary.
    #[arg(long, value_name = "FILE")]
    defaults: Option<PathBuf>,
}

/// How to reach the cluster, how long to ride out its outages, and how to report.
#[derive(Debug, Args)]
struct RunArgs {
    /// The kubeconfig to use. Without it: $KUBECONFIG, ~/.kube/config, or the in-cluster
    /// service account.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use instead of its current one.
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// How long the apiserver may stay unreachable or keep throttling, counted from its
    /// first consecutive failure, before the command gives up (exit 6).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    unreachable_timeout: std::time::Duration,
    /// How long `apply`, `diff`, `up` and `repair` wait for a kind of the kit to be served
    /// while its CRD (from Flux or Cilium) is being installed, before giving up (exit 5).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, allow_hyphen_values = true)]
    crd_timeout: std::time::Duration,
    /// How to report progress and results.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
    /// Do not verify the apiserver's TLS certificate (unsafe; prints a warning). Needed too
    /// when the kubeconfig itself sets insecure-skip-tls-verify, which is otherwise refused.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
}

/// Durations take hyphen values (`allow_hyphen_values`) so that `-5m` is refused here, as a
/// negative duration, rather than read as an unknown flag.
fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    spec::formats::parse_go_duration(value)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            format!("expected a positive duration such as 30s, 5m or 1h30m, got {value:?}")
        })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum OutputFormat {
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

#[derive(Debug, Args)]
struct ApplyArgs {
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    run: RunArgs,
    /// Server-side dry run: the apiserver validates everything, nothing is written or pruned.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Debug, Args)]
struct WaitArgs {
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    run: RunArgs,
    /// How long the workloads may take to turn healthy. Time the apiserver is unreachable
    /// does not count (that has its own budget, --unreachable-timeout).
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, allow_hyphen_values = true)]
    timeout: std::time::Duration,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct DiffArgs {
    #[command(flatten)]
    spec: SpecArgs,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Args)]
struct RenderArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Write the numbered manifest files into DIR (creating it, removing stale kit files)
    /// instead of multi-document YAML on stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// What `render` needs, apart from how it was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderConfig {
    pub spec: PathBuf,
    pub defaults: Option<PathBuf>,
    pub out: Option<PathBuf>,
}

impl From<RenderArgs> for RenderConfig {
    fn from(args: RenderArgs) -> Self {
        RenderConfig {
            spec: args.spec.spec,
            defaults: args.spec.defaults,
            out: args.out,
        }
    }
}

/// What `apply` and `diff` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyConfig {
    pub spec: PathBuf,
    pub defaults: Option<PathBuf>,
    pub cluster: ClusterConfig,
    pub unreachable_timeout: std::time::Duration,
    /// How long a kind may stay unserved while its CRD is being installed.
    pub crd_timeout: std::time::Duration,
    pub dry_run: bool,
}

impl From<RunArgs> for ClusterConfig {
    fn from(args: RunArgs) -> Self {
        ClusterConfig {
            kubeconfig: args.kubeconfig,
            context: args.context,
            insecure_skip_tls_verify: args.insecure_skip_tls_verify,
        }
    }
}

impl From<ApplyArgs> for ApplyConfig {
    fn from(args: ApplyArgs) -> Self {
        ApplyConfig {
            spec: args.spec.spec,
            defaults: args.spec.defaults,
            unreachable_timeout: args.run.unreachable_timeout,
            crd_timeout: args.run.crd_timeout,
            cluster: args.run.into(),
            dry_run: args.dry_run,
        }
    }
}

/// What `wait` and `up` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitConfig {
    pub apply: ApplyConfig,
    pub timeout: std::time::Duration,
}

impl From<WaitArgs> for WaitConfig {
    fn from(args: WaitArgs) -> Self {
        WaitConfig {
            apply: ApplyConfig {
                spec: args.spec.spec,
                defaults: args.spec.defaults,
                unreachable_timeout: args.run.unreachable_timeout,
                crd_timeout: args.run.crd_timeout,
                cluster: args.run.into(),
                dry_run: false,
            },
            timeout: args.timeout,
        }
    }
}

impl From<StatusArgs> for ApplyConfig {
    fn from(args: StatusArgs) -> Self {
        ApplyConfig {
            spec: args.spec.spec,
            defaults: args.spec.defaults,
            unreachable_timeout: args.run.unreachable_timeout,
            crd_timeout: args.run.crd_timeout,
            cluster: args.run.into(),
            dry_run: true,
        }
    }
}

impl From<DiffArgs> for ApplyConfig {
    fn from(args: DiffArgs) -> Self {
        ApplyConfig {
            spec: args.spec.spec,
            defaults: args.spec.defaults,
            unreachable_timeout: args.run.unreachable_timeout,
            crd_timeout: args.run.crd_timeout,
            cluster: args.run.into(),
            dry_run: true,
        }
    }
}

/// Runs the binary: parse, run, report, exit.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version are printed through the error path too.
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Success
            }
            .into();
        }
    };
    let result = match cli.command {
        Command::Render(args) => render(&args.into()),
        Command::Apply(args) => {
            let format = args.run.output.into();
            run_async(format, |r| apply_kit(args.into(), false, r))
        }
        Command::Diff(args) => {
            let format = args.run.output.into();
            run_async(format, |r| apply_kit(args.into(), true, r))
        }
        Command::Wait(args) => {
            let format = args.run.output.into();
            run_async(format, |r| wait_kit(args.into(), false, r))
        }
        Command::Up(args) => {
            let format = args.run.output.into();
            run_async(format, |r| wait_kit(args.into(), true, r))
        }
        Command::Status(args) => {
            let format = args.run.output.into();
            run_async(format, |r| status_kit(args.into(), r))
        }
        Command::Repair(args) => {
            let format = args.run.output.into();
            run_async(format, |r| repair_kit(args.into(), r))
        }
        Command::Schema => print_stdout(spec::schema::to_text().as_bytes(), "the schema"),
        Command::Completions(args) => completions(args.shell),
        Command::Man(args) => man(args.out.as_deref()),
    };
    match result {
        Ok(()) => Exit::Success.into(),
        Err(error) => {
            report(&error);
            exit_code(&error).into()
        }
    }
}

/// Runs an async command with its reporter, ending the event stream with the outcome.
fn run_async<F>(
    format: report::Format,
    command: impl FnOnce(Arc<Reporter>) -> F,
) -> anyhow::Result<()>
where
    F: std::future::Future<Output = anyhow::Result<String>>,
{
    let reporter = Arc::new(Reporter::new(format));
    let result = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(command(reporter.clone())));
    match &result {
        Ok(summary) => {
            reporter.result(Exit::Success.code(), summary);
            if format == report::Format::Text {
                eprintln!("{summary}");
            }
        }
        Err(error) => reporter.result(exit_code(error).code(), &format!("{error:#}")),
    }
    result.map(drop)
}

/// A validated spec, its rendered kit and the kit's parsed objects, ready before the
/// first request to the cluster.
struct Prepared {
    sovereign: spec::Sovereign,
    kit: render::Kit,
    desired: Vec<apply::Desired>,
}

fn prepare(config: &ApplyConfig) -> anyhow::Result<Prepared> {
    let loaded = spec::load(&config.spec, config.defaults.as_deref())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let kit = render::render(&loaded.sovereign)?;
    let desired = apply::parse(
        kit.manifests
            .iter()
            .map(|m| (m.file_name.as_str(), m.yaml.as_str())),
    )?;
    Ok(Prepared {
        sovereign: loaded.sovereign,
        kit,
        desired,
    })
}

/// The cluster's client; says so, loudly, when TLS verification is off.
async fn connect(
    cluster: &ClusterConfig,
    reporter: &Reporter,
    retry: &RetryPolicy,
) -> anyhow::Result<kube::Client> {
    let client = connect::client(cluster, retry.pressure()).await?;
    if cluster.insecure_skip_tls_verify {
        eprintln!("warning: {}", connect::INSECURE_WARNING);
        if reporter.format() == report::Format::Json {
            reporter.event(
                Phase::Connect,
                None,
                "warning",
                connect::INSECURE_WARNING,
                None,
            );
        }
    }
    Ok(client)
}

fn retry_policy(config: &ApplyConfig, reporter: &Arc<Reporter>) -> RetryPolicy {
    let reporter = reporter.clone();
    RetryPolicy::default()
        .with_unreachable_budget(config.unreachable_timeout)
        .with_observer(move |event| {
            let message = format!(
                "retrying in {:.1}s, failing for {}s: {}",
                event.delay.as_secs_f64(),
                event.failing_for.as_secs(),
                event.error
            );
            reporter.event(
                Phase::Retry,
                Some(event.what),
                "retrying",
                &message,
                Some(event.attempt),
            );
        })
}

/// Validates and renders everything before the first request, then applies the kit (or,
/// for `diff` and `--dry-run`, asks the apiserver what applying would do).
pub async fn apply_kit(
    config: ApplyConfig,
    show_changes: bool,
    reporter: Arc<Reporter>,
) -> anyhow::Result<String> {
    let prepared = prepare(&config)?;
    let retry = retry_policy(&config, &reporter);
    let client = connect(&config.cluster, &reporter, &retry).await?;
    let summary =
        apply_prepared(&client, &prepared, &config, &retry, show_changes, &reporter).await?;
    Ok(format!("{summary}; {}", requests(&retry, &reporter)))
}

async fn apply_prepared(
    client: &kube::Client,
    prepared: &Prepared,
    config: &ApplyConfig,
    retry: &RetryPolicy,
    show_changes: bool,
    reporter: &Arc<Reporter>,
) -> anyhow::Result<String> {
    let sovereign = &prepared.sovereign;
    let sink = reporter.clone();
    let dry_run = config.dry_run;
    let options = ApplyOptions::new(
        sovereign.metadata.name.clone(),
        sovereign.spec.external_dns.namespace.clone(),
    )
    .with_dry_run(config.dry_run)
    .with_crd_timeout(config.crd_timeout)
    .with_retry(retry.clone())
    .with_events(move |event| match event {
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
    });
    let report = apply::apply(client, &prepared.desired, &options).await?;
    if reporter.format() == report::Format::Text {
        print_report(&report, show_changes);
    }
    Ok(summary(&report))
}

fn requests(retry: &RetryPolicy, reporter: &Reporter) -> String {
    // All requests, watches and probes included, not only the retried calls' attempts.
    format!(
        "done in {:.1}s: {} apiserver requests, {} retries",
        reporter.elapsed().as_secs_f64(),
        crate::retry::requests_sent(),
        retry.stats().snapshot().retries
    )
}

/// `wait`, and with `apply_first` `up`: waits until the kit's HelmRelease is Ready for its
/// current generation and the external-dns pods are not failing.
pub async fn wait_kit(
    config: WaitConfig,
    apply_first: bool,
    reporter: Arc<Reporter>,
) -> anyhow::Result<String> {
    let prepared = prepare(&config.apply)?;
    let retry = retry_policy(&config.apply, &reporter);
    let client = connect(&config.apply.cluster, &reporter, &retry).await?;
    if apply_first {
        let summary =
            apply_prepared(&client, &prepared, &config.apply, &retry, false, &reporter).await?;
        say(&reporter, Phase::Apply, &summary);
    }
    // `up` may replace a pod waiting out a long back-off; `wait` never writes.
    let cut_backoff = apply_first;
    wait_prepared(&client, &prepared, &config, &retry, &reporter, cut_backoff).await
}

/// `repair`: apply (a rerun), repair what waiting alone would not fix, then wait.
pub async fn repair_kit(config: WaitConfig, reporter: Arc<Reporter>) -> anyhow::Result<String> {
    let prepared = prepare(&config.apply)?;
    let retry = retry_policy(&config.apply, &reporter);
    let client = connect(&config.apply.cluster, &reporter, &retry).await?;
    let summary =
        apply_prepared(&client, &prepared, &config.apply, &retry, false, &reporter).await?;
    say(&reporter, Phase::Apply, &summary);
    let repaired = repair::repair(&client, &health_targets(&prepared), &retry, || {
        jiff::Timestamp::now().to_string()
    })
    .await?;
    for action in &repaired.actions {
        reporter.event(
            Phase::Repair,
            Some(&action.resource),
            action.action.as_str(),
            &action.reason,
            None,
        );
    }
    for skipped in &repaired.skipped {
        reporter.event(
            Phase::Repair,
            Some(&skipped.resource),
            "left-alone",
            &skipped.reason,
            None,
        );
    }
    if repaired.nothing_done() && repaired.skipped.is_empty() {
        say(
            &reporter,
            Phase::Repair,
            "nothing to repair: every resource is ready or on its way",
        );
    }
    wait_prepared(&client, &prepared, &config, &retry, &reporter, true).await
}

/// `status`: one look at every workload, changing nothing.
pub async fn status_kit(config: ApplyConfig, reporter: Arc<Reporter>) -> anyhow::Result<String> {
    let prepared = prepare(&config)?;
    let retry = retry_policy(&config, &reporter);
    let client = connect(&config.cluster, &reporter, &retry).await?;
    let report = status::status(&client, &health_targets(&prepared), &retry).await?;
    for resource in &report.resources {
        if reporter.format() == report::Format::Text {
            println!(
                "{:<13} {}: {}",
                resource.state.as_str(),
                resource.resource,
                resource.message
            );
        } else {
            reporter.event(
                Phase::Status,
                Some(&resource.resource),
                resource.state.as_str(),
                &resource.message,
                None,
            );
        }
    }
    let summary = format!(
        "{} of {} ready; {}",
        report
            .resources
            .iter()
            .filter(|r| r.state == status::State::Ready)
            .count(),
        report.resources.len(),
        requests(&retry, &reporter)
    );
    match report.exit() {
        Exit::Success => Ok(summary),
        exit => Err(Unhealthy { exit, summary }.into()),
    }
}

/// `status` found the kit not (yet) healthy: not a failure of the command, but an answer
/// automation reads from the exit code.
#[derive(Debug, thiserror::Error)]
#[error("not healthy: {summary}")]
struct Unhealthy {
    exit: Exit,
    summary: String,
}

/// A line for people in text mode, an event in JSON mode.
fn say(reporter: &Reporter, phase: Phase, message: &str) {
    match reporter.format() {
        report::Format::Text => eprintln!("{message}"),
        report::Format::Json => reporter.event(phase, None, "info", message, None),
    }
}

async fn wait_prepared(
    client: &kube::Client,
    prepared: &Prepared,
    config: &WaitConfig,
    retry: &RetryPolicy,
    reporter: &Arc<Reporter>,
    cut_backoff: bool,
) -> anyhow::Result<String> {
    let targets = health_targets(prepared);
    let sink = reporter.clone();
    let options = health::WaitOptions::default()
        .with_timeout(config.timeout)
        .with_retry_policy(retry)
        .with_backoff_cut(cut_backoff)
        .on_event(move |event| {
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
        });
    // The DNS proof runs while the wait's judgement keeps watching: external-dns turns
    // Ready before its start-up cache sync has run out, so its crash comes after.
    let text = reporter.format() == report::Format::Text;
    let (report, verified) = health::wait_then_watch(client, &targets, &options, |healthy| {
        if text {
            for (resource, at) in &healthy.ready {
                println!("ready         {resource} (after {:.1}s)", at.as_secs_f64());
            }
        }
        verify_dns(client, prepared, config, retry, reporter)
    })
    .await?;
    let verified = verified?;
    if text {
        for why in &report.ridden_out {
            println!("rode out      {why}");
        }
    }
    let rode_out = match report.ridden_out.as_slice() {
        [] => String::new(),
        ridden => format!(" after riding out: {}", ridden.join("; ")),
    };
    Ok(format!(
        "healthy{rode_out}; {verified}; {}",
        requests(retry, reporter)
    ))
}

/// The proof that DNS sync works: every record external-dns should have written is in
/// PowerDNS with our ownership, and answered by the authoritative server when one is set.
async fn verify_dns(
    client: &kube::Client,
    prepared: &Prepared,
    config: &WaitConfig,
    retry: &RetryPolicy,
    reporter: &Arc<Reporter>,
) -> anyhow::Result<String> {
    let sink = reporter.clone();
    let sink: dns::DnsEventSink = Arc::new(move |event: &dns::DnsEvent| {
        sink.event(
            Phase::Dns,
            Some(&event.hostname),
            &event.state,
            &event.message,
            None,
        );
    });
    let options = dns::VerifyOptions {
        timeout: config.timeout,
        run_started: std::time::SystemTime::now() - reporter.elapsed(),
        on_event: Some(sink),
        policy: retry.clone(),
        ..dns::VerifyOptions::default()
    };
    let report = dns::verify_until_synced(client, &prepared.sovereign, options).await?;
    if reporter.format() == report::Format::Text {
        for record in &report.records {
            println!(
                "in dns        {} {}",
                record.record.hostname,
                record.record.rtype.as_str()
            );
        }
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

/// The kit's HelmRelease, and the pods its chart creates.
fn health_targets(prepared: &Prepared) -> Vec<health::Target> {
    let external_dns = &prepared.sovereign.spec.external_dns;
    prepared
        .kit
        .manifests
        .iter()
        .filter(|m| m.kind == "HelmRelease")
        .map(|m| {
            let namespace = m.namespace.as_deref().unwrap_or(&external_dns.namespace);
            health::Target::helm_release(namespace, &m.name).with_release_pods(
                &external_dns.namespace,
                &external_dns.release_name,
                crate::external_dns::UPSTREAM_CHART,
            )
        })
        .collect()
}

fn print_report(report: &ApplyReport, show_changes: bool) {
    let mut stdout = std::io::stdout().lock();
    for object in &report.objects {
        let outcome = outcome_word(report.dry_run, object.outcome);
        let _ = writeln!(stdout, "{outcome:<13} {}", object.describe());
        if show_changes {
            for path in &object.changed {
                let _ = writeln!(stdout, "{:<13}   {path}", "");
            }
        }
    }
}

fn outcome_word(dry_run: bool, outcome: Outcome) -> &'static str {
    match (dry_run, outcome) {
        (true, Outcome::Created) => "would create",
        (true, Outcome::Configured) => "would change",
        (_, Outcome::Created) => "created",
        (_, Outcome::Configured) => "configured",
        (_, Outcome::Unchanged) => "unchanged",
        (_, Outcome::Pruned) => "pruned",
        (_, Outcome::WouldPrune) => "would prune",
        (_, Outcome::Orphaned) => "orphaned (not in the kit; kept)",
    }
}

/// The event `state` of an applied object (README: events).
fn outcome_state(dry_run: bool, outcome: Outcome) -> &'static str {
    match (dry_run, outcome) {
        (true, Outcome::Created) => "would-create",
        (true, Outcome::Configured) => "would-change",
        (_, Outcome::Created) => "created",
        (_, Outcome::Configured) => "configured",
        (_, Outcome::Unchanged) => "unchanged",
        (_, Outcome::Pruned) => "pruned",
        (_, Outcome::WouldPrune) => "would-prune",
        (_, Outcome::Orphaned) => "orphaned",
    }
}

fn summary(report: &ApplyReport) -> String {
    let counts = [
        (Outcome::Created, "created"),
        (Outcome::Configured, "configured"),
        (Outcome::Unchanged, "unchanged"),
        (Outcome::Pruned, "pruned"),
        (Outcome::WouldPrune, "to prune"),
        (Outcome::Orphaned, "orphaned"),
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

/// Loads and validates the spec, renders the kit, and writes it to stdout or `--out`.
/// Nothing is written unless the spec is valid and the whole kit rendered.
pub fn render(config: &RenderConfig) -> anyhow::Result<()> {
    let loaded = spec::load(&config.spec, config.defaults.as_deref())?;
    for warning in &loaded.warnings {
        eprintln!("warning: {warning}");
    }
    let kit = render::render(&loaded.sovereign)?;
    match &config.out {
        Some(dir) => {
            let written = kit.write_to_dir(dir)?;
            for removed in &written.removed {
                eprintln!("removed stale {}", removed.display());
            }
            eprintln!(
                "wrote {} manifests to {}",
                written.written.len(),
                dir.display()
            );
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(kit.to_multi_doc().as_bytes())
                .and_then(|()| stdout.flush())
                .context("cannot write the kit to stdout")?;
        }
    }
    Ok(())
}

/// Writes a command's whole output to stdout; a closed or full stdout is an error.
fn print_stdout(bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .with_context(|| format!("cannot write {what} to stdout"))
}

fn completions(shell: CompletionShell) -> anyhow::Result<()> {
    let mut command = <Cli as clap::CommandFactory>::command();
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut command,
        name,
        &mut script,
    );
    print_stdout(&script, "the completion script")
}

fn man(out: Option<&std::path::Path>) -> anyhow::Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .context("cannot render the man page")?;
            print_stdout(&page, "the man page")
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(command, dir))
                .with_context(|| format!("cannot write the man pages to {}", dir.display()))?;
            eprintln!("wrote the man pages to {}", dir.display());
            Ok(())
        }
    }
}

fn report(error: &anyhow::Error) {
    match error.downcast_ref::<SpecError>() {
        // One problem per line, each prefixed, so every line stands alone in a log.
        Some(spec_error) => {
            for line in spec_error.to_string().lines() {
                eprintln!("error: {line}");
            }
        }
        None => eprintln!("error: {error:#}"),
    }
}

fn exit_code(error: &anyhow::Error) -> Exit {
    if error.is::<SpecError>() {
        Exit::BadInput
    } else if let Some(e) = error.downcast_ref::<ConnectError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<ApplyError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<health::HealthError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<dns::DnsError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<status::StatusError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<repair::RepairError>() {
        e.exit()
    } else if let Some(e) = error.downcast_ref::<Unhealthy>() {
        e.exit
    } else {
        // A RenderError on a valid spec is a bug; failing to write output is the
        // environment's fault. Neither has a more specific code.
        Exit::Internal
    }
}
