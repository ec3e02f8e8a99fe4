//! The `ringiot` binary: see the `engine` crate doc.

use clap::Parser;

fn main() -> std::process::ExitCode {
    engine::start::init_logging();
    match engine::start::run(engine::config::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ringiot: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
