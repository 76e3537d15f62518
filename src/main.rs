//! The `tickler` binary: parse the command line, set up logging, run the command, and
//! turn its outcome into an exit status (0 ok, 1 a failure to look at, 2 bad usage).

use std::process::ExitCode;

use clap::Parser;
use tickler::cli::{Cli, Failure, error_line};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Customers' names and addresses are in every file tickler writes (the database and
    // its journal, the outbox, postcards): private to its user whatever umask it got.
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
    let cli = Cli::parse();
    // Commands other than the daemon print their results; their logs stay quiet
    // unless asked for with -v.
    let base: i8 = if matches!(cli.command, tickler::cli::Command::Run) {
        0
    } else {
        -1
    };
    tickler::telemetry::init(cli.log_format, base + cli.verbose as i8 - cli.quiet as i8);
    // On a worker thread of the runtime, not on this one: there the command's tasks and
    // the I/O they wait for are woken on the same threads, instead of every SMTP reply
    // or database row crossing to this thread.
    let outcome = match tokio::spawn(tickler::cli::execute(cli)).await {
        Ok(outcome) => outcome,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("{}", error_line(&message));
            ExitCode::from(2)
        }
        Err(Failure::Errors(lines)) => {
            for line in lines {
                eprintln!("{}", error_line(&line));
            }
            ExitCode::from(1)
        }
        Err(Failure::Reported) => ExitCode::from(1),
        Err(Failure::PipeClosed) => ExitCode::SUCCESS,
    }
}
