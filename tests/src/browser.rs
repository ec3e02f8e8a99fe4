//! Headless Chromium for the console's browser tests: Debian's `chromium` and
//! `chromium-driver` packages (`/usr/bin/chromium`, `/usr/bin/chromedriver`), installed with
//! apt-get on first use when they are missing and the tests run as root (as CI does), so
//! `cargo test --workspace` stays the only set-up command. Selenium comes from PyPI through
//! [`crate::python`].

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

static INSTALL: Mutex<()> = Mutex::new(());

/// Debian's paths for the browser and its driver.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// (chromium, chromedriver), installing the packages if needed.
pub fn chromium() -> Result<(PathBuf, PathBuf), String> {
    let _guard = INSTALL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let present = || Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !present() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(format!(
                "{CHROMIUM} / {CHROMEDRIVER} are missing and only root can install them: \
                 run 'sudo apt-get install -y chromium chromium-driver'"
            ));
        }
        let install = || {
            Command::new("apt-get")
                .args(["install", "-y", "--no-install-recommends", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive")
                .output()
        };
        let installed = install().map_err(|e| format!("apt-get: {e}"))?;
        if !installed.status.success() {
            let updated =
                Command::new("apt-get").arg("update").output().map_err(|e| format!("apt-get update: {e}"))?;
            let again = install().map_err(|e| format!("apt-get: {e}"))?;
            if !again.status.success() {
                return Err(format!(
                    "apt-get install chromium chromium-driver failed:\n{}\n{}",
                    String::from_utf8_lossy(&updated.stderr),
                    String::from_utf8_lossy(&again.stderr)
                ));
            }
        }
    }
    if present() {
        Ok((PathBuf::from(CHROMIUM), PathBuf::from(CHROMEDRIVER)))
    } else {
        Err("chromium installed but not where Debian puts it".into())
    }
}

/// [`chromium`], or — only when `RINGIOT_BROWSER_OPTIONAL=1` (never in CI) — `None` with a note.
pub fn chromium_or_skip() -> Option<(PathBuf, PathBuf)> {
    match chromium() {
        Ok(found) => Some(found),
        Err(reason) if std::env::var("RINGIOT_BROWSER_OPTIONAL").as_deref() == Ok("1") => {
            eprintln!("no browser, skipped because RINGIOT_BROWSER_OPTIONAL=1: {reason}");
            None
        }
        Err(reason) => panic!("cannot get headless Chromium: {reason}"),
    }
}
