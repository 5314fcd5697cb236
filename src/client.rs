//! The client side of the broker protocol, for every rolesh process that asks the broker:
//! `rolesh token --cluster`, `credentials`, the login session, `rolesh exec`, the audit
//! layer and the recorder. A thin layer over the token path's client (shared with
//! `rolesh-token`), which knows the connection and the answers; this one knows every
//! request.

use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::error::Failure;
use crate::protocol::Request;

pub(crate) use rolesh_token_core::client::{ANSWER_TIMEOUT, socket_path};

/// One request, one answer of type `T` (or the broker's error as a failure with the exit
/// code it maps to).
pub(crate) fn call<T: DeserializeOwned>(socket: &Path, request: &Request) -> Result<T, Failure> {
    Connection::open(socket, ANSWER_TIMEOUT)?.ask(request)
}

/// A connection to the broker.
pub(crate) struct Connection(rolesh_token_core::client::Connection);

impl Connection {
    /// Connects; reads and writes give up after `timeout`.
    pub(crate) fn open(socket: &Path, timeout: Duration) -> Result<Connection, Failure> {
        rolesh_token_core::client::Connection::open(socket, timeout).map(Connection)
    }

    /// Sends `request` and reads its answer.
    pub(crate) fn ask<T: DeserializeOwned>(&mut self, request: &Request) -> Result<T, Failure> {
        self.0.ask_line(&request.to_line(), request.op())
    }

    /// The stream, for a request whose connection carries more than answers (`record`).
    pub(crate) fn into_stream(self) -> UnixStream {
        self.0.into_stream()
    }
}
