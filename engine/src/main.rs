//! The `ringiot` binary: see the `engine` crate doc.

use clap::Parser;

/// mimalloc: a request allocates and frees many small objects across hyper, JSON and the
/// mesh; glibc's malloc was ~14 % of a command round trip's CPU in perf.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
