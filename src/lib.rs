//! rolesh: a login shell for SSH bastions in front of Amazon EKS.
//!
//! The binary is a thin `main` over [`run`]; the modules are named for what they do and
//! are private to the crate, but for what the test kit, the benchmarks and the fuzz
//! targets use: the configuration, the mapping, the wire protocol and token signing.
//! `unsafe` is allowed in the `system` module alone (`[lints]` in Cargo.toml).

pub mod config;
pub mod mapping;
pub mod protocol;
pub mod token;

mod audit;
mod broker;
mod check;
mod cli;
mod client;
mod discovery;
mod error;
mod exec;
mod explain;
mod live;
mod loader_env;
mod monitor;
mod paths;
mod policy;
#[doc(hidden)]
pub mod proxy_fuzz;
mod rbac;
mod record;
mod redact;
mod replay;
mod s3;
mod session;
mod session_id;
mod standalone;
#[allow(unsafe_code)]
mod system;
mod terminal;
#[cfg(feature = "test-hooks")]
mod testing;

pub use session_id::SessionId;

/// Parses the command line, runs the command and returns the process's exit code.
pub fn run() -> u8 {
    cli::main()
}

/// The command line's definition, for generated man pages and shell completions
/// (`packaging/gen`).
pub fn command_line() -> clap::Command {
    <cli::Cli as clap::CommandFactory>::command()
}
