//! The broker's own credential for a `kind = "kubernetes"` cluster
//! (`[cluster.credentials]`): a bearer token (a file, or a kubeconfig user's token or token
//! file) or a client certificate and key (files, or a kubeconfig user's, inline or in
//! files). Every file is checked as the configuration checks it (root's or the broker's,
//! its owner's alone) each time it is read, and read again when it changes (a service
//! account's token rotates). What is read stays in memory; messages name files, never
//! their content, and a token is registered with the log scrubber.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use base64::Engine;
use kube::config::{AuthInfo, Kubeconfig};
use secrecy::ExposeSecret;

use crate::config::{CredentialSource, credential_file};

/// What the broker presents to a `kubernetes` cluster.
pub(super) struct BrokerCredential {
    /// `Authorization: Bearer …`.
    pub(super) bearer: Option<String>,
    /// A client certificate chain and its key, PEM.
    pub(super) client: Option<ClientIdentity>,
}

#[derive(Clone, PartialEq, Eq)]
pub(super) struct ClientIdentity {
    pub(super) certificate_pem: Vec<u8>,
    pub(super) key_pem: Vec<u8>,
}

/// Each cluster's credential as last read, from what source, and what every file it was
/// read from was then (a kubeconfig's token file included).
#[derive(Default)]
pub(super) struct Credentials {
    read: Mutex<HashMap<String, Read>>,
}

struct Read {
    source: CredentialSource,
    stamps: Vec<Stamp>,
    credential: Arc<BrokerCredential>,
}

/// A file as `stat` saw it: when it changes (its content, or its owner or mode), the
/// credential is read, and checked, again.
#[derive(PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    changed: (i64, i64),
    len: u64,
    inode: u64,
}

/// The file at `path` itself (a symlink is not followed: replacing the file by one is a
/// change, and the read that follows refuses it).
fn stamp(path: &Path) -> Result<Stamp, String> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Stamp {
        path: path.to_path_buf(),
        modified: meta.modified().ok(),
        changed: (meta.ctime(), meta.ctime_nsec()),
        len: meta.len(),
        inode: meta.ino(),
    })
}

impl Credentials {
    /// `cluster`'s credential from `source`, read again if any of its files changed.
    pub(super) fn get(
        &self,
        cluster: &str,
        source: &CredentialSource,
    ) -> Result<Arc<BrokerCredential>, String> {
        let fail = |why: String| format!("the broker's credential for cluster {cluster}: {why}");
        if let Some(seen) = self.read.lock().expect("credentials lock").get(cluster)
            && seen.source == *source
            && seen
                .stamps
                .iter()
                .all(|s| stamp(&s.path).is_ok_and(|now| now == *s))
        {
            return Ok(Arc::clone(&seen.credential));
        }
        let mut opened = Vec::new();
        let credential = Arc::new(read(source, &mut opened).map_err(fail)?);
        // Stamped after the read: a change during it is seen at the next request.
        let stamps = opened
            .iter()
            .map(|f| stamp(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        if let Some(token) = &credential.bearer {
            crate::redact::register_secret(token);
        }
        let read = Read {
            source: source.clone(),
            stamps,
            credential: Arc::clone(&credential),
        };
        self.read
            .lock()
            .expect("credentials lock")
            .insert(cluster.to_string(), read);
        Ok(credential)
    }
}

/// The files a credential was read from.
type Opened = Vec<PathBuf>;

/// Reads a credential file as it checks it (`config::credential_file`), and notes it.
fn read_file(path: &Path, opened: &mut Opened) -> Result<Vec<u8>, String> {
    opened.push(path.to_path_buf());
    credential_file(path)
}

fn read(source: &CredentialSource, opened: &mut Opened) -> Result<BrokerCredential, String> {
    match source {
        CredentialSource::TokenFile(path) => Ok(BrokerCredential {
            bearer: Some(token_in(path, opened)?),
            client: None,
        }),
        CredentialSource::ClientCertificate { certificate, key } => Ok(BrokerCredential {
            bearer: None,
            client: Some(ClientIdentity {
                certificate_pem: read_file(certificate, opened)?,
                key_pem: read_file(key, opened)?,
            }),
        }),
        CredentialSource::Kubeconfig { path, context } => {
            from_kubeconfig(path, context.as_deref(), opened)
        }
    }
}

/// A token file's token (its first line, trimmed).
fn token_in(path: &Path, opened: &mut Opened) -> Result<String, String> {
    let bytes = read_file(path, opened)?;
    let text = String::from_utf8(bytes).map_err(|_| format!("{} is not text", path.display()))?;
    let token = text.trim();
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(format!("{} holds no single token", path.display()));
    }
    Ok(token.to_string())
}

/// The user of `context` (or of the current context) in the kubeconfig at `path`.
fn from_kubeconfig(
    path: &Path,
    context: Option<&str>,
    opened: &mut Opened,
) -> Result<BrokerCredential, String> {
    let shown = path.display();
    let text = String::from_utf8(read_file(path, opened)?)
        .map_err(|_| format!("kubeconfig {shown} is not text"))?;
    // The parser's message may quote the file: it is not passed on.
    let config = Kubeconfig::from_yaml(&text)
        .map_err(|_| format!("kubeconfig {shown} is not a valid kubeconfig"))?;
    let wanted = context
        .map(str::to_string)
        .or(config.current_context.clone())
        .ok_or_else(|| format!("kubeconfig {shown} has no current-context: set `context`"))?;
    let user = config
        .contexts
        .iter()
        .find(|c| c.name == wanted)
        .and_then(|c| c.context.as_ref())
        .and_then(|c| c.user.clone())
        .ok_or_else(|| format!("kubeconfig {shown} has no context {wanted:?} with a user"))?;
    let auth = config
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref())
        .ok_or_else(|| format!("kubeconfig {shown} has no user {user:?}"))?;
    let base = path.parent().unwrap_or(Path::new("/"));
    user_credential(auth, base, opened)
        .map_err(|why| format!("kubeconfig {shown}, user {user:?}: {why}"))
}

/// A kubeconfig user's token or client certificate; files it names are relative to the
/// kubeconfig's directory, and checked like it.
fn user_credential(
    auth: &AuthInfo,
    base: &Path,
    opened: &mut Opened,
) -> Result<BrokerCredential, String> {
    if auth.exec.is_some() || auth.auth_provider.is_some() || auth.username.is_some() {
        return Err("it authenticates with an exec plugin, an auth provider or a password: give the broker a token or a client certificate".into());
    }
    if auth.impersonate.is_some() || auth.impersonate_groups.is_some() {
        return Err("it impersonates: the broker impersonates each user itself".into());
    }
    let file = |name: &str| base.join(name);
    let bearer = match (&auth.token, &auth.token_file) {
        (Some(token), _) => Some(token.expose_secret().trim().to_string()),
        (None, Some(f)) => Some(token_in(&file(f), opened)?),
        (None, None) => None,
    };
    let mut pem = |data: Option<&str>,
                   path: Option<&String>,
                   what: &str|
     -> Result<Option<Vec<u8>>, String> {
        match (data, path) {
            (Some(data), _) => base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map(Some)
                .map_err(|_| format!("its {what} data is not base64")),
            (None, Some(f)) => read_file(&file(f), opened).map(Some),
            (None, None) => Ok(None),
        }
    };
    let certificate = pem(
        auth.client_certificate_data.as_deref(),
        auth.client_certificate.as_ref(),
        "client certificate",
    )?;
    let key = pem(
        auth.client_key_data.as_ref().map(|k| k.expose_secret()),
        auth.client_key.as_ref(),
        "client key",
    )?;
    let client = match (certificate, key) {
        (Some(certificate_pem), Some(key_pem)) => Some(ClientIdentity {
            certificate_pem,
            key_pem,
        }),
        (None, None) => None,
        _ => return Err("it has a client certificate or key without the other".into()),
    };
    if bearer.is_none() && client.is_none() {
        return Err("it has neither a token nor a client certificate".into());
    }
    Ok(BrokerCredential { bearer, client })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn private(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[test]
    fn a_rotated_token_file_is_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = private(dir.path(), "token", "first\n");
        let source = CredentialSource::TokenFile(path.clone());
        let credentials = Credentials::default();
        let first = credentials.get("onprem", &source).unwrap();
        assert_eq!(first.bearer.as_deref(), Some("first"));
        // Rotation writes a new file in place of the old (a new inode).
        let next = private(dir.path(), "token.new", "second-and-longer\n");
        std::fs::rename(next, &path).unwrap();
        let second = credentials.get("onprem", &source).unwrap();
        assert_eq!(second.bearer.as_deref(), Some("second-and-longer"));
    }

    #[test]
    fn a_symlink_a_fifo_or_a_file_in_a_directory_others_may_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = private(dir.path(), "token", "t\n");
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let inside = private(&open, "token", "t\n");
        for (path, why) in [
            (dir.path().join("link"), "is a symbolic link"),
            (fifo, "is not a regular file"),
            (inside, "may be written by others"),
        ] {
            let source = CredentialSource::TokenFile(path.clone());
            let err = Credentials::default()
                .get("onprem", &source)
                .err()
                .unwrap_or_else(|| panic!("{} accepted", path.display()));
            assert!(err.contains(why), "{err}");
        }
    }

    #[test]
    fn a_kubeconfigs_token_file_and_context_are_followed_when_they_change() {
        let dir = tempfile::tempdir().unwrap();
        let token = private(dir.path(), "sa.token", "first\n");
        let kubeconfig = private(
            dir.path(),
            "k",
            "apiVersion: v1\nkind: Config\n\
             contexts:\n- name: a\n  context: {cluster: c, user: sa}\n\
             - name: b\n  context: {cluster: c, user: other}\n\
             users:\n- name: sa\n  user: {tokenFile: sa.token}\n\
             - name: other\n  user: {token: other-token}\n",
        );
        let with = |context: &str| CredentialSource::Kubeconfig {
            path: kubeconfig.clone(),
            context: Some(context.to_string()),
        };
        let credentials = Credentials::default();
        let bearer = |source: &CredentialSource| {
            credentials
                .get("onprem", source)
                .unwrap()
                .bearer
                .clone()
                .unwrap()
        };
        assert_eq!(bearer(&with("a")), "first");
        let next = private(dir.path(), "sa.token.new", "rotated\n");
        std::fs::rename(next, &token).unwrap();
        assert_eq!(bearer(&with("a")), "rotated");
        assert_eq!(bearer(&with("b")), "other-token");
    }

    #[test]
    fn a_token_file_opened_to_others_after_it_was_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = private(dir.path(), "token", "first\n");
        let source = CredentialSource::TokenFile(path.clone());
        let credentials = Credentials::default();
        assert!(credentials.get("onprem", &source).is_ok());
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = credentials.get("onprem", &source).err().expect("refused");
        assert!(err.contains("has mode 0644"), "{err}");
    }

    #[test]
    fn a_token_file_others_may_read_is_refused_and_its_token_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = private(dir.path(), "token", "s3cr3t-token\n");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let source = CredentialSource::TokenFile(path);
        let err = Credentials::default()
            .get("onprem", &source)
            .err()
            .expect("refused");
        assert!(err.contains("has mode 0644"), "{err}");
        assert!(!err.contains("s3cr3t"), "{err}");
    }

    #[test]
    fn a_kubeconfigs_context_user_gives_its_token_file_and_an_exec_user_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        private(dir.path(), "sa.token", "sa-token\n");
        let kubeconfig = private(
            dir.path(),
            "onprem.kubeconfig",
            "apiVersion: v1\nkind: Config\ncurrent-context: other\n\
             contexts:\n- name: broker\n  context: {cluster: onprem, user: sa}\n\
             - name: other\n  context: {cluster: onprem, user: plugin}\n\
             users:\n- name: sa\n  user: {tokenFile: sa.token}\n\
             - name: plugin\n  user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: get-token}}\n\
             clusters:\n- name: onprem\n  cluster: {server: https://10.0.0.1}\n",
        );
        let with = |context: Option<&str>| CredentialSource::Kubeconfig {
            path: kubeconfig.clone(),
            context: context.map(str::to_string),
        };
        let credential = read(&with(Some("broker")), &mut Vec::new()).unwrap();
        assert_eq!(credential.bearer.as_deref(), Some("sa-token"));
        let err = read(&with(None), &mut Vec::new())
            .err()
            .expect("an exec user is refused");
        assert!(err.contains("an exec plugin"), "{err}");
        let err = read(&with(Some("nope")), &mut Vec::new())
            .err()
            .expect("no such context");
        assert!(err.contains("no context \"nope\""), "{err}");
    }
}
