//! `[broker]`: credential refresh and the bounds that keep one client from the others.

use std::time::Duration;

use super::super::tree::Node;
use super::super::{AwsSettings, BrokerSettings};
use super::read::Reader;
use super::{HOUR, MINUTE};

/// `HOST:PORT` on loopback: the proxy tells its clients apart by the kernel's socket table
/// of this host, which says nothing about a connection from another.
fn loopback_address(text: &str) -> Result<std::net::SocketAddr, String> {
    let addr: std::net::SocketAddr = text.parse().map_err(|_| {
        format!(
            "`proxy_listen` must be an address and port such as \"127.0.0.1:7443\", not {text:?}"
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(format!(
            "`proxy_listen` must be a loopback address (127.0.0.1 or [::1]), not {}: the proxy \
             knows who connects from this host's socket table only",
            addr.ip()
        ));
    }
    Ok(addr)
}

impl Reader {
    pub(super) fn broker(&self, node: Option<&Node>, aws: Option<&AwsSettings>) -> BrokerSettings {
        let mut broker = BrokerSettings::default();
        let Some(f) = node.and_then(|n| self.table(n, "broker")) else {
            return broker;
        };
        if let Some(d) = f.duration("refresh_before", MINUTE, HOUR) {
            if let Some(aws) = aws
                && d >= aws.session_duration
            {
                let loc = &f.get("refresh_before").expect("present").loc;
                self.error(
                    loc,
                    "`broker.refresh_before` must be shorter than `aws.session_duration`",
                );
            }
            broker.refresh_before = d;
        }
        if let Some(n) = f.integer("max_connections", 1, 65_536) {
            broker.max_connections = n as u32;
        }
        if let Some(n) = f.integer("max_connections_per_uid", 1, 65_536) {
            broker.max_connections_per_uid = n as u32;
        }
        if let Some(d) = f.duration("idle_timeout", Duration::from_secs(1), HOUR) {
            broker.idle_timeout = d;
        }
        if let Some(n) = f.integer("rate_per_uid", 1, 1_000_000) {
            broker.rate_per_uid = n as u32;
        }
        if let Some(b) = f.bool("require_session") {
            broker.require_session = b;
        }
        if let Some(addr) = f.string("proxy_listen")
            && let Some(addr) = self.checked(&addr.loc, loopback_address(&addr.value))
        {
            broker.proxy_listen = addr;
        }
        if let Some(d) = f.duration("discovery_refresh", Duration::from_secs(1), 24 * HOUR) {
            broker.discovery_refresh = d;
        }
        if let Some(dir) = f.absolute_path("proxy_ca_dir") {
            broker.proxy_ca_dir = dir.value.into();
        }
        broker
    }
}
