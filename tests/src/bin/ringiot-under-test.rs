//! The engine's own `main`, built inside the `tests` package so the black-box tests can find
//! it through `CARGO_BIN_EXE_ringiot-under-test` (Cargo only gives integration tests the paths
//! of their own package's binaries). Same code path as `ringiot`.

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
