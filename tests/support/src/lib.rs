//! Test fixtures and stand-ins for rolesh's integration tests.
//!
//! - [`fake_aws`]: STS and EKS on 127.0.0.1 with real SigV4 verification and fault injection.

pub mod fake_aws;
