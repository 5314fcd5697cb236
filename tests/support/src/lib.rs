//! Test fixtures and stand-ins for rolesh's integration tests.
//!
//! - [`fake_aws`]: STS and EKS on 127.0.0.1 with real SigV4 verification and fault injection.
//! - [`fake_k8s`]: a Kubernetes API server on 127.0.0.1 (TLS, EKS token authentication, RBAC,
//!   discovery, namespaces, pods, exec over WebSocket and SPDY, port-forward) that real kubectl
//!   uses.
//! - [`stack`]: a fake AWS and two fake EKS clusters with a rolesh config that uses them
//!   (`rolesh-testkit up --dir DIR`).

pub mod fake_aws;
pub mod fake_k8s;
pub mod stack;

/// Runs `serve` on `listener` in a thread of its own with its own two-worker runtime, so a
/// stand-in can be used from synchronous tests and from inside any runtime.
pub(crate) fn serve_in_background<F, Fut>(
    name: &str,
    listener: std::net::TcpListener,
    serve: F,
) -> std::io::Result<()>
where
    F: FnOnce(tokio::net::TcpListener) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let thread_name = name.to_owned();
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            runtime.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener).await,
                    Err(err) => eprintln!("{thread_name}: {err}"),
                }
            });
        })?;
    Ok(())
}
