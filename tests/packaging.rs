//! The deb and rpm packages (issue 9), checked by packaging/test: packaging/build, lintian and
//! rpmlint, dpkg install/upgrade/remove/purge in a fresh Debian bookworm chroot without
//! systemd as PID 1, rpm install/upgrade/erase with `rpm --root`, systemd-analyze verify and
//! security on the units, the sshd drop-in, logrotate, and the IMDS guard (nftables and the
//! iptables fallback) in a network namespace with real users. Root only: it makes chroots,
//! users and a network namespace, and removes them when done.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

common::harness::tests!(root: [packages_install_upgrade_remove_and_guard_imds]);

fn packages_install_upgrade_remove_and_guard_imds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let r = run(Command::new("bash")
        .arg(root.join("packaging/test"))
        .current_dir(root));
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    assert_eq!(r.code, 0, "packaging/test failed");
    let last = r
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("packaging: ") && l.contains(" passed, "))
        .expect("packaging/test summary line");
    assert!(last.ends_with(" 0 failed"), "{last}");
    let passed: u32 = last
        .trim_start_matches("packaging: ")
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("number of checks passed");
    assert!(passed >= 100, "only {passed} checks ran: {last}");
}
