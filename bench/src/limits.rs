//! The open-files budget. Every device and every client is one socket in this process; the
//! limit here (20,000 per process, soft and hard) cannot be raised without privileges, so the
//! bench raises its soft limit to the hard one and refuses a fleet that would not fit rather
//! than failing half-way through the logins.

/// File descriptors kept free for the runtime, stdio, /proc reads, the engine's pipes.
pub const FD_MARGIN: u64 = 64;

/// Raises RLIMIT_NOFILE's soft limit to its hard limit; returns the soft limit now in force.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
        // SAFETY: `raised` is a valid rlimit that does not exceed the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    Ok(limit.rlim_cur)
}

/// Checks that `devices` device sockets and `clients` client sockets fit under `open_files_max`.
pub fn check_fits(devices: u64, clients: u64, open_files_max: u64) -> Result<(), String> {
    let needed = devices + clients + FD_MARGIN;
    if needed > open_files_max {
        let devices_max = open_files_max.saturating_sub(clients + FD_MARGIN);
        return Err(format!(
            "{devices} devices + {clients} clients + {FD_MARGIN} spare need {needed} open files, but this \
             process may hold {open_files_max} (RLIMIT_NOFILE, already raised to its hard limit); use at most \
             {devices_max} devices here, or split the fleet over several bench processes"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_that_fits_is_accepted() {
        assert!(check_fits(10_000, 64, 20_000).is_ok());
        assert!(check_fits(20_000 - 64 - FD_MARGIN, 64, 20_000).is_ok());
    }

    #[test]
    fn a_fleet_that_does_not_fit_is_refused_with_the_largest_that_would() {
        let message = check_fits(20_000, 64, 20_000).unwrap_err();
        assert!(message.contains(&format!("at most {} devices", 20_000 - 64 - FD_MARGIN)), "{message}");
    }
}
