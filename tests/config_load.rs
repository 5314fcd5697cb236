//! Loading `config.toml` + `config.d/*.toml`: merge rules, order, and the StrictModes-like
//! ownership checks of the system configuration.

mod common;

use common::*;
use rolesh::config::{Config, ConfigSource, Mode};
use std::os::unix::fs::{PermissionsExt, chown};

common::harness::tests!(
    root: [
        system_config_must_be_owned_by_root,
        system_config_in_a_group_writable_directory_is_refused,
        an_empty_world_writable_config_d_is_refused,
        every_directory_up_to_the_root_is_checked,
    ],
    plain: [
        drop_ins_apply_in_lexical_order_scalars_override_tables_append,
        errors_point_into_the_drop_in_that_has_them,
        duplicate_cluster_across_files_names_both_places,
        group_writable_drop_in_is_refused_even_with_config_flag,
    ],
);

const MAIN: &str = r#"
[aws]
region = "us-east-1"
[mapping]
[[mapping.groups]]
group = "sre"
role = "arn:aws:iam::123456789012:role/sre"
[[cluster]]
name = "prod"
[session]
mode = "shell"
"#;

fn dir_with_drop_ins(drop_ins: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    write_config(dir.path(), "config.toml", MAIN);
    for (name, text) in drop_ins {
        write_config(dir.path(), &format!("config.d/{name}"), text);
    }
    let drop_in_dir = dir.path().join("config.d");
    if drop_in_dir.exists() {
        std::fs::set_permissions(&drop_in_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

fn drop_ins_apply_in_lexical_order_scalars_override_tables_append() {
    let dir = dir_with_drop_ins(&[
        (
            "20-second.toml",
            "[session]\nmode = \"picker\"\n[[cluster]]\nname = \"staging\"\n",
        ),
        (
            "10-first.toml",
            "[session]\nmode = \"restricted\"\n[[mapping.groups]]\ngroup = \"web\"\nrole = \"arn:aws:iam::123456789012:role/web\"\n",
        ),
        (".hidden.toml", "this is not toml"),
        ("30-backup.toml.dpkg-old", "neither is this"),
    ]);
    let loaded = Config::load(&ConfigSource::Path(dir.path().to_path_buf())).unwrap();
    let c = loaded.config;
    assert_eq!(
        c.session.mode,
        Mode::Picker,
        "20-second.toml is applied last"
    );
    assert_eq!(
        c.clusters
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["prod", "staging"]
    );
    assert_eq!(
        c.mapping
            .groups
            .iter()
            .map(|g| g.group.as_str())
            .collect::<Vec<_>>(),
        ["sre", "web"]
    );
    let names: Vec<String> = c
        .files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["config.toml", "10-first.toml", "20-second.toml"]);
}

fn errors_point_into_the_drop_in_that_has_them() {
    let dir = dir_with_drop_ins(&[(
        "50-alice.toml",
        "[mapping.users]\nalice = \"arn:aws:iam::123456789012:rol/alice\"\n",
    )]);
    let errors = Config::load(&ConfigSource::Path(dir.path().to_path_buf())).unwrap_err();
    let text = errors.to_string();
    assert!(text.ends_with("config.d/50-alice.toml:2:9: invalid role ARN \"arn:aws:iam::123456789012:rol/alice\": not a role (expected arn:aws:iam::123456789012:role/NAME)"), "{text}");
}

fn duplicate_cluster_across_files_names_both_places() {
    let dir = dir_with_drop_ins(&[("10.toml", "[[cluster]]\nname = \"prod\"\n")]);
    let text = Config::load(&ConfigSource::Path(dir.path().to_path_buf()))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("config.d/10.toml:2:8: cluster name \"prod\" is already used at "),
        "{text}"
    );
    assert!(
        text.contains("config.toml:9:8; cluster names must be unique"),
        "{text}"
    );
}

fn system_config_must_be_owned_by_root() {
    let dir = dir_with_drop_ins(&[]);
    Config::load_strict(dir.path()).expect("root-owned 0644 config in a root-owned 0755 dir loads");
    let file = dir.path().join("config.toml");
    chown(&file, Some(65534), None).unwrap();
    let err = Config::load_strict(dir.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{0}: refusing it: config is owned by uid 65534, not root; run: chown root {0}",
            file.display()
        )
    );
    // The same file through --config is a warning, not an error.
    let loaded = Config::load(&ConfigSource::Path(file.clone())).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("owned by uid 65534, not root"));
}

fn system_config_in_a_group_writable_directory_is_refused() {
    let dir = dir_with_drop_ins(&[("10.toml", "[session]\nmode = \"picker\"\n")]);
    let drop_in_dir = dir.path().join("config.d");
    std::fs::set_permissions(&drop_in_dir, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = Config::load_strict(dir.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{0}: refusing config in a directory writable by group or others (mode 0775); run: chmod go-w {0}",
            drop_in_dir.display()
        )
    );
}

/// Finding 7 of issue 16: a world-writable config.d was accepted when it held no
/// `*.toml`, so a user could rename away the drop-in that denied them. Sticky or not:
/// anyone could add a drop-in of their own to a sticky config.d.
fn an_empty_world_writable_config_d_is_refused() {
    for mode in [0o777, 0o1777] {
        let dir = dir_with_drop_ins(&[]);
        let drop_in_dir = dir.path().join("config.d");
        std::fs::create_dir(&drop_in_dir).unwrap();
        std::fs::set_permissions(&drop_in_dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let want = format!(
            "{0}: refusing config in a directory writable by group or others (mode {mode:04o}); run: chmod go-w {0}",
            drop_in_dir.display()
        );
        let strict = Config::load_strict(dir.path()).unwrap_err().to_string();
        assert_eq!(strict, want);
        let flag = Config::load(&ConfigSource::Path(dir.path().to_path_buf()))
            .unwrap_err()
            .to_string();
        assert_eq!(flag, want, "--config too");
    }
}

/// As sshd's StrictModes: every directory from the config's up to `/` is root's and not
/// writable by group or others; a root-owned sticky one (/tmp, /var/tmp) may be
/// world-writable above the config's own directories.
fn every_directory_up_to_the_root_is_checked() {
    // /var/tmp (root, 1777, sticky) → top (root, 0755) → middle → config dir (root, 0755).
    let top = tempfile::Builder::new()
        .prefix("rolesh-dirs")
        .tempdir_in("/var/tmp")
        .unwrap();
    std::fs::set_permissions(top.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let middle = top.path().join("middle");
    let config_dir = middle.join("rolesh");
    std::fs::create_dir_all(&config_dir).unwrap();
    for d in [&middle, &config_dir] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    write_config(&config_dir, "config.toml", MAIN);
    Config::load_strict(&config_dir).expect("root's directories under the sticky /var/tmp");

    // Group-writable on the way: anyone in the group could rename `rolesh` away.
    std::fs::set_permissions(&middle, std::fs::Permissions::from_mode(0o775)).unwrap();
    let err = Config::load_strict(&config_dir).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{0}: refusing config in a directory writable by group or others (mode 0775); run: chmod go-w {0}",
            middle.display()
        )
    );
    let file = config_dir.join("config.toml");
    assert!(
        Config::load(&ConfigSource::Path(file.clone())).is_err(),
        "--config FILE checks the directories above it too"
    );
    // Sticky, but not root's: its owner may rename what is in it.
    std::fs::set_permissions(&middle, std::fs::Permissions::from_mode(0o1777)).unwrap();
    chown(&middle, Some(65534), None).unwrap();
    let err = Config::load_strict(&config_dir).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "{}: refusing config in a directory writable by group or others (mode 1777)",
            middle.display()
        )),
        "{err}"
    );

    // Not root's, not writable by others: an error for the system config, a warning with
    // --config.
    std::fs::set_permissions(&middle, std::fs::Permissions::from_mode(0o755)).unwrap();
    let err = Config::load_strict(&config_dir).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "{0}: refusing config in a directory owned by uid 65534, not root; run: chown root {0}",
            middle.display()
        )
    );
    let loaded = Config::load(&ConfigSource::Path(file)).unwrap();
    assert_eq!(
        loaded.warnings,
        [format!(
            "warning: {0}: config in a directory owned by uid 65534, not root; run: chown root {0} (the broker and login shell refuse it)",
            middle.display()
        )]
    );
}

fn group_writable_drop_in_is_refused_even_with_config_flag() {
    let dir = dir_with_drop_ins(&[("10.toml", "[session]\nmode = \"picker\"\n")]);
    let drop_in = dir.path().join("config.d/10.toml");
    std::fs::set_permissions(&drop_in, std::fs::Permissions::from_mode(0o664)).unwrap();
    let r = run(rolesh().args(["check", "--config"]).arg(dir.path()));
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(&format!(
            "{}: refusing a config writable by group or others (mode 0664)",
            drop_in.display()
        )),
        "{}",
        r.stderr
    );
}
