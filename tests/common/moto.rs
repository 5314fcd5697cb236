//! moto's server (PyPI `moto[server]`) on a loopback port: AWS written elsewhere.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = super::daemon::command("python3");
        cmd.args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let child = super::daemon::spawn(cmd).expect("start moto server");
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not start on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// moto's own record of what it was asked (its /moto-api/data.json).
    pub fn state(&self) -> Value {
        let out = super::stdout_of_success(
            Command::new("curl").args(["-sf", &format!("{}/moto-api/data.json", self.url())]),
        );
        serde_json::from_slice(&out).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn moto_available() -> bool {
    Command::new("python3")
        .args(["-c", "import moto.server, flask"])
        .output()
        .is_ok_and(|o| o.status.success())
}
