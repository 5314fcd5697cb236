//! `rolesh check`: validate the configuration, print a one-line summary or every error.

use crate::config::{Config, ConfigSource};
use crate::error::{EXIT_OK, EXIT_USAGE, Failure};
use crate::paths;

pub fn run(source: &ConfigSource) -> Result<u8, Failure> {
    let loaded = match Config::load(source) {
        Ok(loaded) => loaded,
        Err(errors) => {
            for d in &errors.0 {
                eprintln!("{d}");
            }
            let n = errors.0.len();
            eprintln!(
                "rolesh: {n} error{} in the configuration",
                if n == 1 { "" } else { "s" }
            );
            return Ok(EXIT_USAGE);
        }
    };
    for w in &loaded.warnings {
        eprintln!("rolesh: {w}");
    }
    println!("{}", summary(&loaded.config));
    println!("{}", broker_status());
    Ok(EXIT_OK)
}

/// `PATH (+N drop-ins): N users, M group rules, K clusters, L namespaces`.
pub fn summary(config: &Config) -> String {
    let first = config
        .files
        .first()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let drop_ins = match config.files.len().saturating_sub(1) {
        0 => String::new(),
        1 => " (+1 drop-in)".to_string(),
        n => format!(" (+{n} drop-ins)"),
    };
    let namespaces: usize = config.clusters.iter().map(|c| c.namespaces.len()).sum();
    format!(
        "{first}{drop_ins}: {} users, {} group rules, {} clusters, {namespaces} namespaces{}",
        config.mapping.users.len(),
        config.mapping.groups.len(),
        config.clusters.len(),
        if config.mapping.default_role.is_some() {
            ", default role set"
        } else {
            ", no default role"
        },
    )
}

fn broker_status() -> String {
    let socket = paths::broker_socket();
    if socket.exists() {
        format!("broker socket: {} present", socket.display())
    } else {
        format!(
            "broker socket: {} absent (is rolesh-broker running?)",
            socket.display()
        )
    }
}
