//! `rolesh rbac` against a cluster: the generated RBAC loaded into rolesh-testkit's
//! authorizer gives exactly the expected allow/deny matrix, and real kubectl, through
//! tokens of the mapped roles and the generated aws-auth, agrees (`kubectl auth can-i`)
//! and accepts the YAML (`kubectl create --dry-run=client`).

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use rolesh_testkit::fake_aws::{FakeAws, FakeAwsOptions};
use rolesh_testkit::fake_k8s::{Authorizer, FakeK8s, FakeK8sOptions, KubeUser};

const CONFIG: &str = r#"
[aws]
region = "us-east-1"
[mapping]
[mapping.users]
rbcalice = { role = "arn:aws:iam::123456789012:role/platform/admin", access = "admin" }
[[mapping.groups]]
group = "sre"
role = "arn:aws:iam::123456789012:role/sre"
access = "poweruser"
[[mapping.groups]]
group = "web-devs"
role = "arn:aws:iam::123456789012:role/web"
namespaces = ["web", "jobs"]
[[cluster]]
name = "demo"
"#;

fn generated(dir: &Path) -> (String, String) {
    let config = write_config(dir, "config.toml", CONFIG);
    let out = dir.join("out");
    let r = run(rolesh()
        .args(["rbac", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let read = |f: &str| std::fs::read_to_string(out.join(f)).unwrap();
    (
        read("kubernetes/rbac.yaml"),
        read("kubernetes/aws-auth.yaml"),
    )
}

/// (Kubernetes group, verb, resource, subresource, namespace, allowed)
const MATRIX: &[(&str, &str, &str, &str, &str, bool)] = &[
    (
        "rolesh:user-rbcalice",
        "delete",
        "secrets",
        "",
        "kube-system",
        true,
    ),
    (
        "rolesh:user-rbcalice",
        "create",
        "clusterrolebindings",
        "",
        "",
        true,
    ),
    (
        "rolesh:sre",
        "patch",
        "deployments",
        "",
        "kube-system",
        true,
    ),
    ("rolesh:sre", "create", "pods", "exec", "web", true),
    ("rolesh:sre", "create", "pods", "portforward", "jobs", true),
    ("rolesh:sre", "get", "secrets", "", "web", true),
    ("rolesh:sre", "create", "secrets", "", "web", false),
    ("rolesh:sre", "update", "secrets", "", "web", false),
    ("rolesh:sre", "create", "rolebindings", "", "web", false),
    ("rolesh:sre", "create", "clusterroles", "", "", false),
    ("rolesh:web-devs", "list", "pods", "", "web", true),
    ("rolesh:web-devs", "get", "pods", "log", "jobs", true),
    ("rolesh:web-devs", "create", "pods", "exec", "web", true),
    ("rolesh:web-devs", "list", "pods", "", "kube-system", false),
    (
        "rolesh:web-devs",
        "create",
        "pods",
        "exec",
        "kube-system",
        false,
    ),
    ("rolesh:web-devs", "delete", "pods", "", "web", false),
    ("rolesh:web-devs", "get", "secrets", "", "web", false),
    ("rolesh:nobody", "list", "pods", "", "web", false),
];

fn group_of(api_resource: &str) -> &'static str {
    match api_resource {
        "deployments" => "apps",
        "rolebindings" | "clusterroles" | "clusterrolebindings" => "rbac.authorization.k8s.io",
        _ => "",
    }
}

#[test]
fn generated_rbac_gives_exactly_the_expected_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let (rbac, _) = generated(dir.path());
    let authorizer = Authorizer::from_yaml(&rbac).expect("the generated RBAC loads");
    for &(group, verb, resource, sub, ns, expected) in MATRIX {
        let groups = vec![group.to_string(), "system:authenticated".to_string()];
        let got = authorizer.allows(
            "someone",
            &groups,
            verb,
            group_of(resource),
            resource,
            sub,
            ns,
            "",
        );
        assert_eq!(got, expected, "{group} {verb} {resource}/{sub} in {ns:?}");
    }
}

#[test]
fn kubectl_agrees_through_the_generated_aws_auth() {
    let kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
    require(
        "kubectl 1.33 (google-cloud-sdk)",
        Path::new(kubectl).exists(),
    );
    let dir = tempfile::tempdir().unwrap();
    let (rbac, aws_auth) = generated(dir.path());
    let aws = FakeAws::start_in_background(FakeAwsOptions::default()).unwrap();
    let options = FakeK8sOptions::new("demo", aws.handle().clone())
        .with_rbac_yaml(&format!("{rbac}\n---\n{aws_auth}"))
        .unwrap();
    let cluster = FakeK8s::start_in_background(options).unwrap();

    // A token for each mapped role, as `aws eks get-token --role-arn` would make.
    let as_role = |role: &str| {
        let user = KubeUser::Exec {
            command: env!("CARGO_BIN_EXE_rolesh").to_string(),
            args: [
                "token",
                "--cluster-name",
                "demo",
                "--region",
                "us-east-1",
                "--role-arn",
                role,
            ]
            .map(String::from)
            .to_vec(),
            env: vec![
                (
                    "AWS_ACCESS_KEY_ID".into(),
                    aws.options().access_key_id.clone(),
                ),
                (
                    "AWS_SECRET_ACCESS_KEY".into(),
                    aws.options().secret_access_key.clone(),
                ),
                ("AWS_ENDPOINT_URL_STS".into(), aws.endpoint()),
                ("AWS_CONFIG_FILE".into(), "/dev/null".into()),
                ("AWS_SHARED_CREDENTIALS_FILE".into(), "/dev/null".into()),
            ],
        };
        let path = dir
            .path()
            .join(format!("kubeconfig-{}", role.rsplit('/').next().unwrap()));
        std::fs::write(&path, cluster.kubeconfig("demo", &user)).unwrap();
        path
    };
    let roles = [
        (
            "rolesh:user-rbcalice",
            as_role("arn:aws:iam::123456789012:role/platform/admin"),
        ),
        ("rolesh:sre", as_role("arn:aws:iam::123456789012:role/sre")),
        (
            "rolesh:web-devs",
            as_role("arn:aws:iam::123456789012:role/web"),
        ),
    ];
    for &(group, verb, resource, sub, ns, expected) in MATRIX {
        let Some((_, kubeconfig)) = roles.iter().find(|(g, _)| *g == group) else {
            continue;
        };
        let mut cmd = Command::new(kubectl);
        let qualified = match group_of(resource) {
            "" => resource.to_string(),
            g => format!("{resource}.{g}"),
        };
        cmd.env("KUBECONFIG", kubeconfig)
            .args(["auth", "can-i", verb, &qualified]);
        if !sub.is_empty() {
            cmd.arg(format!("--subresource={sub}"));
        }
        if ns.is_empty() {
            cmd.arg("--all-namespaces");
        } else {
            cmd.args(["-n", ns]);
        }
        let r = run(&mut cmd);
        let allowed = r.stdout.trim() == "yes";
        assert_eq!(
            allowed, expected,
            "kubectl auth can-i {verb} {resource}/{sub} -n {ns:?} as {group}: {} {}",
            r.stdout, r.stderr
        );
    }

    // kubectl accepts every generated object.
    let admin = &roles[0].1;
    for file in ["kubernetes/rbac.yaml", "kubernetes/aws-auth.yaml"] {
        let r = run(Command::new(kubectl)
            .env("KUBECONFIG", admin)
            .args([
                "create",
                "--dry-run=client",
                "--validate=false",
                "-o",
                "name",
                "-f",
            ])
            .arg(dir.path().join("out").join(file)));
        assert_eq!(r.code, 0, "{file}: {}", r.stderr);
        assert!(!r.stdout.is_empty());
    }
}

/// A config with a `kubernetes` cluster, its broker token file in `dir`.
fn onprem_config(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let token = dir.join("onprem.token");
    std::fs::write(&token, "broker-token\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = CONFIG.replace(
        "[mapping]\n",
        "[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion\"\n",
    );
    let text = format!(
        "{config}\n[[cluster]]\nname = \"onprem\"\nkind = \"kubernetes\"\naccess = \"proxy\"\n\
         endpoint = \"https://127.0.0.1:6443\"\n\
         certificate_authority_data = \"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\"\n\
         credentials.token_file = \"{}\"\n",
        token.display()
    );
    write_config(dir, "config.toml", &text)
}

/// `rolesh rbac` for a `kubernetes` cluster, applied to a fake API server that knows the
/// broker's token: the broker may impersonate exactly the mapped users and groups, and
/// those objects are not in the output meant for EKS clusters.
#[test]
fn the_impersonation_rbac_grants_exactly_the_mapped_identities() {
    let kubectl = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";
    require(
        "kubectl 1.33 (google-cloud-sdk)",
        Path::new(kubectl).exists(),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = onprem_config(dir.path());
    let r = run(rolesh()
        .args(["rbac", "--config"])
        .arg(&config)
        .args(["--only", "impersonation"]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let impersonation = r.stdout;
    assert!(
        r.stderr.contains("users mapped by mapping.default_role cannot be listed for impersonation on cluster onprem"),
        "{}",
        r.stderr
    );
    assert!(
        impersonation.contains("rolesh:impersonator:onprem"),
        "{impersonation}"
    );
    let r = run(rolesh().args(["rbac", "--config"]).arg(&config));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        !r.stdout.contains("impersonat"),
        "the output for every cluster grants no impersonation: {}",
        r.stdout
    );
    assert!(r.stderr.contains("--only impersonation"), "{}", r.stderr);
    let rbac = r.stdout;

    let aws = FakeAws::start_in_background(FakeAwsOptions::default()).unwrap();
    let options = FakeK8sOptions::new("onprem", aws.handle().clone())
        .with_rbac_yaml(&format!("{rbac}\n---\n{impersonation}"))
        .unwrap()
        .with_static_token("broker-token", "rolesh-broker");
    let cluster = FakeK8s::start_in_background(options).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        cluster.kubeconfig("onprem", &KubeUser::Token("broker-token".into())),
    )
    .unwrap();
    let kubectl_as = |args: &[&str]| {
        run(Command::new(kubectl)
            .env("KUBECONFIG", &kubeconfig)
            .env("HOME", dir.path())
            .args(args))
    };
    // As rbcalice in her group: what her rule grants (admin).
    let r = kubectl_as(&[
        "--as",
        "rbcalice",
        "--as-group",
        "rolesh:user-rbcalice",
        "auth",
        "can-i",
        "delete",
        "secrets",
        "-n",
        "kube-system",
    ]);
    assert_eq!(r.stdout.trim(), "yes", "{}", r.stderr);
    // Anyone unmapped, or any other group, is 403 at the cluster.
    for (who, group, refused) in [
        ("mallory", "rolesh:user-rbcalice", "users"),
        ("rbcalice", "system:masters", "groups"),
    ] {
        let r = kubectl_as(&["--as", who, "--as-group", group, "get", "pods", "-n", "web"]);
        assert_ne!(r.code, 0);
        assert!(
            r.stderr.contains(&format!(
                "User \"rolesh-broker\" cannot impersonate resource \"{refused}\""
            )),
            "{who} in {group}: {}",
            r.stderr
        );
    }
}
