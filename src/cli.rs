//! The command line of SPEC §4, and the choice between login mode and subcommands.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use rolesh_token_core::args::{Parsed, StandaloneArgs, TokenArgs as TokenRequest};
use rolesh_token_core::plugin;

use crate::config::ConfigSource;
use crate::error::{EXIT_OK, Failure};
use crate::protocol::{ProcessCredentials, Request};
use crate::token::StsEndpoints;
use crate::{broker, check, client, exec, explain, monitor, rbac, session, standalone};

#[derive(Debug, Parser)]
#[command(
    name = "rolesh",
    version,
    args_conflicts_with_subcommands = true,
    about = "Login shell for SSH bastions in front of Amazon EKS",
    long_about = "rolesh maps the Unix user to an IAM role, has the local broker assume it through STS \
                  with the user's own name as session name, and starts an isolated, audited session \
                  with an in-memory kubeconfig."
)]
pub(crate) struct Cli {
    /// Run COMMAND without a shell, as `ssh bastion COMMAND` does (login mode)
    #[arg(short = 'c', value_name = "COMMAND")]
    pub run: Option<String>,

    /// Start an interactive login session (login mode)
    #[arg(short = 'l', long = "login")]
    pub login: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print an EKS ExecCredential (what kubectl's exec plugin calls)
    Token(TokenArgs),
    /// Print AWS credential_process JSON for your own role
    Credentials,
    /// Exec into a container; a picker asks for what is missing
    Exec {
        /// [[CLUSTER/]NAMESPACE/POD[/CONTAINER]]
        target: Option<String>,
        /// Only this cluster
        #[arg(long, value_name = "NAME")]
        cluster: Option<String>,
        /// Only this namespace
        #[arg(short = 'n', long, value_name = "NAME")]
        namespace: Option<String>,
        /// Picker mode (what `mode = "picker"` runs): back to the picker after each exec,
        /// until q, Ctrl-D or Esc
        #[arg(long, hide = true, conflicts_with = "target")]
        repeat: bool,
        /// Command to run in the container [default: `exec_command`, else bash or sh]
        #[arg(last = true)]
        command: Vec<String>,
    },
    /// Print the session's kubeconfig
    Kubeconfig,
    /// Restricted mode's prompt (started by the login session on its own terminal)
    #[command(name = "restricted-prompt", hide = true)]
    RestrictedPrompt,
    /// Run the credential broker in the foreground
    Broker {
        #[command(flatten)]
        config: ConfigArg,
        /// Listen here instead of /run/rolesh/broker.sock (when systemd passes no socket)
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// Run the session monitor in the foreground (root; systemd `rolesh-monitor.service`)
    Monitor {
        /// Listen here instead of /run/rolesh/monitor.sock (when systemd passes no socket)
        #[arg(long, value_name = "PATH")]
        socket: Option<PathBuf>,
    },
    /// One session's monitor, started by `rolesh monitor` with the login's connection
    #[command(name = "session-monitor", hide = true)]
    SessionMonitor,
    /// The first program of a session, started by its monitor as the user
    #[command(name = "session-init", hide = true)]
    SessionInit {
        /// Show the banner first
        #[arg(long)]
        banner: bool,
        /// argv[0] of the program
        #[arg(long, value_name = "NAME")]
        arg0: Option<String>,
        /// The program (absolute path) and its arguments
        #[arg(last = true, required = true, num_args = 1..)]
        program: Vec<String>,
    },
    /// Validate the configuration
    Check {
        #[command(flatten)]
        config: ConfigArg,
        /// Also ask EKS DescribeCluster (with the default AWS credential chain, as the
        /// broker would) for every cluster without an endpoint, and list those that fail
        #[arg(long)]
        describe: bool,
        /// The sshd configuration to check for variables it passes to login shells
        /// (default: sshd's own, when sshd is installed)
        #[arg(long, value_name = "PATH")]
        sshd_config: Option<PathBuf>,
    },
    /// Explain the mapping decision for a user
    Explain {
        /// Unix user name
        user: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Kubernetes RBAC and aws-auth for `kubectl apply -f -`; IAM policies and EKS access
    /// entries with --only or --out
    Rbac {
        #[command(flatten)]
        config: ConfigArg,
        #[arg(long, value_enum, default_value = "yaml")]
        format: RbacFormat,
        /// Write kubernetes/, eks/ and iam/ files into DIR
        #[arg(long, value_name = "DIR", conflicts_with = "only")]
        out: Option<PathBuf>,
        /// Print only this on stdout [default: kubernetes, the objects `kubectl apply` takes]
        #[arg(long, value_enum)]
        only: Option<RbacPart>,
        /// How EKS maps roles to users: the aws-auth ConfigMap or access entries
        #[arg(long, value_enum, default_value = "aws-auth")]
        identity: IdentityArg,
        /// The bastion's own role (the principal the trust policies let assume each role)
        #[arg(
            long,
            value_name = "ARN",
            default_value = "arn:aws:iam::123456789012:role/rolesh-bastion"
        )]
        bastion_role: String,
    },
    /// Play back a session recording (asciicast v2)
    Replay {
        /// A recording: a file, or `s3://BUCKET/KEY` (read with your own AWS credentials)
        file: String,
        /// For s3://: the bucket's region [default: AWS_REGION, the profile's]
        #[arg(long)]
        region: Option<String>,
        /// For s3://: an S3 endpoint (a VPC endpoint), addressed path-style
        #[arg(long, value_name = "URL")]
        endpoint_url: Option<String>,
        /// Playback speed (2 plays twice as fast)
        #[arg(long, default_value = "1", value_parser = positive)]
        speed: f64,
        /// Cut pauses longer than this many seconds
        #[arg(long, value_name = "S", value_parser = positive)]
        idle_limit: Option<f64>,
    },
    /// Who assumed which role, when, and which pods they entered (from journald)
    Audit {
        /// Only this user's events
        #[arg(long, value_name = "USER")]
        user: Option<String>,
        /// Only events since this time (journalctl's --since syntax; RFC 3339 with --file)
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// One JSON object per line instead of a table
        #[arg(long)]
        json: bool,
        /// Read the JSON Lines copy ([audit] file) instead of journald
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The user the broker runs as: its journal entries (and root's) are believed
        #[arg(long, value_name = "USER", default_value = crate::audit::query::BROKER_USER)]
        broker_user: String,
        /// One line per recorded session: where its recording is, on this bastion or in S3
        #[arg(long)]
        recordings: bool,
    },
    /// Testing aid: record stdin's scripted events through the broker (hidden)
    #[cfg(feature = "test-hooks")]
    #[command(name = "__record", hide = true)]
    TestRecord {
        #[arg(long)]
        session_id: String,
        #[arg(long)]
        input: bool,
    },
    /// Testing aid: emit one session audit event through the session's layer (hidden)
    #[cfg(feature = "test-hooks")]
    #[command(name = "__event", hide = true)]
    TestEvent {
        event: String,
        /// KEY=VALUE: cluster, namespace, pod, container, command, exit_code
        fields: Vec<String>,
    },
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum IdentityArg {
    AwsAuth,
    AccessEntries,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RbacPart {
    /// ClusterRoles, bindings and (with aws-auth) the aws-auth ConfigMap
    Kubernetes,
    /// The trust and permissions policies of each mapped role
    Iam,
    /// The EKS access entries (`aws eks create-access-entry` input)
    AccessEntries,
    /// What lets the broker impersonate users on each `kind = "kubernetes"` cluster
    Impersonation,
    /// What the bastion's own role needs for `[[discovery]]` (ListClusters, DescribeCluster)
    Discovery,
    /// What the bastion's own role needs for `[audit.s3]` (multipart uploads, retention)
    Recordings,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum RbacFormat {
    Yaml,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ConfigArg {
    /// Configuration file, or a directory holding config.toml and config.d/
    /// [default: /etc/rolesh]
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
}

impl ConfigArg {
    pub(crate) fn source(&self) -> ConfigSource {
        match &self.config {
            Some(path) => ConfigSource::Path(path.clone()),
            None => ConfigSource::System,
        }
    }
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["cluster", "cluster_name"]))]
pub(crate) struct TokenArgs {
    /// Cluster from the configuration; the broker signs with your own role
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,

    /// Standalone `aws eks get-token`: any cluster, default AWS credential chain
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,

    /// Region of the STS endpoint to sign for [default: AWS_REGION, the profile's region]
    #[arg(long, requires = "cluster_name")]
    pub region: Option<String>,

    /// Assume this role first (session name EKSGetTokenAuth, like awscli)
    #[arg(long, value_name = "ARN", requires = "cluster_name")]
    pub role_arn: Option<String>,

    /// `legacy` signs for sts.amazonaws.com in the regions that had it [default:
    /// AWS_STS_REGIONAL_ENDPOINTS, else regional]
    #[arg(long, value_enum, requires = "cluster_name")]
    pub sts_regional_endpoints: Option<EndpointsArg>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum EndpointsArg {
    Legacy,
    Regional,
}

impl TokenArgs {
    /// The token path's plain request (clap's ArgGroup guarantees one of `--cluster` and
    /// `--cluster-name`).
    fn into_plain(self) -> TokenRequest {
        match (self.cluster, self.cluster_name) {
            (Some(cluster), _) => TokenRequest::Broker { cluster },
            (None, cluster_name) => TokenRequest::Standalone(StandaloneArgs {
                cluster_name: cluster_name.unwrap_or_default(),
                region: self.region,
                role_arn: self.role_arn,
                endpoints: self.sts_regional_endpoints.map(|e| match e {
                    EndpointsArg::Legacy => StsEndpoints::Legacy,
                    EndpointsArg::Regional => StsEndpoints::Regional,
                }),
            }),
        }
    }
}

/// Login mode: sshd started rolesh as a login shell (`-rolesh`), with `-l`, or with `-c`.
/// In it no flag or variable may change the config or socket path (SPEC §1).
pub(crate) fn is_login(argv0: &OsString, cli: &Cli) -> bool {
    argv0.to_string_lossy().starts_with('-') || cli.login || cli.run.is_some()
}

/// Parses the command line, runs the command and returns the exit code.
pub(crate) fn main() -> u8 {
    let argv: Vec<OsString> = std::env::args_os().collect();
    if let Some(code) = token_fast_path(&argv) {
        return code;
    }
    let argv0 = argv.first().cloned().unwrap_or_default();
    // A login shell is started with no arguments but a leading '-' in argv[0].
    let cli = if argv0.to_string_lossy().starts_with('-') && argv.len() == 1 {
        Cli {
            run: None,
            login: true,
            command: None,
        }
    } else {
        Cli::parse_from(&argv)
    };
    // The broker and the monitors must survive clients that hang up.
    if !matches!(
        cli.command,
        Some(Command::Broker { .. } | Command::Monitor { .. } | Command::SessionMonitor)
    ) {
        crate::system::default_sigpipe();
    }
    match run(&argv0, cli) {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("{failure}");
            failure.code
        }
    }
}

fn run(argv0: &OsString, cli: Cli) -> Result<u8, Failure> {
    if is_login(argv0, &cli) {
        // Its audit events (login, command, logout) are the monitor's to write.
        return session::login(cli.run.as_deref());
    }
    if matches!(
        cli.command,
        Some(Command::Exec { .. } | Command::RestrictedPrompt | Command::SessionInit { .. })
    ) {
        // Their exec and command events belong to the session they run in.
        crate::audit::init_session(&client::socket_path(false));
    }
    let Some(command) = cli.command else {
        return Err(Failure::usage(
            "no command given; run 'rolesh --help' (as a login shell, sshd starts rolesh with -c or as -rolesh)",
        ));
    };
    match command {
        Command::Token(args) => match args.into_plain() {
            TokenRequest::Broker { cluster } => broker_token(&cluster).map(|()| EXIT_OK),
            TokenRequest::Standalone(request) => standalone::run_token(&request).map(|()| EXIT_OK),
        },
        Command::Check {
            config,
            describe,
            sshd_config,
        } => check::run(&config.source(), describe, sshd_config.as_deref()),
        Command::Explain { user, json, config } => explain::run(&config.source(), &user, json),
        Command::Credentials => {
            let socket = client::socket_path(false);
            let answer: ProcessCredentials = client::call(&socket, &Request::Credentials {})?;
            println!("{}", serde_json::to_string(&answer).unwrap_or_default());
            Ok(EXIT_OK)
        }
        Command::Exec {
            target,
            cluster,
            namespace,
            repeat,
            command,
        } => exec::run(exec::ExecArgs {
            target,
            cluster,
            namespace,
            command,
            repeat,
        }),
        Command::Kubeconfig => session::print_kubeconfig().map(|()| EXIT_OK),
        Command::RestrictedPrompt => session::restricted_prompt(),
        Command::Broker { config, socket } => broker::run(config.source(), socket),
        Command::Monitor { socket } => monitor::run(socket),
        Command::SessionMonitor => Ok(monitor::session::run()),
        Command::SessionInit {
            banner,
            arg0,
            mut program,
        } => {
            let path = PathBuf::from(program.remove(0));
            session::init(session::InitArgs {
                banner,
                arg0,
                program: path,
                args: program,
            })
        }
        Command::Rbac {
            config,
            format,
            out,
            only,
            identity,
            bastion_role,
        } => rbac::run(&rbac::Request {
            source: config.source(),
            json: matches!(format, RbacFormat::Json),
            out,
            only: only.map(|part| match part {
                RbacPart::Kubernetes => rbac::Part::Kubernetes,
                RbacPart::Iam => rbac::Part::Iam,
                RbacPart::AccessEntries => rbac::Part::AccessEntries,
                RbacPart::Impersonation => rbac::Part::Impersonation,
                RbacPart::Discovery => rbac::Part::Discovery,
                RbacPart::Recordings => rbac::Part::Recordings,
            }),
            identity: match identity {
                IdentityArg::AwsAuth => rbac::Identity::AwsAuth,
                IdentityArg::AccessEntries => rbac::Identity::AccessEntries,
            },
            bastion_role,
        }),
        Command::Replay {
            file,
            region,
            endpoint_url,
            speed,
            idle_limit,
        } => crate::replay::run(
            &crate::replay::Source::parse(&file, region, endpoint_url)?,
            &crate::replay::Options { speed, idle_limit },
        ),
        Command::Audit {
            user,
            since,
            json,
            file,
            broker_user,
            recordings,
        } => crate::audit::query::run(&crate::audit::query::Query {
            user,
            since,
            json,
            file,
            broker_user,
            recordings,
        }),
        #[cfg(feature = "test-hooks")]
        Command::TestRecord { session_id, input } => crate::testing::record(&session_id, input),
        #[cfg(feature = "test-hooks")]
        Command::TestEvent { event, fields } => crate::testing::event(&event, &fields),
    }
}

/// `rolesh token --cluster NAME`: the broker signs with the user's own role; this prints
/// the ExecCredential kubectl reads.
fn broker_token(cluster: &str) -> Result<(), Failure> {
    plugin::print_exec_credential(&plugin::broker_token(cluster)?)
}

/// `rolesh token …` as the token path serves it (the broker's token, or one signed with
/// environment credentials), before clap builds the whole command line and before
/// anything else starts: what `rolesh-token` does, in this binary. `None`: not such a
/// request (another command, login mode, help, a usage error, a request that needs the
/// AWS SDK); the command line then takes its usual course.
fn token_fast_path(argv: &[OsString]) -> Option<u8> {
    let argv0 = argv.first()?.to_string_lossy();
    if argv0.starts_with('-') || argv.get(1)?.as_os_str() != "token" {
        return None;
    }
    let Ok(Parsed::Token(request)) = rolesh_token_core::args::parse(&argv[2..]) else {
        return None;
    };
    let token = plugin::token(&plugin::plan(&request).ok()?)?;
    crate::system::default_sigpipe();
    Some(
        match token.and_then(|token| plugin::print_exec_credential(&token)) {
            Ok(()) => EXIT_OK,
            Err(failure) => {
                eprintln!("{failure}");
                failure.code
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn dash_argv0_and_c_are_login_mode() {
        let cli = Cli::parse_from(["rolesh", "-c", "kubectl get pods"]);
        assert!(is_login(&"rolesh".into(), &cli));
        let cli = Cli::parse_from(["rolesh", "check"]);
        assert!(!is_login(&"rolesh".into(), &cli));
        assert!(is_login(&"-rolesh".into(), &cli));
    }
}
