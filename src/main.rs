use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = envoi::cli::Cli::parse();
    let result = envoi::commands::run(cli);
    envoi::telemetry::flush();
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
