//! Command-line parsing and dispatch. Exit codes: 0 success, 1 the handler failed (its result
//! is still printed), 2 a usage or input error (message on stderr).

mod bench;
mod bench_shared;
mod bench_suspensions;
mod bench_typescript;
mod check;
mod input;
mod preload;
mod resume;
mod run;
mod store;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "nexus",
    version,
    about = "Run untrusted JavaScript handlers in fresh, capability-checked WebAssembly instances"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a handler and print its result as one JSON object.
    Run(run::RunArgs),
    /// Infer the capabilities a handler needs (literal accesses) and warn about dynamic ones.
    Check {
        /// The handler source: the body of an async function (TypeScript if the file ends in .ts, .mts or .cts).
        handler: PathBuf,
    },
    /// Resume a suspension left in a store by `run --store`, settling its pending calls.
    Resume(resume::ResumeArgs),
    /// Drop a suspension left in a store: a later resume finds nothing.
    Cancel(resume::CancelArgs),
    /// Benchmark the workloads of benches/workloads: the engine alone and through the actor runtime.
    Bench(bench::BenchArgs),
}

/// A usage or input error: printed on stderr, exit code 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl<E: std::fmt::Display> From<E> for UsageError {
    fn from(error: E) -> Self {
        UsageError(error.to_string())
    }
}

pub fn main() -> ExitCode {
    // Diagnostics go to stderr, filtered by RUST_LOG (e.g. RUST_LOG=nexus_actors=debug);
    // stdout stays the one JSON object.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(args),
        Command::Check { handler } => check::check(&handler),
        Command::Bench(args) => bench::bench(args),
        Command::Resume(args) => resume::resume(args),
        Command::Cancel(args) => resume::cancel(args),
    };
    match outcome {
        Ok(code) => code,
        Err(UsageError(message)) => {
            eprintln!("nexus: {message}");
            ExitCode::from(2)
        }
    }
}

/// Prints one JSON value on stdout. A reader that stopped reading (`nexus run h.js | head`)
/// ends the process quietly with 141, the status of a shell tool killed by `SIGPIPE`, not with
/// a panic; any other write error is reported on stderr (exit 1).
/// Prints `value` as indented JSON, or on one line when indenting would make it more than
/// twice as large (deep nesting: 300 KB of a handler's value nested 128 deep indented to 38 MB).
fn print_json(value: &impl serde::Serialize) {
    use std::io::Write as _;
    let compact = serde_json::to_string(value).expect("JSON values always serialize");
    let mut indented = Bounded { written: 0, limit: 2 * compact.len() + (64 << 10) };
    let text = match serde_json::to_writer_pretty(&mut indented, value) {
        Ok(()) => serde_json::to_string_pretty(value).expect("JSON values always serialize"),
        Err(_) => compact,
    };
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(141);
        }
        eprintln!("nexus: writing the result to stdout: {error}");
        std::process::exit(1);
    }
}

/// Counts what is written to it, failing past `limit` bytes.
struct Bounded {
    written: usize,
    limit: usize,
}

impl std::io::Write for Bounded {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.written += bytes.len();
        if self.written > self.limit {
            return Err(std::io::Error::other("larger than the limit"));
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
