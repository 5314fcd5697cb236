//! The Kubernetes API proxy (`[[cluster]] access = "proxy"`) with real kubectl (1.33,
//! WebSocket exec) as real accounts, against the testkit's fake EKS `demo`, whose
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
use serde_json::Value;

common::harness::tests!(
    root: [
        kubectl_lists_only_the_pods_the_selectors_allow,
        the_cluster_sees_the_unix_user_and_the_kubeconfig_holds_no_credential,
        a_pod_outside_the_selectors_is_refused_for_every_verb_before_the_cluster,
        a_namespace_outside_the_allowlist_is_refused_before_the_cluster,
        impersonation_is_refused,
        exec_through_the_proxy_gives_the_remote_exit_code,
        a_watch_through_the_proxy_shows_only_allowed_pods,
        logs_of_an_allowed_pod_reach_the_clusters_rbac,
        rolesh_token_for_a_proxied_cluster_is_refused,
        each_user_acts_as_themself,
        requests_are_audited_as_api_events,
    ],
);

/// kubectl 1.33 (WebSocket exec), never gcloud's dispatcher.
const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
const FRONTEND: &str = "frontend-6d8f7c9b5-x7k2p";
const REDIS: &str = "redis-0";

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

/// A broker whose `proxied` clusters go through the proxy.
fn setup_proxying(user: &str, proxied: &[&str]) -> Env {
    require(
        "kubectl 1.33 (google-cloud-sdk)",
        std::path::Path::new(KUBECTL).exists(),
    );
    let audit = session_visible_tempdir("rolesh-proxy-audit");
    let drop_in = format!(
        "[audit]\nfile = \"{}/audit.jsonl\"\n",
        audit.path().display()
    );
    let broker = BrokerProc::start_stack_proxied(&drop_in, proxied);
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
        let mut cmd = Command::new(KUBECTL);
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

    fn demo(&self) -> &rolesh_testkit::fake_k8s::FakeK8s {
        self.broker.stack().unwrap().cluster("demo").unwrap()
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
    let users: Vec<Option<String>> = env
        .demo()
        .handle()
        .events()
        .into_iter()
        .map(|e| e.user)
        .collect();
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
    let users: Vec<Option<String>> = env
        .demo()
        .handle()
        .events()
        .into_iter()
        .map(|e| e.user)
        .collect();
    assert!(
        !users.is_empty() && users.iter().all(|u| u.as_deref() == Some("rpxother")),
        "{users:?}"
    );
}

fn requests_are_audited_as_api_events() {
    let env = setup("rpxaudit");
    let r = run(&mut env.kubectl(&["exec", FRONTEND, "-c", "nginx", "--", "sh", "-c", "exit 0"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
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
