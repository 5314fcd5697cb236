//! `rolesh broker`: the only process that holds AWS credentials (SPEC §1, §2).
//!
//! It listens on `/run/rolesh/broker.sock` (or the socket systemd passes from
//! `rolesh-broker.socket`), learns who asks from SO_PEERCRED only, answers each user for
//! their own role only, reloads the configuration on SIGHUP (keeping the old one if the new
//! one is invalid) and drains on SIGTERM.

pub(crate) mod aws;
mod cache;
mod connections;
mod discovery;
mod events;
mod proxy;
pub(crate) use proxy::exit_codes as proxy_exit_codes;
pub(crate) use proxy::filter as proxy_filter;
mod quota;
mod recording;
mod server;
mod sessions;
mod upload;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::{Config, ConfigSource};
use crate::error::{EXIT_OK, EXIT_USAGE, Failure};
use crate::system;
use server::Broker;

pub(crate) fn run(source: ConfigSource, socket: Option<PathBuf>) -> Result<u8, Failure> {
    let loaded = match Config::load(&source) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            eprintln!("rolesh: the broker cannot start with an invalid configuration");
            return Ok(EXIT_USAGE);
        }
    };
    let unusable = proxy::unusable_credentials(&loaded.config);
    if !unusable.is_empty() {
        for why in &unusable {
            eprintln!("rolesh: {why}");
        }
        eprintln!("rolesh: the broker cannot start without its cluster credentials");
        return Ok(EXIT_USAGE);
    }
    if let Err(e) = crate::audit::init_broker(&loaded.config.audit) {
        eprintln!("rolesh: {e}; the broker does not run without its audit trail");
        return Err(Failure::runtime(e));
    }
    register_base_secrets();
    for w in &loaded.warnings {
        warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the broker runtime: {e}")))?;
    runtime.block_on(serve(source, loaded.config, socket))?;
    Ok(EXIT_OK)
}

/// The broker's own credentials, when they come from the environment: scrubbed from
/// every log line and error like the role credentials it obtains later.
fn register_base_secrets() {
    for var in ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
        if let Ok(secret) = std::env::var(var) {
            crate::redact::register_secret(&secret);
        }
    }
}

async fn serve(
    source: ConfigSource,
    config: Config,
    socket: Option<PathBuf>,
) -> Result<(), Failure> {
    // Signals first, the socket last: once a client can connect, everything is ready.
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_failure)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_failure)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_failure)?;
    let broker = Arc::new(Broker::new(config).await);
    tokio::spawn(discover(Arc::clone(&broker)));
    broker.resume_uploads();
    start_proxy(&broker).await.map_err(Failure::runtime)?;
    let (listener, bound) = listen(socket)?;
    let mut connections = tokio::task::JoinSet::new();
    let mut drop_reports = tokio::time::interval(DROP_REPORT_CHECK);
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    info!(socket = %bound.as_deref().map(Path::display).map(|d| d.to_string()).unwrap_or_else(|| "systemd".into()), "broker ready");
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(Arc::clone(&broker).serve(stream));
                }
                Err(e) => warn!("accept failed: {e}"),
            },
            _ = hangup.recv() => reload(&broker, &source).await,
            _ = drop_reports.tick() => broker.report_dropped_events(),
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    drop(listener);
    if let Some(path) = &bound {
        let _ = std::fs::remove_file(path);
    }
    info!(open = connections.len(), "draining");
    let drained = tokio::time::timeout(server::DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            "connections still open after {}s; closing them",
            server::DRAIN.as_secs()
        );
    }
    Ok(())
}

/// `[[discovery]]`: asks EKS now and every `discovery_refresh`, and again at once on a
/// reload. Without blocks there is nothing to wait for.
async fn discover(broker: Arc<Broker>) {
    loop {
        let config = broker.base_config();
        match config.discovery.is_empty() {
            true => broker.discovery().mark_done(),
            false => broker.refresh_discovery().await,
        }
        tokio::select! {
            _ = tokio::time::sleep(config.broker.discovery_refresh) => {}
            _ = broker.discovery().woken() => {}
        }
    }
}

/// How often dropped session events are looked at for their report (each uid's is
/// written a minute after its previous one at most this much later).
const DROP_REPORT_CHECK: std::time::Duration = std::time::Duration::from_secs(10);

/// SIGHUP: the new configuration in force, `[audit]` included, or — if it is invalid or
/// its audit file cannot be opened — the old one kept whole.
async fn reload(broker: &Arc<Broker>, source: &ConfigSource) {
    match Config::load(source) {
        Ok(loaded) => {
            let unusable = proxy::unusable_credentials(&loaded.config);
            if !unusable.is_empty() {
                for why in &unusable {
                    error!("{why}");
                }
                error!("configuration reload failed; keeping the previous configuration");
                return;
            }
            if let Err(e) = crate::audit::reload_broker(&loaded.config.audit) {
                error!("{e}");
                error!("configuration reload failed; keeping the previous configuration");
                return;
            }
            broker.replace_config(loaded.config).await;
            if let Err(e) = start_proxy(broker).await {
                error!("{e}");
            }
            info!("configuration reloaded");
        }
        Err(errors) => {
            for d in &errors.0 {
                error!("{d}");
            }
            error!("configuration reload failed; keeping the previous configuration");
        }
    }
}

/// Starts the Kubernetes API proxy if a cluster is reached through it and it does not run
/// yet (a changed `proxy_listen` takes a restart). Its CA and listener are made before the
/// broker answers anyone, so a session never gets an endpoint that is not there.
async fn start_proxy(broker: &Arc<Broker>) -> Result<(), String> {
    let config = broker.config();
    let proxied = crate::config::ClusterRoute::Proxy;
    let wanted = config.clusters.iter().any(|c| c.access == proxied)
        || config.discovery.iter().any(|d| d.access == proxied);
    if !wanted || broker.proxy_running() {
        return Ok(());
    }
    if PROXY_BINDING.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return Ok(());
    }
    let tls = proxy::load_tls(&config.broker.proxy_ca_dir, broker.hostname()).map_err(|e| {
        PROXY_BINDING.store(false, std::sync::atomic::Ordering::SeqCst);
        format!("the API proxy cannot start: {e}")
    })?;
    let listen = config.broker.proxy_listen;
    match proxy::Proxy::bind(Arc::clone(broker), tls.clone(), listen).await {
        Ok(bound) => serve_proxy(broker, bound),
        // Something holds the address (a user's process may squat it while the broker
        // restarts): the broker serves everything else, and takes the address when free.
        Err(e) => {
            error!(
                "{e}; the API proxy starts when the address is free (ss -ltnp 'sport = :{}')",
                listen.port()
            );
            let broker = Arc::clone(broker);
            tokio::spawn(async move {
                let mut attempts = 0u32;
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                    attempts += 1;
                    match proxy::Proxy::bind(Arc::clone(&broker), tls.clone(), listen).await {
                        Ok(bound) => return serve_proxy(&broker, bound),
                        Err(e) if attempts.is_multiple_of(30) => error!("{e}"),
                        Err(_) => {}
                    }
                }
            });
        }
    }
    Ok(())
}

/// Whether the proxy is bound or being bound (a reload must not start a second one).
static PROXY_BINDING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn serve_proxy(
    broker: &Arc<Broker>,
    (proxy, listener): (Arc<proxy::Proxy>, tokio::net::TcpListener),
) {
    broker.set_proxy(server::ProxyEndpoint {
        address: proxy.address,
        ca_data: proxy.ca_data.clone(),
    });
    info!(address = %proxy.address, "API proxy ready");
    tokio::spawn(proxy.serve(listener));
}

/// The socket systemd passed, else `path` bound here (mode 0666: every user must be able
/// to connect; the broker tells them apart by SO_PEERCRED).
fn listen(path: Option<PathBuf>) -> Result<(UnixListener, Option<PathBuf>), Failure> {
    if let Some(std_listener) = system::systemd_socket().map_err(Failure::runtime)? {
        let listener = UnixListener::from_std(std_listener)
            .map_err(|e| Failure::runtime(format!("cannot use the socket from systemd: {e}")))?;
        return Ok((listener, None));
    }
    let path = path.unwrap_or_else(crate::paths::broker_socket);
    let listener = system::bind_socket(&path, 0o666).map_err(Failure::runtime)?;
    let listener = UnixListener::from_std(listener)
        .map_err(|e| Failure::runtime(format!("cannot listen on {}: {e}", path.display())))?;
    Ok((listener, Some(path)))
}

fn signal_failure(e: std::io::Error) -> Failure {
    Failure::runtime(format!("cannot install signal handlers: {e}"))
}
