//! The `certvigil` binary: parses arguments, sets up logging, runs the command, maps errors to
//! documented exit codes.

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    init_logging(&args);
    match cli::run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                cli::exit_on_broken_pipe(io);
            }
            let code = match e.downcast_ref::<cli::CliError>() {
                Some(cli::CliError::Config(_)) | Some(cli::CliError::Usage(_)) => cli::EXIT_USAGE,
                None => cli::EXIT_FAILURE,
            };
            eprintln!("certvigil: {e:#}");
            ExitCode::from(code)
        }
    }
}

fn init_logging(args: &cli::Cli) {
    use tracing_subscriber::EnvFilter;
    // The daemon logs its lifecycle (jobs started and finished, reloads) by default: that is
    // what journald is for. One-shot commands print their results and log only errors.
    let daemon = matches!(args.command, cli::Command::Run(_));
    let default = match (args.verbose, daemon) {
        (0, false) => "error",
        (0, true) | (1, _) => "info",
        _ => "debug",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        cli::LogFormat::Json => builder.json().init(),
        cli::LogFormat::Plain => builder.with_ansi(false).without_time().init(),
    }
}
