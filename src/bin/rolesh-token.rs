//! `rolesh-token`: the exec plugin of the session kubeconfig, kubectl runs it on every API
//! call. It is `rolesh token` (same arguments, output, exit codes and messages) in a
//! binary that links only the token path (`crates/token-core`): no clap, no AWS SDK, no
//! kube client, so it starts in a fraction of what the whole `rolesh` costs (README,
//! Benchmarks). A `--cluster-name` request that needs the AWS SDK's credential chain is
//! handed to the `rolesh` next to it.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    std::process::exit(i32::from(rolesh_token_core::plugin::main(&args)));
}
