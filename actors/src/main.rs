//! The `exspin` command. The grammar and dispatch live in `cli/`, each subcommand one file there
//! (grouped: `bench/`, `schema/`, `data/`, `model/`) that turns its arguments into calls of the
//! `exspin` and `exspin_actors` libraries. Machine-readable results go to stdout,
//! progress and logs to stderr; any failure exits non-zero with a message that says what to fix.

mod cli;
mod heap;
mod progress;

use clap::Parser;

/// Counts live and peak heap bytes for `exspin bench` (two relaxed atomics per allocation).
#[global_allocator]
static ALLOC: exspin_kernels::alloc::CountingAllocator = exspin_kernels::alloc::CountingAllocator;

fn main() -> std::process::ExitCode {
    // Before any thread starts: each inherits the mode (src/model/denormals.rs says why).
    exspin::model::denormals::set_flush(true);
    heap::tune_for_training();
    exspin_kernels::alloc::CountingAllocator::mark_installed();
    let cli = cli::Cli::parse();
    init_logging(cli.verbose);
    match cli::dispatch(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("EXSPIN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .without_time()
        .init();
}
