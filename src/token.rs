//! EKS bearer tokens: `k8s-aws-v1.` + base64url(presigned STS GetCallerIdentity URL), byte
//! for byte what `aws eks get-token` (botocore) produces (SPEC §3). The code lives in the
//! token-path crate (`crates/token-core`), which the exec plugin `rolesh-token` shares;
//! this module is its public face for the test kit, the benchmarks and the broker.

pub use rolesh_token_core::sign::*;
