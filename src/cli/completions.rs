//! `snap completions SHELL` and `snap man`: generated from the same clap definitions as the
//! parser, so they can never disagree with it.

use clap::CommandFactory;

use crate::cli::error::ExitStatus;
use crate::cli::{Cli, Context};

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// A command's page (`snap man commit` is snap-commit(1)); without it, snap(1).
    #[arg(value_name = "COMMAND")]
    command: Option<String>,
}

pub fn completions(_ctx: &Context, args: &CompletionsArgs) -> anyhow::Result<ExitStatus> {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics on a failed write (`| head`); ours may not.
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "snap", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)?;
    Ok(ExitStatus::Success)
}

pub fn man(_ctx: &Context, args: &ManArgs) -> anyhow::Result<ExitStatus> {
    let cmd = Cli::command();
    let page = match &args.command {
        None => cmd,
        Some(name) => {
            let Some(sub) = cmd.find_subcommand(name) else {
                anyhow::bail!("no command `{name}`; `snap --help` lists them");
            };
            // git's convention: one page per command, named snap-COMMAND.
            sub.clone()
                .name(format!("snap-{name}"))
                .bin_name(format!("snap {name}"))
                .version(env!("CARGO_PKG_VERSION"))
        }
    };
    clap_mangen::Man::new(page).render(&mut std::io::stdout().lock())?;
    Ok(ExitStatus::Success)
}
