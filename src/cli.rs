//! The command line: parses arguments into plain config types, runs the command, and maps
//! the typed errors to the documented exit codes. anyhow is used only here.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::exit::Exit;
use crate::render;
use crate::spec::{self, SpecError};

#[derive(Debug, Parser)]
#[command(
    name = "catalyst-bootstrap",
    version,
    about = "Renders, applies and proves healthy the bootstrap kit of an OpenOva Sovereign"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Render the bootstrap kit of a Sovereign as Kubernetes manifests.
    Render(RenderArgs),
}

#[derive(Debug, Args)]
struct RenderArgs {
    /// The Sovereign spec, e.g. clusters/<name>/sovereign.yaml.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    /// Defaults merged under the spec. Without it: <spec dir>/../_template/sovereign.yaml
    /// if that exists, else the copy built into the binary.
    #[arg(long, value_name = "FILE")]
    defaults: Option<PathBuf>,
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
            spec: args.spec,
            defaults: args.defaults,
            out: args.out,
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
    };
    match result {
        Ok(()) => Exit::Success.into(),
        Err(error) => {
            report(&error);
            exit_code(&error).into()
        }
    }
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
    } else {
        // A RenderError on a valid spec is a bug; failing to write output is the
        // environment's fault. Neither has a more specific code.
        Exit::Internal
    }
}
