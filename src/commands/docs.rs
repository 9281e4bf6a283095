//! `schema`, `completions` and `man`: what editors, shells and `man` read. Need no cluster.

use std::path::{Path, PathBuf};

use clap::Args;

use super::render::print_stdout;
use super::{CommandError, Outcome};
use crate::spec;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompletionShell {
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
pub struct ManArgs {
    /// Write catalyst-bootstrap.1 and one catalyst-bootstrap-<command>.1 per command into
    /// DIR (created if needed) instead of the main page on stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn schema() -> Result<Outcome, CommandError> {
    print_stdout(spec::schema::to_text().as_bytes(), "the schema")?;
    Ok(Outcome::success(String::new()))
}

pub fn completions(
    mut command: clap::Command,
    shell: CompletionShell,
) -> Result<Outcome, CommandError> {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(
        clap_complete::Shell::from(shell),
        &mut command,
        name,
        &mut script,
    );
    print_stdout(&script, "the completion script")?;
    Ok(Outcome::success(String::new()))
}

pub fn man(command: clap::Command, out: Option<&Path>) -> Result<Outcome, CommandError> {
    match out {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(command)
                .render(&mut page)
                .map_err(CommandError::output("the man page"))?;
            print_stdout(&page, "the man page")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .and_then(|()| clap_mangen::generate_to(command, dir))
                .map_err(CommandError::output(format!(
                    "the man pages to {}",
                    dir.display()
                )))?;
            eprintln!("wrote the man pages to {}", dir.display());
        }
    }
    Ok(Outcome::success(String::new()))
}
