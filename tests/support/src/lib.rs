//! Test fixtures and stand-ins for rolesh's integration tests.
//!
//! - [`fake_aws`]: STS and EKS on 127.0.0.1 with real SigV4 verification and fault injection.
//! - [`fake_k8s`]: a Kubernetes API server on 127.0.0.1 (TLS, EKS token authentication, RBAC,
//!   discovery, namespaces, pods, exec over WebSocket) that real kubectl uses.
//! - [`stack`]: a fake AWS and two fake EKS clusters with a rolesh config that uses them
//!   (`rolesh-testkit up --dir DIR`).

pub mod fake_aws;
pub mod fake_k8s;
pub mod stack;
