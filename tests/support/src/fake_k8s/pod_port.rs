//! A pod's port for port-forward tests. The fake's pods have no network of their own: a
//! pod's port is that port on 127.0.0.1 ([`super::portforward`]), where [`line_server`]
//! listens.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// Starts a TCP server on 127.0.0.1 that answers each line with `pod says: LINE`, in
/// threads that end with the test process. Returns its port.
pub fn line_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a pod port");
    let port = listener.local_addr().expect("pod port").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || answer_lines(stream));
        }
    });
    port
}

fn answer_lines(stream: TcpStream) {
    let Ok(read) = stream.try_clone() else {
        return;
    };
    let mut writer = stream;
    for line in BufReader::new(read).lines() {
        let Ok(line) = line else {
            return;
        };
        if writer
            .write_all(format!("pod says: {line}\n").as_bytes())
            .is_err()
        {
            return;
        }
    }
}

/// Sends `line` to 127.0.0.1:`port` (a forwarded port) and returns the answer's first line
/// (empty when the connection closed first); at most 10 s.
pub fn ask(port: u16, line: &str) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the forwarded port");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    (&stream)
        .write_all(format!("{line}\n").as_bytes())
        .expect("write to the forwarded port");
    let mut answer = String::new();
    let _ = BufReader::new(&stream).read_line(&mut answer);
    answer
}
