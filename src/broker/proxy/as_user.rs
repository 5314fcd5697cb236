//! What goes with each request to the cluster so that it acts as the user: on EKS, the
//! user's own token (signed by the broker with the user's role); on a `kubernetes`
//! cluster, the broker's credential and `Impersonate-*` headers naming the user, their
//! rolesh group (the one `rolesh rbac` binds) and, as extras, the session and the bastion.

use http::{HeaderMap, HeaderName, HeaderValue, header};

use crate::protocol::Grant;

/// The credential and identity headers of one caller's requests to one cluster.
pub(super) struct UpstreamAuth {
    bearer: Option<HeaderValue>,
    impersonate: Vec<(HeaderName, HeaderValue)>,
}

/// `rolesh.io/session-id` and `rolesh.io/bastion`, escaped as header names must be.
const EXTRA_SESSION: &str = "impersonate-extra-rolesh.io%2fsession-id";
const EXTRA_BASTION: &str = "impersonate-extra-rolesh.io%2fbastion";

impl UpstreamAuth {
    /// The user's own token (EKS).
    pub(super) fn token(token: &str) -> Result<UpstreamAuth, String> {
        Ok(UpstreamAuth {
            bearer: Some(bearer(token)?),
            impersonate: Vec::new(),
        })
    }

    /// The broker's credential (a token, or none when a client certificate is the
    /// credential), acting as the grant's user.
    pub(super) fn impersonating(
        broker_token: Option<&str>,
        grant: &Grant,
        session_id: Option<&str>,
        bastion: &str,
    ) -> Result<UpstreamAuth, String> {
        let value = |v: &str, what: &str| {
            HeaderValue::from_str(v).map_err(|_| format!("the {what} is not a header value"))
        };
        let group = crate::mapping::kube_group(&grant.rule)
            .ok_or_else(|| format!("rule {} has no Kubernetes group", grant.rule))?;
        let mut impersonate = vec![
            (
                HeaderName::from_static("impersonate-user"),
                value(&grant.session_name, "session name")?,
            ),
            (
                HeaderName::from_static("impersonate-group"),
                value(&group, "group")?,
            ),
            (
                HeaderName::from_static(EXTRA_BASTION),
                value(bastion, "host name")?,
            ),
        ];
        if let Some(id) = session_id {
            impersonate.push((
                HeaderName::from_static(EXTRA_SESSION),
                value(id, "session id")?,
            ));
        }
        Ok(UpstreamAuth {
            bearer: broker_token.map(bearer).transpose()?,
            impersonate,
        })
    }

    /// Puts the credential and the identity on a request's headers (after every
    /// `Authorization` and `Impersonate-*` the client sent is gone).
    pub(super) fn apply(&self, headers: &mut HeaderMap) {
        if let Some(bearer) = &self.bearer {
            headers.insert(header::AUTHORIZATION, bearer.clone());
        }
        for (name, value) in &self.impersonate {
            headers.append(name.clone(), value.clone());
        }
    }
}

fn bearer(token: &str) -> Result<HeaderValue, String> {
    let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| "the token is not a header value".to_string())?;
    value.set_sensitive(true);
    Ok(value)
}
