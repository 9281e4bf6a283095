//! `render`: the kit from the spec, on stdout or into a directory. Needs no cluster.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::{CommandError, Outcome, SpecArgs};

#[derive(Debug, Args)]
pub struct RenderArgs {
    #[command(flatten)]
    pub spec: SpecArgs,
    /// Write the numbered manifest files into DIR (creating it, removing stale kit files)
    /// instead of multi-document YAML on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Loads and validates the spec, renders the kit, and writes it to stdout or `--out`.
/// Nothing is written unless the spec is valid and the whole kit rendered.
pub fn run(args: &RenderArgs) -> Result<Outcome, CommandError> {
    let (_, kit) = args.spec.render()?;
    match &args.out {
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
        None => print_stdout(kit.to_multi_doc().as_bytes(), "the kit")?,
    }
    Ok(Outcome::success(String::new()))
}

/// Writes a command's whole output to stdout; a closed or full stdout is an error.
pub fn print_stdout(bytes: &[u8], what: &str) -> Result<(), CommandError> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(CommandError::output(format!("{what} to stdout")))
}
