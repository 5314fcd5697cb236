//! `rolesh exec [[CLUSTER/]NAMESPACE/POD[/CONTAINER]] [-- CMD…]` (SPEC §4, §6): straight
//! into a container, only where the user is allowed.
//!
//! The order of things is the point:
//! 1. The broker's `whoami` gives the user's clusters, namespace allowlists and selectors.
//! 2. What the command line names is checked against them BEFORE any Kubernetes API call:
//!    a cluster or namespace outside the allowlist is refused (exit 77).
//! 3. The broker hands out endpoint, CA and a token signed with the user's own role; every
//!    API call uses that token, so the cluster's RBAC decides on top of the allowlist.
//! 4. The picker asks for what the argument leaves out; a pod named on the command line
//!    must match ANY selector of its namespace (that takes one GET for its labels).
//! 5. The exec itself ([`stream`]); one audit event (`rolesh::audit`, `event = "exec"`),
//!    also when SIGHUP or SIGTERM ends rolesh in the middle of it (the connection dropped,
//!    the session ended): the trail must show which pod the user was in.
//!
//! `--repeat` is picker mode (`mode = "picker"`, started by the session): pick, exec, back
//! to the picker, until `q`, Ctrl-D or Esc.

mod access;
mod cluster;
mod picker;
mod stream;
mod target;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use access::Allowlist;
use cluster::{Connection, ContainerKind, PodInfo};
use picker::{Choice, Level, Picker, aligned};
use stream::ExecSpec;
use target::Target;

use crate::config::Selector;
use crate::error::{EXIT_OK, Failure};
use crate::protocol::ClusterView;
use crate::terminal;

/// What `rolesh exec` runs when neither the command line nor `exec_command` says: bash if
/// the image has it, else sh.
const DEFAULT_COMMAND: [&str; 3] = [
    "/bin/sh",
    "-c",
    "command -v bash >/dev/null 2>&1 && exec bash || exec sh",
];

/// Exit code when the one-shot picker is cancelled (Esc, Ctrl-C), as a shell reports ^C.
const EXIT_CANCELLED: u8 = 130;

/// The command line of `rolesh exec`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecArgs {
    pub target: Option<String>,
    pub cluster: Option<String>,
    pub namespace: Option<String>,
    pub command: Vec<String>,
    pub repeat: bool,
}

/// Runs `rolesh exec` and returns its exit code (the remote command's).
pub(crate) fn run(args: ExecArgs) -> Result<u8, Failure> {
    let access = Allowlist::from_broker()?;
    let target = Target::parse(args.target.as_deref(), &access.cluster_names())?
        .narrow(args.cluster.as_deref(), args.namespace.as_deref())?;
    // The allowlist, before anything talks to Kubernetes.
    check_allowlist(&access, &target)?;
    let picker = Picker {
        interactive: terminal::stdin_is_terminal(),
        repeat: args.repeat,
    };
    if args.repeat && !picker.interactive {
        return Err(Failure::usage("picker mode needs a terminal"));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    if picker.interactive {
        terminal::remember()?;
    }
    terminal::watch_signals(&runtime, report_exec_ended_by_signal)?;
    let rounds = Rounds {
        access: &access,
        target: &target,
        picker: &picker,
        command: &args.command,
    };
    let result = runtime.block_on(rounds.run());
    // Nothing may hold the process up on the way out.
    runtime.shutdown_timeout(Duration::from_millis(100));
    terminal::restore();
    result
}

/// A cluster or namespace named on the command line must be in the allowlist (exit 77).
fn check_allowlist(access: &Allowlist, target: &Target) -> Result<(), Failure> {
    if let Some(cluster) = cluster_named(access, target)?
        && let Some(namespace) = &target.namespace
    {
        access::check_namespace(cluster, namespace)?;
    }
    Ok(())
}

/// The cluster the target implies: named, or the first allowing the named namespace.
fn cluster_named<'a>(
    access: &'a Allowlist,
    target: &Target,
) -> Result<Option<&'a ClusterView>, Failure> {
    match (&target.cluster, &target.namespace) {
        (Some(name), _) => access.cluster(name).map(Some),
        (None, Some(namespace)) => access.cluster_for_namespace(namespace).map(Some),
        (None, None) => Ok(None),
    }
}

/// One `rolesh exec`: a round of picking and exec'ing, or (picker mode) many.
struct Rounds<'a> {
    access: &'a Allowlist,
    target: &'a Target,
    picker: &'a Picker,
    command: &'a [String],
}

/// Where one round of the picker ended up.
#[derive(Clone)]
struct Chosen {
    cluster: String,
    namespace: String,
    pod: String,
    container: String,
}

impl Rounds<'_> {
    async fn run(&self) -> Result<u8, Failure> {
        if !self.picker.repeat {
            return match self.round().await? {
                Some(code) => Ok(code),
                None => Ok(EXIT_CANCELLED),
            };
        }
        // Picker mode: back to the picker after each exec until the user quits. A failed
        // exec is reported by `exec`; any other failure (listing refused, broker down)
        // would only repeat without the user getting a say, so it ends the session.
        loop {
            if self.round().await?.is_none() {
                return Ok(EXIT_OK);
            }
        }
    }

    /// Picks what is missing and execs; `None` when the user quit the picker.
    async fn round(&self) -> Result<Option<u8>, Failure> {
        let Some(cluster) = self.pick_cluster()? else {
            return Ok(None);
        };
        // Broker calls are synchronous (a Unix socket, answered at once).
        let connection = tokio::task::block_in_place(|| Connection::from_broker(cluster))?;
        let client = connection.client()?;
        let Some(namespace) = self.pick_namespace(&client, cluster).await? else {
            return Ok(None);
        };
        let selectors = access::selectors(cluster, &namespace);
        let Some(pod) = self
            .pick_pod(&client, &cluster.name, &namespace, selectors)
            .await?
        else {
            return Ok(None);
        };
        let Some(container) = self.pick_container(&cluster.name, &namespace, &pod)? else {
            return Ok(None);
        };
        let chosen = Chosen {
            cluster: cluster.name.clone(),
            namespace,
            pod: pod.name,
            container,
        };
        self.exec(&client, &chosen).await.map(Some)
    }

    fn pick_cluster(&self) -> Result<Option<&ClusterView>, Failure> {
        if let Some(cluster) = cluster_named(self.access, self.target)? {
            return Ok(Some(cluster));
        }
        let choices: Vec<Choice<usize>> = self
            .access
            .clusters
            .iter()
            .enumerate()
            .map(|(i, c)| Choice {
                label: c.name.clone(),
                target: c.name.clone(),
                value: i,
            })
            .collect();
        let picked = self
            .picker
            .choose(Level::Cluster, "Cluster", &choices, false)?;
        Ok(picked.map(|i| &self.access.clusters[i]))
    }

    async fn pick_namespace(
        &self,
        client: &kube::Client,
        cluster: &ClusterView,
    ) -> Result<Option<String>, Failure> {
        if let Some(namespace) = &self.target.namespace {
            return Ok(Some(namespace.clone()));
        }
        let names: Vec<(String, String)> = if cluster.namespaces.is_empty() {
            // No allowlist: what the user's RBAC lets them list.
            cluster::visible_namespaces(client, cluster.default_namespace.as_deref())
                .await?
                .into_iter()
                .map(|n| (n, String::new()))
                .collect()
        } else {
            cluster
                .namespaces
                .iter()
                .map(|n| (n.name.clone(), describe_selectors(&n.selectors)))
                .collect()
        };
        let rows: Vec<Vec<String>> = names
            .iter()
            .map(|(n, s)| vec![n.clone(), s.clone()])
            .collect();
        let choices: Vec<Choice<String>> = names
            .iter()
            .zip(aligned(&rows))
            .map(|((name, _), label)| Choice {
                label,
                target: format!("{}/{name}", cluster.name),
                value: name.clone(),
            })
            .collect();
        let title = format!("Namespace in {}", cluster.name);
        self.picker
            .choose(Level::Namespace, &title, &choices, false)
    }

    async fn pick_pod(
        &self,
        client: &kube::Client,
        cluster: &str,
        namespace: &str,
        selectors: &[Selector],
    ) -> Result<Option<PodInfo>, Failure> {
        if let Some(name) = &self.target.pod {
            // Named on the command line: its labels must match ANY selector of the
            // namespace. That needs the pod, read with the user's own token.
            let pod = cluster::get_pod(client, namespace, name).await?;
            if !pod.matches_any(selectors) {
                return Err(Failure::denied(format!(
                    "pod {namespace}/{name} on {cluster} matches none of the namespace's selectors ({})",
                    describe_selectors(selectors)
                )));
            }
            return Ok(Some(pod));
        }
        let pods = cluster::list_pods(client, namespace, selectors).await?;
        let rows: Vec<Vec<String>> = pods
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    p.phase.clone(),
                    format!("{}/{}", p.ready.0, p.ready.1),
                    p.age.clone(),
                    p.node.clone(),
                ]
            })
            .collect();
        let choices: Vec<Choice<usize>> = aligned(&rows)
            .into_iter()
            .enumerate()
            .map(|(i, label)| Choice {
                label,
                target: format!("{cluster}/{namespace}/{}", pods[i].name),
                value: i,
            })
            .collect();
        let title = format!("Pod in {cluster}/{namespace}  (NAME  STATUS  READY  AGE  NODE)");
        let picked = self
            .picker
            .choose(Level::Pod, &title, &choices, self.picker.repeat)?;
        Ok(picked.map(|i| pods[i].clone()))
    }

    fn pick_container(
        &self,
        cluster: &str,
        namespace: &str,
        pod: &PodInfo,
    ) -> Result<Option<String>, Failure> {
        if let Some(name) = &self.target.container {
            if pod.containers.iter().any(|c| &c.name == name) {
                return Ok(Some(name.clone()));
            }
            let names: Vec<&str> = pod.containers.iter().map(|c| c.name.as_str()).collect();
            return Err(Failure::usage(format!(
                "pod {namespace}/{} has no container {name}; it has: {}",
                pod.name,
                names.join(", ")
            )));
        }
        if !self.picker.interactive {
            // No terminal to ask on: the container `kubectl exec` would take, with its
            // notice, so that scripts written for kubectl work unchanged.
            let chosen = pod.default_container().ok_or_else(|| {
                Failure::runtime(format!("pod {namespace}/{} has no containers", pod.name))
            })?;
            if let Some(notice) = &chosen.notice {
                eprintln!("{notice}");
            }
            return Ok(Some(chosen.name));
        }
        let choices: Vec<Choice<String>> = pod
            .containers
            .iter()
            .map(|c| Choice {
                label: match c.kind {
                    ContainerKind::Regular => c.name.clone(),
                    ContainerKind::Init => format!("{}  (init)", c.name),
                    ContainerKind::Ephemeral => format!("{}  (ephemeral)", c.name),
                },
                target: format!("{cluster}/{namespace}/{}/{}", pod.name, c.name),
                value: c.name.clone(),
            })
            .collect();
        let title = format!("Container in {cluster}/{namespace}/{}", pod.name);
        self.picker
            .choose(Level::Container, &title, &choices, false)
    }

    async fn exec(&self, client: &kube::Client, chosen: &Chosen) -> Result<u8, Failure> {
        let command: Vec<String> = if !self.command.is_empty() {
            self.command.to_vec()
        } else if let Some(configured) = &self.access.exec_command {
            configured.clone()
        } else {
            DEFAULT_COMMAND.iter().map(|s| s.to_string()).collect()
        };
        let spec = ExecSpec {
            namespace: chosen.namespace.clone(),
            pod: chosen.pod.clone(),
            container: chosen.container.clone(),
            command,
            tty: terminal::wants_tty(),
        };
        *running() = Some(Running {
            chosen: chosen.clone(),
            command: spec.command.clone(),
            started: Instant::now(),
        });
        let result = stream::run(client, &spec).await;
        let code = match &result {
            Ok(code) => *code,
            Err(failure) => failure.code,
        };
        // Under the lock: a signal arriving now waits, then finds nothing left to report.
        if let Some(ended) = running().take() {
            audit(&ended, code, None);
        }
        match result {
            // Picker mode: say what went wrong (pod gone, command not found, refused) and
            // go back to the picker.
            Err(failure) if self.picker.repeat => {
                eprintln!("{failure}");
                Ok(failure.code)
            }
            other => other,
        }
    }
}

fn describe_selectors(selectors: &[Selector]) -> String {
    if selectors.is_empty() {
        return "all pods".into();
    }
    let shown: Vec<String> = selectors.iter().map(ToString::to_string).collect();
    shown.join(" | ")
}

/// The exec under way, whose event is still to be written.
struct Running {
    chosen: Chosen,
    command: Vec<String>,
    started: Instant,
}

static RUNNING: Mutex<Option<Running>> = Mutex::new(None);

fn running() -> std::sync::MutexGuard<'static, Option<Running>> {
    RUNNING
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Called by the signal watcher before rolesh exits on SIGHUP/SIGTERM: the exec under
/// way gets its event, with the exit code a shell would report and why it ended.
fn report_exec_ended_by_signal(signal: u8) {
    if let Some(ended) = running().take() {
        let why = if signal == 1 { "hangup" } else { "terminated" };
        audit(&ended, 128 + signal, Some(why));
    }
}

/// One audit event per exec; the audit layer turns these fields into `ROLESH_*`.
fn audit(exec: &Running, code: u8, reason: Option<&str>) {
    let Running {
        chosen, command, ..
    } = exec;
    let joined =
        shlex::try_join(command.iter().map(String::as_str)).unwrap_or_else(|_| command.join(" "));
    tracing::info!(
        target: "rolesh::audit",
        event = "exec",
        cluster = %chosen.cluster,
        namespace = %chosen.namespace,
        pod = %chosen.pod,
        container = %chosen.container,
        command = %joined,
        exit_code = code,
        duration_ms = exec.started.elapsed().as_millis() as u64,
        reason,
    );
}
