// Unsafe code only to give SIGPIPE back its default (below).
#![deny(unsafe_code)]

use std::io::Write as _;

use clap::{CommandFactory as _, FromArgMatches as _};
use envoi::cli::{Cli, Command};

fn main() -> std::process::ExitCode {
    let cli = parse();
    // `run` keeps it ignored too: as its command's parent (--redact), a reader that goes
    // away must not end envoi and orphan the command; its children get the default back.
    if !matches!(&cli.command, Command::Serve(args) if !args.dev) && !matches!(&cli.command, Command::Run(_)) {
        end_quietly_on_a_closed_pipe();
    }
    if matches!(&cli.command, Command::Serve(_)) {
        envoi::serve::hold_hangups();
    }
    let result = envoi::commands::run(cli);
    envoi::telemetry::flush();
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(error) => {
            if !error.is_silent() {
                // Not `eprintln!`, which panics when standard error is gone.
                let _ = writeln!(std::io::stderr(), "error: {error}");
            }
            std::process::ExitCode::from(error.status())
        }
    }
}

/// The command line, or clap's usage error (exit 2). The commands that read no settings
/// refuse a `--config` given on their command line rather than ignore it: a key made
/// "with" a config it never read would surprise. `ENVOI_CONFIG` stays allowed there, as
/// a shell may export it for every command.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let reads_no_settings = match &cli.command {
        Command::Keygen => Some("keygen"),
        Command::Completions { .. } => Some("completions"),
        Command::Man { .. } => Some("man"),
        _ => None,
    };
    if let Some(name) = reads_no_settings {
        if matches.value_source("config") == Some(clap::parser::ValueSource::CommandLine) {
            Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    format!("`envoi {name}` reads no configuration; leave out --config"),
                )
                .exit();
        }
    }
    cli
}

/// Rust starts every program with SIGPIPE ignored, so that a write to a pipe whose reader
/// has gone fails with EPIPE, and `println!` panics on that: `envoi secret ls | head -3`
/// ended in a panic and exit 101. A command that prints gets the Unix default back, and
/// ends quietly when its reader goes away, as `ls | head` does: one mechanism for every
/// `println!`, wherever it is. `serve` keeps SIGPIPE ignored: a log collector that goes
/// away must not stop the server (its sockets write with MSG_NOSIGNAL in any case).
#[allow(unsafe_code)]
fn end_quietly_on_a_closed_pipe() {
    // SAFETY: called at the start of `main`, before any other thread exists; SIG_DFL
    // installs no handler code, it restores the kernel's default action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
