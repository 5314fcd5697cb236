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
            "{}: refusing config in a directory not owned by root or writable by group or others",
            drop_in_dir.display()
        )
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
