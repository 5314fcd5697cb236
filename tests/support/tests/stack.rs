//! `rolesh-testkit up --dir DIR` / `down --dir DIR`: a fake AWS and two fake EKS clusters in
//! the background, a rolesh config that `rolesh check` accepts, RBAC that lets bastion users
//! list pods and exec in the allowlisted namespaces and nothing else.

mod kube;

use rolesh_testkit::fake_k8s::KubeUser;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn testkit(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rolesh-testkit"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("run rolesh-testkit")
}

/// Stops the stack when the test ends, whatever happens.
struct Down<'a>(&'a Path);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = testkit(&["down"], self.0);
    }
}

fn read_env(dir: &Path) -> HashMap<String, String> {
    std::fs::read_to_string(dir.join("env"))
        .expect("env file")
        .lines()
        .map(|line| {
            let (name, value) = line
                .strip_prefix("export ")
                .and_then(|l| l.split_once('='))
                .expect("export NAME=VALUE");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// `key = "value"` of the `n`th `[[cluster]]` table of the generated config.
fn cluster_value(config: &str, n: usize, key: &str) -> String {
    let table = config
        .split("[[cluster]]")
        .nth(n + 1)
        .expect("cluster table");
    table
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or_else(|| panic!("{key} in cluster {n}"))
        .to_owned()
}

#[test]
fn up_writes_a_working_environment_and_down_stops_it() {
    let dir = tempfile::tempdir().expect("dir");
    let dir = dir.path();
    let output = testkit(&["up"], dir);
    assert!(output.status.success(), "{output:?}");
    let _down = Down(dir);
    for file in [
        "env",
        "config.toml",
        "rbac.yaml",
        "pid",
        "ca-demo.pem",
        "ca-staging.pem",
    ] {
        assert!(dir.join(file).is_file(), "{file}");
    }
    let env = read_env(dir);
    assert!(
        env["AWS_ENDPOINT_URL"].starts_with("http://127.0.0.1:"),
        "{env:?}"
    );
    assert_eq!(env["AWS_ENDPOINT_URL_STS"], env["AWS_ENDPOINT_URL"]);
    let config = std::fs::read_to_string(dir.join("config.toml")).expect("config");
    assert!(config.contains(&format!("sts_endpoint = \"{}\"", env["AWS_ENDPOINT_URL"])));

    // rolesh accepts the config.
    let check = Command::new(kube::rolesh_bin())
        .args(["check", "--config"])
        .arg(dir.join("config.toml"))
        .output()
        .expect("rolesh check");
    assert!(
        check.status.success(),
        "rolesh check refused the config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );

    // A bastion user's token (through the fake STS) lists pods and execs in the allowlisted
    // namespaces of both clusters, and nothing else.
    if let Some(kubectl) = kube::newest() {
        let home = tempfile::tempdir().expect("home");
        for (n, region) in [(0, "us-east-1"), (1, "eu-west-1")] {
            let name = cluster_value(&config, n, "name");
            let endpoint = cluster_value(&config, n, "endpoint");
            let ca = cluster_value(&config, n, "certificate_authority_data");
            let kubeconfig = home.path().join(format!("kubeconfig-{name}"));
            std::fs::write(
                &kubeconfig,
                kubeconfig_yaml(&name, &endpoint, &ca, region, &env),
            )
            .expect("kubeconfig");
            let kubectl_out = |args: &[&str]| {
                Command::new(&kubectl.path)
                    .args(args)
                    .env_clear()
                    .env("PATH", std::env::var("PATH").unwrap_or_default())
                    .env("HOME", home.path())
                    .env("KUBECONFIG", &kubeconfig)
                    .output()
                    .expect("kubectl")
            };
            let pods = kubectl_out(&[
                "get",
                "pods",
                "-n",
                "web",
                "-l",
                "app=frontend",
                "-o",
                "name",
            ]);
            assert!(pods.status.success(), "{name}: {pods:?}");
            assert!(String::from_utf8_lossy(&pods.stdout).contains("pod/frontend-6d8f7c9b5-x7k2p"));
            let exec = kubectl_out(&[
                "exec",
                "-n",
                "web",
                "frontend-6d8f7c9b5-x7k2p",
                "--",
                "printenv",
                "ROLESH_FAKE_CLUSTER",
            ]);
            assert_eq!(
                String::from_utf8_lossy(&exec.stdout),
                format!("{name}\n"),
                "{exec:?}"
            );
            let denied = kubectl_out(&["get", "pods", "-n", "kube-system"]);
            assert!(!denied.status.success());
            assert!(
                String::from_utf8_lossy(&denied.stderr).contains("Forbidden"),
                "{denied:?}"
            );
            let denied = kubectl_out(&["get", "namespaces"]);
            assert!(
                String::from_utf8_lossy(&denied.stderr).contains("Forbidden"),
                "{denied:?}"
            );
        }
    }

    // `up` again while running is refused; `down` stops it.
    let again = testkit(&["up"], dir);
    assert!(!again.status.success());
    let pid: i32 = std::fs::read_to_string(dir.join("pid"))
        .expect("pid")
        .trim()
        .parse()
        .expect("pid number");
    let down = testkit(&["down"], dir);
    assert!(down.status.success(), "{down:?}");
    assert!(!dir.join("pid").exists() && !dir.join("env").exists());
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
    {
        assert!(Instant::now() < deadline, "the stack still runs");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn kubeconfig_yaml(
    name: &str,
    endpoint: &str,
    ca_data: &str,
    region: &str,
    env: &HashMap<String, String>,
) -> String {
    let user = KubeUser::Exec {
        command: kube::rolesh_bin().to_string_lossy().into_owned(),
        args: [
            "token",
            "--cluster-name",
            name,
            "--region",
            region,
            "--role-arn",
            "arn:aws:iam::123456789012:role/bastion-carol",
        ]
        .map(str::to_owned)
        .to_vec(),
        env: [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_ENDPOINT_URL_STS",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), env[*k].clone()))
        .chain([
            ("AWS_CONFIG_FILE".to_owned(), "/dev/null".to_owned()),
            ("AWS_EC2_METADATA_DISABLED".to_owned(), "true".to_owned()),
        ])
        .collect(),
    };
    rolesh_testkit::fake_k8s::kubeconfig(name, endpoint, ca_data, &user)
}
