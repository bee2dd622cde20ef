//! The command line: flags, dispatch, and the context every command gets.
//!
//! Each command lives in its own module with an `Args` struct and a `run` function that
//! returns the exit status; failures go to [`error::report`]. This layer sees only the
//! library's public API.

mod attach;
mod commit;
mod completions;
mod config;
mod diff;
mod error;
mod explain;
mod export;
mod fsck;
mod gc;
mod import;
mod init;
mod log;
mod ls;
mod output;
mod progress;
mod push;
mod refs;
mod remote;
mod restore;
mod show;
mod sign;
mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use self::error::ExitStatus;
use self::output::{ColorChoice, Printer};

const AFTER_HELP: &str = "\
Exit status: 0 done; 1 the answer is \"no\" (diff found differences, fsck found problems,
verify found no allowed signer); 2 failed; 3 conflict (a lock is held or a ref moved: safe to
retry).

SNAP names a snapshot: a ref (latest, tags/v1), a digest or a unique prefix of at least
7 hex digits, optionally followed by ~N or ^ (first parent).";

/// Content-addressed snapshots of build outputs, versioned like git, shipped as OCI artifacts.
#[derive(Parser, Debug)]
#[command(name = "snap", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// The store directory to use (default: the `.store` found from the current directory up).
    #[arg(long, global = true, env = "SNAP_STORE", value_name = "DIR")]
    store: Option<PathBuf>,
    /// Print machine-readable JSON on stdout.
    #[arg(long, global = true, env = "SNAP_JSON")]
    json: bool,
    /// Print less (-q: no status lines; -qq: errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    quiet: u8,
    /// Print more: what each command read, wrote and skipped.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,
    /// When to use colours.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "auto",
        env = "SNAP_COLOR",
        value_name = "WHEN"
    )]
    color: ColorChoice,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an empty store.
    Init(init::Args),
    /// Record files and directories as a new snapshot on a ref.
    Commit(commit::Args),
    /// Show the lineage of a snapshot (first parents).
    Log(log::Args),
    /// Describe a snapshot: provenance, contents, layers (in the store, or in a registry).
    Show(show::Args),
    /// List the entries of a directory in a snapshot.
    Ls(ls::Args),
    /// Write a file of a snapshot to stdout.
    Cat(ls::CatArgs),
    /// List what changed between two snapshots, or a snapshot and a directory (exit 1 if any).
    Diff(diff::Args),
    /// Write a snapshot's files into a directory, byte for byte.
    Restore(restore::Args),
    /// Say whether each ref is fresh or stale against the git work tree.
    Status(status::Args),
    /// Write snapshots as an OCI image layout (directory, .tar, .tar.gz, .tar.zst).
    Export(export::Args),
    /// Take an OCI image layout (from snap, skopeo, umoci, oras...) into the store.
    Import(import::Args),
    /// Send a snapshot to an OCI registry, tagged with its git commit and a moving tag.
    Push(push::PushArgs),
    /// Fetch a snapshot (or any OCI artifact or image) from a registry into the store.
    Pull(push::PullArgs),
    /// List a registry repository's tags: snapshot digest, git commit and date (no layer read).
    LsRemote(remote::LsRemoteArgs),
    /// List refs.
    Refs(refs::ListArgs),
    /// Point a tag at a snapshot (tags never move without --force).
    Tag(refs::TagArgs),
    /// Manage refs.
    Ref(refs::RefArgs),
    /// Sign a snapshot with an SSH key (stored as a referrer; sent by push).
    Sign(sign::SignArgs),
    /// Say who signed a snapshot; exit 1 when no allowed signer did.
    Verify(sign::VerifyArgs),
    /// Attach files to a snapshot as an artifact that refers to it (like `oras attach`).
    Attach(attach::AttachArgs),
    /// List the referrers of a snapshot: signatures and attached artifacts.
    Referrers(attach::ReferrersArgs),
    /// Verify every object, pack, ref and reflog.
    Fsck(fsck::Args),
    /// Remove objects no ref or recent reflog entry reaches.
    Gc(gc::Args),
    /// Read and set the store's settings (.store/config).
    Config(config::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print snap's man page (roff): `snap man > snap.1`.
    Man(completions::ManArgs),
    /// Explain a topic a hint named (`see: snap explain TOPIC`); without one, list them.
    Explain(explain::Args),
}

/// What every command gets.
pub struct Context {
    pub printer: Printer,
    pub store: Option<PathBuf>,
    pub cwd: PathBuf,
}

impl Context {
    /// Opens the store (explicit or discovered).
    pub fn open_store(&self) -> anyhow::Result<snap::ops::Store> {
        Ok(snap::ops::open(self.store.as_deref(), &self.cwd)?)
    }

    /// Opens the store as [`Context::open_store`] does, creating one when there is none (for
    /// the commands that bring snapshots in: commit, import, pull), and says so.
    pub fn open_or_create_store(&self) -> anyhow::Result<snap::ops::Store> {
        let (store, created) = snap::ops::open_or_create(self.store.as_deref(), &self.cwd)?;
        if let Some(dir) = created {
            self.printer.status(
                "Created",
                format!(
                    "snap store in {} (ignored by git through its own .gitignore)",
                    dir.display()
                ),
            );
        }
        Ok(store)
    }

    /// The explicit store flag, if any.
    pub fn store_arg(&self) -> Option<&Path> {
        self.store.as_deref()
    }
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let printer = Printer::new(cli.quiet, cli.verbose, cli.json, cli.color);
    let cwd = match std::env::current_dir() {
        Ok(c) => c,
        Err(e) => {
            printer.error(format!("cannot read the current directory: {e}"));
            return ExitStatus::Error.into();
        }
    };
    let ctx = Context {
        printer,
        store: cli.store,
        cwd,
    };
    let result = match &cli.command {
        Command::Init(a) => init::run(&ctx, a),
        Command::Commit(a) => commit::run(&ctx, a),
        Command::Log(a) => log::run(&ctx, a),
        Command::Show(a) => show::run(&ctx, a),
        Command::Ls(a) => ls::run(&ctx, a),
        Command::Cat(a) => ls::cat(&ctx, a),
        Command::Diff(a) => diff::run(&ctx, a),
        Command::Restore(a) => restore::run(&ctx, a),
        Command::Push(a) => push::push(&ctx, a),
        Command::Gc(a) => gc::run(&ctx, a),
        Command::Pull(a) => push::pull(&ctx, a),
        Command::Status(a) => status::run(&ctx, a),
        Command::Export(a) => export::run(&ctx, a),
        Command::Import(a) => import::run(&ctx, a),
        Command::LsRemote(a) => remote::ls_remote(&ctx, a),
        Command::Refs(a) => refs::list(&ctx, a),
        Command::Tag(a) => refs::tag(&ctx, a),
        Command::Ref(a) => refs::manage(&ctx, a),
        Command::Fsck(a) => fsck::run(&ctx, a),
        Command::Sign(a) => sign::sign(&ctx, a),
        Command::Verify(a) => sign::verify(&ctx, a),
        Command::Attach(a) => attach::attach(&ctx, a),
        Command::Referrers(a) => attach::referrers(&ctx, a),
        Command::Config(a) => config::run(&ctx, a),
        Command::Completions(a) => completions::completions(&ctx, a),
        Command::Man(a) => completions::man(&ctx, a),
        Command::Explain(a) => explain::run(&ctx, a),
    };
    match result {
        Ok(status) => status.into(),
        Err(e) => error::report(&ctx.printer, &e).into(),
    }
}
