//! The open-file limit and the connection cap derived from it, for the HTTP server
//! ([`super::serve`]). `libc` rather than a wrapper crate such as `rlimit`: two calls, and
//! libc is already in the build through tokio, so nothing new is compiled or audited.

use std::io;

/// File descriptors kept out of the connection cap, at the least: the database pool (a
/// Postgres pool of 16, or SQLite's files), provider API connections, log files, the
/// listener, the runtime's own descriptors.
const MIN_RESERVE: u64 = 256;

/// The fewest connections the cap allows, however low the file limit.
const MIN_CONNECTIONS: u64 = 64;

/// Raises the soft open-file limit to the hard limit and returns the soft limit now in force
/// (the old one when raising it fails).
#[cfg(unix)]
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own and touches nothing else.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // An unlimited hard limit cannot be the soft one: Linux caps it at fs.nr_open.
    let target = if lim.rlim_max == libc::RLIM_INFINITY {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20)
    } else {
        lim.rlim_max
    };
    if lim.rlim_cur >= target {
        return Ok(lim.rlim_cur);
    }
    let raised = libc::rlimit {
        rlim_cur: target,
        rlim_max: lim.rlim_max,
    };
    // SAFETY: setrlimit reads the struct passed by reference and touches nothing else.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
        let e = io::Error::last_os_error();
        tracing::warn!(error = %e, soft = lim.rlim_cur, hard = lim.rlim_max, "cannot raise the open-file limit");
        return Ok(lim.rlim_cur);
    }
    Ok(target)
}

/// Elsewhere there is no limit of this kind to raise; a conservative figure stands in.
#[cfg(not(unix))]
pub fn raise_open_file_limit() -> io::Result<u64> {
    Ok(8192)
}

/// Most client connections open at once under `open_files`: a quarter of the limit (at least
/// [`MIN_RESERVE`]) is kept for everything else; `configured` (0 = no setting) can only lower it.
pub fn connection_cap(open_files: u64, configured: usize) -> usize {
    let reserve = (open_files / 4).max(MIN_RESERVE);
    let derived = open_files.saturating_sub(reserve).max(MIN_CONNECTIONS);
    let derived = usize::try_from(derived).unwrap_or(usize::MAX);
    match configured {
        0 => derived,
        n => n.min(derived),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_a_reserve_and_a_setting_only_lowers_it() {
        assert_eq!(connection_cap(1024, 0), 768);
        assert_eq!(connection_cap(65_536, 0), 49_152);
        assert_eq!(connection_cap(256, 0), 64);
        assert_eq!(connection_cap(1024, 100), 100);
        assert_eq!(connection_cap(1024, 5_000), 768);
    }

    #[test]
    fn the_soft_limit_is_raised_to_the_hard_one() {
        let soft = raise_open_file_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above, getrlimit only writes the struct.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, lim.rlim_cur);
        assert!(lim.rlim_max == libc::RLIM_INFINITY || lim.rlim_cur == lim.rlim_max);
    }
}
