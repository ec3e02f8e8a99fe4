//! A Python virtual environment under `target/test-python-venv` with the PyPI packages some
//! tests drive the engine with (Huawei's official SDK, paho-mqtt). Installed on first use, so
//! `cargo test --workspace` stays the only set-up command; CI reaches PyPI.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// One installer at a time: tests in one binary may ask concurrently.
static INSTALL: Mutex<()> = Mutex::new(());

fn venv_dir() -> PathBuf {
    // CARGO_MANIFEST_DIR is tests/; the venv lives in the workspace's target dir.
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-python-venv")
}

/// The venv's python, with `(pip package, module to import)` pairs installed.
pub fn python_with(packages: &[(&str, &str)]) -> Result<PathBuf, String> {
    let _guard = INSTALL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = venv_dir();
    let python = venv.join("bin/python");
    let imports = |python: &Path, module: &str| {
        let check =
            Command::new(python).args(["-c", &format!("import {module}")]).stderr(Stdio::null()).status();
        check.is_ok_and(|s| s.success())
    };
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let missing: Vec<&str> =
        packages.iter().filter(|(_, module)| !imports(&python, module)).map(|(p, _)| *p).collect();
    if !missing.is_empty() {
        run(Command::new(venv.join("bin/pip")).args(["install", "--quiet"]).args(&missing))?;
    }
    match packages.iter().find(|(_, module)| !imports(&python, module)) {
        None => Ok(python),
        Some((package, _)) => Err(format!("{package} installed but not importable")),
    }
}

fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| format!("{command:?}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!("{command:?} failed:\n{}", String::from_utf8_lossy(&output.stderr)))
    }
}

/// `python_with`, or — only when `RINGIOT_PYTHON_OPTIONAL=1` (never in CI) — `None` with a note,
/// for machines without python3 or PyPI.
pub fn python_or_skip(packages: &[(&str, &str)]) -> Option<PathBuf> {
    match python_with(packages) {
        Ok(python) => Some(python),
        Err(reason) if std::env::var("RINGIOT_PYTHON_OPTIONAL").as_deref() == Ok("1") => {
            eprintln!("python packages unavailable, skipped because RINGIOT_PYTHON_OPTIONAL=1: {reason}");
            None
        }
        Err(reason) => panic!("cannot install {packages:?} (needs python3 and PyPI): {reason}"),
    }
}
