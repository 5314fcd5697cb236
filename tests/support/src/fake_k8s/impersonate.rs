//! User impersonation as the API server does it (`Impersonate-User`, `Impersonate-Group`,
//! `Impersonate-Extra-KEY`): each part must be granted to the authenticated user by RBAC —
//! verb `impersonate` on `users` and `groups` (core group) named the user and each group,
//! and on `userextras/KEY` (group `authentication.k8s.io`) named each value — or the
//! request is a 403. The request then runs as the impersonated user, with
//! `system:authenticated` added to its groups.

use super::Body;
use super::api::{bad_request, status};
use super::auth::UserInfo;
use super::rbac::{Attributes, Authorizer};
use http::{HeaderMap, StatusCode};
use std::collections::BTreeMap;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA_PREFIX: &str = "impersonate-extra-";

/// What a request asks to be, from its headers (`None`: no impersonation asked).
struct Asked {
    user: Option<String>,
    groups: Vec<String>,
    extra: BTreeMap<String, Vec<String>>,
}

fn asked(headers: &HeaderMap) -> Result<Option<Asked>, String> {
    let value = |v: &http::HeaderValue| {
        v.to_str()
            .map(str::to_owned)
            .map_err(|_| "an Impersonate-* header is not text".to_owned())
    };
    let mut asked = Asked {
        user: None,
        groups: Vec::new(),
        extra: BTreeMap::new(),
    };
    let mut any = false;
    for (name, v) in headers {
        let name = name.as_str();
        if name == USER {
            asked.user = Some(value(v)?);
        } else if name == GROUP {
            asked.groups.push(value(v)?);
        } else if name == UID {
            return Err("Impersonate-Uid is not supported by this fake API server".into());
        } else if let Some(key) = name.strip_prefix(EXTRA_PREFIX) {
            let key = percent_decode(key)?;
            asked.extra.entry(key).or_default().push(value(v)?);
        } else {
            continue;
        }
        any = true;
    }
    if !any {
        return Ok(None);
    }
    if asked.user.is_none() {
        return Err(
            "requested impersonation of groups or extras without impersonating a user".into(),
        );
    }
    Ok(Some(asked))
}

/// `%2F` and the like in an extra's key (header names cannot hold `/`).
fn percent_decode(key: &str) -> Result<String, String> {
    let bytes = key.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = key
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("bad escape in Impersonate-Extra key {key:?}"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("Impersonate-Extra key {key:?} is not UTF-8"))
}

/// The user a request runs as: `user` itself, or whom it impersonates if `user` may.
pub(crate) fn effective_user(
    authorizer: &Authorizer,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, Box<http::Response<Body>>> {
    let asked = match asked(headers) {
        Ok(Some(asked)) => asked,
        Ok(None) => return Ok(user),
        Err(message) => return Err(Box::new(bad_request(&message))),
    };
    let name = asked.user.unwrap_or_default();
    let mut checks = vec![("", "users", String::new(), name.clone())];
    for group in &asked.groups {
        checks.push(("", "groups", String::new(), group.clone()));
    }
    for (key, values) in &asked.extra {
        for v in values {
            checks.push((
                "authentication.k8s.io",
                "userextras",
                key.clone(),
                v.clone(),
            ));
        }
    }
    for (api_group, resource, subresource, target) in checks {
        let attributes = Attributes::resource(
            "impersonate",
            api_group,
            resource,
            &subresource,
            "",
            &target,
        );
        if !authorizer
            .authorize(&user.username, &user.groups, &attributes)
            .allowed
        {
            let shown = if subresource.is_empty() {
                resource.to_owned()
            } else {
                format!("{resource}/{subresource}")
            };
            let message = format!(
                "{shown} \"{target}\" is forbidden: User \"{}\" cannot impersonate resource \
                 \"{shown}\" in API group \"{api_group}\" at the cluster scope",
                user.username
            );
            return Err(Box::new(status(
                StatusCode::FORBIDDEN,
                "Forbidden",
                &message,
                None,
            )));
        }
    }
    let mut groups = asked.groups;
    if !groups.iter().any(|g| g == "system:authenticated") {
        groups.push("system:authenticated".into());
    }
    Ok(UserInfo {
        username: name,
        uid: String::new(),
        groups,
        extra: asked.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMPERSONATOR: &str = "\
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: impersonator}
rules:
- apiGroups: [\"\"]
  resources: [users]
  resourceNames: [alice]
  verbs: [impersonate]
- apiGroups: [\"\"]
  resources: [groups]
  resourceNames: [\"rolesh:sre\"]
  verbs: [impersonate]
- apiGroups: [authentication.k8s.io]
  resources: [userextras/rolesh.io/session-id]
  verbs: [impersonate]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: impersonator}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: impersonator}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: broker}
";

    fn broker() -> UserInfo {
        UserInfo {
            username: "broker".into(),
            uid: String::new(),
            groups: vec!["system:authenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_granted_user_group_and_extra_become_the_requests_user() {
        let rbac = Authorizer::from_yaml(IMPERSONATOR).unwrap();
        let h = headers(&[
            ("Impersonate-User", "alice"),
            ("Impersonate-Group", "rolesh:sre"),
            ("Impersonate-Extra-rolesh.io%2fsession-id", "s-1"),
        ]);
        let user = effective_user(&rbac, broker(), &h).unwrap();
        assert_eq!(user.username, "alice");
        assert_eq!(user.groups, ["rolesh:sre", "system:authenticated"]);
        assert_eq!(user.extra["rolesh.io/session-id"], ["s-1"]);
    }

    #[test]
    fn an_ungranted_user_or_group_is_forbidden() {
        let rbac = Authorizer::from_yaml(IMPERSONATOR).unwrap();
        for h in [
            headers(&[("Impersonate-User", "bob")]),
            headers(&[
                ("Impersonate-User", "alice"),
                ("Impersonate-Group", "system:masters"),
            ]),
            headers(&[
                ("Impersonate-User", "alice"),
                ("Impersonate-Extra-scopes", "x"),
            ]),
        ] {
            let refused = effective_user(&rbac, broker(), &h).unwrap_err();
            assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{h:?}");
        }
    }

    #[test]
    fn no_headers_keep_the_user_and_groups_alone_are_a_bad_request() {
        let rbac = Authorizer::from_yaml(IMPERSONATOR).unwrap();
        let same = effective_user(&rbac, broker(), &HeaderMap::new()).unwrap();
        assert_eq!(same.username, "broker");
        let h = headers(&[("Impersonate-Group", "rolesh:sre")]);
        let refused = effective_user(&rbac, broker(), &h).unwrap_err();
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    }
}
