use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = envoi::cli::Cli::parse();
    match envoi::commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
