//! rolesh: a login shell for SSH bastions in front of Amazon EKS.
//!
//! The binary is a thin `main` over [`cli::main`]; the modules are named for what they do.

pub mod check;
pub mod cli;
pub mod config;
pub mod error;
pub mod explain;
pub mod mapping;
pub mod paths;
pub mod standalone;
pub mod system;
pub mod token;
