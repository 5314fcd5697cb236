//! `[[discovery]]`: a real broker finds EKS clusters in the testkit's fake EKS (ListClusters
//! with pagination, DescribeCluster with tags and statuses, several regions, throttling and
//! failures, roles IAM refuses), and real kubectl reaches what it found. Against moto, an
//! EKS nobody here wrote: broker_moto.rs; over a real sshd: session_ssh.rs.

mod common;

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::BrokerProc;
use common::*;
use rolesh_testkit::fake_aws::{Api, EksCluster, FakeAws, FakeAwsOptions};
use serde_json::Value;

common::harness::tests!(
    root: [
        tags_globs_and_status_decide_what_is_discovered,
        a_name_found_in_two_regions_is_name_at_region_in_both,
        an_explicit_cluster_wins_over_the_discovered_one,
        a_user_whose_role_cannot_describe_a_cluster_does_not_see_it,
        a_failed_refresh_serves_the_last_good_list_and_is_an_error_event,
        throttled_discovery_still_finds_everything,
        the_first_request_waits_for_the_first_discovery,
        a_reload_rereads_the_discovery_blocks,
        a_hundred_clusters_in_four_regions_take_one_page_set_and_one_describe_each,
        check_describe_lists_what_discovery_finds_and_leaves_out,
        explain_marks_a_discovered_cluster_and_only_root_may_ask_the_broker,
        kubectl_reaches_discovered_clusters_by_name_and_by_name_at_region,
    ],
    plain: [
        check_reports_discovery_mistakes_at_their_position,
        rbac_emits_the_bastion_roles_discovery_policy_and_the_users_describe,
    ],
);

const MAPPING: &str =
    "[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion-{user}\"\n";

/// Where the fake's clusters say their API servers are (no test here reaches one).
const NOWHERE: (&str, &str) = ("https://127.0.0.1:1", "Q0E=");

fn cluster(name: &str, region: &str) -> EksCluster {
    EksCluster::new(name, NOWHERE.0, NOWHERE.1)
        .in_region(region)
        .with_tag("team", "platform")
}

/// A fake EKS holding `clusters`, and a broker whose configuration is `config` after the
/// mapping.
fn broker_with(clusters: Vec<EksCluster>, config: &str) -> BrokerProc {
    broker_after(clusters, config, |_| {})
}

/// Like [`broker_with`], with `prepare` done to the fake EKS before the broker starts.
fn broker_after(
    clusters: Vec<EksCluster>,
    config: &str,
    prepare: impl FnOnce(&FakeAws),
) -> BrokerProc {
    let options = FakeAwsOptions {
        clusters,
        ..FakeAwsOptions::default()
    };
    let aws = FakeAws::start_in_background(options).expect("fake aws");
    prepare(&aws);
    let endpoint = aws.endpoint();
    let base = (
        aws.options().access_key_id.clone(),
        aws.options().secret_access_key.clone(),
    );
    BrokerProc::start_against(
        aws,
        &endpoint,
        (&base.0, &base.1),
        "",
        &format!("{MAPPING}{config}"),
    )
}

const PLATFORM_BLOCK: &str = "[[discovery]]\nregions = [\"us-east-1\", \"eu-west-1\"]\ntags = { team = \"platform\" }\nnames = [\"prod-*\", \"shared\"]\nexclude = [\"*-sandbox\"]\ndefault_namespace = \"web\"\n[[discovery.namespace]]\nname = \"web\"\nselectors = [\"app=frontend\"]\n";

/// The user's clusters, as `whoami` names them.
fn clusters_of(b: &BrokerProc, uid: u32) -> Vec<Value> {
    let answers = b.raw(uid, &[r#"{"v":1,"op":"whoami"}"#]);
    answers[0]["clusters"]
        .as_array()
        .unwrap_or_else(|| panic!("no clusters in {}", answers[0]))
        .clone()
}

fn names(clusters: &[Value]) -> Vec<String> {
    let mut names: Vec<String> = clusters
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn wait_for_log(b: &BrokerProc, text: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while !b.log().contains(text) {
        assert!(
            Instant::now() < deadline,
            "the broker never logged {text:?}:\n{}",
            b.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn tags_globs_and_status_decide_what_is_discovered() {
    let user = TestUser::create("rdiana", &[]);
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("prod-api-sandbox", "us-east-1"),
            cluster("prod-old", "us-east-1").with_tag("team", "web"),
            cluster("prod-next", "us-east-1").with_status("CREATING"),
            cluster("staging", "us-east-1"),
            cluster("shared", "eu-west-1"),
            cluster("prod-far", "ap-south-1"),
        ],
        PLATFORM_BLOCK,
    );
    let clusters = clusters_of(&b, user.uid());
    assert_eq!(names(&clusters), ["prod-web", "shared"], "{clusters:?}");
    let web = clusters.iter().find(|c| c["name"] == "prod-web").unwrap();
    assert_eq!(web["region"], "us-east-1");
    assert_eq!(web["default_namespace"], "web");
    assert_eq!(web["namespaces"][0]["selectors"][0], "app=frontend");
    let origin = web["discovered"].as_str().unwrap();
    assert!(
        origin.starts_with("in us-east-1 by [[discovery]] #1 ("),
        "{origin}"
    );
    // The endpoint is DescribeCluster's, with no configured one.
    let answer = &b.raw(
        user.uid(),
        &[r#"{"v":1,"op":"cluster","cluster":"shared"}"#],
    )[0];
    assert_eq!(answer["endpoint"], NOWHERE.0, "{answer}");
    assert_eq!(answer["certificateAuthorityData"], NOWHERE.1);
    // What was left out is not reachable by name either.
    for gone in ["prod-old", "prod-next", "prod-api-sandbox", "prod-far"] {
        let line = format!(r#"{{"v":1,"op":"token","cluster":"{gone}"}}"#);
        let answer = &b.raw(user.uid(), &[&line])[0];
        assert_eq!(answer["error"]["code"], "denied", "{gone}: {answer}");
    }
}

fn a_name_found_in_two_regions_is_name_at_region_in_both() {
    let user = TestUser::create("rdibruno", &[]);
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("prod-web", "eu-west-1"),
        ],
        PLATFORM_BLOCK,
    );
    let clusters = clusters_of(&b, user.uid());
    assert_eq!(
        names(&clusters),
        ["prod-web@eu-west-1", "prod-web@us-east-1"]
    );
    let eu = clusters
        .iter()
        .find(|c| c["name"] == "prod-web@eu-west-1")
        .unwrap();
    assert_eq!(eu["region"], "eu-west-1");
    // A token for it is signed for the EKS name (kubectl_reaches_… shows a cluster takes it).
    let token = &b.raw(
        user.uid(),
        &[r#"{"v":1,"op":"token","cluster":"prod-web@eu-west-1"}"#],
    )[0];
    assert!(
        token["token"].as_str().unwrap().starts_with("k8s-aws-v1."),
        "{token}"
    );
}

fn an_explicit_cluster_wins_over_the_discovered_one() {
    let user = TestUser::create("rdicarla", &[]);
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("prod-db", "us-east-1"),
        ],
        &format!(
            "[[cluster]]\nname = \"prod-web\"\nregion = \"us-east-1\"\nendpoint = \"https://10.0.0.1\"\ncertificate_authority_data = \"{}\"\ndefault_namespace = \"ops\"\n{PLATFORM_BLOCK}",
            pem_data()
        ),
    );
    let clusters = clusters_of(&b, user.uid());
    assert_eq!(names(&clusters), ["prod-db", "prod-web"]);
    let web = clusters.iter().find(|c| c["name"] == "prod-web").unwrap();
    assert_eq!(web["discovered"], Value::Null, "{web}");
    assert_eq!(web["default_namespace"], "ops");
    let r = run(rolesh().args(["check", "--config"]).arg(b.config_path()));
    assert!(
        r.stdout.contains("note: [[cluster]] prod-web (")
            && r.stdout.contains("the [[cluster]] block wins"),
        "{}",
        r.stdout
    );
}

/// Base64 of a PEM certificate, as `certificate_authority_data` takes it.
fn pem_data() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .encode("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
}

fn a_user_whose_role_cannot_describe_a_cluster_does_not_see_it() {
    let denied = TestUser::create("rdidenis", &[]);
    let allowed = TestUser::create("rdiallie", &[]);
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("prod-pay", "us-east-1")
                .deny_describe_to("arn:aws:iam::123456789012:role/bastion-rdidenis"),
        ],
        PLATFORM_BLOCK,
    );
    assert_eq!(
        names(&clusters_of(&b, allowed.uid())),
        ["prod-pay", "prod-web"]
    );
    assert_eq!(names(&clusters_of(&b, denied.uid())), ["prod-web"]);
    for op in ["token", "cluster"] {
        let line = format!(r#"{{"v":1,"op":"{op}","cluster":"prod-pay"}}"#);
        let answer = &b.raw(denied.uid(), &[&line])[0];
        assert_eq!(answer["error"]["code"], "denied", "{op}: {answer}");
    }
    // Asked once per user and refresh: a second whoami asks EKS nothing.
    let before = b.aws().handle().counters().describe_cluster;
    clusters_of(&b, denied.uid());
    assert_eq!(b.aws().handle().counters().describe_cluster, before);
}

fn a_failed_refresh_serves_the_last_good_list_and_is_an_error_event() {
    let user = TestUser::create("rdidora", &[]);
    let b = broker_with(vec![cluster("prod-web", "us-east-1")], PLATFORM_BLOCK);
    assert_eq!(names(&clusters_of(&b, user.uid())), ["prod-web"]);
    // Every attempt of the next refresh fails (the SDK tries each call 8 times).
    b.aws()
        .handle()
        .fail_next(Api::Eks, 16, http::StatusCode::INTERNAL_SERVER_ERROR);
    b.signal(nix::sys::signal::Signal::SIGHUP);
    wait_for_log(
        &b,
        "cluster discovery in us-east-1 failed; serving its last good list",
        Duration::from_secs(60),
    );
    let log = b.log();
    let line = log
        .lines()
        .find(|l| l.contains("cluster discovery in us-east-1 failed"))
        .unwrap();
    assert!(line.contains("event=\"error\""), "{line}");
    assert_eq!(names(&clusters_of(&b, user.uid())), ["prod-web"]);
}

fn throttled_discovery_still_finds_everything() {
    let user = TestUser::create("rdiezra", &[]);
    let clusters = vec![
        cluster("prod-web", "us-east-1"),
        cluster("shared", "eu-west-1"),
    ];
    let b = broker_after(clusters, PLATFORM_BLOCK, |aws| {
        aws.handle().throttle_next(Api::Eks, 3)
    });
    wait_for_log(&b, "discovery refreshed", Duration::from_secs(30));
    assert_eq!(names(&clusters_of(&b, user.uid())), ["prod-web", "shared"]);
    assert!(!b.log().contains("cluster discovery in"), "{}", b.log());
}

fn the_first_request_waits_for_the_first_discovery() {
    let user = TestUser::create("rdifrida", &[]);
    // Each EKS answer takes 1.5 s: the first discovery (a list, then a describe) 3 s.
    let b = broker_after(
        vec![cluster("prod-web", "us-east-1")],
        PLATFORM_BLOCK,
        |aws| aws.handle().set_latency(Duration::from_millis(1500)),
    );
    // Asked at once, the answer still names the cluster: it waited for the discovery.
    let clusters = clusters_of(&b, user.uid());
    assert!(b.log().contains("discovery refreshed"), "{}", b.log());
    assert_eq!(names(&clusters), ["prod-web"]);
}

fn a_reload_rereads_the_discovery_blocks() {
    let user = TestUser::create("rdigus", &[]);
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("shared", "eu-west-1"),
        ],
        PLATFORM_BLOCK,
    );
    assert_eq!(names(&clusters_of(&b, user.uid())), ["prod-web", "shared"]);
    let config = std::fs::read_to_string(b.config_path()).unwrap();
    let narrowed = config.replace(
        "regions = [\"us-east-1\", \"eu-west-1\"]",
        "regions = [\"eu-west-1\"]",
    );
    assert_ne!(config, narrowed);
    std::fs::write(b.config_path(), narrowed).unwrap();
    let refreshes = b.log().matches("discovery refreshed").count();
    b.signal(nix::sys::signal::Signal::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(20);
    while b.log().matches("discovery refreshed").count() == refreshes {
        assert!(Instant::now() < deadline, "{}", b.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(names(&clusters_of(&b, user.uid())), ["shared"]);
    assert!(
        b.log()
            .contains("cluster no longer discovered cluster=prod-web"),
        "{}",
        b.log()
    );
}

/// 100 discovered clusters in 4 regions; us-east-1 also holds 80 clusters no block takes,
/// so its list takes two pages (the fake pages at 100, as EKS does).
fn hundred_clusters() -> Vec<EksCluster> {
    let regions = ["us-east-1", "eu-west-1", "ap-south-1", "us-west-2"];
    let mut clusters: Vec<EksCluster> = (0..100)
        .map(|i| cluster(&format!("prod-{i:03}"), regions[i % 4]))
        .collect();
    clusters.extend((0..80).map(|i| cluster(&format!("other-{i:02}"), "us-east-1")));
    clusters
}

const FOUR_REGIONS: &str = "[[discovery]]\nregions = [\"us-east-1\", \"eu-west-1\", \"ap-south-1\", \"us-west-2\"]\ntags = { team = \"platform\" }\nnames = [\"prod-*\"]\n";

fn a_hundred_clusters_in_four_regions_take_one_page_set_and_one_describe_each() {
    let user = TestUser::create("rdihugo", &[]);
    let b = broker_with(hundred_clusters(), FOUR_REGIONS);
    wait_for_log(&b, "discovery refreshed", Duration::from_secs(30));
    let after_refresh = b.aws().handle().counters();
    // us-east-1: 25 + 80 clusters, two pages; the other regions one page each.
    assert_eq!(after_refresh.list_clusters, 5, "{after_refresh:?}");
    assert_eq!(after_refresh.describe_cluster, 100, "{after_refresh:?}");
    assert_eq!(clusters_of(&b, user.uid()).len(), 100);
    // The user's own role describes each once, for this refresh.
    let after_user = b.aws().handle().counters();
    assert_eq!(after_user.describe_cluster, 200, "{after_user:?}");
    assert_eq!(after_user.list_clusters, 5);
    clusters_of(&b, user.uid());
    assert_eq!(b.aws().handle().counters().describe_cluster, 200);
}

fn check_describe_lists_what_discovery_finds_and_leaves_out() {
    let b = broker_with(
        vec![
            cluster("prod-web", "us-east-1"),
            cluster("prod-next", "us-east-1").with_status("CREATING"),
            cluster("prod-old", "eu-west-1").with_tag("team", "web"),
        ],
        PLATFORM_BLOCK,
    );
    let mut cmd = rolesh();
    cmd.args(["check", "--describe", "--config"])
        .arg(b.config_path())
        .env("AWS_ENDPOINT_URL", b.aws().endpoint())
        .env("AWS_ACCESS_KEY_ID", &b.aws().options().access_key_id)
        .env(
            "AWS_SECRET_ACCESS_KEY",
            &b.aws().options().secret_access_key,
        );
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for line in [
        "discovery #1: EKS clusters in us-east-1, eu-west-1 tagged team=platform named prod-*, shared but not *-sandbox, direct",
        &format!(
            "discovered prod-web (us-east-1, by [[discovery]] #1): {}",
            NOWHERE.0
        ),
        "left out prod-next (us-east-1): it is CREATING, not ACTIVE",
        "left out prod-old (eu-west-1): its tags lack team=platform ([[discovery]] #1)",
        "discovery: 1 cluster found, 2 left out",
    ] {
        assert!(r.stdout.contains(line), "no {line:?} in:\n{}", r.stdout);
    }
    // A region EKS does not answer is a failure of the check.
    b.aws()
        .handle()
        .fail_next(Api::Eks, 64, http::StatusCode::SERVICE_UNAVAILABLE);
    let r = run(&mut cmd);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("discovery in us-east-1: cannot list or describe its clusters: EKS ListClusters in us-east-1 failed"),
        "{}",
        r.stdout
    );
}

fn explain_marks_a_discovered_cluster_and_only_root_may_ask_the_broker() {
    let user = TestUser::create("rdiines", &[]);
    let b = broker_with(vec![cluster("prod-web", "us-east-1")], PLATFORM_BLOCK);
    clusters_of(&b, user.uid());
    let r = run(rolesh()
        .args(["explain", "rdiines", "--config"])
        .arg(b.config_path())
        .env("ROLESH_BROKER_SOCKET", b.socket()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout
            .contains("  prod-web (us-east-1, direct), default namespace web\n"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("    discovered in us-east-1 by [[discovery]] #1 (")
            && r.stdout.contains("; shown if arn:aws:iam::123456789012:role/bastion-rdiines may eks:DescribeCluster it"),
        "{}",
        r.stdout
    );
    let answer = &b.raw(user.uid(), &[r#"{"v":1,"op":"discovered"}"#])[0];
    assert_eq!(answer["error"]["code"], "denied", "{answer}");
    // Without the broker, explain says what it cannot show.
    let r = run(rolesh()
        .args(["explain", "rdiines", "--config"])
        .arg(b.config_path())
        .env("ROLESH_BROKER_SOCKET", "/nonexistent/broker.sock"));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!r.stdout.contains("prod-web"), "{}", r.stdout);
    assert!(
        r.stderr.contains("discovered clusters are not shown"),
        "{}",
        r.stderr
    );
}

fn kubectl_reaches_discovered_clusters_by_name_and_by_name_at_region() {
    require(
        "kubectl 1.33 (google-cloud-sdk)",
        std::path::Path::new(KUBECTL).exists(),
    );
    let user = TestUser::create("rdijon", &[]);
    let dir = session_visible_tempdir("rolesh-discovery");
    // `staging` is also in us-east-1 (the same API server): both are named by region.
    let b = BrokerProc::start_stack_discovering_in(dir, "", false, |stack| {
        let staging = stack.cluster("staging").unwrap();
        stack.aws().handle().add_cluster(
            EksCluster::new("staging", staging.endpoint(), staging.ca_data())
                .with_tag("rolesh-testkit", "stack"),
        );
    });
    let scratch = session_visible_tempdir("rolesh-discovery-home");
    std::os::unix::fs::chown(scratch.path(), Some(user.uid()), None).unwrap();
    let kubeconfig = scratch.path().join("kubeconfig");
    let r = run(rolesh()
        .arg("kubeconfig")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ROLESH_BROKER_SOCKET", b.socket())
        .uid(user.uid()));
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::fs::write(&kubeconfig, r.stdout).unwrap();
    std::os::unix::fs::chown(&kubeconfig, Some(user.uid()), None).unwrap();
    for context in ["demo/web", "staging@us-east-1/web", "staging@eu-west-1/web"] {
        let out = Command::new(KUBECTL)
            .args([
                "--context",
                context,
                "auth",
                "whoami",
                "-o",
                "jsonpath={.status.userInfo.username}",
            ])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", scratch.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("ROLESH_BROKER_SOCKET", b.socket())
            .uid(user.uid())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{context}: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            b.log()
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "rdijon", "{context}");
    }
    // None of what the stack's EKS holds beside them is offered.
    let written = std::fs::read_to_string(&kubeconfig).unwrap();
    for absent in ["next", "demo-sandbox", "untagged"] {
        assert!(
            !written.contains(&format!("name: {absent}")),
            "{absent}: {written}"
        );
    }
}

/// kubectl 1.33, never gcloud's dispatcher.
const KUBECTL: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

fn check_reports_discovery_mistakes_at_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[aws]\nregion = \"us-east-1\"\n{MAPPING}\n[[discovery]]\nregions = [\"us-east-1\", \"mars-1\", \"us-east-1\"]\ntags = {{ \"aws:x\" = \"y\", team = 3 }}\nnames = [\"prod.*\", \"[a\"]\naccess = \"sideways\"\ndefault_namespace = \"db\"\n[[discovery.namespace]]\nname = \"web\"\n[[discovery]]\ntags = {{ team = \"x\" }}\n[[discovery]]\nregions = []\n[broker]\ndiscovery_refresh = \"0s\"\n"
    );
    let path = write_config(dir.path(), "config.toml", &text);
    let r = run(rolesh().args(["check", "--config"]).arg(&path));
    assert_eq!(r.code, 2, "{}", r.stderr);
    let p = path.display();
    for expected in [
        format!("{p}:7:25: invalid AWS region \"mars-1\""),
        format!("{p}:7:35: region \"us-east-1\" is listed twice"),
        format!("{p}:8:10: tag key \"aws:x\" uses the reserved prefix \"aws:\""),
        format!("{p}:8:32: `discovery[0].tags.team` must be a string, not an integer"),
        format!("{p}:9:10: glob \"prod.*\" has '.'"),
        format!("{p}:9:20: invalid glob \"[a\""),
        format!("{p}:10:10: `access` must be \"direct\" or \"proxy\", not \"sideways\""),
        format!(
            "{p}:11:21: default namespace \"db\" is not one of this discovery's [[discovery.namespace]] entries"
        ),
        format!("{p}:14:1: missing required key `regions` in [discovery[1]]"),
        format!("{p}:17:11: `regions` is empty"),
        format!("{p}:19:21: duration \"0s\" is out of range"),
    ] {
        assert!(
            r.stderr.contains(&expected),
            "no {expected:?} in:\n{}",
            r.stderr
        );
    }
}

fn rbac_emits_the_bastion_roles_discovery_policy_and_the_users_describe() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[aws]\nregion = \"us-east-1\"\n[mapping]\n[[mapping.groups]]\ngroup = \"sre\"\nrole = \"arn:aws:iam::123456789012:role/sre\"\n[[discovery]]\nregions = [\"us-east-1\", \"eu-west-1\"]\ntags = { team = \"platform\" }\nnames = [\"prod-[ab]*\"]\ngroups = [\"sre\"]\n".to_string();
    let path = write_config(dir.path(), "config.toml", &text);
    let bastion = "arn:aws:iam::123456789012:role/bastion";
    let r = run(rolesh()
        .args([
            "rbac",
            "--only",
            "discovery",
            "--format",
            "json",
            "--bastion-role",
            bastion,
            "--config",
        ])
        .arg(&path));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let policy: Value = serde_json::from_str(&r.stdout).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements[0]["Action"][0], "eks:ListClusters");
    assert_eq!(statements[0]["Resource"][0], "*");
    assert_eq!(statements[1]["Action"][0], "eks:DescribeCluster");
    assert_eq!(
        statements[1]["Resource"],
        serde_json::json!([
            "arn:aws:eks:us-east-1:123456789012:cluster/prod-?*",
            "arn:aws:eks:eu-west-1:123456789012:cluster/prod-?*"
        ])
    );
    assert_eq!(
        statements[1]["Condition"]["StringEquals"]["aws:ResourceTag/team"],
        "platform"
    );
    // The role the users are mapped to may describe what the block may take.
    let r = run(rolesh()
        .args([
            "rbac",
            "--only",
            "iam",
            "--format",
            "json",
            "--bastion-role",
            bastion,
            "--config",
        ])
        .arg(&path));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let roles: Value = serde_json::from_str(&r.stdout).unwrap();
    let describe = &roles[0]["permissions_policy"]["Statement"][0];
    assert_eq!(describe["Action"][0], "eks:DescribeCluster");
    assert!(
        describe["Resource"]
            .as_array()
            .unwrap()
            .contains(&Value::from(
                "arn:aws:eks:eu-west-1:123456789012:cluster/prod-?*"
            )),
        "{describe}"
    );
    // Without [[discovery]], there is no such policy to print.
    let plain = write_config(
        dir.path(),
        "plain.toml",
        &text[..text.find("[[discovery]]").unwrap()],
    );
    let r = run(rolesh()
        .args([
            "rbac",
            "--only",
            "discovery",
            "--bastion-role",
            bastion,
            "--config",
        ])
        .arg(&plain));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no [[discovery]] in the configuration"),
        "{}",
        r.stderr
    );
}
