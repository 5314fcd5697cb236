//! The harness of the test files that have tests needing root (`harness = false` in
//! Cargo.toml, libtest-mimic): a test that needs root is listed as *ignored* when the process
//! is not root, so `cargo test` and `cargo nextest run` report it as skipped, not passed.
//! Under ROLESH_REQUIRE_ALL=1 (CI) it is listed like any other and fails when not root. Being
//! root is the only reason to skip: a missing tool fails the test ([`super::require`]).
//!
//! A test file names its tests once, in its `main`:
//!
//! ```ignore
//! common::harness::tests!(root: [each_user_gets_only_their_own_role], plain: [malformed_toml]);
//! ```

use std::sync::Mutex;

use libtest_mimic::{Arguments, Failed, Trial};

/// `tests!(root: [a, b], plain: [c])`: the file's `main`, running the functions `a` and `b`
/// as tests that need root and `c` as a test that does not. Each name is the test's name.
#[allow(unused_macros)] // Files without root tests keep the built-in harness.
macro_rules! tests {
    ($($kind:ident: [$($test:ident),* $(,)?]),* $(,)?) => {
        fn main() {
            $crate::common::harness::main(vec![
                $($($crate::common::harness::$kind(stringify!($test), $test),)*)*
            ])
        }
    };
}
#[allow(unused_imports)]
pub(crate) use tests;

const REQUIRE_ALL: &str = "ROLESH_REQUIRE_ALL";

fn require_all() -> bool {
    std::env::var(REQUIRE_ALL).is_ok_and(|v| v == "1")
}

/// A test that needs root: ignored when not root, unless ROLESH_REQUIRE_ALL=1. Run when not
/// root anyway (that variable, or `--ignored`), it fails saying why.
pub fn root(name: &str, test: fn()) -> Trial {
    Trial::test(name, move || {
        if !super::is_root() {
            let why = match require_all() {
                true => format!(": {REQUIRE_ALL}=1 makes that a failure, not a skip"),
                false => String::new(),
            };
            return Err(Failed::from(format!(
                "needs root (CI runs as root), and this process is not root{why}"
            )));
        }
        test();
        Ok(())
    })
    .with_ignored_flag(!super::is_root() && !require_all())
}

/// A test that runs as any user.
pub fn plain(name: &str, test: fn()) -> Trial {
    Trial::test(name, move || {
        test();
        Ok(())
    })
}

type AtExit = Box<dyn FnOnce() + Send>;

/// What runs once every test of the process has finished (fixtures shared by the tests of a
/// binary: statics are never dropped).
static AT_EXIT: Mutex<Vec<AtExit>> = Mutex::new(Vec::new());

/// Runs `f` once every test of this process has finished, before it exits.
pub fn at_exit(f: impl FnOnce() + Send + 'static) {
    AT_EXIT
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(f));
}

/// Runs `trials` as libtest does (the same arguments, output and exit code), then the
/// [`at_exit`] functions.
pub fn main(trials: Vec<Trial>) -> ! {
    let args = Arguments::from_args();
    if !args.list && !super::is_root() && !require_all() {
        let root_only = trials.iter().filter(|t| t.has_ignored_flag()).count();
        if root_only > 0 {
            eprintln!(
                "not root: {root_only} test(s) that need root are ignored ({REQUIRE_ALL}=1 makes them fail)"
            );
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);
    let at_exit = std::mem::take(&mut *AT_EXIT.lock().unwrap_or_else(|p| p.into_inner()));
    for f in at_exit.into_iter().rev() {
        f();
    }
    conclusion.exit()
}
