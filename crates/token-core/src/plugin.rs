//! What `rolesh-token` does, and the part of `rolesh token` it shares: print the
//! ExecCredential for a token from the broker (`--cluster`) or signed here
//! (`--cluster-name` with credentials in the environment). A `--cluster-name` request
//! that needs the AWS SDK is handed to the whole `rolesh` next to this binary (by `exec`,
//! with the same arguments), so `rolesh-token` does everything `rolesh token` does.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::args::{self, Parsed, TokenArgs};
use crate::client::{ANSWER_TIMEOUT, Connection, socket_path};
use crate::error::{EXIT_OK, Failure};
use crate::sign;
use crate::standalone::{self, FromEnvironment};
use crate::wire::{ExecCredential, Token, token_request_line};

/// How a `rolesh token` request is served.
pub enum Plan {
    /// Ask the broker for `cluster`'s token.
    Broker(String),
    /// Sign here for `cluster` with what the environment holds.
    Sign(String, FromEnvironment),
    /// Only the whole `rolesh` can (the AWS SDK's credential chain).
    Sdk,
}

/// The plan for `args`. `rolesh-token` hands only [`Plan::Sdk`] to `rolesh token`, which
/// carries those out itself (deciding with this same function), so a request never
/// comes back.
pub fn plan(args: &TokenArgs) -> Result<Plan, Failure> {
    Ok(match args {
        TokenArgs::Broker { cluster } => Plan::Broker(cluster.clone()),
        TokenArgs::Standalone(request) => match standalone::from_environment(request)? {
            Some(env) => Plan::Sign(request.cluster_name.clone(), env),
            None => Plan::Sdk,
        },
    })
}

/// The token a plan that needs no SDK gets (`None` for [`Plan::Sdk`], which is
/// `rolesh`'s own to carry out).
pub fn token(plan: &Plan) -> Option<Result<Token, Failure>> {
    match plan {
        Plan::Broker(cluster) => Some(broker_token(cluster)),
        Plan::Sign(cluster, env) => Some(standalone::sign_now(
            &env.credentials,
            cluster,
            Some(&env.region),
            env.endpoints,
        )),
        Plan::Sdk => None,
    }
}

/// `rolesh token --cluster NAME`: the broker signs with the user's own role. (The broker
/// links the token event to the session this process is in, by its cgroup.)
pub fn broker_token(cluster: &str) -> Result<Token, Failure> {
    Connection::open(&socket_path(false), ANSWER_TIMEOUT)?
        .ask_line(&token_request_line(cluster), "token")
}

/// The ExecCredential for `token` on stdout, in the `apiVersion` kubectl asked for in
/// `KUBERNETES_EXEC_INFO` (else v1beta1).
pub fn print_exec_credential(token: &Token) -> Result<(), Failure> {
    let exec_info = std::env::var("KUBERNETES_EXEC_INFO").ok();
    let api_version = sign::api_version(exec_info.as_deref());
    let mut line = serde_json::to_string(&ExecCredential::new(token, &api_version))
        .map_err(|e| Failure::runtime(format!("cannot write the credential: {e}")))?;
    line.push('\n');
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| Failure::runtime(format!("cannot write the credential: {e}")))
}

/// `rolesh-token ARGS…`: the exit code.
pub fn main(args: &[OsString]) -> u8 {
    match serve(args) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.code
        }
    }
}

fn serve(args: &[OsString]) -> Result<u8, Failure> {
    let parsed = match args::parse(args)? {
        Parsed::Help => {
            println!(
                "Print an EKS ExecCredential (the exec plugin of rolesh's session kubeconfig)\n\n{}",
                args::USAGE
            );
            return Ok(EXIT_OK);
        }
        Parsed::Version => {
            println!("rolesh-token {}", env!("CARGO_PKG_VERSION"));
            return Ok(EXIT_OK);
        }
        Parsed::Token(parsed) => parsed,
    };
    match token(&plan(&parsed)?) {
        Some(token) => print_exec_credential(&token?).map(|()| EXIT_OK),
        None => Err(exec_rolesh(args)),
    }
}

/// Becomes `rolesh token ARGS…` (the `rolesh` next to this binary); returns only if that
/// cannot start.
fn exec_rolesh(args: &[OsString]) -> Failure {
    let rolesh = sibling("rolesh");
    let error = std::process::Command::new(&rolesh)
        .arg("token")
        .args(args)
        .exec();
    Failure::runtime(format!(
        "cannot run {} for the AWS credential chain: {error}",
        rolesh.display()
    ))
}

/// The program `name` in this binary's directory (`/usr/bin/rolesh` next to
/// `/usr/bin/rolesh-token`), also after a package upgrade replaced this binary (whose
/// path then ends in ` (deleted)`).
pub fn sibling(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let text = exe.to_string_lossy();
    PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text)).with_file_name(name)
}
