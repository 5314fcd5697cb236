//! `rolesh-testkit`: runs rolesh's test stand-ins as processes.
//!
//! - `rolesh-testkit fake-aws --port P --dir DIR` serves the fake AWS on 127.0.0.1:P and
//!   writes `DIR/env` (shell `export` lines for AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID,
//!   AWS_SECRET_ACCESS_KEY, AWS_REGION) once it accepts connections; it runs until
//!   SIGINT/SIGTERM.
//! - `rolesh-testkit up --dir DIR` starts a fake AWS and two fake EKS clusters (`demo`,
//!   `staging`) in the background and returns once they serve, having written `DIR/env`,
//!   `DIR/config.toml` (a rolesh config using them), `DIR/rbac.yaml`, `DIR/ca-*.pem` and
//!   `DIR/pid` (see `rolesh_testkit::stack`); `--foreground` runs them in place instead.
//! - `rolesh-testkit down --dir DIR` stops what `up` started.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Parser, Subcommand};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rolesh_testkit::fake_aws::{EksCluster, FakeAws, FakeAwsOptions};
use rolesh_testkit::stack::{Stack, StackOptions};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitCode, Stdio};
use std::time::{Duration, Instant};
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
    /// Start a fake AWS and fake EKS clusters (demo, staging) and write DIR/{env,config.toml,rbac.yaml,pid}.
    Up(UpArgs),
    /// Stop what `up --dir DIR` started.
    Down(DownArgs),
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

#[derive(clap::Args)]
struct UpArgs {
    /// Directory for env, config.toml, rbac.yaml, ca-*.pem, pid and log.
    #[arg(long)]
    dir: PathBuf,
    /// Serve in this process until SIGINT/SIGTERM instead of in the background.
    #[arg(long)]
    foreground: bool,
    /// Write `[[discovery]]` blocks that find the EKS clusters instead of `[[cluster]]`s
    /// (the fake EKS also holds clusters they leave out).
    #[arg(long)]
    discovery: bool,
}

#[derive(clap::Args)]
struct DownArgs {
    /// The directory given to `up`.
    #[arg(long)]
    dir: PathBuf,
}

fn parse_cluster(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .filter(|(name, endpoint)| !name.is_empty() && !endpoint.is_empty())
        .map(|(name, endpoint)| (name.to_owned(), endpoint.to_owned()))
        .ok_or_else(|| format!("expected NAME=ENDPOINT, got '{value}'"))
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::FakeAws(args) => runtime().and_then(|rt| rt.block_on(fake_aws(args))),
        Command::Up(args) if args.foreground => {
            runtime().and_then(|rt| rt.block_on(up_foreground(&args.dir, args.discovery)))
        }
        Command::Up(args) => up_background(&args.dir, args.discovery),
        Command::Down(args) => down(&args.dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("rolesh-testkit: {err}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

async fn wait_for_termination() -> std::io::Result<()> {
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    Ok(())
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
    wait_for_termination().await
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

async fn up_foreground(dir: &Path, discovery: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("pid"), format!("{}\n", std::process::id()))?;
    let options = StackOptions {
        onprem: true,
        discovery,
    };
    let stack = Stack::start_with(dir, options)?;
    eprintln!(
        "rolesh-testkit: fake AWS on {}; clusters {}",
        stack.aws().endpoint(),
        stack
            .clusters()
            .iter()
            .chain(stack.cluster(rolesh_testkit::stack::ONPREM))
            .map(|c| format!("{} on {}", c.cluster_name(), c.endpoint()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let result = wait_for_termination().await;
    drop(stack);
    for file in ["pid", "env"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    result
}

fn read_pid(dir: &Path) -> std::io::Result<Option<Pid>> {
    match std::fs::read_to_string(dir.join("pid")) {
        Ok(text) => text
            .trim()
            .parse::<i32>()
            .map(|pid| Some(Pid::from_raw(pid)))
            .map_err(|_| std::io::Error::other(format!("{}/pid is not a pid", dir.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err),
    }
}

/// Whether `pid` runs (a zombie waiting for a parent that does not reap it does not).
fn alive(pid: Pid) -> bool {
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    });
    kill(pid, None).is_ok() && !zombie
}

fn up_background(dir: &Path, discovery: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    if let Some(pid) = read_pid(dir)?
        && alive(pid)
    {
        return Err(std::io::Error::other(format!(
            "already up (pid {pid}); run `rolesh-testkit down --dir {}` first",
            dir.display()
        )));
    }
    for file in ["pid", "env"] {
        match std::fs::remove_file(dir.join(file)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
            _ => {}
        }
    }
    let log = std::fs::File::create(dir.join("log"))?;
    let mut child = Process::new(std::env::current_exe()?)
        .args(["up", "--foreground", "--dir"])
        .arg(dir)
        .args(discovery.then_some("--discovery"))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.join("env").exists() {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(std::io::Error::other(format!(
                "the stack exited ({status}) before it was up:\n{log}"
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(std::io::Error::other("the stack was not up within 60 s"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "rolesh-testkit: up (pid {}). Environment: source {}/env; rolesh config: {}/config.toml; \
         stop: rolesh-testkit down --dir {}",
        child.id(),
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

fn down(dir: &Path) -> std::io::Result<()> {
    let Some(pid) = read_pid(dir)? else {
        eprintln!("rolesh-testkit: nothing running for {}", dir.display());
        return Ok(());
    };
    if alive(pid) {
        kill(pid, Signal::SIGTERM).map_err(std::io::Error::other)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if alive(pid) {
            kill(pid, Signal::SIGKILL).map_err(std::io::Error::other)?;
        }
    }
    for file in ["pid", "env"] {
        let _ = std::fs::remove_file(dir.join(file));
    }
    Ok(())
}
