//! What an allowed tool may be asked to do in restricted mode and in `ssh bastion CMD`
//! (SPEC §6): each of kubectl, helm and aws can be made to start a program of the user's
//! choosing — an exec plugin in a kubeconfig, a helm plugin or post-renderer, an AWS
//! `credential_process`, an editor, a pager — which would be a shell outside every
//! control. The flags and subcommands that do so are refused here, each with its reason;
//! the environment the session gives these tools ([`environment`]) closes the rest (an
//! editor without a shell escape, no pager, plugins only from root's directory, and no
//! configuration file the user can write).
//!
//! Shell mode is not confined this way: the user has a shell there, and the session's
//! monitor and cgroup are what hold it.

use std::path::Path;

/// Why a tool invocation is refused: (the flag or subcommand, the threat it answers).
pub(crate) type Refusal = String;

/// Checks `tool ARGS` against its rules; `Err` says what is refused and why.
pub(crate) fn check(tool: &str, args: &[String]) -> Result<(), Refusal> {
    match tool {
        "kubectl" => kubectl(args),
        "helm" => helm(args),
        "aws" => aws(args),
        _ => Ok(()),
    }
}

/// kubectl flags that would point it at a kubeconfig, a server or credentials of the user's
/// choosing, or act as someone else.
pub(crate) const KUBECTL_FLAGS: [(&str, &str); 14] = [
    (
        "--kubeconfig",
        "a kubeconfig of your own can run any program as an exec plugin",
    ),
    (
        "--kuberc",
        "a preferences file of your own can turn a command into `kubectl config set-credentials`",
    ),
    (
        "--token",
        "credentials come from the session's kubeconfig only",
    ),
    ("--as", "impersonation is not available here"),
    ("--as-group", "impersonation is not available here"),
    ("--as-uid", "impersonation is not available here"),
    (
        "--username",
        "credentials come from the session's kubeconfig only",
    ),
    (
        "--password",
        "credentials come from the session's kubeconfig only",
    ),
    (
        "--server",
        "the session's clusters come from its kubeconfig only",
    ),
    ("-s", "the session's clusters come from its kubeconfig only"),
    (
        "--certificate-authority",
        "the session's clusters come from its kubeconfig only",
    ),
    (
        "--insecure-skip-tls-verify",
        "TLS verification cannot be turned off here",
    ),
    (
        "--client-certificate",
        "credentials come from the session's kubeconfig only",
    ),
    (
        "--client-key",
        "credentials come from the session's kubeconfig only",
    ),
];

/// `kubectl config` subcommands that only read.
const KUBECTL_CONFIG_READS: [&str; 5] = [
    "view",
    "current-context",
    "get-contexts",
    "get-clusters",
    "get-users",
];

fn kubectl(args: &[String]) -> Result<(), Refusal> {
    refuse_flags(args, &KUBECTL_FLAGS)?;
    let words = positionals(args);
    match words.as_slice() {
        ["config", sub, ..] if !KUBECTL_CONFIG_READS.contains(sub) => Err(format!(
            "`kubectl config {sub}` is not available here: the session's kubeconfig is not yours to change (a user entry can run any program); `use CLUSTER/NS` switches context in restricted mode, `--context` in a command"
        )),
        ["proxy", ..] => Err(
            "`kubectl proxy` is not available here: it would serve your credentials to every local user"
                .into(),
        ),
        ["plugin", sub, ..] if *sub != "list" => Err(format!(
            "`kubectl plugin {sub}` is not available here"
        )),
        _ => Ok(()),
    }
}

/// helm flags that would point it at other credentials or run a program.
pub(crate) const HELM_FLAGS: [(&str, &str); 8] = [
    (
        "--kubeconfig",
        "a kubeconfig of your own can run any program as an exec plugin",
    ),
    (
        "--kube-token",
        "credentials come from the session's kubeconfig only",
    ),
    ("--kube-as-user", "impersonation is not available here"),
    ("--kube-as-group", "impersonation is not available here"),
    (
        "--kube-apiserver",
        "the session's clusters come from its kubeconfig only",
    ),
    (
        "--kube-ca-file",
        "the session's clusters come from its kubeconfig only",
    ),
    (
        "--kube-insecure-skip-tls-verify",
        "TLS verification cannot be turned off here",
    ),
    (
        "--post-renderer",
        "a post-renderer is a program of your choosing",
    ),
];

fn helm(args: &[String]) -> Result<(), Refusal> {
    refuse_flags(args, &HELM_FLAGS)?;
    match positionals(args).as_slice() {
        ["plugin", sub, ..] if *sub != "list" => Err(format!(
            "`helm plugin {sub}` is not available here: plugins come from the administrator's directory only (a plugin is a program of your choosing)"
        )),
        _ => Ok(()),
    }
}

/// aws flags that start a program or a prompt.
pub(crate) const AWS_FLAGS: [(&str, &str); 1] = [(
    "--cli-auto-prompt",
    "the auto-prompt is an interactive program of its own",
)];

fn aws(args: &[String]) -> Result<(), Refusal> {
    refuse_flags(args, &AWS_FLAGS)?;
    match positionals(args).first() {
        Some(&"configure") => Err(
            "`aws configure` is not available here: an AWS config file of your own can run any program (credential_process)"
                .into(),
        ),
        _ => Ok(()),
    }
}

/// The first of `flags` in `args` (as `--flag`, `--flag=…`, or `-s…` for a short one).
fn refuse_flags(args: &[String], flags: &[(&str, &str)]) -> Result<(), Refusal> {
    for arg in args {
        if arg == "--" {
            break;
        }
        for (flag, why) in flags {
            let long = flag.starts_with("--");
            let hit = arg == flag
                || (long && arg.starts_with(&format!("{flag}=")))
                || (!long
                    && arg.starts_with(flag)
                    && arg.len() > flag.len()
                    && !arg.starts_with("--"));
            if hit {
                return Err(format!("`{flag}` is not available here: {why}"));
            }
        }
    }
    Ok(())
}

/// The words of a command line that are not flags, up to `--`. A flag's value may be
/// taken for a word here (`-n config get`), which only makes a check stricter: every rule
/// refuses on words, never allows on them.
fn positionals(args: &[String]) -> Vec<&str> {
    args.iter()
        .take_while(|a| *a != "--")
        .filter(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect()
}

/// The environment restricted mode and `ssh bastion CMD` give the tools, besides the
/// session's own: `editor` for kubectl edit and friends, no pager (a pager's `!` is a
/// shell), helm's plugins only from root's directory and its own state in the session's
/// private `/tmp`, kubectl's preferences file off, and AWS configuration only from the
/// session (or none).
pub(crate) fn environment(editor: &Path, session_dir: &Path) -> Vec<(String, String)> {
    let editor = editor.display().to_string();
    // The user's own, in the session's private /tmp (the session directory is root's in
    // these modes); plugins come from HELM_PLUGINS, not from under these.
    let helm = |what: &str| format!("/tmp/helm/{what}");
    [
        ("KUBE_EDITOR", editor.clone()),
        ("EDITOR", editor.clone()),
        ("VISUAL", editor),
        ("PAGER", "cat".into()),
        ("MANPAGER", "cat".into()),
        ("AWS_PAGER", String::new()),
        ("LESSSECURE", "1".into()),
        ("KUBERC", "off".into()),
        ("HELM_PLUGINS", HELM_PLUGINS_DIR.into()),
        ("HELM_CONFIG_HOME", helm("config")),
        ("HELM_DATA_HOME", helm("data")),
        ("HELM_CACHE_HOME", helm("cache")),
        (
            "AWS_CONFIG_FILE",
            session_dir.join(AWS_CONFIG).display().to_string(),
        ),
        ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// The session's AWS config (in its kubeconfig directory, root's, read-only to the user).
const AWS_CONFIG: &str = "aws-config";

/// Writes the AWS config the confined `aws` reads: one profile whose credentials come from
/// the broker (`rolesh credentials`, the user's own role, if the administrator exposes
/// credentials at all), and nothing a user could point at a program of their own.
pub(crate) fn write_aws_config(session_dir: &Path, rolesh: &Path) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(crate::system::no_follow_flag())
        .open(session_dir.join(AWS_CONFIG))?;
    write!(
        file,
        "# This session's AWS configuration, written by rolesh: credentials from the broker.\n\
         [default]\ncredential_process = {}\n",
        aws_config_command(rolesh)
    )
}

/// `ROLESH credentials`, quoted for the AWS config's command line if the path needs it.
fn aws_config_command(rolesh: &Path) -> String {
    let path = rolesh.display().to_string();
    match path.contains([' ', '"', '\'']) {
        true => format!("\"{}\" credentials", path.replace('"', "\\\"")),
        false => format!("{path} credentials"),
    }
}

/// Where helm plugins come from in restricted mode and `ssh bastion CMD`: root's, and
/// nothing unless the administrator puts it there.
pub(crate) const HELM_PLUGINS_DIR: &str = "/usr/lib/rolesh/helm-plugins";

/// The context a restricted prompt's `use` chose, passed to the tools that take one
/// (`kubectl --context`, `helm --kube-context`, `k9s --context`), unless the command names
/// one itself.
pub(crate) fn with_context(tool: &str, args: &[String], context: &str) -> Vec<String> {
    let flag = match tool {
        "kubectl" | "k9s" => "--context",
        "helm" => "--kube-context",
        _ => return args.to_vec(),
    };
    let named = args
        .iter()
        .take_while(|a| *a != "--")
        .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if named {
        return args.to_vec();
    }
    std::iter::once(format!("{flag}={context}"))
        .chain(args.iter().cloned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        shlex::split(line).unwrap()
    }

    #[test]
    fn exec_plugin_injection_is_refused_naming_the_flag() {
        for (line, named) in [
            (
                "--kubeconfig=/home/a/evil.kc config set-credentials x --exec-command=/bin/sh",
                "--kubeconfig",
            ),
            ("--kubeconfig /home/a/evil.kc get pods", "--kubeconfig"),
            (
                "config set-credentials x --exec-command=/bin/bash",
                "config set-credentials",
            ),
            ("config set-cluster evil", "config set-cluster"),
            ("config set-cluster x --server=https://evil", "--server"),
            ("config set-context x --user=evil", "config set-context"),
            ("config use-context demo/web", "config use-context"),
            ("-n config set-credentials x", "config set-credentials"),
            ("get pods --token=abc", "--token"),
            ("get pods --as=system:admin", "--as"),
            ("get pods --as-group system:masters", "--as-group"),
            ("get pods -shttps://evil", "-s"),
            (
                "get pods --insecure-skip-tls-verify",
                "--insecure-skip-tls-verify",
            ),
            ("proxy --port 8001", "kubectl proxy"),
        ] {
            let err = check("kubectl", &words(line)).unwrap_err();
            assert!(err.contains(named), "{line}: {err}");
        }
        for ok in [
            "get pods -n web",
            "config current-context",
            "config get-contexts -o name",
            "exec -it web-0 -- sh -c 'kubectl config set-credentials x'",
            "--context demo/web get pods",
            "edit deploy/web",
            "logs -f web-0 --since 5m",
        ] {
            assert_eq!(check("kubectl", &words(ok)), Ok(()), "{ok}");
        }
    }

    #[test]
    fn helm_plugins_and_post_renderers_are_refused() {
        for (line, named) in [
            ("plugin install https://evil/plugin", "helm plugin install"),
            ("plugin update evil", "helm plugin update"),
            (
                "install web ./chart --post-renderer ./evil",
                "--post-renderer",
            ),
            ("list --kubeconfig /home/a/evil", "--kubeconfig"),
            ("list --kube-token=x", "--kube-token"),
        ] {
            let err = check("helm", &words(line)).unwrap_err();
            assert!(err.contains(named), "{line}: {err}");
        }
        assert_eq!(check("helm", &words("plugin list")), Ok(()));
        assert_eq!(check("helm", &words("list -n web")), Ok(()));
    }

    #[test]
    fn aws_configure_and_auto_prompt_are_refused() {
        assert!(
            check("aws", &words("configure set x y"))
                .unwrap_err()
                .contains("aws configure")
        );
        assert!(
            check("aws", &words("--cli-auto-prompt"))
                .unwrap_err()
                .contains("--cli-auto-prompt")
        );
        assert_eq!(check("aws", &words("sts get-caller-identity")), Ok(()));
        assert_eq!(
            check("ls", &words("--kubeconfig")),
            Ok(()),
            "other tools are not looked at"
        );
    }

    #[test]
    fn the_chosen_context_goes_to_the_tools_that_take_one() {
        assert_eq!(
            with_context("kubectl", &words("get pods"), "demo/web"),
            words("--context=demo/web get pods")
        );
        assert_eq!(
            with_context("helm", &words("list"), "demo/web"),
            words("--kube-context=demo/web list")
        );
        assert_eq!(
            with_context("kubectl", &words("--context staging get pods"), "demo/web"),
            words("--context staging get pods"),
            "a context named on the command line wins"
        );
        assert_eq!(with_context("aws", &words("s3 ls"), "demo"), words("s3 ls"));
    }
}
