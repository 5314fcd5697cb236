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

common::harness::tests!(
    root: [
        assume_role_describe_cluster_and_caller_identity_through_moto,
        clusters_created_in_moto_with_tags_are_discovered,
    ]
);

fn moto_create_cluster(moto: &Moto, name: &str) {
    moto_create_tagged_cluster(moto, name, "us-east-1", "{}");
}

/// `create_cluster` in moto, in `region`, with `tags` (a Python dict literal).
fn moto_create_tagged_cluster(moto: &Moto, name: &str, region: &str, tags: &str) {
    let script = format!(
        "import boto3; c = boto3.client('eks', region_name='{region}', endpoint_url='{}', aws_access_key_id='testing', aws_secret_access_key='testing'); \
         c.create_cluster(name='{name}', roleArn='arn:aws:iam::123456789012:role/eks', resourcesVpcConfig={{}}, tags={tags})",
        moto.url()
    );
    stdout_of_success(Command::new("python3").args(["-c", &script]));
}

/// `[[discovery]]` against moto's EKS: ListClusters and DescribeCluster (tags included) as
/// an implementation nobody here wrote answers them, in two regions.
fn clusters_created_in_moto_with_tags_are_discovered() {
    require("moto[server] and boto3", moto_available());
    let user = TestUser::create("rbmhelga", &[]);
    let moto = Moto::start();
    moto_create_tagged_cluster(&moto, "moto-web", "us-east-1", "{'team': 'platform'}");
    moto_create_tagged_cluster(
        &moto,
        "moto-data",
        "eu-west-1",
        "{'team': 'platform', 'tier': 'db'}",
    );
    moto_create_tagged_cluster(&moto, "moto-other", "us-east-1", "{'team': 'web'}");
    moto_create_cluster(&moto, "moto-untagged");
    let unused = FakeAws::start_in_background(FakeAwsOptions::default()).unwrap();
    let config = "[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{user}\"\n\
        [[discovery]]\nregions = [\"us-east-1\", \"eu-west-1\"]\ntags = { team = \"platform\" }\n";
    let b = BrokerProc::start_against(unused, &moto.url(), ("testing", "testing"), "", config);
    let answers = b.raw(user.uid(), &[r#"{"v":1,"op":"whoami"}"#]);
    let mut found: Vec<(String, String)> = answers[0]["clusters"]
        .as_array()
        .unwrap_or_else(|| panic!("{}\n{}", answers[0], b.log()))
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().into(),
                c["region"].as_str().unwrap().into(),
            )
        })
        .collect();
    found.sort();
    assert_eq!(
        found,
        [
            ("moto-data".to_string(), "eu-west-1".to_string()),
            ("moto-web".to_string(), "us-east-1".to_string())
        ],
        "{}",
        b.log()
    );
    // The endpoint and CA are moto's, from its DescribeCluster.
    let a = &b.raw(
        user.uid(),
        &[r#"{"v":1,"op":"cluster","cluster":"moto-data"}"#],
    )[0];
    assert!(
        a["endpoint"].as_str().unwrap().starts_with("https://"),
        "{a}"
    );
    assert!(
        !a["certificateAuthorityData"].as_str().unwrap().is_empty(),
        "{a}"
    );
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
