//! The Kubernetes API proxy (`[[cluster]] access = "proxy"`) with real kubectl (1.33:
//! WebSocket exec, port-forward tunnelled in a WebSocket; 1.27: SPDY) as real accounts, against the testkit's fake EKS `demo`, whose
//! allowlist is `web` (selectors `app=frontend`, `tier in (web,edge)`) and `jobs`.
//!
//! These brokers answer processes outside sessions (`require_session = false`): the proxy
//! then knows its callers by uid alone (the kernel's socket table). Sessions bind the proxy
//! too; session_attacks.rs plays that over the real sshd.

mod common;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::broker::BrokerProc;
use common::*;
use rolesh_testkit::fake_k8s::pod_port;
use serde_json::Value;

common::harness::tests!(
    root: [
        kubectl_lists_only_the_pods_the_selectors_allow,
        the_cluster_sees_the_unix_user_and_the_kubeconfig_holds_no_credential,
        a_pod_outside_the_selectors_is_refused_for_every_verb_before_the_cluster,
        a_namespace_outside_the_allowlist_is_refused_before_the_cluster,
        impersonation_is_refused,
        exec_through_the_proxy_gives_the_remote_exit_code,
        exec_over_spdy_through_the_proxy_gives_the_remote_exit_code,
        port_forward_through_the_proxy_reaches_an_allowed_pods_port,
        kubectl_cp_through_the_proxy_copies_into_and_out_of_an_allowed_pod,
        a_watch_through_the_proxy_shows_only_allowed_pods,
        logs_of_an_allowed_pod_reach_the_clusters_rbac,
        rolesh_token_for_a_proxied_cluster_is_refused,
        each_user_acts_as_themself,
        requests_are_audited_as_api_events,
        a_process_outside_a_live_session_is_refused_and_audited,
        the_kubeconfigs_placeholder_is_refused_by_the_cluster_itself,
        an_upstream_broken_mid_watch_ends_it_with_a_clear_error_and_no_leaked_connection,
        a_users_watches_keep_the_brokers_memory_bounded_and_stop_at_256,
        check_explain_and_rbac_name_each_clusters_route,
        requests_shaped_to_get_around_the_policy_are_refused_before_the_cluster,
        helm_through_the_proxy_reaches_the_clusters_rbac_as_the_user,
        onprem_whoami_is_the_unix_user_in_its_rolesh_group,
        onprem_rbac_decides_as_the_user_and_as_is_refused,
        onprem_exec_and_port_forward_work_through_impersonation,
        onprem_the_brokers_token_is_in_no_kubeconfig_log_or_argv,
        onprem_a_credential_others_may_read_stops_the_broker_and_a_reload,
        onprem_a_client_certificate_replaces_the_token_on_reload,
    ],
);

/// kubectl 1.33 (WebSocket exec), never gcloud's dispatcher.
const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const FRONTEND: &str = "frontend-6d8f7c9b5-x7k2p";
const REDIS: &str = "redis-0";

/// A broker with the stack's `onprem` (a cluster that is not EKS), and an account.
fn setup_onprem(user: &str) -> Env {
    setup_with(user, &[], |drop_in, _| {
        BrokerProc::start_stack_onprem(drop_in)
    })
}

/// A broker whose `demo` is proxied, and an account.
struct Env {
    broker: BrokerProc,
    user: TestUser,
    /// The account's home (kubectl's cache) and its kubeconfig.
    scratch: tempfile::TempDir,
    audit: tempfile::TempDir,
}

fn setup(user: &str) -> Env {
    setup_proxying(user, &["demo"])
}

/// Like [`setup`], but the broker answers live sessions only (the default).
fn setup_for_sessions(user: &str) -> Env {
    setup_with(
        user,
        &["demo"],
        BrokerProc::start_stack_proxied_for_sessions,
    )
}

/// A broker whose `proxied` clusters go through the proxy.
fn setup_proxying(user: &str, proxied: &[&str]) -> Env {
    setup_with(user, proxied, BrokerProc::start_stack_proxied)
}

fn setup_with(user: &str, proxied: &[&str], start: fn(&str, &[&str]) -> BrokerProc) -> Env {
    require(
        "kubectl 1.33 (google-cloud-sdk)",
        std::path::Path::new(KUBECTL).exists(),
    );
    let audit = session_visible_tempdir("rolesh-proxy-audit");
    let drop_in = format!(
        "[audit]\nfile = \"{}/audit.jsonl\"\n",
        audit.path().display()
    );
    let broker = start(&drop_in, proxied);
    let user = TestUser::create(user, &[]);
    let scratch = session_visible_tempdir("rolesh-proxy-home");
    std::os::unix::fs::chown(scratch.path(), Some(user.uid()), None).unwrap();
    Env {
        broker,
        user,
        scratch,
        audit,
    }
}

impl Env {
    fn rolesh(&self, args: &[&str]) -> Command {
        let mut cmd = rolesh();
        cmd.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ROLESH_BROKER_SOCKET", self.broker.socket())
            .uid(self.user.uid())
            .stdin(Stdio::null());
        cmd
    }

    /// The session kubeconfig (`rolesh kubeconfig`), in a file the account can read.
    fn kubeconfig(&self) -> PathBuf {
        let r = run(&mut self.rolesh(&["kubeconfig"]));
        assert_eq!(r.code, 0, "{}", r.stderr);
        let path = self
            .scratch
            .path()
            .join(format!("kubeconfig-{}", self.user.name));
        std::fs::write(&path, r.stdout).unwrap();
        std::os::unix::fs::chown(&path, Some(self.user.uid()), None).unwrap();
        path
    }

    fn kubectl(&self, args: &[&str]) -> Command {
        self.kubectl_at(KUBECTL, args)
    }

    fn kubectl_at(&self, path: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(path);
        cmd.args(["--context", "demo/web"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.scratch.path())
            .env("KUBECONFIG", self.kubeconfig())
            .uid(self.user.uid())
            .stdin(Stdio::null());
        cmd
    }

    /// The proxy's URL for `demo` and a file with its CA, as the session kubeconfig has them.
    fn proxy_endpoint(&self) -> (String, PathBuf) {
        use base64::Engine;
        let yaml = std::fs::read_to_string(self.kubeconfig()).unwrap();
        let config = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
        let demo = config
            .clusters
            .into_iter()
            .find(|c| c.name == "demo")
            .and_then(|c| c.cluster)
            .expect("demo in the kubeconfig");
        let ca = base64::engine::general_purpose::STANDARD
            .decode(demo.certificate_authority_data.unwrap())
            .unwrap();
        let path = self.scratch.path().join("proxy-ca.pem");
        std::fs::write(&path, ca).unwrap();
        (demo.server.unwrap(), path)
    }

    /// The proxy's address, as the broker logs it when the proxy is ready.
    fn proxy_address(&self) -> String {
        let log = self.broker.log();
        let line = log
            .lines()
            .find(|l| l.contains("API proxy ready"))
            .unwrap_or_else(|| panic!("no proxy in the broker's log: {log}"));
        let address = line.split("address=").nth(1).expect("address=");
        address.split_whitespace().next().unwrap().to_string()
    }

    fn demo(&self) -> &rolesh_testkit::fake_k8s::FakeK8s {
        self.broker.stack().unwrap().cluster("demo").unwrap()
    }

    fn onprem(&self) -> &rolesh_testkit::fake_k8s::FakeK8s {
        self.broker.stack().unwrap().cluster("onprem").unwrap()
    }

    /// kubectl 1.33 on `onprem` (namespace `web`).
    fn kubectl_onprem(&self, args: &[&str]) -> Command {
        let mut all = vec!["--context", "onprem/web"];
        all.extend_from_slice(args);
        self.kubectl(&all)
    }

    /// Who the fake cluster saw make each request.
    fn users_seen(&self) -> Vec<Option<String>> {
        self.demo()
            .handle()
            .events()
            .into_iter()
            .map(|e| e.user)
            .collect()
    }

    /// The fake cluster's requests whose path contains `part`.
    fn cluster_saw(&self, part: &str) -> Vec<String> {
        self.demo()
            .handle()
            .events()
            .into_iter()
            .filter(|e| e.path.contains(part))
            .map(|e| format!("{} {}", e.path, e.status))
            .collect()
    }

    /// curl as the account against the proxy's `demo`: the status code and the body.
    fn curl(&self, path: &str, extra: &[&str]) -> (String, String) {
        let (server, ca) = self.proxy_endpoint();
        let mut cmd = Command::new("curl");
        cmd.args([
            "-s",
            "-w",
            "\n%{http_code}",
            "--path-as-is",
            "--max-time",
            "10",
        ])
        .arg("--cacert")
        .arg(&ca)
        .args(extra)
        .arg(format!("{server}{path}"))
        .env_clear()
        .uid(self.user.uid())
        .stdin(Stdio::null());
        let r = run(&mut cmd);
        let (body, code) = r.stdout.rsplit_once('\n').unwrap_or(("", &r.stdout));
        (code.to_string(), body.to_string())
    }

    /// google-cloud-sdk's kubectl 1.`minor`, as [`Env::kubectl`] runs 1.33.
    fn kubectl_version(&self, minor: u32, args: &[&str]) -> Command {
        let path = format!("/usr/lib/google-cloud-sdk/bin/kubectl.1.{minor}");
        require(
            &format!("kubectl 1.{minor} (google-cloud-sdk)"),
            std::path::Path::new(&path).exists(),
        );
        self.kubectl_at(&path, args)
    }

    fn audit(&self) -> Vec<Value> {
        let file =
            std::fs::read_to_string(self.audit.path().join("audit.jsonl")).unwrap_or_default();
        file.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

fn kubectl_lists_only_the_pods_the_selectors_allow() {
    let env = setup("rpxlist");
    let r = run(&mut env.kubectl(&["get", "pods", "-o", "name"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let shown: Vec<&str> = r.stdout.lines().collect();
    assert!(shown.contains(&"pod/frontend-6d8f7c9b5-x7k2p"), "{shown:?}");
    assert!(
        shown.contains(&"pod/edge-proxy-5f6c7d8b9-h2j5k"),
        "{shown:?}"
    );
    assert!(
        !shown
            .iter()
            .any(|p| p.contains("redis") || p.contains("worker")),
        "{shown:?}"
    );
    // The table kubectl shows by default too.
    let r = run(&mut env.kubectl(&["get", "pods"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(FRONTEND), "{}", r.stdout);
    assert!(!r.stdout.contains(REDIS), "{}", r.stdout);
}

fn the_cluster_sees_the_unix_user_and_the_kubeconfig_holds_no_credential() {
    let env = setup_proxying("rpxwho", &["demo", "staging"]);
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    assert!(
        kubeconfig.contains("server: https://127.0.0.1:"),
        "{kubeconfig}"
    );
    assert!(kubeconfig.contains("/clusters/demo"), "{kubeconfig}");
    assert!(
        kubeconfig.contains("token: rolesh-proxy-no-credential"),
        "{kubeconfig}"
    );
    for credential in ["k8s-aws-v1", "exec:", "client-key", "password"] {
        assert!(
            !kubeconfig.contains(credential),
            "{credential}: {kubeconfig}"
        );
    }
    env.demo().handle().clear_events();
    let r = run(&mut env.kubectl(&["get", "pods", "-o", "name"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let users = env.users_seen();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rpxwho")),
        "{users:?}"
    );
}

fn a_pod_outside_the_selectors_is_refused_for_every_verb_before_the_cluster() {
    let env = setup("rpxsel");
    env.demo().handle().clear_events();
    for args in [
        vec!["get", "pod", REDIS],
        vec!["exec", REDIS, "--", "true"],
        vec!["logs", REDIS],
        vec!["delete", "pod", REDIS],
        vec!["label", "pod", REDIS, "app=frontend"],
        vec!["debug", REDIS, "--image=busybox", "--", "true"],
        vec!["port-forward", REDIS, ":6379"],
        vec!["cp", "redis-0:/etc/hostname", "/tmp/rolesh-never-copied"],
    ] {
        let r = run(&mut env.kubectl(&args));
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr
                .contains("pod web/redis-0 is not allowed on cluster demo from this bastion"),
            "{args:?}: {}",
            r.stderr
        );
    }
    // A port-forward asked for directly, without kubectl's GET of the pod first.
    let (code, body) = env.curl(
        "/api/v1/namespaces/web/pods/redis-0/portforward",
        &[
            "--http1.1",
            "-X",
            "POST",
            "-H",
            "Connection: Upgrade",
            "-H",
            "Upgrade: SPDY/3.1",
            "-H",
            "X-Stream-Protocol-Version: portforward.k8s.io",
        ],
    );
    assert_eq!(code, "403", "{body}");
    assert!(
        body.contains("pod web/redis-0 is not allowed on cluster demo"),
        "{body}"
    );
    let reached: Vec<String> = env
        .cluster_saw("/pods/redis-0")
        .into_iter()
        .filter(|e| !e.starts_with("/api/v1/namespaces/web/pods/redis-0 "))
        .collect();
    assert!(
        reached.is_empty(),
        "past the label check, the cluster saw {reached:?}"
    );
}

fn a_namespace_outside_the_allowlist_is_refused_before_the_cluster() {
    let env = setup("rpxns");
    env.demo().handle().clear_events();
    for args in [
        vec!["-n", "kube-system", "get", "pods"],
        vec!["-n", "kube-system", "exec", "etcd-0", "--", "true"],
        vec!["get", "pods", "-A"],
    ] {
        let r = run(&mut env.kubectl(&args));
        assert_ne!(r.code, 0, "{args:?}: {}", r.stdout);
        assert!(
            r.stderr.contains("allowed: web, jobs"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(env.cluster_saw("kube-system").is_empty());
    assert!(env.cluster_saw("/api/v1/pods").is_empty());
}

fn impersonation_is_refused() {
    let env = setup("rpxas");
    let r = run(&mut env.kubectl(&["--as", "admin", "get", "pods"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("impersonation is not allowed through this bastion"),
        "{}",
        r.stderr
    );
}

fn exec_through_the_proxy_gives_the_remote_exit_code() {
    let env = setup("rpxexec");
    let r = run(&mut env.kubectl(&[
        "exec",
        FRONTEND,
        "-c",
        "nginx",
        "--",
        "sh",
        "-c",
        "echo hi; exit 7",
    ]));
    assert_eq!((r.code, r.stdout.as_str()), (7, "hi\n"), "{}", r.stderr);
}

/// kubectl 1.27 execs over SPDY/3.1, which the proxy passes through both ways, reading the
/// exit code on its way.
fn exec_over_spdy_through_the_proxy_gives_the_remote_exit_code() {
    let env = setup("rpxspdy");
    let r = run(&mut env.kubectl_version(
        27,
        &[
            "exec",
            FRONTEND,
            "-c",
            "nginx",
            "--",
            "sh",
            "-c",
            "echo hi; exit 7",
        ],
    ));
    assert_eq!((r.code, r.stdout.as_str()), (7, "hi\n"), "{}", r.stderr);
    let upgrades = env.cluster_saw("/exec");
    assert!(
        upgrades.len() == 1 && upgrades[0].ends_with(" 101"),
        "{upgrades:?}"
    );
    // The audit event has the exit code, read from the SPDY error stream as it passed
    // (written when the connection closes).
    let exec = || {
        env.audit()
            .into_iter()
            .find(|e| e["event"] == "api" && e["subresource"] == "exec")
    };
    assert!(wait_for(10, || exec().is_some()), "{:?}", env.audit());
    let exec = exec().unwrap();
    assert_eq!(exec["command"], "sh -c echo hi; exit 7", "{exec}");
    assert_eq!(exec["exit_code"], 7, "{exec}");
}

/// kubectl port-forward to an allowed pod: 1.33 tunnels SPDY through a WebSocket, 1.27
/// speaks SPDY; two connections through each reach the pod's port, and each session is an
/// audited `api` event.
fn port_forward_through_the_proxy_reaches_an_allowed_pods_port() {
    let env = setup("rpxpf");
    let port = pod_port::line_server();
    for minor in [33, 27] {
        let forward = &[
            "port-forward",
            FRONTEND,
            "--address",
            "127.0.0.1",
            &format!(":{port}"),
        ];
        let lines = ["hi 0", "hi 1"];
        let (answers, said) = through_port_forward(env.kubectl_version(minor, forward), &lines);
        assert_eq!(
            answers,
            ["pod says: hi 0\n", "pod says: hi 1\n"],
            "kubectl 1.{minor}: {said}"
        );
    }
    let forwards = env.cluster_saw("/portforward");
    assert!(
        forwards.len() == 2 && forwards.iter().all(|f| f.ends_with(" 101")),
        "{forwards:?}"
    );
    // Each event is written when its session's connection closes.
    let audited = || {
        env.audit()
            .into_iter()
            .filter(|e| e["event"] == "api" && e["subresource"] == "portforward")
            .count()
    };
    assert!(wait_for(10, || audited() == 2), "{} events", audited());
}

/// kubectl cp (tar over exec) into an allowed pod and back: the bytes survive the proxy.
fn kubectl_cp_through_the_proxy_copies_into_and_out_of_an_allowed_pod() {
    let env = setup("rpxcp");
    // The fake's pods run commands on this machine: the pod's directory is a temporary one.
    let pod_dir = tempfile::tempdir().unwrap();
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let local = env.scratch.path().join("payload.bin");
    std::fs::write(&local, &payload).unwrap();
    std::os::unix::fs::chown(&local, Some(env.user.uid()), None).unwrap();
    let in_pod = pod_dir.path().join("payload.bin");
    let remote = format!("{FRONTEND}:{}", in_pod.display());
    let r = run(&mut env.kubectl(&["cp", "-c", "nginx", local.to_str().unwrap(), &remote]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read(&in_pod).unwrap() == payload,
        "the pod's copy differs"
    );
    let back = env.scratch.path().join("back.bin");
    let r = run(&mut env.kubectl(&["cp", "-c", "nginx", &remote, back.to_str().unwrap()]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::read(&back).unwrap() == payload,
        "the copy back differs"
    );
}

fn a_watch_through_the_proxy_shows_only_allowed_pods() {
    let env = setup("rpxwatch");
    let mut child = env
        .kubectl(&["get", "pods", "--watch", "-o", "name"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(shown.contains(FRONTEND), "{shown}");
    assert!(!shown.contains(REDIS), "{shown}");
}

/// The proxy lets the request for an allowed pod's logs through; the cluster's RBAC (which
/// grants the stack's users pods and exec, not logs) answers it.
fn logs_of_an_allowed_pod_reach_the_clusters_rbac() {
    let env = setup("rpxlogs");
    env.demo().handle().clear_events();
    let r = run(&mut env.kubectl(&["logs", FRONTEND, "-c", "nginx"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("User \"rpxlogs\" cannot get resource \"pods/log\""),
        "{}",
        r.stderr
    );
    let seen = env.cluster_saw("/pods/frontend-6d8f7c9b5-x7k2p/log");
    assert_eq!(seen.len(), 1, "{seen:?}");
}

fn rolesh_token_for_a_proxied_cluster_is_refused() {
    let env = setup("rpxtoken");
    let r = run(&mut env.rolesh(&["token", "--cluster", "demo"]));
    assert_eq!(r.code, 77, "{}", r.stdout);
    assert_eq!(r.stdout, "");
    assert!(
        r.stderr.contains(
            "reached through this bastion's API proxy: its token never leaves the broker"
        ),
        "{}",
        r.stderr
    );
}

fn each_user_acts_as_themself() {
    let env = setup("rpxfirst");
    env.demo().handle().clear_events();
    let other = TestUser::create("rpxother", &[]);
    // The other user with the first user's kubeconfig and home: the proxy knows who
    // connects, and the kubeconfig names no one.
    let kubeconfig = env.kubeconfig();
    std::fs::set_permissions(
        &kubeconfig,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    std::fs::set_permissions(
        env.scratch.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mut cmd = Command::new(KUBECTL);
    cmd.args(["--context", "demo/web", "get", "pods", "-o", "name"])
        .env_clear()
        .env("HOME", env.scratch.path())
        .env("KUBECONFIG", &kubeconfig)
        .uid(other.uid())
        .stdin(Stdio::null());
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let users = env.users_seen();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rpxother")),
        "{users:?}"
    );
}

fn requests_are_audited_as_api_events() {
    let env = setup("rpxaudit");
    let r = run(&mut env.kubectl(&["exec", FRONTEND, "-c", "nginx", "--", "sh", "-c", "exit 0"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&mut env.kubectl(&["exec", FRONTEND, "-c", "nginx", "--", "sh", "-c", "exit 7"]));
    assert_eq!(r.code, 7, "{}", r.stderr);
    let _ = run(&mut env.kubectl(&["get", "pod", REDIS]));
    let audit = env.audit();
    let api: Vec<&Value> = audit.iter().filter(|e| e["event"] == "api").collect();
    let exec = api
        .iter()
        .find(|e| e["subresource"] == "exec")
        .unwrap_or_else(|| panic!("{api:?}"));
    assert_eq!(exec["user"], "rpxaudit", "{exec}");
    assert_eq!(exec["cluster"], "demo", "{exec}");
    assert_eq!(exec["namespace"], "web", "{exec}");
    assert_eq!(exec["name"], FRONTEND, "{exec}");
    assert_eq!(exec["command"], "sh -c exit 0", "{exec}");
    assert_eq!(exec["status"], 101, "{exec}");
    assert_eq!(exec["exit_code"], 0, "{exec}");
    let failed = api
        .iter()
        .find(|e| e["command"] == "sh -c exit 7")
        .unwrap_or_else(|| panic!("{api:?}"));
    assert_eq!(failed["exit_code"], 7, "{failed}");
    let refused = api
        .iter()
        .find(|e| e["name"] == REDIS)
        .unwrap_or_else(|| panic!("{api:?}"));
    assert_eq!(refused["status"], 403, "{refused}");
    assert!(
        api.iter().all(|e| e["verb"] != "list"),
        "reads are not audited by default"
    );
}

/// A process of the user outside any session (here: started by root, not by a login) is
/// refused before the cluster, and the refusal is audited.
fn a_process_outside_a_live_session_is_refused_and_audited() {
    let env = setup_for_sessions("rpxnosess");
    env.demo().handle().clear_events();
    // Outside a session the broker gives no cluster, so kubectl is pointed at the proxy by
    // hand (its address from the broker's log; the refusal comes before TLS matters).
    let server = format!("https://{}/clusters/demo", env.proxy_address());
    let mut cmd = Command::new(KUBECTL);
    cmd.args([
        "--server",
        &server,
        "--insecure-skip-tls-verify",
        "--token",
        "x",
    ])
    .args(["get", "pods", "-n", "web"])
    .env_clear()
    .env("HOME", env.scratch.path())
    .uid(env.user.uid())
    .stdin(Stdio::null());
    let r = run(&mut cmd);
    assert_ne!(r.code, 0, "{}", r.stdout);
    // kubectl shows a refused discovery as "Forbidden: unknown"; the answer says why.
    assert!(
        r.stderr.contains("Error from server (Forbidden)"),
        "{}",
        r.stderr
    );
    let mut curl = Command::new("curl");
    curl.args(["-sk", "-w", "\n%{http_code}"])
        .arg(format!("{server}/api/v1/namespaces/web/pods"))
        .env_clear()
        .uid(env.user.uid())
        .stdin(Stdio::null());
    let r = run(&mut curl);
    assert!(
        r.stdout
            .contains("no live rolesh session for this connection")
            && r.stdout.ends_with("\n403"),
        "{}",
        r.stdout
    );
    assert!(env.demo().handle().events().is_empty());
    let denied = env
        .audit()
        .into_iter()
        .find(|e| e["event"] == "denied" && e["reason"] == "not_in_session")
        .expect("a denied event");
    assert_eq!(denied["user"], "rpxnosess", "{denied}");
}

/// What the kubeconfig holds for a proxied cluster is no credential: the cluster itself
/// refuses it.
fn the_kubeconfigs_placeholder_is_refused_by_the_cluster_itself() {
    let env = setup("rpxplace");
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    let placeholder = "rolesh-proxy-no-credential";
    assert!(kubeconfig.contains(placeholder), "{kubeconfig}");
    let direct = env.demo().kubeconfig(
        "direct",
        &rolesh_testkit::fake_k8s::KubeUser::Token(placeholder.into()),
    );
    let path = env.scratch.path().join("direct.yaml");
    std::fs::write(&path, direct).unwrap();
    env.demo().handle().clear_events();
    let mut cmd = Command::new(KUBECTL);
    cmd.args(["--kubeconfig", path.to_str().unwrap()])
        .args(["get", "pods", "-n", "web"])
        .env_clear()
        .env("HOME", env.scratch.path())
        .stdin(Stdio::null());
    let r = run(&mut cmd);
    assert_ne!(r.code, 0, "{}", r.stdout);
    assert!(
        r.stderr
            .contains("the server has asked for the client to provide credentials"),
        "{}",
        r.stderr
    );
    let statuses: Vec<u16> = env
        .demo()
        .handle()
        .events()
        .iter()
        .map(|e| e.status)
        .collect();
    assert!(
        !statuses.is_empty() && statuses.iter().all(|s| *s == 401),
        "{statuses:?}"
    );
}

/// The cluster drops every connection while kubectl watches through the proxy: the watch
/// ends with an `ERROR` event whose `Status` kubectl prints (its table shows the reason;
/// `-o name` would print nothing of it), and the broker keeps no socket of it.
fn an_upstream_broken_mid_watch_ends_it_with_a_clear_error_and_no_leaked_connection() {
    let env = setup("rpxbreak");
    env.kubeconfig();
    let sockets = broker_sockets(env.broker.pid());
    env.demo().handle().clear_events();
    let mut child = env
        .kubectl(&["get", "pods", "--watch"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let watching = wait_for(10, || {
        env.demo()
            .handle()
            .events()
            .iter()
            .any(|e| e.verb == "watch")
    });
    assert!(watching, "the watch never reached the cluster");
    std::thread::sleep(std::time::Duration::from_millis(300));
    env.demo().handle().cut_connections();
    let ended = wait_for(10, || matches!(child.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(ended, "kubectl still watching: {stdout} {stderr}");
    assert!(stdout.contains(FRONTEND), "{stdout}");
    assert!(
        format!("{stdout}{stderr}")
            .contains("the connection to cluster demo broke during the watch"),
        "exit {:?}: {stdout} {stderr}",
        out.status.code()
    );
    let released = wait_for(10, || broker_sockets(env.broker.pid()) <= sockets + 2);
    assert!(
        released,
        "the broker holds {} sockets, {sockets} before the watch",
        broker_sockets(env.broker.pid())
    );
}

/// 200 watches at once through the proxy (curl, one connection each, as the user): the
/// broker's resident memory grows by less than 64 MiB, and every socket goes at the end.
fn a_users_watches_keep_the_brokers_memory_bounded_and_stop_at_256() {
    const WATCHES: usize = 260;
    const ALLOWED: usize = 256;
    let env = setup("rpxmany");
    let (server, ca) = env.proxy_endpoint();
    let pid = env.broker.pid();
    let (rss_before, sockets) = (resident_kib(pid), broker_sockets(pid));
    let url = format!("{server}/api/v1/namespaces/web/pods?watch=true");
    // (Line-buffered: curl is killed in the end, and each code must be out by then.)
    let mut curl = Command::new("stdbuf");
    curl.args([
        "-oL",
        "curl",
        "-sS",
        "--http1.1",
        "--parallel",
        "--parallel-immediate",
    ])
    .args(["--parallel-max", &WATCHES.to_string(), "--max-time", "60"])
    .args(["-w", "%{http_code}\\n", "--cacert"])
    .arg(&ca);
    for _ in 0..WATCHES {
        curl.args(["-o", "/dev/null", &url]);
    }
    let mut curl = curl
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .uid(env.user.uid())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Each watch is a connection from curl and one to the cluster; past 256, the
    // connection from curl gets 429 and none goes to the cluster.
    let all_open = wait_for(30, || broker_sockets(pid) >= sockets + 2 * ALLOWED);
    let open = broker_sockets(pid) - sockets;
    let rss_during = (0..5)
        .map(|_| {
            std::thread::sleep(std::time::Duration::from_millis(200));
            resident_kib(pid)
        })
        .max()
        .unwrap();
    let _ = curl.kill();
    let out = curl.wait_with_output().unwrap();
    assert!(all_open, "only {open} sockets opened for {ALLOWED} watches");
    let codes = String::from_utf8_lossy(&out.stdout);
    let refused = codes.lines().filter(|c| *c == "429").count();
    assert_eq!(refused, WATCHES - ALLOWED, "{codes}");
    let grown = rss_during.saturating_sub(rss_before);
    println!(
        "{ALLOWED} watches: broker RSS {rss_before} KiB -> {rss_during} KiB (+{grown} KiB, {} KiB a watch)",
        grown / ALLOWED as u64
    );
    assert!(grown < 64 * 1024, "the broker grew by {grown} KiB");
    // (The upstream pool may keep an idle connection or two for reuse.)
    let released = wait_for(15, || broker_sockets(pid) <= sockets + 2);
    assert!(
        released,
        "the broker holds {} sockets, {sockets} before the watches",
        broker_sockets(pid)
    );
}

/// `rolesh check`, `explain` and `rbac` say which clusters go through the proxy and what
/// that means for their selectors (`demo` proxied; `staging`, with selectors, direct).
fn check_explain_and_rbac_name_each_clusters_route() {
    let env = setup("rpxroute");
    let config = env.broker.config_path();
    let r = run(rolesh().args(["check", "--config"]).arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("cluster demo: through the API proxy (https://127.0.0.1:0/clusters/demo): the allowlist and selectors bind every kubectl call; the token stays in the broker\n"), "{}", r.stdout);
    assert!(r.stdout.contains("cluster staging: direct: the selectors of web bind only the picker and rolesh exec; kubectl reaches every pod RBAC allows there (access = \"proxy\" binds it too)\n"), "{}", r.stdout);
    let r = run(rolesh()
        .args(["explain", "rpxroute", "--config"])
        .arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("  demo (us-east-1, through the API proxy)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("  staging (eu-west-1, direct)"),
        "{}",
        r.stdout
    );
    let r = run(rolesh().args(["rbac", "--config"]).arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("rolesh: demo reached through the API proxy: the same objects apply"),
        "{}",
        r.stderr
    );
}

/// What a hostile user tried with curl, each refused before it reached the cluster (or,
/// for a watch the server would read otherwise, answered with the allowed pods only).
fn requests_shaped_to_get_around_the_policy_are_refused_before_the_cluster() {
    let env = setup("rpxcurl");
    let curl = |path: &str, extra: &[&str]| env.curl(path, extra);
    env.demo().handle().clear_events();
    let refused = [
        (
            "/%61pi/v1/namespaces/kube-system/secrets",
            "400",
            "percent-encoding",
        ),
        (
            "/api/v1/namespaces/web/%70ods/redis-0",
            "400",
            "percent-encoding",
        ),
        (
            "/api/v1/namespaces/web/../kube-system/pods",
            "400",
            "dot segments",
        ),
        (
            "/api/v1/namespaces/web/pods/redis-0:6379/proxy",
            "403",
            "is not a pod name",
        ),
        (
            "/api/v1/namespaces/web/services/redis:6379/proxy",
            "403",
            "a service's proxy",
        ),
        (
            "/api/v1/nodes/ip-10-0-1-23/proxy/pods",
            "403",
            "a node's proxy",
        ),
        (
            "/api/v1/namespaces/web/pods?watch=0&watch=true",
            "403",
            "more than once",
        ),
        (
            "/metrics",
            "403",
            "is not allowed through this bastion's proxy",
        ),
    ];
    for (path, code, why) in refused {
        let (got, body) = curl(path, &[]);
        assert_eq!(got, code, "{path}: {body}");
        assert!(body.contains(why), "{path}: {body}");
    }
    // (HTTP/1.1: an HTTP/2 request has no Upgrade.)
    let websocket = [
        "--http1.1",
        "-H",
        "Connection: Upgrade",
        "-H",
        "Upgrade: websocket",
        "-H",
        "Sec-WebSocket-Version: 13",
        "-H",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ];
    let (got, body) = curl("/api/v1/namespaces/web/pods?watch=true", &websocket);
    assert_eq!(got, "403", "{body}");
    assert!(
        body.contains("only exec, attach and port-forward may switch protocols"),
        "{body}"
    );
    // (The proxy may ask discovery, `/api/v1`, whether nodes are cluster-scoped.)
    let reached: Vec<String> = env
        .cluster_saw("/")
        .into_iter()
        .filter(|e| !e.starts_with("/api/v1 "))
        .collect();
    assert!(reached.is_empty(), "the cluster saw {reached:?}");
    // A watch of one pod is a watch (a long request on its own connection), not a GET
    // whose answer is read whole: refused for a pod outside the selectors, streamed for
    // one inside.
    let (got, body) = curl("/api/v1/namespaces/web/pods/redis-0?watch=1", &[]);
    assert_eq!(got, "403", "{body}");
    let (got, body) = curl(
        &format!("/api/v1/namespaces/web/pods/{FRONTEND}?watch=1&timeoutSeconds=1"),
        &[],
    );
    assert_eq!(got, "200", "{body}");
    assert!(body.contains("\"type\":\"ADDED\""), "{body}");
    // What the server takes for a watch (`watch=yes`) is filtered as one.
    let (got, body) = curl(
        "/api/v1/namespaces/web/pods?watch=yes&timeoutSeconds=1",
        &[],
    );
    assert_eq!(got, "200", "{body}");
    assert!(body.contains(FRONTEND), "{body}");
    assert!(!body.contains(REDIS), "{body}");
}

/// helm 3.17 (client-go) through the proxy: its discovery and its list of release secrets
/// pass the proxy and reach the cluster, whose RBAC (pods only) refuses the secrets as the
/// user; a helm in another namespace is refused by the proxy itself.
fn helm_through_the_proxy_reaches_the_clusters_rbac_as_the_user() {
    require(
        "helm 3 on /usr/local/bin (scripts/setup installs it)",
        std::path::Path::new("/usr/local/bin/helm").exists(),
    );
    let env = setup("rpxhelm");
    let helm = |args: &[&str]| {
        let mut cmd = Command::new("/usr/local/bin/helm");
        cmd.args(["--kube-context", "demo/web"])
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", env.scratch.path())
            .env("KUBECONFIG", env.kubeconfig())
            .uid(env.user.uid())
            .stdin(Stdio::null());
        run(&mut cmd)
    };
    env.demo().handle().clear_events();
    let r = helm(&["list", "-n", "web"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stderr
            .contains("secrets is forbidden: User \"rpxhelm\" cannot list resource \"secrets\""),
        "{}",
        r.stderr
    );
    let seen = env.cluster_saw("/api/v1/namespaces/web/secrets");
    assert!(seen.iter().any(|e| e.ends_with(" 403")), "{seen:?}");
    let r = helm(&["list", "-n", "kube-system"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("allowed: web, jobs"), "{}", r.stderr);
    assert!(env.cluster_saw("kube-system").is_empty());
}

/// Runs `kubectl port-forward` (`command`), sends each of `lines` through the local port it
/// prints, and stops it: the answers, and what kubectl said (its first line and stderr).
fn through_port_forward(mut command: Command, lines: &[&str]) -> (Vec<String>, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let _ = std::io::BufRead::read_line(&mut stdout, &mut first);
    // kubectl prints a line for each connection: keep its stdout open.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let local: Option<u16> = first
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let answers = local
        .map(|local| lines.iter().map(|l| pod_port::ask(local, l)).collect())
        .unwrap_or_default();
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let said = format!("{first} {}", String::from_utf8_lossy(&output.stderr));
    (answers, said)
}

/// How many sockets the process `pid` has open.
fn broker_sockets(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

/// The resident memory of `pid` (VmRSS), KiB.
fn resident_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Whether `done` holds within `seconds` (asked every 50 ms).
fn wait_for(seconds: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    done()
}

/// `kubectl auth whoami` on `onprem` through the proxy: the cluster sees the Unix user in
/// `rolesh:default` (the stack maps everyone with `default_role`), with the bastion as an
/// extra, though only the broker's token reached it.
fn onprem_whoami_is_the_unix_user_in_its_rolesh_group() {
    let env = setup_onprem("rpxonwho");
    let r = run(&mut env.kubectl_onprem(&["auth", "whoami", "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let who: Value = serde_json::from_str(&r.stdout).unwrap();
    let user = &who["status"]["userInfo"];
    assert_eq!(user["username"], "rpxonwho", "{who}");
    assert_eq!(
        user["groups"],
        serde_json::json!(["rolesh:default", "system:authenticated"]),
        "{who}"
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let short = host.trim().split('.').next().unwrap().to_string();
    assert_eq!(
        user["extra"]["rolesh.io/bastion"],
        serde_json::json!([short]),
        "{who}"
    );
    // explain and check say how onprem is reached.
    let config = env.broker.config_path();
    let r = run(rolesh()
        .args(["explain", "rpxonwho", "--config"])
        .arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(
            "  onprem (kubernetes, through the API proxy, as rpxonwho in rolesh:default), default namespace web\n"
        ),
        "{}",
        r.stdout
    );
    let r = run(rolesh().args(["check", "--config"]).arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("cluster onprem: kubernetes, through the API proxy"),
        "{}",
        r.stdout
    );
    // Every request reached the cluster as the user, none as the broker itself.
    let users: Vec<Option<String>> = env
        .onprem()
        .handle()
        .events()
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rpxonwho")),
        "{users:?}"
    );
}

/// The cluster's RBAC decides as the user (pods yes, secrets no); the proxy's allowlist
/// and selectors hold as on EKS; `--as` is refused by the proxy.
fn onprem_rbac_decides_as_the_user_and_as_is_refused() {
    let env = setup_onprem("rpxonrbac");
    let r = run(&mut env.kubectl_onprem(&["get", "pods", "-o", "name"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(FRONTEND) && !r.stdout.contains(REDIS),
        "{}",
        r.stdout
    );
    let r = run(&mut env.kubectl_onprem(&["get", "secrets"]));
    assert_ne!(r.code, 0);
    assert!(
        r.stderr
            .contains("User \"rpxonrbac\" cannot list resource \"secrets\""),
        "{}",
        r.stderr
    );
    let r = run(&mut env.kubectl_onprem(&["-n", "kube-system", "get", "pods"]));
    assert!(r.stderr.contains("allowed: web, jobs"), "{}", r.stderr);
    let r = run(&mut env.kubectl_onprem(&["--as", "admin", "get", "pods"]));
    assert!(
        r.stderr
            .contains("impersonation is not allowed through this bastion"),
        "{}",
        r.stderr
    );
}

/// Exec (its exit code, and the audit event's) and port-forward to `onprem`, with kubectl
/// and with `rolesh exec` (whose picker lists onprem's pods as the user).
fn onprem_exec_and_port_forward_work_through_impersonation() {
    let env = setup_onprem("rpxonexec");
    let target = format!("onprem/web/{FRONTEND}");
    let r = run(&mut env.rolesh(&["exec", &target, "--", "sh", "-c", "exit 6"]));
    assert_eq!(r.code, 6, "{}", r.stderr);
    let r = run(&mut env.rolesh(&["exec", "onprem/web", "--", "true"]));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains(&target) && !r.stderr.contains("redis-0"),
        "{}",
        r.stderr
    );
    let r = run(&mut env.kubectl_onprem(&[
        "exec",
        FRONTEND,
        "-c",
        "nginx",
        "--",
        "sh",
        "-c",
        "echo on; exit 5",
    ]));
    assert_eq!((r.code, r.stdout.as_str()), (5, "on\n"), "{}", r.stderr);
    let port = pod_port::line_server();
    let forward = &[
        "port-forward",
        FRONTEND,
        "--address",
        "127.0.0.1",
        &format!(":{port}"),
    ];
    let (answers, said) = through_port_forward(env.kubectl_onprem(forward), &["over onprem"]);
    assert_eq!(answers, ["pod says: over onprem\n"], "{said}");
    // rolesh exec's and kubectl's execs are audited with their exit codes.
    let codes = || {
        let mut codes: Vec<i64> = env
            .audit()
            .into_iter()
            .filter(|e| {
                e["event"] == "api" && e["cluster"] == "onprem" && e["subresource"] == "exec"
            })
            .filter_map(|e| e["exit_code"].as_i64())
            .collect();
        codes.sort();
        codes
    };
    assert!(wait_for(10, || codes() == [5, 6]), "{:?}", env.audit());
}

/// The broker's token for `onprem` is in no kubeconfig, broker log or process argv, and
/// `rolesh token --cluster onprem` gives nothing.
fn onprem_the_brokers_token_is_in_no_kubeconfig_log_or_argv() {
    let env = setup_onprem("rpxonsecret");
    let token_file = env.broker.config_path().join("onprem.token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    assert!(token.len() >= 32);
    let kubeconfig = std::fs::read_to_string(env.kubeconfig()).unwrap();
    assert!(kubeconfig.contains("onprem"), "{kubeconfig}");
    let r = run(&mut env.kubectl_onprem(&["get", "pods", "-o", "name"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&mut env.rolesh(&["token", "--cluster", "onprem"]));
    assert_ne!(r.code, 0);
    let cmdlines: String = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .collect();
    for (what, text) in [
        ("the kubeconfig", kubeconfig),
        ("the broker's log", env.broker.log()),
        ("rolesh token's answer", format!("{}{}", r.stdout, r.stderr)),
        ("a process's argv", cmdlines),
        (
            "the audit file",
            std::fs::read_to_string(env.audit.path().join("audit.jsonl")).unwrap_or_default(),
        ),
    ] {
        assert!(!text.contains(&token), "the broker's token is in {what}");
    }
}

/// A credential file others may read: the broker refuses to start with it, names the
/// file, and a running broker keeps its configuration when it is reloaded with one.
fn onprem_a_credential_others_may_read_stops_the_broker_and_a_reload() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = setup_onprem("rpxonperm");
    let token_file = env.broker.config_path().join("onprem.token");
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let why = format!(
        "{} has mode 0644: a cluster credential must be readable by its owner alone",
        token_file.display()
    );
    // Reload: refused with the path; the proxy keeps working with what it had.
    env.broker.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_for(10, || env
            .broker
            .log()
            .contains("configuration reload failed")),
        "{}",
        env.broker.log()
    );
    assert!(env.broker.log().contains(&why), "{}", env.broker.log());
    // Requests refuse too: the file is checked whenever it changed (its mode included)
    // before it is used, and a 0644 credential is not.
    let r = run(&mut env.kubectl_onprem(&["get", "pods", "-o", "name"]));
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("ServiceUnavailable"), "{}", r.stderr);
    // Start: refused.
    env.broker.kill();
    let mut broker = std::process::Command::new(env!("CARGO_BIN_EXE_rolesh"));
    broker
        .args(["broker", "--config"])
        .arg(env.broker.config_path())
        .arg("--socket")
        .arg(env.scratch.path().join("never.sock"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin");
    let r = run(&mut broker);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains(&why), "{}", r.stderr);
    assert!(r.stderr.contains("the broker cannot start"), "{}", r.stderr);
}

/// The broker's credential becomes a client certificate (its token file gone) and the
/// configuration is reloaded: the cluster now knows the broker by its certificate, and
/// still sees the user.
fn onprem_a_client_certificate_replaces_the_token_on_reload() {
    use std::os::unix::fs::PermissionsExt;
    let env = setup_onprem("rpxoncert");
    let dir = env.broker.config_path();
    let (certificate, key) = env
        .onprem()
        .handle()
        .client_certificate("rolesh-broker", &[])
        .unwrap();
    for (name, pem) in [("onprem.crt", &certificate), ("onprem.key", &key)] {
        std::fs::write(dir.join(name), pem).unwrap();
        std::fs::set_permissions(dir.join(name), std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let token_file = dir.join("onprem.token");
    let config = std::fs::read_to_string(dir.join("config.toml")).unwrap();
    let line = format!("credentials.token_file = \"{}\"", token_file.display());
    assert!(config.contains(&line), "{config}");
    let config = config.replace(
        &line,
        &format!(
            "credentials.client_certificate = \"{}\"\ncredentials.client_key = \"{}\"",
            dir.join("onprem.crt").display(),
            dir.join("onprem.key").display()
        ),
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    std::fs::remove_file(&token_file).unwrap();
    env.broker.signal(nix::sys::signal::Signal::SIGHUP);
    assert!(
        wait_for(10, || env.broker.log().contains("configuration reloaded")),
        "{}",
        env.broker.log()
    );
    env.onprem().handle().clear_events();
    let r = run(&mut env.kubectl_onprem(&["auth", "whoami", "-o", "json"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let who: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(who["status"]["userInfo"]["username"], "rpxoncert", "{who}");
    let users: Vec<Option<String>> = env
        .onprem()
        .handle()
        .events()
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rpxoncert")),
        "{users:?}"
    );
}
