//! A minimal client of journald's native protocol (`systemd.journal-fields(7)`,
//! "Native Journal Protocol"): one datagram per entry on `/run/systemd/journal/socket`.
//!
//! Why not the `tracing-journald` crate: it writes each field straight from the tracing
//! event to the socket, with no hook in between, and the audit trail must scrub secrets
//! (see `redact`) and cap sizes in one place before anything leaves the process. The field
//! names it would produce with `with_field_prefix(Some("ROLESH"))` are the same as ours.
//!
//! An entry too large for one datagram (journald's default limit is about 200 KiB) goes
//! the way the protocol defines for that: written to a sealed memfd whose descriptor is
//! sent instead (SCM_RIGHTS), as `sd_journal_sendv` does.
//!
//! journald adds the trusted fields (`_UID`, `_PID`, `_COMM`, …) itself from the socket's
//! credentials: those are what `rolesh audit` uses to decide whom to believe.

use std::io;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// Where journald listens for native entries.
pub(crate) const SOCKET: &str = "/run/systemd/journal/socket";

pub(crate) struct Journald {
    socket: UnixDatagram,
    path: PathBuf,
}

impl Journald {
    /// A client of the journald listening at `path`, or `None` if none listens there. A
    /// socket file alone is not enough: a journald that ended leaves its socket behind.
    /// Each entry is sent to the path (not on a connected socket), so a journald that
    /// restarts later is found again.
    pub(crate) fn connect(path: &Path) -> Option<Journald> {
        let socket = UnixDatagram::unbound().ok()?;
        UnixDatagram::unbound().ok()?.connect(path).ok()?;
        Some(Journald {
            socket,
            path: path.to_path_buf(),
        })
    }

    /// Sends one entry; `fields` are (NAME, value) with valid journal field names.
    pub(crate) fn send(&self, fields: &[(String, String)]) -> io::Result<()> {
        let payload = encode(fields);
        match self.socket.send_to(&payload, &self.path) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(nix::libc::EMSGSIZE) => self.send_large(&payload),
            Err(e) => Err(e),
        }
    }

    /// An entry larger than a datagram: its payload in a sealed memfd, the descriptor sent.
    fn send_large(&self, payload: &[u8]) -> io::Result<()> {
        let memfd = crate::system::sealed_memfd("rolesh-journal-entry", payload)
            .map_err(io::Error::other)?;
        crate::system::send_descriptor(&self.socket, &self.path, &memfd)
    }
}

/// The native encoding: `NAME=value\n`, or for values with a newline
/// `NAME\n` + 64-bit little-endian length + value + `\n`.
pub(crate) fn encode(fields: &[(String, String)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        if value.contains('\n') {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out
}

/// `ROLESH_` + the field name in upper case: `role_arn` → `ROLESH_ROLE_ARN`. Anything
/// but ASCII letters, digits and `_` becomes `_` (journald accepts nothing else).
pub(crate) fn field_name(name: &str) -> String {
    let mut out = String::with_capacity(7 + name.len());
    out.push_str("ROLESH_");
    out.extend(name.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_exactly_rolesh_upper() {
        assert_eq!(field_name("role_arn"), "ROLESH_ROLE_ARN");
        assert_eq!(field_name("event"), "ROLESH_EVENT");
        assert_eq!(field_name("exit_code"), "ROLESH_EXIT_CODE");
    }

    #[test]
    fn multiline_values_are_length_prefixed() {
        let e = encode(&[("A".into(), "x".into()), ("B".into(), "1\n2".into())]);
        let mut want = b"A=x\nB\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"1\n2\n");
        assert_eq!(e, want);
    }

    #[test]
    fn an_entry_larger_than_a_datagram_travels_in_a_sealed_memfd() {
        use std::io::Read;
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let listening = UnixDatagram::bind(&path).unwrap();
        let journald = Journald::connect(&path).unwrap();
        let big = "x".repeat(1 << 20);
        journald
            .send(&[
                ("MESSAGE".into(), "big".into()),
                ("ROLESH_COMMAND".into(), big.clone()),
            ])
            .unwrap();
        let mut buf = [0u8; 16];
        let (bytes, mut fds) =
            crate::system::receive_with_descriptors(std::os::fd::AsFd::as_fd(&listening), &mut buf)
                .unwrap();
        assert_eq!(
            (bytes, fds.len()),
            (0, 1),
            "an empty datagram with one descriptor"
        );
        // journald maps the file; reading it here starts at its beginning too.
        let mut file = std::fs::File::from(fds.remove(0));
        std::io::Seek::rewind(&mut file).unwrap();
        let mut got = Vec::new();
        file.read_to_end(&mut got).unwrap();
        let want = encode(&[
            ("MESSAGE".into(), "big".into()),
            ("ROLESH_COMMAND".into(), big),
        ]);
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the entry arrives whole");
    }

    #[test]
    fn a_socket_file_nobody_listens_on_is_no_journald() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        assert!(Journald::connect(&path).is_none(), "no file");
        let listening = UnixDatagram::bind(&path).unwrap();
        let journald = Journald::connect(&path).expect("a listener");
        journald.send(&[("MESSAGE".into(), "hi".into())]).unwrap();
        let mut got = [0u8; 64];
        let n = listening.recv(&mut got).unwrap();
        assert_eq!(&got[..n], b"MESSAGE=hi\n");
        // What a journald that ended leaves: the file, and nobody behind it.
        drop(listening);
        assert!(path.exists());
        assert!(Journald::connect(&path).is_none(), "stale socket file");
    }
}
