//! The broker against moto's server, an AWS implementation nobody here wrote: AssumeRole
//! with the user's name, DescribeCluster, and GetCallerIdentity with the credentials the
//! broker hands out showing `assumed-role/ROLE/USER`.

mod common;

use common::broker::BrokerProc;
use common::moto::{Moto, moto_available};
use common::*;
use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};
use serde_json::Value;
use std::process::Command;

common::harness::tests!(root: [assume_role_describe_cluster_and_caller_identity_through_moto]);

fn moto_create_cluster(moto: &Moto, name: &str) {
    let script = format!(
        "import boto3; c = boto3.client('eks', region_name='us-east-1', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing'); \
         c.create_cluster(name='{name}', roleArn='arn:aws:iam::123456789012:role/eks', resourcesVpcConfig={{}})",
        moto.url()
    );
    stdout_of_success(Command::new("python3").args(["-c", &script]));
}

fn assume_role_describe_cluster_and_caller_identity_through_moto() {
    require("moto[server] and boto3", moto_available());
    let user = TestUser::create("rbmgrace", &[]);
    let moto = Moto::start();
    moto_create_cluster(&moto, "moto-prod");
    let unused = FakeAws::start_in_background(FakeAwsOptions::default()).unwrap();
    let mapping = "[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{user}\"\n[[cluster]]\nname = \"moto-prod\"\n";
    let b = BrokerProc::start_against(
        unused,
        &moto.url(),
        ("testing", "testing"),
        "expose_credentials = true",
        mapping,
    );

    // DescribeCluster, with the user's own role, gives the endpoint and CA.
    let answers = b.raw(
        user.uid(),
        &[r#"{"v":1,"op":"cluster","cluster":"moto-prod"}"#],
    );
    let a = &answers[0];
    assert_eq!(a["name"], "moto-prod", "{a}");
    assert!(
        a["endpoint"].as_str().unwrap().starts_with("https://"),
        "{a}"
    );
    assert!(!a["certificateAuthorityData"].as_str().unwrap().is_empty());

    // moto recorded one AssumeRole, with the user's name.
    let assumed = &moto.state()["sts"]["AssumedRole"];
    assert_eq!(assumed.as_array().map(Vec::len), Some(1), "{assumed}");
    assert_eq!(
        assumed[0]["role_arn"],
        "arn:aws:iam::123456789012:role/bastion-rbmgrace"
    );
    assert_eq!(assumed[0]["session_name"], "rbmgrace");

    // The credentials the broker hands the user are that role's: STS says so.
    let r = b.client(user.uid(), &["credentials"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let c: Value = serde_json::from_str(&r.stdout).unwrap();
    let out = stdout_of_success(
        Command::new("aws")
            .args([
                "sts",
                "get-caller-identity",
                "--output",
                "json",
                "--endpoint-url",
                &moto.url(),
                "--region",
                "us-east-1",
            ])
            .env("AWS_ACCESS_KEY_ID", c["AccessKeyId"].as_str().unwrap())
            .env(
                "AWS_SECRET_ACCESS_KEY",
                c["SecretAccessKey"].as_str().unwrap(),
            )
            .env("AWS_SESSION_TOKEN", c["SessionToken"].as_str().unwrap())
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
    );
    let who: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(
        who["Arn"],
        "arn:aws:sts::123456789012:assumed-role/bastion-rbmgrace/rbmgrace"
    );

    // And a token for the cluster is signed with them.
    let r = b.client(user.uid(), &["token", "--cluster", "moto-prod"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    let url = presigned_url(v["status"]["token"].as_str().unwrap());
    assert!(
        url.contains(&format!(
            "X-Amz-Credential={}%2F",
            c["AccessKeyId"].as_str().unwrap()
        )),
        "{url}"
    );
}
