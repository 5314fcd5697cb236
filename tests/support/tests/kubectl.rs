//! The fake Kubernetes API server used by real kubectl: the newest one here (1.30+, WebSocket
//! exec), Debian's kubectl 1.20 (SPDY exec, refused), and /usr/bin/kubectl. Credentials come
//! from the rolesh binary as exec plugin (`rolesh token --cluster-name demo --role-arn …`),
//! which assumes the role through the fake STS; the fake cluster verifies the token with the
//! fake STS and maps `role/bastion-alice` to `alice` (group web-devs) and `role/bastion-bob` to
//! `bob` (no RBAC).

mod kube;

use kube::{ALICE_ROLE, BOB_ROLE, Cluster, Kubectl, names};
use rolesh_testkit::fake_k8s::pod_port;
use std::io::{Read, Write};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FRONTEND_1: &str = "frontend-6d8f7c9b5-x7k2p";
const FRONTEND_2: &str = "frontend-6d8f7c9b5-q9m4z";
const CANARY: &str = "frontend-canary-7b5d4c8f9-z8r2w";
const EDGE: &str = "edge-proxy-5f6c7d8b9-h2j5k";

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    names.sort();
    names
}

#[test]
fn every_kubectl_lists_namespaces_and_selects_pods() {
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    for kubectl in kube::all() {
        let namespaces = names(&cluster.ok(&kubectl, &alice, &["get", "namespaces"]));
        assert_eq!(
            namespaces,
            sorted(&["default", "jobs", "kube-system", "web"]),
            "{kubectl:?}"
        );

        let cases: [(&str, &[&str]); 6] = [
            ("app=frontend", &[FRONTEND_1, FRONTEND_2, CANARY]),
            ("tier in (web,edge)", &[FRONTEND_1, FRONTEND_2, EDGE]),
            (
                "app=frontend,track notin (canary)",
                &[FRONTEND_1, FRONTEND_2],
            ),
            ("app in (frontend),!track", &[FRONTEND_1, FRONTEND_2]),
            ("tier,tier!=web", &[EDGE, "api-7c9d8e6f5-m3n8p", "redis-0"]),
            ("app=nothing", &[]),
        ];
        for (selector, expected) in cases {
            let output = cluster.ok(
                &kubectl,
                &alice,
                &["get", "pods", "-n", "web", "-l", selector],
            );
            assert_eq!(
                names(&output),
                sorted(expected),
                "{selector} with {kubectl:?}:\n{output}"
            );
        }

        // The default (Table) output has the columns of a real cluster.
        let table = cluster.ok(
            &kubectl,
            &alice,
            &["get", "pods", "-n", "web", "-l", "app=frontend"],
        );
        let header: Vec<&str> = table
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        assert_eq!(
            header,
            ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
            "{table}"
        );
        assert!(table.contains("ContainerCreating"), "{table}");

        let by_field = cluster.ok(
            &kubectl,
            &alice,
            &[
                "get",
                "pods",
                "-n",
                "web",
                "--field-selector",
                "status.phase=Pending",
                "-o",
                "name",
            ],
        );
        assert_eq!(by_field.trim(), format!("pod/{CANARY}"), "{kubectl:?}");
        let by_name = cluster.ok(
            &kubectl,
            &alice,
            &[
                "get",
                "pods",
                "-n",
                "web",
                "--field-selector",
                &format!("metadata.name={EDGE}"),
                "-o",
                "name",
            ],
        );
        assert_eq!(by_name.trim(), format!("pod/{EDGE}"));

        let json: serde_json::Value = serde_json::from_str(&cluster.ok(
            &kubectl,
            &alice,
            &["get", "pod", FRONTEND_2, "-n", "web", "-o", "json"],
        ))
        .expect("JSON pod");
        assert_eq!(json["spec"]["containers"][1]["name"], "log-shipper");
        assert_eq!(json["spec"]["initContainers"][0]["name"], "migrate");
        assert_eq!(json["spec"]["ephemeralContainers"][0]["name"], "debugger");
        assert_eq!(json["status"]["phase"], "Running");

        let err = cluster.fails(
            &kubectl,
            &alice,
            &["get", "pods", "-n", "web", "-l", "app in frontend"],
        );
        assert!(err.contains("unable to parse requirement"), "{err}");
        let err = cluster.fails(&kubectl, &alice, &["get", "pod", "nope", "-n", "web"]);
        assert!(err.contains("pods \"nope\" not found"), "{err}");
    }
}

#[test]
fn whoami_shows_the_mapped_user() {
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    let mut tested = 0;
    for kubectl in kube::all().into_iter().filter(Kubectl::has_whoami) {
        let output = cluster.ok(&kubectl, &alice, &["auth", "whoami", "-o", "json"]);
        let review: serde_json::Value = serde_json::from_str(&output).expect("JSON");
        let user = &review["status"]["userInfo"];
        assert_eq!(user["username"], "alice", "{output}");
        assert_eq!(
            user["groups"],
            serde_json::json!(["web-devs", "system:authenticated"])
        );
        assert_eq!(
            user["extra"]["arn"][0],
            "arn:aws:sts::123456789012:assumed-role/bastion-alice/EKSGetTokenAuth"
        );
        assert_eq!(user["extra"]["canonicalArn"][0], ALICE_ROLE);
        let table = cluster.ok(&kubectl, &alice, &["auth", "whoami"]);
        assert!(
            table
                .lines()
                .any(|l| l.starts_with("Username") && l.ends_with("alice")),
            "{table}"
        );
        tested += 1;
    }
    assert!(
        tested > 0 || !kube::require_all(),
        "no kubectl with auth whoami"
    );
}

#[test]
fn can_i_answers_from_rbac() {
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    let bob = cluster.kubeconfig_for_role(BOB_ROLE);
    for kubectl in kube::all() {
        let can = |config: &std::path::Path, args: &[&str]| {
            let mut all = vec!["auth", "can-i"];
            all.extend_from_slice(args);
            let output = cluster.run(&kubectl, config, &all);
            String::from_utf8_lossy(&output.stdout).trim().to_owned()
        };
        assert_eq!(
            can(
                &alice,
                &["create", "pods", "--subresource=exec", "-n", "web"]
            ),
            "yes"
        );
        assert_eq!(can(&alice, &["list", "pods", "-n", "jobs"]), "yes");
        assert_eq!(
            can(
                &alice,
                &["create", "pods", "--subresource=exec", "-n", "jobs"]
            ),
            "no"
        );
        assert_eq!(can(&alice, &["list", "pods", "-n", "kube-system"]), "no");
        assert_eq!(can(&alice, &["delete", "pods", "-n", "web"]), "no");
        assert_eq!(can(&alice, &["list", "namespaces"]), "yes");
        assert_eq!(can(&bob, &["list", "pods", "-n", "web"]), "no");
        assert_eq!(can(&bob, &["get", "/version"]), "yes", "{kubectl:?}");

        let list = cluster.ok(&kubectl, &alice, &["auth", "can-i", "--list", "-n", "web"]);
        assert!(
            list.lines()
                .any(|l| l.starts_with("pods/exec") && l.contains("[create]")),
            "{list}"
        );
    }
}

#[test]
fn users_without_rbac_get_403() {
    let cluster = Cluster::start();
    let bob = cluster.kubeconfig_for_role(BOB_ROLE);
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    for kubectl in kube::all() {
        let err = cluster.fails(&kubectl, &bob, &["get", "pods", "-n", "web"]);
        assert!(
            err.contains(
                "Error from server (Forbidden): pods is forbidden: User \"bob\" cannot list \
                 resource \"pods\" in API group \"\" in the namespace \"web\""
            ),
            "{kubectl:?}: {err}"
        );
        let err = cluster.fails(&kubectl, &alice, &["get", "pods", "--all-namespaces"]);
        assert!(err.contains("at the cluster scope"), "{err}");
        let err = cluster.fails(&kubectl, &bob, &["get", "namespace", "web"]);
        assert!(err.contains("namespaces \"web\" is forbidden"), "{err}");
        let err = cluster.fails(&kubectl, &bob, &["exec", "-n", "web", EDGE, "--", "true"]);
        assert!(
            err.contains("Forbidden") && err.contains("bob"),
            "{kubectl:?}: {err}"
        );
    }
    // The failures were RBAC's, after authentication succeeded.
    let events = cluster.k8s.handle().events();
    assert!(
        events
            .iter()
            .any(|e| e.status == 403 && e.user.as_deref() == Some("bob"))
    );
    assert!(!events.iter().any(|e| e.status == 401), "{events:?}");
}

#[test]
fn exec_runs_the_command_and_returns_its_exit_code() {
    if kube::newest().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    let mut kubectls = kube::all();
    kubectls.extend(kube::spdy_1_27());
    for kubectl in kubectls {
        let output = cluster.run(
            &kubectl,
            &alice,
            &[
                "exec",
                "-n",
                "web",
                FRONTEND_1,
                "-c",
                "log-shipper",
                "--",
                "sh",
                "-c",
                "echo \"$HOSTNAME $ROLESH_FAKE_CONTAINER\"; echo oops >&2; exit 3",
            ],
        );
        assert_eq!(output.status.code(), Some(3), "{kubectl:?}: {output:?}");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{FRONTEND_1} log-shipper\n")
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("oops"), "{stderr}");
        assert!(
            stderr.contains("command terminated with exit code 3"),
            "{stderr}"
        );

        // The default container is the first one.
        let who = cluster.ok(
            &kubectl,
            &alice,
            &[
                "exec",
                "-n",
                "web",
                FRONTEND_1,
                "--",
                "printenv",
                "ROLESH_FAKE_CONTAINER",
            ],
        );
        assert_eq!(who, "nginx\n");

        // stdin piped through, EOF included.
        let mut child = cluster
            .kubectl(
                &kubectl,
                &alice,
                &[
                    "exec",
                    "-i",
                    "-n",
                    "web",
                    EDGE,
                    "--",
                    "sh",
                    "-c",
                    "cat; echo done",
                ],
            )
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kubectl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(b"hi\n")
            .expect("write stdin");
        let output = child.wait_with_output().expect("kubectl exec -i");
        assert!(output.status.success(), "{output:?}");
        assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\ndone\n");

        let err = cluster.fails(
            &kubectl,
            &alice,
            &["exec", "-n", "web", FRONTEND_1, "-c", "nope", "--", "true"],
        );
        assert!(err.contains("container nope is not valid for pod"), "{err}");
        let err = cluster.fails(
            &kubectl,
            &alice,
            &["exec", "-n", "web", EDGE, "--", "/nonexistent/cmd"],
        );
        assert!(err.contains("executable file not found"), "{err}");
        // Alice may read pods in jobs but not exec there.
        let err = cluster.fails(
            &kubectl,
            &alice,
            &["exec", "-n", "jobs", "backfill-2h7x9", "--", "true"],
        );
        assert!(
            err.contains(
                "cannot create resource \"pods/exec\" in API group \"\" in the namespace \"jobs\""
            ),
            "{err}"
        );
    }
    // Exec was authorized as `create pods/exec` whatever the method.
    let exec_events: Vec<_> = cluster
        .k8s
        .handle()
        .events()
        .into_iter()
        .filter(|e| e.path.ends_with("/exec"))
        .collect();
    assert!(!exec_events.is_empty());
    assert!(
        exec_events.iter().all(|e| e.verb == "create"),
        "{exec_events:?}"
    );
}

/// Runs kubectl in a PTY of `rows`x`cols`; `script` drives it (reads what it printed so far,
/// resizes, types). Returns the exit code and everything printed.
fn in_pty(
    cluster: &Cluster,
    kubectl: &Kubectl,
    kubeconfig: &std::path::Path,
    args: &[&str],
    script: impl FnOnce(&dyn Fn() -> String, &pty_process::blocking::Pty),
) -> (Option<i32>, String) {
    let (pty, pts) = pty_process::blocking::open().expect("open a pty");
    pty.resize(pty_process::Size::new(30, 100)).expect("size");
    let child = pty_process::blocking::Command::new(&kubectl.path)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", cluster.home.path())
        .env("KUBECONFIG", kubeconfig)
        .env("TERM", "xterm")
        .spawn(pts)
        .expect("spawn kubectl in a pty");
    let pty = Arc::new(pty);
    let output = Arc::new(Mutex::new(Vec::new()));
    let reader = {
        let (pty, output) = (Arc::clone(&pty), Arc::clone(&output));
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once kubectl and its terminal are gone.
            while let Ok(n) = (&*pty).read(&mut buf) {
                if n == 0 {
                    break;
                }
                output.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        })
    };
    let so_far = || String::from_utf8_lossy(&output.lock().expect("lock")).into_owned();
    script(&so_far, &pty);
    let mut child = child;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "kubectl did not exit: {}",
            so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    drop(pty);
    let _ = reader.join();
    let printed = String::from_utf8_lossy(&output.lock().expect("lock")).into_owned();
    (status.code(), printed)
}

fn wait_for(so_far: &dyn Fn() -> String, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !so_far().contains(what) {
        assert!(
            Instant::now() < deadline,
            "never printed {what:?}: {:?}",
            so_far()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A shell loop that waits while the terminal's size is still `rows_cols` ("24 80").
fn while_size_is(rows_cols: &str) -> String {
    format!("while [ \"$(stty size)\" = \"{rows_cols}\" ]; do sleep 0.05; done")
}

#[test]
fn exec_with_a_tty_runs_in_a_pty_and_follows_resizes() {
    if kube::newest().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    for kubectl in kube::all().into_iter().filter(Kubectl::websocket_exec) {
        let (code, printed) = in_pty(
            &cluster,
            &kubectl,
            &alice,
            &[
                "exec",
                "-it",
                "-n",
                "web",
                EDGE,
                "--",
                "sh",
                "-c",
                &format!(
                    "tty; echo \"TERM=$TERM\"; {}; stty size; read line; echo \"got $line\"; \
                     {}; stty size; exit 5",
                    while_size_is("24 80"),
                    while_size_is("30 100")
                ),
            ],
            // Each size reaches the remote on the resize channel, the first one racing the
            // command's start: the remote waits for a size other than the one it had, so a
            // size that never comes fails (timeout) and a late one does not.
            |so_far, pty| {
                wait_for(so_far, "30 100");
                pty.resize(pty_process::Size::new(40, 120)).expect("resize");
                (&*pty).write_all(b"hello\r").expect("type");
                wait_for(so_far, "got hello");
            },
        );
        assert_eq!(code, Some(5), "{kubectl:?}: {printed}");
        assert!(printed.contains("/dev/pts/"), "{printed}");
        assert!(printed.contains("TERM=xterm"), "{printed}");
        assert!(
            printed.contains("40 120"),
            "the resize reached the remote terminal: {printed}"
        );
    }
}

/// A running `kubectl port-forward POD :REMOTE` (killed on drop) and its local port.
struct PortForward {
    child: std::process::Child,
    local: u16,
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kubectl port-forward -n web POD :REMOTE` until it prints its local port.
fn port_forward(
    cluster: &Cluster,
    kubectl: &Kubectl,
    kubeconfig: &std::path::Path,
    pod: &str,
    remote: u16,
) -> PortForward {
    let mut child = cluster
        .kubectl(
            kubectl,
            kubeconfig,
            &[
                "port-forward",
                "-n",
                "web",
                pod,
                "--address",
                "127.0.0.1",
                &format!(":{remote}"),
            ],
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kubectl port-forward");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    // "Forwarding from 127.0.0.1:41234 -> 8080"
    let local = first
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok());
    let Some(local) = local else {
        let _ = child.kill();
        let output = child.wait_with_output().expect("kubectl port-forward");
        panic!("{kubectl:?} did not forward: {first:?} {output:?}");
    };
    std::thread::spawn(move || for _ in lines {});
    PortForward { child, local }
}

#[test]
fn port_forward_reaches_the_pods_port_over_spdy_and_the_websocket_tunnel() {
    let Some(newest) = kube::newest() else {
        return;
    };
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    let port = pod_port::line_server();
    let mut kubectls = vec![newest];
    kubectls.extend(kube::spdy());
    for kubectl in kubectls {
        let forward = port_forward(&cluster, &kubectl, &alice, EDGE, port);
        // Two connections through one session: each is its own pair of streams.
        for n in 0..2 {
            let answer = pod_port::ask(forward.local, &format!("hello {n}"));
            assert_eq!(answer, format!("pod says: hello {n}\n"), "{kubectl:?}");
        }
    }
    let forwards: Vec<_> = cluster
        .k8s
        .handle()
        .events()
        .into_iter()
        .filter(|e| e.path.ends_with("/portforward"))
        .collect();
    assert!(
        forwards
            .iter()
            .all(|e| e.verb == "create" && e.status == 101),
        "{forwards:?}"
    );
}

#[test]
fn port_forward_to_a_port_nothing_listens_on_reports_the_kubelets_error() {
    let Some(kubectl) = kube::newest() else {
        return;
    };
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    // A port that was free a moment ago.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let mut forward = port_forward(&cluster, &kubectl, &alice, EDGE, closed);
    let stream = std::net::TcpStream::connect(("127.0.0.1", forward.local)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut rest = Vec::new();
    let _ = (&stream).read_to_end(&mut rest);
    assert!(rest.is_empty(), "{rest:?}");
    let _ = forward.child.kill();
    let mut stderr = String::new();
    forward
        .child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert!(
        stderr.contains(&format!("error forwarding port {closed} to pod web/{EDGE}")),
        "{stderr}"
    );
}

#[test]
fn port_forward_needs_create_on_pods_portforward() {
    let Some(kubectl) = kube::newest() else {
        return;
    };
    let cluster = Cluster::start();
    let alice = cluster.kubeconfig_for_role(ALICE_ROLE);
    // Alice may read pods in jobs but not forward to them.
    let err = cluster.fails(
        &kubectl,
        &alice,
        &["port-forward", "-n", "jobs", "backfill-2h7x9", ":80"],
    );
    assert!(
        err.contains("cannot create resource \"pods/portforward\" in API group \"\" in the namespace \"jobs\""),
        "{err}"
    );
}

/// RBAC that lets `rolesh-broker` impersonate alice in group `rolesh:sre` (with any
/// `rolesh.io/session-id` extra), and lets that group read pods in `web`.
const IMPERSONATION_RBAC: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rolesh:impersonator}
rules:
- {apiGroups: [\"\"], resources: [users], resourceNames: [alice], verbs: [impersonate]}
- {apiGroups: [\"\"], resources: [groups], resourceNames: [\"rolesh:sre\"], verbs: [impersonate]}
- {apiGroups: [authentication.k8s.io], resources: [userextras/rolesh.io/session-id], verbs: [impersonate]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rolesh:impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rolesh:impersonator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: rolesh-broker}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: web}
rules:
- {apiGroups: [\"\"], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: sre-view, namespace: web}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: \"rolesh:sre\"}
";

#[test]
fn a_static_token_may_impersonate_exactly_what_rbac_grants() {
    let Some(kubectl) = kube::newest() else {
        return;
    };
    let cluster = Cluster::start_with(|options| {
        options
            .with_static_token("only-the-broker-holds-this", "rolesh-broker")
            .with_rbac_yaml(IMPERSONATION_RBAC)
            .expect("RBAC")
    });
    let broker = cluster.kubeconfig_with_token("only-the-broker-holds-this");
    let who = cluster.ok(&kubectl, &broker, &["auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_str(&who).expect("whoami JSON");
    assert_eq!(who["status"]["userInfo"]["username"], "rolesh-broker");

    // (kubectl 1.33 has no --as-user-extra: extras are in impersonate.rs's unit tests.)
    let as_alice = ["--as", "alice", "--as-group", "rolesh:sre"];
    let who = cluster.ok(
        &kubectl,
        &broker,
        &[&as_alice[..], &["auth", "whoami", "-o", "json"]].concat(),
    );
    let who: serde_json::Value = serde_json::from_str(&who).expect("whoami JSON");
    let user = &who["status"]["userInfo"];
    assert_eq!(user["username"], "alice", "{who}");
    assert_eq!(
        user["groups"],
        serde_json::json!(["rolesh:sre", "system:authenticated"])
    );
    // As alice, RBAC is alice's: pods in web, nothing in jobs.
    let pods = cluster.ok(
        &kubectl,
        &broker,
        &[&as_alice[..], &["get", "pods", "-n", "web", "-o", "name"]].concat(),
    );
    assert!(pods.contains(EDGE), "{pods}");
    let err = cluster.fails(
        &kubectl,
        &broker,
        &[&as_alice[..], &["get", "pods", "-n", "jobs"]].concat(),
    );
    assert!(
        err.contains("User \"alice\" cannot list resource \"pods\""),
        "{err}"
    );

    // Anyone or anything else is refused.
    for extra in [
        &["--as", "bob"][..],
        &["--as", "alice", "--as-group", "system:masters"],
    ] {
        let err = cluster.fails(
            &kubectl,
            &broker,
            &[extra, &["get", "pods", "-n", "web"]].concat(),
        );
        assert!(
            err.contains("User \"rolesh-broker\" cannot impersonate resource"),
            "{extra:?}: {err}"
        );
    }
    // A wrong static token is no one.
    let stranger = cluster.kubeconfig_with_token("not-the-broker");
    let err = cluster.fails(&kubectl, &stranger, &["get", "pods", "-n", "web"]);
    assert!(err.contains("Unauthorized"), "{err}");
}

#[test]
fn a_client_certificate_from_the_clusters_ca_authenticates_its_subject() {
    let Some(kubectl) = kube::newest() else {
        return;
    };
    let cluster = Cluster::start();
    let (certificate_pem, key_pem) = cluster
        .k8s
        .handle()
        .client_certificate("rolesh-broker", &["ops"])
        .expect("a client certificate");
    let path = cluster.home.path().join("kubeconfig-cert");
    let user = rolesh_testkit::fake_k8s::KubeUser::ClientCertificate {
        certificate_pem,
        key_pem,
    };
    std::fs::write(&path, cluster.k8s.kubeconfig("demo", &user)).expect("kubeconfig");
    let who = cluster.ok(&kubectl, &path, &["auth", "whoami", "-o", "json"]);
    let who: serde_json::Value = serde_json::from_str(&who).expect("whoami JSON");
    assert_eq!(
        who["status"]["userInfo"]["username"], "rolesh-broker",
        "{who}"
    );
    assert_eq!(
        who["status"]["userInfo"]["groups"],
        serde_json::json!(["ops", "system:authenticated"])
    );
}
