//! The Kubernetes protobuf encoding of the request bodies clients send that way (kubectl
//! 1.3x sends `auth can-i` reviews as `application/vnd.kubernetes.protobuf`): the `k8s\0`
//! magic, a `runtime.Unknown` envelope, and the review objects, decoded with prost and turned
//! into the JSON shape the handlers read. Responses are always JSON (clients accept it).

use prost::Message;
use serde_json::{Value, json};

/// The content type of Kubernetes protobuf.
pub(crate) const PROTOBUF: &str = "application/vnd.kubernetes.protobuf";
const MAGIC: &[u8] = b"k8s\0";

#[derive(Clone, PartialEq, Message)]
struct TypeMeta {
    #[prost(string, optional, tag = "1")]
    api_version: Option<String>,
    #[prost(string, optional, tag = "2")]
    kind: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct Unknown {
    #[prost(message, optional, tag = "1")]
    type_meta: Option<TypeMeta>,
    #[prost(bytes = "vec", optional, tag = "2")]
    raw: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct ResourceAttributes {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
    #[prost(string, optional, tag = "3")]
    group: Option<String>,
    #[prost(string, optional, tag = "4")]
    version: Option<String>,
    #[prost(string, optional, tag = "5")]
    resource: Option<String>,
    #[prost(string, optional, tag = "6")]
    subresource: Option<String>,
    #[prost(string, optional, tag = "7")]
    name: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct NonResourceAttributes {
    #[prost(string, optional, tag = "1")]
    path: Option<String>,
    #[prost(string, optional, tag = "2")]
    verb: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReviewSpec {
    #[prost(message, optional, tag = "1")]
    resource_attributes: Option<ResourceAttributes>,
    #[prost(message, optional, tag = "2")]
    non_resource_attributes: Option<NonResourceAttributes>,
}

#[derive(Clone, PartialEq, Message)]
struct AccessReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<AccessReviewSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReviewSpec {
    #[prost(string, optional, tag = "1")]
    namespace: Option<String>,
}

#[derive(Clone, PartialEq, Message)]
struct RulesReview {
    #[prost(message, optional, tag = "2")]
    spec: Option<RulesReviewSpec>,
}

/// Decodes a protobuf review into the JSON a client would have sent.
pub(crate) fn decode_review(body: &[u8]) -> Result<Value, String> {
    let envelope = body
        .strip_prefix(MAGIC)
        .ok_or("protobuf body without the k8s magic")?;
    let unknown = Unknown::decode(envelope).map_err(|e| e.to_string())?;
    let type_meta = unknown.type_meta.unwrap_or_default();
    let api_version = type_meta.api_version.unwrap_or_default();
    let kind = type_meta.kind.unwrap_or_default();
    let raw = unknown.raw.unwrap_or_default();
    let spec = match kind.as_str() {
        "SelfSubjectAccessReview" => {
            let spec = AccessReview::decode(raw.as_slice())
                .map_err(|e| e.to_string())?
                .spec
                .unwrap_or_default();
            let mut spec_json = json!({});
            if let Some(r) = spec.resource_attributes {
                spec_json["resourceAttributes"] = json!({
                    "namespace": r.namespace.unwrap_or_default(),
                    "verb": r.verb.unwrap_or_default(),
                    "group": r.group.unwrap_or_default(),
                    "version": r.version.unwrap_or_default(),
                    "resource": r.resource.unwrap_or_default(),
                    "subresource": r.subresource.unwrap_or_default(),
                    "name": r.name.unwrap_or_default(),
                });
            }
            if let Some(n) = spec.non_resource_attributes {
                spec_json["nonResourceAttributes"] = json!({
                    "path": n.path.unwrap_or_default(),
                    "verb": n.verb.unwrap_or_default(),
                });
            }
            spec_json
        }
        "SelfSubjectRulesReview" => {
            let spec = RulesReview::decode(raw.as_slice())
                .map_err(|e| e.to_string())?
                .spec
                .unwrap_or_default();
            json!({"namespace": spec.namespace.unwrap_or_default()})
        }
        "SelfSubjectReview" => json!({}),
        other => return Err(format!("cannot decode a protobuf {other:?}")),
    };
    Ok(json!({"kind": kind, "apiVersion": api_version, "metadata": {}, "spec": spec}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_reviews_decode_from_the_kubernetes_envelope() {
        let review = AccessReview {
            spec: Some(AccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some("web".into()),
                    verb: Some("create".into()),
                    resource: Some("pods".into()),
                    subresource: Some("exec".into()),
                    ..Default::default()
                }),
                non_resource_attributes: None,
            }),
        };
        let envelope = Unknown {
            type_meta: Some(TypeMeta {
                api_version: Some("authorization.k8s.io/v1".into()),
                kind: Some("SelfSubjectAccessReview".into()),
            }),
            raw: Some(review.encode_to_vec()),
        };
        let mut body = MAGIC.to_vec();
        body.extend(envelope.encode_to_vec());
        let json = decode_review(&body).expect("decodes");
        assert_eq!(json["spec"]["resourceAttributes"]["subresource"], "exec");
        assert_eq!(json["apiVersion"], "authorization.k8s.io/v1");
        assert!(decode_review(b"{}").is_err());
    }
}
