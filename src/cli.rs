//! The command line: parses the arguments (each command's clap struct is its config) and
//! dispatches to the command's flow in [`crate::commands`]; the exit code comes from the
//! one mapping there.

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use crate::commands::apply::{ApplyArgs, DiffArgs, Mode};
use crate::commands::docs::{CompletionsArgs, ManArgs};
use crate::commands::render::RenderArgs;
use crate::commands::status::StatusArgs;
use crate::commands::wait::{Start, WaitArgs};
use crate::commands::{self, Outcome, run_async};
use crate::exit::Exit;

/// A command's help epilogue: two runs of `catalyst-bootstrap COMMAND` on the example
/// Sovereign, the second with `MORE`.
macro_rules! spec_examples {
    ($command:literal, $more:literal) => {
        concat!(
            "Examples:\n  catalyst-bootstrap ",
            $command,
            " --spec clusters/example/sovereign.yaml\n  catalyst-bootstrap ",
            $command,
            " --spec clusters/example/sovereign.yaml ",
            $more
        )
    };
}

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
    #[command(after_help = spec_examples!("render", "--out clusters/example/bootstrap-kit"))]
    Render(RenderArgs),
    /// Server-side apply the kit to the cluster, pruning objects this tool applied earlier
    /// that the kit no longer holds.
    #[command(after_help = spec_examples!("apply", "--dry-run --context staging"))]
    Apply(ApplyArgs),
    /// Show what `apply` would change (server-side dry run), changing nothing.
    #[command(after_help = spec_examples!("diff", "--output json"))]
    Diff(DiffArgs),
    /// Wait until the kit's workloads are healthy: the HelmRelease Ready for its current
    /// generation and external-dns's pods not failing.
    #[command(after_help = spec_examples!("wait", "--timeout 20m --output json"))]
    Wait(WaitArgs),
    /// Render, apply and wait: the one-shot command automation runs. Safe to rerun.
    #[command(after_help = spec_examples!("up", "--timeout 15m --output json"))]
    Up(WaitArgs),
    /// Report the kit's current health once, changing nothing. Exit 0 when ready, 4 when
    /// something failed, 5 when something is still progressing or missing.
    #[command(after_help = spec_examples!("status", "--output json"))]
    Status(StatusArgs),
    /// Rerun `up`, first asking Flux to reconcile a HelmRelease that is not ready (resetting
    /// one whose retries are exhausted) and rollout-restarting a crash-looping external-dns.
    #[command(after_help = spec_examples!("repair", "--timeout 20m"))]
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
    match dispatch(cli.command) {
        Ok(outcome) => outcome.exit.into(),
        Err(error) => {
            error.print();
            error.exit().into()
        }
    }
}

fn dispatch(command: Command) -> Result<Outcome, commands::CommandError> {
    match command {
        Command::Render(args) => commands::render::run(&args),
        Command::Apply(args) => {
            let mode = if args.dry_run {
                Mode::DryRun
            } else {
                Mode::Apply
            };
            run_async(args.run.format(), |r| {
                commands::apply::run(&args.spec, &args.run, mode, r)
            })
        }
        Command::Diff(args) => run_async(args.run.format(), |r| {
            commands::apply::run(&args.spec, &args.run, Mode::Diff, r)
        }),
        Command::Wait(args) => run_async(args.run.format(), |r| {
            commands::wait::run(&args, Start::Wait, r)
        }),
        Command::Up(args) => run_async(args.run.format(), |r| {
            commands::wait::run(&args, Start::Up, r)
        }),
        Command::Status(args) => run_async(args.run.format(), |r| commands::status::run(&args, r)),
        Command::Repair(args) => run_async(args.run.format(), |r| commands::repair::run(&args, r)),
        Command::Schema => commands::docs::schema(),
        Command::Completions(args) => commands::docs::completions(Cli::command(), args.shell),
        Command::Man(args) => commands::docs::man(Cli::command(), args.out.as_deref()),
    }
}
