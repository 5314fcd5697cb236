//! Every bad configuration input: its exact message (PATH:LINE:COL), exit 2, no panic, and
//! the file left as it was.

mod common;

use common::*;
use std::os::unix::fs::PermissionsExt;

/// Runs `rolesh check` on `text` (from inside the temp dir so paths are short) and
/// returns the run; also asserts the file was not altered.
fn check(text: &str) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "config.toml", text);
    let r = run(rolesh()
        .current_dir(dir.path())
        .args(["check", "--config", "config.toml"]));
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "check must not touch the file"
    );
    assert!(!r.stderr.contains("panicked"), "{}", r.stderr);
    r
}

fn assert_errors(text: &str, expected: &[&str]) {
    let r = check(text);
    assert_eq!(r.code, 2, "stderr: {}", r.stderr);
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    let n = expected.len();
    want.push(format!(
        "rolesh: {n} error{} in the configuration",
        if n == 1 { "" } else { "s" }
    ));
    assert_eq!(r.stderr.lines().collect::<Vec<_>>(), want);
    assert_eq!(r.stdout, "", "nothing on stdout for an invalid config");
}

#[test]
fn malformed_toml() {
    assert_errors(
        "[aws\nregion = \"us-east-1\"\n",
        &["config.toml:1:5: unclosed table, expected `]`"],
    );
}

#[test]
fn unknown_key_suggests_the_right_one() {
    let text = MINIMAL.replace("region =", "region = \"us-east-1\"\nregoin =");
    assert_errors(
        &text,
        &["config.toml:3:1: unknown key `regoin` in [aws]; did you mean `region`?"],
    );
}

#[test]
fn unknown_top_level_section() {
    let text = format!("{MINIMAL}[sesion]\nmode = \"shell\"\n");
    assert_errors(
        &text,
        &["config.toml:6:2: unknown key `sesion` at the top level; did you mean `session`?"],
    );
}

#[test]
fn wrong_type() {
    let text = MINIMAL.replace("[mapping]", "session_duration = 3600\n\n[mapping]");
    assert_errors(
        &text,
        &["config.toml:4:20: `aws.session_duration` must be a string, not an integer"],
    );
}

#[test]
fn invalid_arn() {
    let text = MINIMAL.replace("123456789012:role/bastion-{user}", "123:role/x");
    assert_errors(
        &text,
        &[
            "config.toml:5:16: invalid role ARN \"arn:aws:iam::123:role/x\": the account must be 12 digits (expected arn:aws:iam::123456789012:role/NAME)",
        ],
    );
}

#[test]
fn arn_of_a_user_not_a_role() {
    let text =
        format!("{MINIMAL}[mapping.users]\nalice = \"arn:aws:iam::123456789012:user/alice\"\n");
    assert_errors(
        &text,
        &[
            "config.toml:7:9: invalid role ARN \"arn:aws:iam::123456789012:user/alice\": not a role (expected arn:aws:iam::123456789012:role/NAME)",
        ],
    );
}

#[test]
fn unknown_template_variable() {
    let text = MINIMAL.replace("[mapping]", "session_name = \"{usr}\"\n\n[mapping]");
    assert_errors(
        &text,
        &[
            "config.toml:4:16: unknown template variable `{usr}` (known: {user}, {uid}, {hostname}); did you mean `{user}`?",
        ],
    );
}

#[test]
fn session_name_template_with_a_character_sts_rejects() {
    let text = MINIMAL.replace(
        "[mapping]",
        "session_name = \"bastion {user}\"\n\n[mapping]",
    );
    assert_errors(
        &text,
        &[
            "config.toml:4:16: session name template \"bastion {user}\" contains ' '; STS allows only letters, digits and +=,.@_-",
        ],
    );
}

#[test]
fn duplicate_cluster_names() {
    let text = format!("{MINIMAL}\n[[cluster]]\nname = \"prod\"\n\n[[cluster]]\nname = \"Prod\"\n");
    assert_errors(
        &text,
        &[
            "config.toml:11:8: cluster name \"Prod\" is already used at config.toml:8:8; cluster names must be unique (ignoring case)",
        ],
    );
}

#[test]
fn invalid_selector() {
    let text = format!(
        "{MINIMAL}\n[[cluster]]\nname = \"prod\"\n[[cluster.namespace]]\nname = \"web\"\nselectors = [\"app=frontend\", \"tier in web\"]\n"
    );
    assert_errors(
        &text,
        &[
            "config.toml:11:30: invalid selector \"tier in web\": expected `(` to start a set of values, found `web`",
        ],
    );
}

#[test]
fn out_of_range_duration() {
    let text = MINIMAL.replace("[mapping]", "session_duration = \"13h\"\n\n[mapping]");
    assert_errors(
        &text,
        &["config.toml:4:20: duration \"13h\" is out of range: it must be between 15m and 12h"],
    );
}

#[test]
fn empty_config() {
    assert_errors(
        "",
        &[
            "config.toml:1:1: the configuration is empty: set at least [aws] region and a [mapping] (see /usr/share/doc/rolesh/examples)",
        ],
    );
}

#[test]
fn only_comments_is_empty_too() {
    assert_errors(
        "# nothing yet\n",
        &[
            "config.toml:1:1: the configuration is empty: set at least [aws] region and a [mapping] (see /usr/share/doc/rolesh/examples)",
        ],
    );
}

#[test]
fn missing_sections() {
    assert_errors(
        "[broker]\nmax_connections = 10\n",
        &[
            "config.toml:1:1: missing required section [aws]",
            "config.toml:1:1: missing required section [mapping]",
        ],
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = "[aws]\nregion = \"mars-1\"\nsession_duration = \"1y\"\n[mapping]\ndeny_users = \"root\"\n[[cluster]]\nname = \"bad name\"\n";
    assert_errors(
        text,
        &[
            "config.toml:2:10: invalid AWS region \"mars-1\" (expected something like \"us-east-1\")",
            "config.toml:3:20: duration \"1y\" is out of range: it must be between 15m and 12h",
            "config.toml:5:14: `mapping.deny_users` must be an array of strings, not a string",
            "config.toml:7:8: invalid cluster name \"bad name\": EKS names are 1-100 letters, digits, `-` and `_`, starting with a letter or digit",
        ],
    );
}

#[test]
fn endpoint_without_ca_and_plain_http_to_a_remote_host() {
    let text = format!("{MINIMAL}\n[[cluster]]\nname = \"prod\"\nendpoint = \"http://10.0.0.1\"\n");
    assert_errors(
        &text,
        &[
            "config.toml:9:12: plain http is allowed only to a loopback address, not \"10.0.0.1\"; use https",
            "config.toml:9:12: an `endpoint` needs `certificate_authority_data` or `ca_file` (or omit both to use DescribeCluster)",
        ],
    );
}

#[test]
fn override_without_users_or_groups() {
    let text = format!("{MINIMAL}\n[[session.override]]\nmode = \"picker\"\n");
    assert_errors(
        &text,
        &[
            "config.toml:7:1: a [[session.override]] needs `users` or `groups` to say whom it applies to",
        ],
    );
}

#[test]
fn world_writable_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "config.toml", MINIMAL);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let r = run(rolesh()
        .current_dir(dir.path())
        .args(["check", "--config", "config.toml"]));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "config.toml: refusing a config writable by group or others (mode 0666); run: chmod go-w config.toml\nrolesh: 1 error in the configuration\n"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), MINIMAL);
}

/// Finding 7 of issue 16: `rolesh check` accepted a world-writable config.d as long as it
/// held no `*.toml`.
#[test]
fn an_empty_world_writable_config_d_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), "config.toml", MINIMAL);
    let drop_in_dir = dir.path().join("config.d");
    std::fs::create_dir(&drop_in_dir).unwrap();
    std::fs::set_permissions(&drop_in_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let r = run(rolesh().args(["check", "--config"]).arg(dir.path()));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr,
        format!(
            "{0}: refusing config in a directory writable by group or others (mode 0777); run: chmod go-w {0}\nrolesh: 1 error in the configuration\n",
            drop_in_dir.display()
        )
    );
    assert_eq!(r.stdout, "");
}

#[test]
fn missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = run(rolesh()
        .current_dir(dir.path())
        .args(["check", "--config", "nope.toml"]));
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "nope.toml: cannot read config: No such file or directory\nrolesh: 1 error in the configuration\n"
    );
}

#[test]
fn a_valid_config_prints_the_summary() {
    let text = format!(
        "{MINIMAL}[mapping.users]\nalice = \"arn:aws:iam::123456789012:role/a\"\n[[mapping.groups]]\ngroup = \"sre\"\nrole = \"arn:aws:iam::123456789012:role/sre\"\n[[cluster]]\nname = \"prod\"\n[[cluster.namespace]]\nname = \"web\"\n[[cluster.namespace]]\nname = \"jobs\"\n"
    );
    let r = check(&text);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout.lines().next().unwrap(),
        "config.toml: 1 users, 1 group rules, 1 clusters, 2 namespaces, default role set"
    );
}

#[test]
fn shipped_examples_are_valid() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("config/rolesh.toml")];
    for entry in std::fs::read_dir(root.join("config/examples")).unwrap() {
        files.push(entry.unwrap().path());
    }
    assert!(files.len() >= 4);
    for file in files {
        let dir = tempfile::tempdir().unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let copy = write_config(dir.path(), "config.toml", &text);
        let r = run(rolesh().args(["check", "--config"]).arg(&copy));
        assert_eq!(r.code, 0, "{}: {}", file.display(), r.stderr);
    }
}

#[test]
fn a_bad_namespace_name_does_not_hide_its_bad_selectors() {
    let text = format!(
        "{MINIMAL}\n[[cluster]]\nname = \"prod\"\n[[cluster.namespace]]\nname = \"Bad_NS\"\nselectors = [\"tier in (web\"]\n"
    );
    assert_errors(
        &text,
        &[
            "config.toml:10:8: invalid namespace name \"Bad_NS\": lowercase letters, digits and `-`, at most 63",
            "config.toml:11:14: invalid selector \"tier in (web\": unclosed `(` in the set of values",
        ],
    );
}

#[test]
fn record_input_is_a_boolean_in_session_and_overrides() {
    let text = format!(
        "{MINIMAL}\n[session]\nrecord_input = \"yes\"\n\n[[session.override]]\nusers = [\"alice\"]\nrecord_input = 1\nrecord_inptu = true\n"
    );
    assert_errors(
        &text,
        &[
            "config.toml:8:16: `session.record_input` must be true or false, not a string",
            "config.toml:12:16: `session.override[0].record_input` must be true or false, not an integer",
            "config.toml:13:1: unknown key `record_inptu` in [session.override[0]]; did you mean `record_input`?",
        ],
    );
    let ok = format!("{MINIMAL}\n[session]\nrecord = \"all\"\nrecord_input = true\n");
    assert_eq!(check(&ok).code, 0);
}

#[test]
fn audit_limits_name_what_is_wrong() {
    let text = format!(
        "{MINIMAL}[audit]\nrecording_quota = \"1.5GiB\"\nmin_free = \"120%\"\nevent_rate_per_uid = 0\nexempt_groups = \"auditors\"\nrecording_qouta = \"1GiB\"\n"
    );
    assert_errors(
        &text,
        &[
            "config.toml:7:19: invalid size \"1.5GiB\"; write it like \"1GiB\" or \"500MiB\"",
            "config.toml:8:12: invalid share \"120%\": a whole percentage from 0% to 99%",
            "config.toml:9:22: `audit.event_rate_per_uid` = 0 is out of range (1..=10000)",
            "config.toml:10:17: `audit.exempt_groups` must be an array of strings, not a string",
            "config.toml:11:1: unknown key `recording_qouta` in [audit]; did you mean `recording_quota`?",
        ],
    );
    let tiny = format!("{MINIMAL}[audit]\nrecording_quota = \"100\"\nexempt_groups = [\"a b\"]\n");
    assert_errors(
        &tiny,
        &[
            "config.toml:7:19: size \"100\" is out of range: it must be between 1 KiB and 1 PiB",
            "config.toml:8:18: invalid group name \"a b\"",
        ],
    );
}

#[test]
fn a_proxied_cluster_refuses_exposed_credentials() {
    let text = MINIMAL.replace(
        "region = \"us-east-1\"\n",
        "region = \"us-east-1\"\nexpose_credentials = true\n",
    ) + "\n[[cluster]]\nname = \"prod\"\naccess = \"proxy\"\n";
    assert_errors(
        &text,
        &[
            "config.toml:10:10: `access = \"proxy\"` cannot go with `[aws] expose_credentials = true`: sessions would hold the role's credentials, and `aws eks get-token` reaches the cluster around the proxy",
        ],
    );
}

/// A `[[cluster]]` of `kind = "kubernetes"` with `body` after its name, in a config whose
/// credential files live in `dir`.
fn kubernetes_cluster(body: &str) -> String {
    format!("{MINIMAL}\n[[cluster]]\nname = \"onprem\"\nkind = \"kubernetes\"\n{body}")
}

/// A credential file in `dir` with `mode`.
fn credential(dir: &std::path::Path, name: &str, mode: u32) -> String {
    let path = dir.join(name);
    std::fs::write(&path, "a-token\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.display().to_string()
}

const ENDPOINT_AND_CA: &str = "endpoint = \"https://10.0.0.1:6443\"\ncertificate_authority_data = \"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUIKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=\"\n";

#[test]
fn a_kubernetes_cluster_needs_the_proxy_an_endpoint_and_credentials() {
    assert_errors(
        &kubernetes_cluster(""),
        &[
            "config.toml:9:8: a `kind = \"kubernetes\"` cluster needs `access = \"proxy\"`: the broker holds its credential and impersonates each user, so kubectl reaches it only through the broker's API proxy",
            "config.toml:9:8: a `kind = \"kubernetes\"` cluster needs `endpoint` and its CA (`ca_file` or `certificate_authority_data`): there is no DescribeCluster to ask",
            "config.toml:9:8: a `kind = \"kubernetes\"` cluster needs `[cluster.credentials]`: the broker's own `kubeconfig`, `token_file`, or `client_certificate` and `client_key`",
        ],
    );
}

#[test]
fn a_credential_file_others_may_read_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let token = credential(dir.path(), "onprem.token", 0o644);
    let text = kubernetes_cluster(&format!(
        "access = \"proxy\"\n{ENDPOINT_AND_CA}credentials.token_file = \"{token}\"\n"
    ));
    assert_errors(
        &text,
        &[&format!(
            "config.toml:13:26: {token} has mode 0644: a cluster credential must be readable by its owner alone (chmod 600 {token})"
        )],
    );
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let r = check(&text);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains(&format!("cluster onprem: kubernetes, through the API proxy (https://127.0.0.1:7443/clusters/onprem), impersonating each user as rolesh-broker: the allowlist and selectors bind every kubectl call; the broker's credential ({token}) stays in the broker")),
        "{}",
        r.stdout
    );
}

#[test]
fn credentials_must_be_one_source_and_only_for_kubernetes_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let token = credential(dir.path(), "t", 0o600);
    let cert = credential(dir.path(), "c.pem", 0o600);
    let both = kubernetes_cluster(&format!(
        "access = \"proxy\"\n{ENDPOINT_AND_CA}[cluster.credentials]\ntoken_file = \"{token}\"\nclient_certificate = \"{cert}\"\n"
    ));
    assert_errors(
        &both,
        &[
            "config.toml:13:1: [cluster[0].credentials] takes one credential: `kubeconfig`, `token_file`, or `client_certificate` with `client_key`, not several",
        ],
    );
    let half = kubernetes_cluster(&format!(
        "access = \"proxy\"\n{ENDPOINT_AND_CA}credentials.client_certificate = \"{cert}\"\n"
    ));
    assert_errors(
        &half,
        &["config.toml:13:34: `client_certificate` needs its `client_key`"],
    );
    let missing = kubernetes_cluster(&format!(
        "access = \"proxy\"\n{ENDPOINT_AND_CA}credentials.token_file = \"{token}.gone\"\n"
    ));
    assert_errors(
        &missing,
        &[&format!(
            "config.toml:13:26: {token}.gone: No such file or directory (os error 2)"
        )],
    );
    let on_eks =
        format!("{MINIMAL}\n[[cluster]]\nname = \"prod\"\ncredentials.token_file = \"{token}\"\n");
    assert_errors(
        &on_eks,
        &[
            "config.toml:9:1: `credentials` are for `kind = \"kubernetes\"`: an EKS cluster is reached with each user's own role",
        ],
    );
}

#[test]
fn a_broker_identity_the_cluster_gives_to_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let token = credential(dir.path(), "t", 0o600);
    for (identity, why) in [
        (
            "system:anonymous",
            "\"system:anonymous\" is a name the cluster gives to others (system:…): the broker's identity must be its own user or service account (system:serviceaccount:NS:NAME)",
        ),
        (
            "system:serviceaccount:web:default",
            "\"system:serviceaccount:web:default\" is the service account of every pod in its namespace that names none: give the broker its own",
        ),
    ] {
        let text = kubernetes_cluster(&format!(
            "access = \"proxy\"\n{ENDPOINT_AND_CA}credentials.token_file = \"{token}\"\ncredentials.identity = \"{identity}\"\n"
        ));
        assert_errors(&text, &[&format!("config.toml:14:24: {why}")]);
    }
}

#[test]
fn a_group_rule_whose_kubernetes_group_is_another_rules_is_refused() {
    let text = format!(
        "{MINIMAL}\n[[mapping.groups]]\ngroup = \"user-bob\"\nrole = \"arn:aws:iam::123456789012:role/x\"\n"
    );
    assert_errors(
        &text,
        &[
            "config.toml:8:9: group \"user-bob\" would share its Kubernetes group rolesh:user-bob with a [mapping.users] rule: rename the rule's group",
        ],
    );
}
