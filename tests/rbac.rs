//! `rolesh rbac`: the generated cluster side and IAM side of the mapping.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;

const CONFIG: &str = r#"
[aws]
region = "us-east-1"
[aws.tags]
unix_user = "{user}"
[mapping]
default_role = "arn:aws:iam::123456789012:role/bastion-{user}"
[mapping.users]
rbacalice = { role = "arn:aws:iam::123456789012:role/platform/admin", access = "admin" }
[[mapping.groups]]
group = "sre"
role = "arn:aws:iam::123456789012:role/sre"
access = "poweruser"
[[mapping.groups]]
group = "web-devs"
role = "arn:aws:iam::123456789012:role/web"
namespaces = ["web", "jobs"]
[[cluster]]
name = "prod"
groups = ["sre"]
[[cluster]]
name = "dev"
region = "eu-west-1"
"#;

fn generate(extra: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "config.toml", CONFIG);
    let r = run(rolesh()
        .args(["rbac", "--format", "json", "--config"])
        .arg(&config)
        .args(extra));
    assert_eq!(r.code, 0, "{}", r.stderr);
    (serde_json::from_str(&r.stdout).unwrap(), r.stderr)
}

fn names(objects: &Value, kind: &str) -> Vec<String> {
    objects
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["kind"] == kind)
        .map(|o| match o["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", o["metadata"]["name"].as_str().unwrap()),
            None => o["metadata"]["name"].as_str().unwrap().to_string(),
        })
        .collect()
}

#[test]
fn bindings_follow_the_rules() {
    let (doc, stderr) = generate(&[]);
    assert_eq!(
        (&doc["apiVersion"], &doc["kind"]),
        (&Value::from("v1"), &Value::from("List"))
    );
    let k = &doc["items"];
    assert_eq!(
        names(k, "ClusterRole"),
        ["rolesh:admin", "rolesh:poweruser", "rolesh:user"]
    );
    assert_eq!(
        names(k, "ClusterRoleBinding"),
        ["rolesh:sre", "rolesh:user-rbacalice"]
    );
    assert_eq!(
        names(k, "RoleBinding"),
        ["jobs/rolesh:web-devs", "web/rolesh:web-devs"]
    );
    let binding = |name: &str| {
        k.as_array()
            .unwrap()
            .iter()
            .find(|o| {
                names(
                    &Value::Array(vec![(*o).clone()]),
                    o["kind"].as_str().unwrap(),
                )[0] == name
            })
            .unwrap()
            .clone()
    };
    assert_eq!(binding("rolesh:sre")["roleRef"]["name"], "rolesh:poweruser");
    assert_eq!(binding("rolesh:sre")["subjects"][0]["name"], "rolesh:sre");
    assert_eq!(
        binding("web/rolesh:web-devs")["roleRef"]["name"],
        "rolesh:user",
        "access defaults to user"
    );
    assert_eq!(
        binding("rolesh:user-rbacalice")["roleRef"]["name"],
        "rolesh:admin"
    );
    assert!(
        stderr.contains(
            "mapping.default_role (arn:aws:iam::123456789012:role/bastion-{user}) is a template"
        ),
        "{stderr}"
    );
}

#[test]
fn poweruser_has_no_rbac_and_no_secret_writes_and_user_can_exec() {
    let (doc, _) = generate(&[]);
    let role = |name: &str| {
        doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["kind"] == "ClusterRole" && o["metadata"]["name"] == name)
            .unwrap()["rules"]
            .clone()
    };
    let grants = |rules: &Value, group: &str, resource: &str, verb: &str| {
        rules.as_array().unwrap().iter().any(|r| {
            let has = |k: &str, v: &str| {
                r[k].as_array()
                    .is_some_and(|a| a.iter().any(|x| x == v || x == "*"))
            };
            has("apiGroups", group) && has("resources", resource) && has("verbs", verb)
        })
    };
    let power = role("rolesh:poweruser");
    assert!(grants(&power, "apps", "deployments", "patch"));
    assert!(grants(&power, "", "pods/portforward", "create"));
    assert!(grants(&power, "", "secrets", "get"));
    for verb in ["create", "update", "patch", "delete"] {
        assert!(
            !grants(&power, "", "secrets", verb),
            "poweruser may not {verb} secrets"
        );
        assert!(!grants(
            &power,
            "rbac.authorization.k8s.io",
            "rolebindings",
            verb
        ));
    }
    let user = role("rolesh:user");
    assert!(grants(&user, "", "pods", "list"));
    assert!(grants(&user, "", "pods/log", "get"));
    assert!(grants(&user, "", "pods/exec", "create"));
    assert!(!grants(&user, "", "pods", "delete"));
    assert!(!grants(&user, "", "secrets", "get"));
    assert!(grants(
        &role("rolesh:admin"),
        "rbac.authorization.k8s.io",
        "clusterroles",
        "escalate"
    ));
}

#[test]
fn aws_auth_maps_each_role_to_its_session_name() {
    let (doc, _) = generate(&[]);
    let cm = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["kind"] == "ConfigMap")
        .expect("aws-auth is a Kubernetes object: on stdout");
    assert_eq!(cm["metadata"]["namespace"], "kube-system");
    let map_roles = cm["data"]["mapRoles"].as_str().unwrap();
    assert!(
        map_roles.contains("- rolearn: arn:aws:iam::123456789012:role/admin\n"),
        "EKS wants the ARN without the path:\n{map_roles}"
    );
    assert!(
        map_roles.contains("username: '{{SessionName}}'"),
        "{map_roles}"
    );
    assert!(map_roles.contains("- rolesh:web-devs"), "{map_roles}");
}

#[test]
fn access_entries_per_cluster_and_scope() {
    let (doc, _) = generate(&["--only", "access-entries"]);
    let entries = doc.as_array().unwrap();
    let summary: Vec<String> = entries
        .iter()
        .map(|e| {
            let c = &e["createAccessEntry"];
            let p = &e["associateAccessPolicy"][0];
            format!(
                "{} {} {} {}",
                c["clusterName"].as_str().unwrap(),
                c["principalArn"].as_str().unwrap(),
                p["policyArn"].as_str().unwrap().rsplit('/').next().unwrap(),
                p["accessScope"]["type"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "dev arn:aws:iam::123456789012:role/platform/admin AmazonEKSClusterAdminPolicy cluster",
            "dev arn:aws:iam::123456789012:role/sre AmazonEKSEditPolicy cluster",
            "dev arn:aws:iam::123456789012:role/web AmazonEKSViewPolicy namespace",
            "prod arn:aws:iam::123456789012:role/sre AmazonEKSEditPolicy cluster",
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e["createAccessEntry"]["username"] == "{{SessionName}}")
    );
}

/// Action, condition key and operator names from the IAM and STS/EKS service authorization
/// references; anything else in a generated policy is a typo IAM would reject or ignore.
const DOCUMENTED_ACTIONS: [&str; 4] = [
    "sts:AssumeRole",
    "sts:SetSourceIdentity",
    "sts:TagSession",
    "eks:DescribeCluster",
];
const DOCUMENTED_KEYS: [&str; 3] = ["sts:RoleSessionName", "sts:SourceIdentity", "aws:TagKeys"];
const DOCUMENTED_OPERATORS: [&str; 3] = ["StringEquals", "Null", "ForAllValues:StringEquals"];

#[test]
fn iam_policies_parse_back_and_use_only_documented_names() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "config.toml", CONFIG);
    let out = dir.path().join("out");
    let r = run(rolesh()
        .args(["rbac", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut files: Vec<String> = std::fs::read_dir(out.join("iam"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "admin.permissions.json",
            "admin.trust.json",
            "sre.permissions.json",
            "sre.trust.json",
            "web.permissions.json",
            "web.trust.json"
        ]
    );
    let mut actions = BTreeSet::new();
    for f in &files {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("iam").join(f)).unwrap())
                .unwrap();
        assert_eq!(v["Version"], "2012-10-17");
        for s in v["Statement"].as_array().unwrap() {
            assert_eq!(s["Effect"], "Allow");
            for a in s["Action"].as_array().unwrap() {
                assert!(
                    DOCUMENTED_ACTIONS.contains(&a.as_str().unwrap()),
                    "{f}: {a}"
                );
                actions.insert(a.as_str().unwrap().to_string());
            }
            for (op, keys) in s["Condition"].as_object().into_iter().flatten() {
                assert!(DOCUMENTED_OPERATORS.contains(&op.as_str()), "{f}: {op}");
                for key in keys.as_object().unwrap().keys() {
                    assert!(DOCUMENTED_KEYS.contains(&key.as_str()), "{f}: {key}");
                }
            }
        }
    }
    assert_eq!(actions.len(), 4);
    let trust: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("iam/admin.trust.json")).unwrap())
            .unwrap();
    let cond = &trust["Statement"][0]["Condition"];
    assert_eq!(
        cond["StringEquals"]["sts:RoleSessionName"],
        serde_json::json!(["rbacalice"]),
        "a per-user role only under that user's name"
    );
    assert_eq!(
        cond["ForAllValues:StringEquals"]["aws:TagKeys"],
        serde_json::json!(["unix_user"])
    );
    let perms: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("iam/sre.permissions.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        perms["Statement"][0]["Resource"],
        serde_json::json!([
            "arn:aws:eks:eu-west-1:123456789012:cluster/dev",
            "arn:aws:eks:us-east-1:123456789012:cluster/prod"
        ])
    );
}

#[test]
fn output_is_stable() {
    let (a, _) = generate(&[]);
    let (b, _) = generate(&[]);
    assert_eq!(a, b);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "config.toml", CONFIG);
    let y1 = run(rolesh().args(["rbac", "--config"]).arg(&config)).stdout;
    let y2 = run(rolesh().args(["rbac", "--config"]).arg(&config)).stdout;
    assert_eq!(y1, y2);
    assert!(
        y1.starts_with("# Generated by `rolesh rbac`") && y1.contains("\n---\napiVersion: "),
        "a YAML stream of objects: {y1}"
    );
}

#[test]
fn stdout_is_kubernetes_objects_only_and_stderr_names_what_is_left_out() {
    let (doc, stderr) = generate(&[]);
    let kinds: BTreeSet<&str> = doc["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from([
            "ClusterRole",
            "ClusterRoleBinding",
            "RoleBinding",
            "ConfigMap"
        ])
    );
    assert!(
        stderr
            .contains("not on it: the IAM trust and permissions policies of 3 roles (--only iam)"),
        "{stderr}"
    );
    let (entries_doc, stderr) = generate(&["--identity", "access-entries"]);
    assert!(
        entries_doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["kind"] != "ConfigMap"),
        "no aws-auth with access entries"
    );
    assert!(
        stderr.contains("and the EKS access entries (--only access-entries)"),
        "{stderr}"
    );
    let (iam, stderr) = generate(&["--only", "iam"]);
    let roles: Vec<&str> = iam
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["role_arn"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "arn:aws:iam::123456789012:role/platform/admin",
            "arn:aws:iam::123456789012:role/sre",
            "arn:aws:iam::123456789012:role/web"
        ]
    );
    assert!(!stderr.contains("not on it"), "{stderr}");
}

#[test]
fn only_and_out_do_not_mix() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "config.toml", CONFIG);
    let r = run(rolesh()
        .args(["rbac", "--only", "iam", "--out"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("cannot be used with"), "{}", r.stderr);
}

#[test]
fn bad_access_levels_are_config_errors() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{MINIMAL}[[mapping.groups]]\ngroup = \"sre\"\nrole = \"arn:aws:iam::123456789012:role/sre\"\naccess = \"root\"\nnamespaces = [\"Web\"]\n"
    );
    let config = write_config(dir.path(), "config.toml", &text);
    let r = run(rolesh()
        .current_dir(dir.path())
        .args(["check", "--config", "config.toml"]));
    assert_eq!(r.code, 2);
    drop(config);
    assert_eq!(
        r.stderr,
        "config.toml:9:10: `access` must be \"admin\", \"poweruser\" or \"user\", not \"root\"\nconfig.toml:10:15: invalid namespace name \"Web\": lowercase letters, digits and `-`, at most 63\nrolesh: 2 errors in the configuration\n"
    );
}
