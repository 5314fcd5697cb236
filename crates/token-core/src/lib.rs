//! The token path of rolesh, shared by the `rolesh` binary and `rolesh-token`, the small
//! exec plugin the session kubeconfig calls on every kubectl call.
//!
//! Everything `rolesh token` needs lives here, and nothing else: EKS token signing
//! ([`sign`]), the broker's `token` request and its answer ([`wire`], [`client`]), the
//! ExecCredential kubectl reads, exit codes and one-line failures ([`error`]), and the
//! command line of `rolesh-token` ([`args`], [`plugin`]). The dependencies are
//! few on purpose: a process that links only this crate starts in a fraction of what the
//! whole `rolesh` costs (see the README's Benchmarks). `rolesh` re-exports these types,
//! so there is one definition of each.

pub mod args;
pub mod client;
pub mod error;
pub mod paths;
pub mod plugin;
pub mod sign;
pub mod standalone;
pub mod wire;
