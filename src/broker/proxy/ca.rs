//! The proxy's TLS: a CA of the broker's own, kept in `[broker] proxy_ca_dir` (the key
//! 0600, the broker's user's alone; the certificate 0644) so that the kubeconfigs of running
//! sessions, which trust it, stay valid across broker restarts; and a server certificate for
//! the loopback addresses, made at every start and held in memory only.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

const KEY: &str = "ca.key";
const CERT: &str = "ca.crt";

/// The proxy's TLS identity.
#[derive(Clone)]
pub(crate) struct ProxyTls {
    /// What a session's kubeconfig trusts: the CA certificate, base64 PEM.
    pub(crate) ca_data: String,
    pub(crate) server: Arc<rustls::ServerConfig>,
}

/// Loads the CA from `dir`, or makes one there, then a server certificate it signs.
pub(crate) fn load_or_create(dir: &Path, hostname: &str) -> Result<ProxyTls, String> {
    let (key, cert_pem) = match std::fs::read_to_string(dir.join(KEY)) {
        Ok(key_pem) => {
            let key = KeyPair::from_pem(&key_pem)
                .map_err(|e| format!("the proxy CA key in {} is unusable: {e}", dir.display()))?;
            let cert = std::fs::read_to_string(dir.join(CERT))
                .map_err(|e| format!("cannot read {}: {e}", dir.join(CERT).display()))?;
            check_private(&dir.join(KEY))?;
            (key, cert)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(dir, hostname)?,
        Err(e) => return Err(format!("cannot read {}: {e}", dir.join(KEY).display())),
    };
    let issuer = Issuer::new(ca_params(hostname), key);
    let server = server_config(&issuer)?;
    Ok(ProxyTls {
        ca_data: base64::engine::general_purpose::STANDARD.encode(cert_pem),
        server: Arc::new(server),
    })
}

/// The CA's parameters. Fixed: a certificate made again from them and the same key is
/// the same issuer to every client that trusts the first.
fn ca_params(hostname: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("rolesh proxy CA on {hostname}"));
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = rcgen::date_time_ymd(2025, 1, 1);
    params.not_after = rcgen::date_time_ymd(2125, 1, 1);
    params
}

/// A new CA key and certificate, written to `dir` (made 0700 if missing).
fn create(dir: &Path, hostname: &str) -> Result<(KeyPair, String), String> {
    let fail = |what: &str, e: &dyn std::fmt::Display| format!("cannot {what}: {e}");
    std::fs::create_dir_all(dir).map_err(|e| fail(&format!("create {}", dir.display()), &e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| fail(&format!("set the mode of {}", dir.display()), &e))?;
    let key = KeyPair::generate().map_err(|e| fail("make the proxy CA key", &e))?;
    let cert = ca_params(hostname)
        .self_signed(&key)
        .map_err(|e| fail("make the proxy CA certificate", &e))?;
    write_new(&dir.join(KEY), key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&dir.join(CERT), cert.pem().as_bytes(), 0o644)?;
    Ok((key, cert.pem()))
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(crate::system::no_follow_flag())
        .open(path)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The key must be the broker's alone: not readable by group or others.
fn check_private(path: &Path) -> Result<(), String> {
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "the proxy CA key {} is readable by others (mode {:o}); it must be 0600",
            path.display(),
            mode & 0o777
        ));
    }
    Ok(())
}

/// A server certificate for 127.0.0.1, ::1 and localhost, signed by the CA; HTTP/2 and
/// HTTP/1.1 (upgrades: exec, attach, port-forward).
fn server_config(issuer: &Issuer<'_, KeyPair>) -> Result<rustls::ServerConfig, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot make the proxy's certificate: {e}");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).map_err(|e| fail(&e))?;
    params.subject_alt_names.extend([
        SanType::IpAddress([127, 0, 0, 1].into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    params
        .distinguished_name
        .push(DnType::CommonName, "rolesh proxy");
    let key = KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.signed_by(&key, issuer).map_err(|e| fail(&e))?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| fail(&e))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ca_is_made_once_then_kept_with_a_private_key() {
        let dir = tempfile::tempdir().unwrap();
        let ca_dir = dir.path().join("proxy");
        let first = load_or_create(&ca_dir, "bastion").unwrap();
        let mode = |name: &str| {
            std::fs::metadata(ca_dir.join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!((mode(KEY), mode(CERT), mode(".")), (0o600, 0o644, 0o700));
        let again = load_or_create(&ca_dir, "bastion").unwrap();
        assert_eq!(first.ca_data, again.ca_data, "a restart keeps the CA");
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        load_or_create(dir.path(), "bastion").unwrap();
        std::fs::set_permissions(dir.path().join(KEY), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = load_or_create(dir.path(), "bastion").err().unwrap();
        assert!(e.contains("readable by others (mode 644)"), "{e}");
    }
}
