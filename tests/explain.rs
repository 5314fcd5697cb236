//! `rolesh explain` against real accounts (useradd, as root) and NSS-wrapped ones.

mod common;

use common::*;
use serde_json::Value;

common::harness::tests!(
    root: [
        real_accounts_get_the_rule_their_precedence_gives,
        primary_group_counts,
        denied_and_unknown_users_exit_77,
        // Root too: rolesh warns about a config file not owned by root, on stderr, which
        // it compares whole.
        user_names_sts_would_reject,
    ],
);

const CONFIG: &str = r#"
[aws]
region = "us-east-1"
[aws.tags]
unix_user = "{user}"
[mapping]
deny_users = ["rsxmallory"]
[mapping.users]
rsxalice = "arn:aws:iam::123456789012:role/platform-admin"
[[mapping.groups]]
group = "rsxops"
role = "arn:aws:iam::123456789012:role/ops"
[[mapping.groups]]
group = "rsxsre"
role = "arn:aws:iam::123456789012:role/sre"
[[cluster]]
name = "prod"
groups = ["rsxsre"]
[[cluster.namespace]]
name = "web"
selectors = ["app=frontend", "tier in (web,edge)"]
[[cluster]]
name = "dev"
[[session.override]]
groups = ["rsxsre"]
mode = "restricted"
"#;

fn explain(config_dir: &std::path::Path, user: &str, json: bool) -> Run {
    let path = write_config(config_dir, "config.toml", CONFIG);
    let mut cmd = rolesh();
    cmd.args(["explain", user, "--config"]).arg(path);
    if json {
        cmd.arg("--json");
    }
    run(&mut cmd)
}

fn real_accounts_get_the_rule_their_precedence_gives() {
    let dir = tempfile::tempdir().unwrap();
    let _alice = TestUser::create("rsxalice", &["rsxsre"]);
    let _bob = TestUser::create("rsxbob", &["rsxops2", "rsxsre2"]);
    let _carol = TestUser::create("rsxcarol", &["rsxsre"]);

    let r = explain(dir.path(), "rsxalice", true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["role_arn"], "arn:aws:iam::123456789012:role/platform-admin",
        "users beats groups"
    );
    assert_eq!(v["rule"], "mapping.users.rsxalice");
    assert_eq!(v["session_name"], "rsxalice");
    assert_eq!(v["tags"]["unix_user"], "rsxalice");

    let r = explain(dir.path(), "rsxcarol", true);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        v["role_arn"], "arn:aws:iam::123456789012:role/sre",
        "supplementary group rsxsre"
    );
    assert_eq!(
        v["session"]["mode"], "restricted",
        "the rsxsre override applies"
    );
    let clusters: Vec<&str> = v["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["prod", "dev"]);
    assert_eq!(
        v["clusters"][0]["namespaces"][0]["selectors"][1],
        "tier in (web,edge)"
    );

    // bob's groups match no rule and there is no default_role.
    let r = explain(dir.path(), "rsxbob", false);
    assert_eq!(r.code, 77);
    assert!(r.stdout.contains("3. groups: no [[mapping.groups]] rule names any of rsxbob's groups (rsxbob, rsxops2, rsxsre2)"), "{}", r.stdout);
    assert_eq!(
        r.stderr,
        "rolesh: user rsxbob is not mapped to any role (no users, groups or default_role rule matches)\n"
    );
}

fn primary_group_counts() {
    let dir = tempfile::tempdir().unwrap();
    let _ops = TestUser::create("rsxdave", &["rsxops"]);
    let out = std::process::Command::new("usermod")
        .args(["-g", "rsxops", "-G", "", "rsxdave"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let r = explain(dir.path(), "rsxdave", true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["role_arn"], "arn:aws:iam::123456789012:role/ops");
    assert_eq!(
        v["clusters"].as_array().unwrap().len(),
        1,
        "only dev: prod is for rsxsre"
    );
}

fn denied_and_unknown_users_exit_77() {
    let dir = tempfile::tempdir().unwrap();
    let _m = TestUser::create("rsxmallory", &["rsxsre"]);
    let r = explain(dir.path(), "rsxmallory", false);
    assert_eq!(r.code, 77);
    assert_eq!(
        r.stderr,
        "rolesh: user rsxmallory is in [mapping] deny_users\n"
    );
    assert!(
        r.stdout
            .contains("1. deny_users: rsxmallory is listed: denied")
    );

    let r = explain(dir.path(), "rsxnobody-here", false);
    assert_eq!(r.code, 77);
    assert_eq!(
        r.stderr,
        "rolesh: no such user: rsxnobody-here (explain looks users up through NSS)\n"
    );
    assert_eq!(r.stdout, "");
}

/// Names that render to an invalid STS session name: a clear error naming the user, exit 2.
fn user_names_sts_would_reject() {
    require(
        "libnss-wrapper (apt-get install libnss-wrapper)",
        std::path::Path::new(NSS_WRAPPER).exists(),
    );
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(70);
    let passwd = format!(
        "john smith:x:2001:2001::/home/js:/bin/sh\n{long}:x:2002:2002::/home/x:/bin/sh\nrsxok:x:2003:2003::/home/ok:/bin/sh\n"
    );
    let group = "js:x:2001:\nlong:x:2002:\nrsxsre:x:2003:\n";
    let config = write_config(
        dir.path(),
        "config.toml",
        &CONFIG.replace(
            "[mapping]",
            "[mapping]\ndefault_role = \"arn:aws:iam::123456789012:role/bastion\"",
        ),
    );
    let cases = [
        (
            "john smith",
            "rolesh: user john smith: session name \"john smith\" contains ' '; STS allows only letters, digits and +=,.@_-\n",
        ),
        (
            long.as_str(),
            &*format!(
                "rolesh: user {long}: session name \"{long}\" must be 2-64 characters long (it is 70)\n"
            ),
        ),
    ];
    for (user, message) in cases {
        let mut cmd = rolesh();
        cmd.args(["explain", user, "--config"]).arg(&config);
        nss_wrapped(&mut cmd, dir.path(), &passwd, group);
        let r = run(&mut cmd);
        assert_eq!(r.code, 2, "{user}: {}", r.stderr);
        assert_eq!(r.stderr, message);
    }
    // The same wrapped database resolves a valid user and its primary group.
    let mut cmd = rolesh();
    cmd.args(["explain", "rsxok", "--json", "--config"])
        .arg(&config);
    nss_wrapped(&mut cmd, dir.path(), &passwd, group);
    let r = run(&mut cmd);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["role_arn"], "arn:aws:iam::123456789012:role/sre");
}
