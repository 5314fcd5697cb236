//! `rolesh token --role-arn`: assumes the role first, through a real STS implementation
//! written elsewhere (moto's server on loopback), and signs with the role's credentials
//! exactly as awscli would with them.

mod common;

use common::moto::{Moto, moto_available};
use common::*;
use serde_json::Value;
use std::net::TcpListener;

#[test]
fn role_arn_assumes_the_role_through_sts_and_signs_with_its_credentials() {
    let mut cmd = rolesh();
    cmd.arg("token");
    role_arn_assumes_the_role(cmd);
}

/// Issue 22: the exec plugin hands `--role-arn` (the AWS SDK's work) to `rolesh token`,
/// with the same result.
#[test]
fn the_exec_plugin_with_role_arn_assumes_the_role_as_rolesh_token_does() {
    role_arn_assumes_the_role(rolesh_token());
}

fn role_arn_assumes_the_role(mut cmd: std::process::Command) {
    require(
        "moto[server] (pip install 'moto[server]')",
        moto_available() && botocore_available(),
    );
    let moto = Moto::start();
    let role = "arn:aws:iam::123456789012:role/eks-admin";
    cmd.args([
        "--cluster-name",
        "demo",
        "--region",
        "eu-west-1",
        "--role-arn",
        role,
    ]);
    aws_env(&mut cmd, None, &[("AWS_ENDPOINT_URL_STS", &moto.url())]);
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let out: Value = serde_json::from_str(&r.stdout).unwrap();
    let token = out["status"]["token"].as_str().unwrap();
    let url = presigned_url(token);
    assert!(
        url.starts_with("https://sts.eu-west-1.amazonaws.com/?"),
        "the token names the public host, not moto: {url}"
    );

    let assumed = &moto.state()["sts"]["AssumedRole"];
    assert_eq!(
        assumed.as_array().map(Vec::len),
        Some(1),
        "exactly one AssumeRole: {assumed}"
    );
    let a = &assumed[0];
    assert_eq!(a["role_arn"], role);
    assert_eq!(
        a["session_name"], "EKSGetTokenAuth",
        "awscli's session name"
    );
    let key = a["access_key_id"].as_str().unwrap();
    assert!(
        url.contains(&format!("X-Amz-Credential={key}%2F")),
        "signed with the role's key, not the base key: {url}"
    );
    assert!(!url.contains(KEY));

    // awscli, given the role's credentials, signs the very same token.
    let mut reference = aws_eks_get_token_at(&x_amz_date(token));
    reference.args(["--cluster-name", "demo", "--region", "eu-west-1"]);
    aws_env(
        &mut reference,
        a["session_token"].as_str(),
        &[
            ("AWS_ACCESS_KEY_ID", key),
            (
                "AWS_SECRET_ACCESS_KEY",
                a["secret_access_key"].as_str().unwrap(),
            ),
        ],
    );
    let theirs = run(&mut reference);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let theirs: Value = serde_json::from_str(&theirs.stdout).unwrap();
    assert_eq!(token, theirs["status"]["token"].as_str().unwrap());
}

#[test]
fn unreachable_sts_for_role_arn_fails_with_exit_1_and_no_token() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = rolesh();
    cmd.args([
        "token",
        "--cluster-name",
        "demo",
        "--region",
        "us-east-1",
        "--role-arn",
        "arn:aws:iam::123456789012:role/x",
    ]);
    aws_env(
        &mut cmd,
        None,
        &[
            ("AWS_ENDPOINT_URL_STS", &format!("http://127.0.0.1:{port}")),
            ("AWS_MAX_ATTEMPTS", "1"),
        ],
    );
    let r = run(&mut cmd);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with("rolesh: cannot assume role arn:aws:iam::123456789012:role/x: "),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains(SECRET), "no secret in errors");
    assert_eq!(r.stdout, "");
}
