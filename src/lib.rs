//! rolesh: a login shell for SSH bastions in front of Amazon EKS.
//!
//! The binary is a thin `main` over [`cli::main`]; the modules are named for what they do.
//! `unsafe` is allowed in [`system`] alone.

#![deny(unsafe_code)]

pub mod audit;
pub mod broker;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod error;
pub mod exec;
pub mod explain;
pub mod mapping;
pub mod paths;
pub mod rbac;
pub mod record;
pub mod replay;
pub mod session;
pub mod standalone;
#[allow(unsafe_code)]
pub mod system;
pub mod terminal;
pub mod testing;
pub mod token;
