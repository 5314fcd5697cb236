//! The `rolesh-testkit fake-aws` binary, used through its env file by the AWS CLI.

mod common;

use common::{Keys, aws_cli};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child process when the test ends, whatever happens.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for DIR/env and parses its `export NAME=VALUE` lines.
fn read_env(dir: &Path, child: &mut Child) -> HashMap<String, String> {
    let path = dir.join("env");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(
            child.try_wait().expect("wait").is_none(),
            "fake-aws exited early"
        );
        assert!(Instant::now() < deadline, "fake-aws wrote no env file");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(&path)
        .expect("env file")
        .lines()
        .map(|line| {
            let assignment = line.strip_prefix("export ").expect("export form");
            let (name, value) = assignment.split_once('=').expect("NAME=VALUE");
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

#[test]
fn fake_aws_subcommand_serves_and_writes_its_env_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").expect("ca");
    let child = Command::new(env!("CARGO_BIN_EXE_rolesh-testkit"))
        .args(["fake-aws", "--port", "0", "--dir"])
        .arg(dir.path())
        .args(["--cluster", "demo=https://127.0.0.1:6443", "--ca-file"])
        .arg(&ca)
        .stdin(Stdio::null())
        .spawn()
        .expect("spawn rolesh-testkit");
    let mut running = Running(child);
    let env = read_env(dir.path(), &mut running.0);

    let endpoint = &env["AWS_ENDPOINT_URL"];
    assert!(
        endpoint.starts_with("http://127.0.0.1:") && !endpoint.ends_with(":0"),
        "{endpoint}"
    );
    assert_eq!(env["AWS_REGION"], "us-east-1");
    let keys = Keys::new(
        &env["AWS_ACCESS_KEY_ID"],
        &env["AWS_SECRET_ACCESS_KEY"],
        None,
    );
    let region = [("AWS_DEFAULT_REGION", env["AWS_REGION"].as_str())];

    let (ok, stdout, stderr) = aws_cli(
        &["sts", "get-caller-identity", "--endpoint-url", endpoint],
        &keys,
        &region,
    );
    assert!(ok, "{stderr}");
    let identity: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(
        identity["Arn"],
        "arn:aws:iam::123456789012:user/rolesh-base"
    );

    let (ok, stdout, stderr) = aws_cli(
        &[
            "eks",
            "describe-cluster",
            "--name",
            "demo",
            "--endpoint-url",
            endpoint,
        ],
        &keys,
        &region,
    );
    assert!(ok, "{stderr}");
    let described: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(described["cluster"]["endpoint"], "https://127.0.0.1:6443");
    assert_eq!(
        described["cluster"]["certificateAuthority"]["data"],
        "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg=="
    );
}
