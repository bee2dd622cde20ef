//! The `snap` binary: a thin layer over the `snap` library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
