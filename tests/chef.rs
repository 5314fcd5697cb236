//! The Chef cookbook's checks (chef/rolesh/test/run): Ruby syntax, templates rendered with
//! ERB from the attributes and fixtures, every rendered config through this `rolesh check`
//! and `explain`, the sshd drop-in through `sshd -t`. Chef itself cannot be installed here.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

common::harness::tests!(root: [cookbook_renders_configs_rolesh_accepts]);

fn cookbook_renders_configs_rolesh_accepts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let r = run(Command::new("bash")
        .arg(root.join("chef/rolesh/test/run"))
        .env("ROLESH", env!("CARGO_BIN_EXE_rolesh"))
        .current_dir(root));
    print!("{}", r.stdout);
    eprint!("{}", r.stderr);
    assert_eq!(r.code, 0, "chef/rolesh/test/run failed");
    let last = r
        .stdout
        .lines()
        .rev()
        .find(|l| l.starts_with("chef: "))
        .expect("summary line");
    assert!(last.ends_with(" 0 failed"), "{last}");
    assert!(!last.contains("skipped"), "{last}");
}
