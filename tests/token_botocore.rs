//! `rolesh token --cluster-name` against the reference implementation, awscli's
//! `aws eks get-token` (botocore), at the same signing time: byte for byte.

mod common;

use common::*;
use serde_json::Value;

struct Case<'a> {
    region: &'a str,
    legacy: bool,
    session_token: Option<&'a str>,
    exec_info: Option<&'a str>,
}

/// Which of the two commands signs: `rolesh token`, or the exec plugin `rolesh-token`
/// (the same command line in a small binary).
#[derive(Clone, Copy, Debug)]
enum Signer {
    Rolesh,
    Plugin,
}

impl Signer {
    fn command(self) -> std::process::Command {
        match self {
            Signer::Rolesh => {
                let mut cmd = rolesh();
                cmd.arg("token");
                cmd
            }
            Signer::Plugin => rolesh_token(),
        }
    }
}

fn compare(case: &Case<'_>, signer: Signer) {
    let mut extra: Vec<(&str, &str)> = vec![];
    if let Some(info) = case.exec_info {
        extra.push(("KUBERNETES_EXEC_INFO", info));
    }
    let mut ours = signer.command();
    ours.args(["--cluster-name", "demo", "--region", case.region]);
    if case.legacy {
        ours.args(["--sts-regional-endpoints", "legacy"]);
    }
    aws_env(&mut ours, case.session_token, &extra);
    let r = run(&mut ours);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mine: Value = serde_json::from_str(&r.stdout).unwrap();
    let token = mine["status"]["token"].as_str().unwrap();

    let mut reference = aws_eks_get_token_at(&x_amz_date(token));
    reference.args(["--cluster-name", "demo", "--region", case.region]);
    if case.legacy {
        extra.push(("AWS_STS_REGIONAL_ENDPOINTS", "legacy"));
    }
    aws_env(&mut reference, case.session_token, &extra);
    let theirs = run(&mut reference);
    assert_eq!(theirs.code, 0, "aws eks get-token: {}", theirs.stderr);
    let theirs: Value = serde_json::from_str(&theirs.stdout).unwrap();

    let label = format!(
        "{signer:?}: region {} legacy {} session token {}",
        case.region,
        case.legacy,
        case.session_token.is_some()
    );
    assert_eq!(
        token,
        theirs["status"]["token"].as_str().unwrap(),
        "token differs: {label}\nours:   {}\ntheirs: {}",
        presigned_url(token),
        presigned_url(theirs["status"]["token"].as_str().unwrap())
    );
    assert_eq!(
        mine["status"]["expirationTimestamp"], theirs["status"]["expirationTimestamp"],
        "{label}"
    );
    assert_eq!(mine["apiVersion"], theirs["apiVersion"], "{label}");
    assert_eq!(mine["kind"], theirs["kind"]);
}

#[test]
fn tokens_match_botocore_byte_for_byte() {
    for case in &cases() {
        compare(case, Signer::Rolesh);
    }
}

/// Issue 22: the exec plugin signs what `rolesh token` signs, from the environment's
/// credentials, in a binary of its own.
#[test]
fn the_exec_plugin_rolesh_token_matches_botocore_byte_for_byte() {
    for case in &cases() {
        compare(case, Signer::Plugin);
    }
}

fn cases() -> Vec<Case<'static>> {
    require(
        "awscli + botocore (pip install awscli)",
        botocore_available(),
    );
    let session = "FQoGZXIvYXdzEXAMPLE/TOKEN+x==";
    let cases = [
        Case {
            region: "us-east-1",
            legacy: false,
            session_token: None,
            exec_info: None,
        },
        Case {
            region: "us-east-1",
            legacy: true,
            session_token: None,
            exec_info: None,
        },
        Case {
            region: "us-east-1",
            legacy: false,
            session_token: Some(session),
            exec_info: None,
        },
        Case {
            region: "eu-west-1",
            legacy: false,
            session_token: Some(session),
            exec_info: None,
        },
        Case {
            region: "eu-west-1",
            legacy: true,
            session_token: Some(session),
            exec_info: None,
        },
        // An opt-in region has no global endpoint: legacy stays regional.
        Case {
            region: "ap-east-1",
            legacy: true,
            session_token: None,
            exec_info: None,
        },
        Case {
            region: "ap-southeast-2",
            legacy: false,
            session_token: None,
            exec_info: None,
        },
        Case {
            region: "us-west-2",
            legacy: false,
            session_token: Some(session),
            exec_info: Some(
                r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#,
            ),
        },
    ];
    cases.into()
}

/// `aws eks get-token` signs for AWS_ENDPOINT_URL_STS when it is set, and EKS rejects such
/// a token; rolesh always names the public STS host (SPEC §3).
#[test]
fn token_ignores_aws_endpoint_url_sts() {
    let mut cmd = rolesh();
    cmd.args(["token", "--cluster-name", "demo", "--region", "eu-west-1"]);
    aws_env(
        &mut cmd,
        None,
        &[
            ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        ],
    );
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let url = presigned_url(v["status"]["token"].as_str().unwrap());
    assert!(
        url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ),
        "{url}"
    );
}

/// Expiration is signing time + 14 minutes, whatever the clock says.
#[test]
fn expiration_follows_the_signing_time() {
    let mut cmd = rolesh();
    cmd.args(["token", "--cluster-name", "demo", "--region", "us-east-1"]);
    aws_env(&mut cmd, None, &[]);
    let r = run(&mut cmd);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let date = x_amz_date(v["status"]["token"].as_str().unwrap());
    let exp = v["status"]["expirationTimestamp"].as_str().unwrap();
    let signed = chrono_like(&date);
    let expires = chrono_like(&exp.replace(['-', ':'], ""));
    assert_eq!(expires - signed, 14 * 60, "{date} → {exp}");
}

/// Seconds since the epoch of `YYYYMMDDTHHMMSSZ` (enough calendar for this test).
fn chrono_like(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, mo, d, h, mi, se) = (n(0, 4), n(4, 6), n(6, 8), n(9, 11), n(11, 13), n(13, 15));
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + h * 3600 + mi * 60 + se
}

#[test]
fn missing_cluster_name_is_a_usage_error() {
    let r = run(rolesh().args(["token"]));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("--cluster <NAME>|--cluster-name <NAME>"),
        "{}",
        r.stderr
    );
}

#[test]
fn no_credentials_anywhere_is_a_clear_runtime_error() {
    no_credentials_anywhere(Signer::Rolesh);
}

/// Issue 22: without credentials in the environment the exec plugin hands the request to
/// `rolesh token` (the AWS SDK's credential chain), whose answer it gives.
#[test]
fn the_exec_plugin_without_credentials_gives_rolesh_tokens_error() {
    no_credentials_anywhere(Signer::Plugin);
}

fn no_credentials_anywhere(signer: Signer) {
    let mut cmd = signer.command();
    cmd.args(["--cluster-name", "demo", "--region", "us-east-1"])
        .env_clear()
        .env("HOME", "/nonexistent")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    let r = run(&mut cmd);
    assert_eq!(r.code, 1, "{signer:?}: {}", r.stderr);
    assert!(
        r.stderr.starts_with(
            "rolesh: no usable AWS credentials (environment, profile, SSO, web identity, IMDS)"
        ),
        "{signer:?}: {}",
        r.stderr
    );
    assert_eq!(r.stdout, "");
}
