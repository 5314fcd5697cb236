//! Compile-time paths. In login mode rolesh honours no flag or variable that changes them
//! (SPEC §1); distributions and tests change them at build time with the environment
//! variables `ROLESH_SYSCONFDIR` and `ROLESH_RUNDIR`.

use std::path::PathBuf;

const SYSCONF_DIR: &str = match option_env!("ROLESH_SYSCONFDIR") {
    Some(dir) => dir,
    None => "/etc/rolesh",
};

/// Read where `rolesh-token` reads it, so that both always agree.
const RUN_DIR: &str = rolesh_token_core::paths::RUN_DIR;

/// `/etc/rolesh`: `config.toml` and `config.d/`.
pub(crate) fn sysconf_dir() -> PathBuf {
    PathBuf::from(SYSCONF_DIR)
}

/// `/run/rolesh/broker.sock`.
pub(crate) fn broker_socket() -> PathBuf {
    rolesh_token_core::paths::broker_socket()
}

/// `/run/rolesh`: the sockets and the live sessions' records.
pub(crate) fn run_dir() -> PathBuf {
    PathBuf::from(RUN_DIR)
}

/// The binary this process runs, for the programs the monitor starts from it (each
/// session's monitor, `session-init`). Not `current_exe()`: once a package upgrade has
/// replaced /usr/bin/rolesh, that names a deleted file, and every new login would fail
/// until the daemon restarted; `/proc/self/exe` still opens the binary that runs.
pub(crate) fn running_binary() -> PathBuf {
    PathBuf::from("/proc/self/exe")
}

/// The path of this binary, for configuration files other programs run it from (an AWS
/// config's `credential_process`): `current_exe()` without the ` (deleted)` a package
/// upgrade leaves, since the new binary is at the same path.
pub(crate) fn installed_binary() -> PathBuf {
    match std::env::current_exe() {
        Ok(path) => {
            let text = path.to_string_lossy();
            PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text))
        }
        Err(_) => PathBuf::from("/usr/bin/rolesh"),
    }
}

/// `/run/rolesh/monitor.sock`.
pub(crate) fn monitor_socket() -> PathBuf {
    PathBuf::from(RUN_DIR).join("monitor.sock")
}
