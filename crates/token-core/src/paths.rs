//! The compiled-in run directory. In login mode rolesh honours no flag or variable that
//! changes it (SPEC §1); distributions and tests change it at build time with the
//! environment variable `ROLESH_RUNDIR` (read here, so `rolesh` and `rolesh-token` built
//! together always agree).

use std::path::PathBuf;

pub const RUN_DIR: &str = match option_env!("ROLESH_RUNDIR") {
    Some(dir) => dir,
    None => "/run/rolesh",
};

/// `/run/rolesh/broker.sock`.
pub fn broker_socket() -> PathBuf {
    PathBuf::from(RUN_DIR).join("broker.sock")
}
