//! `rolesh check`: validate the configuration, print a one-line summary or every error.

use crate::broker::aws::Aws;
use crate::config::{Config, ConfigSource};
use crate::discovery;
use crate::error::{EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, Failure};
use crate::paths;
use std::path::Path;

mod sshd;

pub(crate) fn run(
    source: &ConfigSource,
    describe: bool,
    sshd_config: Option<&Path>,
) -> Result<u8, Failure> {
    let loaded = match Config::load(source) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            let n = errors.0.len();
            eprintln!(
                "rolesh: {n} error{} in the configuration",
                if n == 1 { "" } else { "s" }
            );
            return Ok(EXIT_USAGE);
        }
    };
    for w in &loaded.warnings {
        eprintln!("rolesh: {w}");
    }
    println!("{}", summary(&loaded.config));
    println!(
        "{}",
        socket_status("broker", &paths::broker_socket(), "rolesh-broker")
    );
    println!(
        "{}",
        socket_status("monitor", &paths::monitor_socket(), "rolesh-monitor")
    );
    println!("{}", session_policy(&loaded.config));
    for line in cluster_routes(&loaded.config) {
        println!("{line}");
    }
    for line in discovery_blocks(&loaded.config) {
        println!("{line}");
    }
    for note in discovery::overlaps(&loaded.config) {
        println!("note: {note}");
    }
    if !sshd_passes_nothing_dangerous(sshd_config) {
        return Ok(EXIT_USAGE);
    }
    if describe {
        return describe_clusters(&loaded.config);
    }
    Ok(EXIT_OK)
}

/// Asks DescribeCluster, with the broker's credentials (the default chain), for every
/// cluster whose endpoint is not in the configuration, and runs `[[discovery]]` once;
/// lists what it cannot describe, and what discovery found and left out.
fn describe_clusters(config: &Config) -> Result<u8, Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the AWS client: {e}")))?;
    let (failed, bucket_ready) = runtime.block_on(async {
        let aws = std::sync::Arc::new(Aws::new(config).await);
        let failed = describe_listed(&aws, config).await + discover(&aws, config).await;
        (failed, recordings_bucket(&aws, config).await)
    });
    if failed > 0 {
        eprintln!(
            "rolesh: {failed} cluster{} cannot be described",
            if failed == 1 { "" } else { "s" }
        );
    }
    if !bucket_ready {
        eprintln!("rolesh: the recordings bucket is not ready ([audit.s3])");
    }
    if failed > 0 || !bucket_ready {
        return Ok(EXIT_RUNTIME);
    }
    Ok(EXIT_OK)
}

/// DescribeCluster for each `[[cluster]]` written without its endpoint; how many failed.
async fn describe_listed(aws: &Aws, config: &Config) -> usize {
    let pending: Vec<_> = config
        .clusters
        .iter()
        .filter(|c| c.endpoint.is_none())
        .collect();
    if pending.is_empty() {
        println!("clusters: every [[cluster]] endpoint is in the configuration");
    }
    let mut failed = 0;
    for c in pending {
        match aws.describe_cluster_as_broker(&c.name, &c.region).await {
            Ok(info) => println!("cluster {} ({}): {}", c.name, c.region, info.endpoint),
            Err(e) => {
                failed += 1;
                println!(
                    "cluster {} ({}): cannot describe: {}",
                    c.name, c.region, e.message
                );
            }
        }
    }
    failed
}

/// One `[[discovery]]` run, as the broker would make it: the clusters found, those left
/// out and why, and the regions that failed (their count).
async fn discover(aws: &std::sync::Arc<Aws>, config: &Config) -> usize {
    if config.discovery.is_empty() {
        return 0;
    }
    let (seen, failures) = discovery::split(discovery::fetch(aws, config).await);
    for (region, why) in &failures {
        println!("discovery in {region}: cannot list or describe its clusters: {why}");
    }
    let selection = discovery::select(config, &seen);
    for c in &selection.clusters {
        let number = c.discovered.as_ref().map_or(0, |d| d.block);
        println!(
            "discovered {} ({}, by [[discovery]] #{number}): {}",
            c.name,
            c.region,
            c.endpoint.as_deref().unwrap_or_default()
        );
    }
    for l in &selection.left_out {
        println!("left out {} ({}): {}", l.name, l.region, l.reason);
    }
    println!(
        "discovery: {} cluster{} found, {} left out",
        selection.clusters.len(),
        if selection.clusters.len() == 1 {
            ""
        } else {
            "s"
        },
        selection.left_out.len()
    );
    failures.len()
}

/// `[audit.s3]`: the bucket is there and, when retention is asked for, has object lock
/// enabled (with the caller's credentials: on the bastion, the broker's).
async fn recordings_bucket(aws: &Aws, config: &Config) -> bool {
    let Some(s3) = &config.audit.s3 else {
        return true;
    };
    use aws_sdk_s3::error::ProvideErrorMetadata;
    let client = aws.s3(s3);
    let bucket = &s3.bucket;
    if let Err(e) = client.head_bucket().bucket(bucket).send().await {
        let why = e
            .code()
            .map_or_else(|| crate::error::error_chain(&e), str::to_string);
        println!("recordings bucket {bucket}: cannot reach it: {why}");
        return false;
    }
    let Some(lock) = &s3.object_lock else {
        println!("recordings bucket {bucket}: reachable");
        return true;
    };
    let enabled = client
        .get_object_lock_configuration()
        .bucket(bucket)
        .send()
        .await
        .ok()
        .and_then(|o| o.object_lock_configuration)
        .and_then(|c| c.object_lock_enabled)
        .is_some_and(|e| e.as_str() == "Enabled");
    match enabled {
        true => {
            println!(
                "recordings bucket {bucket}: reachable, object lock enabled ({} day{}, {})",
                lock.days,
                if lock.days == 1 { "" } else { "s" },
                lock.mode.as_str()
            );
            true
        }
        false => {
            println!(
                "recordings bucket {bucket}: object lock is not enabled, but [audit.s3] asks for {} days of retention: create the bucket with object lock",
                lock.days
            );
            false
        }
    }
}

/// `PATH (+N drop-ins): N users, M group rules, K clusters, L namespaces`.
pub(crate) fn summary(config: &Config) -> String {
    let first = config
        .files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let drop_ins = match config.files.len().saturating_sub(1) {
        0 => String::new(),
        1 => " (+1 drop-in)".to_string(),
        n => format!(" (+{n} drop-ins)"),
    };
    let namespaces: usize = config.clusters.iter().map(|c| c.namespaces.len()).sum();
    format!(
        "{first}{drop_ins}: {} users, {} group rules, {} clusters, {namespaces} namespaces{}",
        config.mapping.users.len(),
        config.mapping.groups.len(),
        config.clusters.len(),
        if config.mapping.default_role.is_some() {
            ", default role set"
        } else {
            ", no default role"
        },
    ) + &match config.discovery.len() {
        0 => String::new(),
        1 => ", 1 discovery block".to_string(),
        n => format!(", {n} discovery blocks"),
    }
}

/// What each `[[discovery]]` looks for and how its clusters are reached.
fn discovery_blocks(config: &Config) -> Vec<String> {
    config
        .discovery
        .iter()
        .map(|d| {
            let globs = |g: &[crate::config::NameGlob]| {
                g.iter()
                    .map(|g| g.text.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut line = format!(
                "discovery #{}: EKS clusters in {}",
                d.number,
                d.regions.join(", ")
            );
            if !d.tags.is_empty() {
                let tags: Vec<String> = d.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                line.push_str(&format!(" tagged {}", tags.join(", ")));
            }
            if !d.names.is_empty() {
                line.push_str(&format!(" named {}", globs(&d.names)));
            }
            if !d.exclude.is_empty() {
                line.push_str(&format!(" but not {}", globs(&d.exclude)));
            }
            let route = match d.access {
                crate::config::ClusterRoute::Proxy => "through the API proxy",
                crate::config::ClusterRoute::Direct => "direct",
            };
            line.push_str(&format!(
                ", {route} (refreshed every {}; `rolesh check --describe` runs it once)",
                crate::config::values::short(config.broker.discovery_refresh)
            ));
            line
        })
        .collect()
}

fn socket_status(what: &str, socket: &std::path::Path, unit: &str) -> String {
    if socket.exists() {
        format!("{what} socket: {} present", socket.display())
    } else {
        format!(
            "{what} socket: {} absent (is {unit} running?)",
            socket.display()
        )
    }
}

/// Prints what sshd passes to login shells; false when it lets a loader variable through.
fn sshd_passes_nothing_dangerous(config: Option<&Path>) -> bool {
    let named = config
        .map(|c| format!(" ({})", c.display()))
        .unwrap_or_default();
    match sshd::check(config) {
        sshd::Verdict::NotInstalled => println!("sshd: not installed here; nothing to check"),
        sshd::Verdict::Unreadable(why) => {
            println!("sshd{named}: cannot check what it passes to login shells: {why}")
        }
        sshd::Verdict::Clean => {
            println!("sshd{named}: passes no loader or shell variable to login shells")
        }
        sshd::Verdict::LetsThrough(found) => {
            for f in &found {
                eprintln!("rolesh: sshd{named}: {f}");
            }
            eprintln!(
                "rolesh: sshd lets variables through that run a user's code before rolesh \
                 does anything (the dynamic loader reads them); accept only \
                 `AcceptEnv LANG LC_* TZ` and keep `PermitUserEnvironment no`"
            );
            return false;
        }
    }
    true
}

/// Whether the broker answers live sessions only (`[broker] require_session`).
fn session_policy(config: &Config) -> String {
    if config.broker.require_session {
        "sessions: credentials only for processes of a live session (require_session = true)".into()
    } else {
        "sessions: require_session = false: any process of a mapped user gets credentials, in a session or not (for hosts that are not bastions)".into()
    }
}

/// How sessions reach each cluster (`[[cluster]] access`), and what that means for its
/// selectors: through the proxy they bind every kubectl call; direct, only the picker and
/// `rolesh exec`.
fn cluster_routes(config: &Config) -> Vec<String> {
    use crate::config::ClusterRoute;
    let listen = config.broker.proxy_listen;
    config
        .clusters
        .iter()
        .map(|c| {
            let selected: Vec<&str> = c
                .namespaces
                .iter()
                .filter(|n| !n.selectors.is_empty())
                .map(|n| n.name.as_str())
                .collect();
            if let Some(credentials) = &c.credentials {
                return format!(
                    "cluster {}: kubernetes, through the API proxy (https://{listen}/clusters/{}), impersonating each user as {}: the allowlist and selectors bind every kubectl call; the broker's credential ({}) stays in the broker",
                    c.name,
                    c.name,
                    credentials.identity,
                    credentials
                        .source
                        .files()
                        .iter()
                        .map(|f| f.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            match c.access {
                ClusterRoute::Proxy => format!(
                    "cluster {}: through the API proxy (https://{listen}/clusters/{}): the allowlist and selectors bind every kubectl call; the token stays in the broker",
                    c.name, c.name
                ),
                ClusterRoute::Direct if selected.is_empty() => format!(
                    "cluster {}: direct: sessions hold tokens (each valid 15 minutes at EKS)",
                    c.name
                ),
                ClusterRoute::Direct => format!(
                    "cluster {}: direct: the selectors of {} bind only the picker and rolesh exec; kubectl reaches every pod RBAC allows there (access = \"proxy\" binds it too)",
                    c.name,
                    selected.join(", ")
                ),
            }
        })
        .collect()
}
