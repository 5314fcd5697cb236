//! Child daemons (sshd, the broker, moto) that die with the test process, however it ends:
//! a failed assertion, a test harness that exits without dropping statics, nextest killing
//! a test that timed out. Without this, a daemon a test started outlives it and holds its
//! port or socket.
//!
//! The kernel's parent-death signal (PR_SET_PDEATHSIG) does it, set by util-linux `setpriv
//! --pdeathsig KILL` before it execs the daemon (so the daemon keeps its pid, and no unsafe
//! `pre_exec` is needed). The signal follows the *thread* that forked the child, not the
//! process: a test harness runs tests on worker threads that end before the process does,
//! so every daemon is forked by one thread that lives as long as the process.

use std::ffi::OsStr;
use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

/// `program` run through `setpriv --pdeathsig KILL`: add its arguments, environment, uid…
/// (`Command::uid` applies before setpriv runs, and the death signal survives the exec).
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut cmd = Command::new("/usr/bin/setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
    cmd
}

type Request = (Command, Sender<io::Result<Child>>);

/// Spawns `cmd` (made with [`command`]) from the process-long spawner thread.
pub fn spawn(cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Sender<Request>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, incoming) = channel::<Request>();
        std::thread::Builder::new()
            .name("daemon-spawner".into())
            .spawn(move || {
                for (mut cmd, answer) in incoming {
                    let _ = answer.send(cmd.spawn());
                }
            })
            .expect("the daemon spawner thread");
        requests
    });
    let (answer, spawned) = channel();
    spawner
        .send((cmd, answer))
        .expect("the daemon spawner thread runs");
    spawned.recv().expect("the daemon spawner thread answers")
}
