//! `rolesh-testkit`: runs rolesh's test stand-ins as processes.
//!
//! `rolesh-testkit fake-aws --port P --dir DIR` serves the fake AWS on 127.0.0.1:P and writes
//! `DIR/env` (shell `export` lines for AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
//! AWS_SECRET_ACCESS_KEY, AWS_REGION) once it accepts connections; it runs until SIGINT/SIGTERM.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand};
use rolesh_testkit::fake_aws::{EksCluster, FakeAws, FakeAwsOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(name = "rolesh-testkit", about = "Test stand-ins for rolesh")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the fake AWS (STS + EKS) on 127.0.0.1 and write DIR/env.
    FakeAws(FakeAwsArgs),
}

#[derive(clap::Args)]
struct FakeAwsArgs {
    /// Port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Directory for the `env` file.
    #[arg(long)]
    dir: PathBuf,
    /// Default region (clusters, env file).
    #[arg(long, default_value = rolesh_testkit::fake_aws::DEFAULT_REGION)]
    region: String,
    /// Account id.
    #[arg(long, default_value = rolesh_testkit::fake_aws::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// EKS cluster as NAME=ENDPOINT (repeatable).
    #[arg(long = "cluster", value_parser = parse_cluster)]
    clusters: Vec<(String, String)>,
    /// PEM CA bundle of the clusters (certificateAuthority.data is its base64).
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// Role ARN AssumeRole grants (repeatable; none: any role of the account).
    #[arg(long = "role")]
    roles: Vec<String>,
}

fn parse_cluster(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .filter(|(name, endpoint)| !name.is_empty() && !endpoint.is_empty())
        .map(|(name, endpoint)| (name.to_owned(), endpoint.to_owned()))
        .ok_or_else(|| format!("expected NAME=ENDPOINT, got '{value}'"))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    let Command::FakeAws(args) = Cli::parse().command;
    match fake_aws(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rolesh-testkit: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn fake_aws(args: FakeAwsArgs) -> std::io::Result<()> {
    let options = options(&args)?;
    // A waiter must not mistake an env file left by an earlier run for this one's.
    match std::fs::remove_file(args.dir.join("env")) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        _ => {}
    }
    let fake = FakeAws::start(options).await?;
    write_env(&args.dir, &fake)?;
    eprintln!("rolesh-testkit: fake AWS on {}", fake.endpoint());
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
}

fn options(args: &FakeAwsArgs) -> std::io::Result<FakeAwsOptions> {
    let ca_data = match &args.ca_file {
        Some(path) => STANDARD.encode(std::fs::read(path)?),
        None => String::new(),
    };
    let clusters = args
        .clusters
        .iter()
        .map(|(name, endpoint)| EksCluster::new(name, endpoint, &ca_data))
        .collect();
    Ok(FakeAwsOptions {
        account_id: args.account_id.clone(),
        region: args.region.clone(),
        clusters,
        allowed_roles: args.roles.clone(),
        port: args.port,
        ..FakeAwsOptions::default()
    })
}

/// Writes DIR/env atomically (a reader never sees a partial file).
fn write_env(dir: &Path, fake: &FakeAws) -> std::io::Result<()> {
    let options = fake.options();
    let env = format!(
        "export AWS_ENDPOINT_URL={}\nexport AWS_ACCESS_KEY_ID={}\n\
         export AWS_SECRET_ACCESS_KEY={}\nexport AWS_REGION={}\n",
        fake.endpoint(),
        options.access_key_id,
        options.secret_access_key,
        options.region
    );
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(".env.partial");
    std::fs::write(&partial, env)?;
    std::fs::rename(partial, dir.join("env"))
}
