//! Pod lists and watches with only the pods a namespace's selectors allow
//! (`policy::Decision::FilterPods`): a `PodList`'s items, a `Table`'s rows (as `kubectl get`
//! asks for them), and a watch's events, one JSON object a line. A pod whose labels cannot
//! be read is left out: filtering fails closed.

use std::collections::BTreeMap;

use serde_json::Value;

/// The labels of an object (`metadata.labels`), if it has readable ones.
fn labels(object: &Value) -> Option<BTreeMap<String, String>> {
    let metadata = object.get("metadata")?;
    let Some(labels) = metadata.get("labels") else {
        return Some(BTreeMap::new());
    };
    labels
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
        .collect()
}

/// Keeps the elements of `list[key]` whose labels (under `object_of`) are allowed.
fn keep(
    list: &mut Value,
    key: &str,
    object_of: fn(&Value) -> Option<&Value>,
    allowed: &dyn Fn(&BTreeMap<String, String>) -> bool,
) {
    if let Some(Value::Array(items)) = list.get_mut(key) {
        items.retain(|item| {
            object_of(item)
                .and_then(labels)
                .is_some_and(|l| allowed(&l))
        });
    }
}

/// A list answer with only the allowed pods: a `PodList` or a `Table`; a `Status` (an
/// error) as it came. Anything else is refused: it is not what a pod list is, and cannot
/// be filtered (fail closed).
pub(crate) fn list(
    body: &[u8],
    allowed: &dyn Fn(&BTreeMap<String, String>) -> bool,
) -> Result<Vec<u8>, String> {
    let unfilterable = || "the cluster's answer is not a pod list the proxy can filter".to_string();
    let mut value = serde_json::from_slice::<Value>(body).map_err(|_| unfilterable())?;
    match value.get("kind").and_then(Value::as_str) {
        Some("PodList") => keep(&mut value, "items", |item| Some(item), allowed),
        Some("Table") => keep(&mut value, "rows", |row| row.get("object"), allowed),
        Some("Status") => return Ok(body.to_vec()),
        _ => return Err(unfilterable()),
    }
    serde_json::to_vec(&value).map_err(|_| unfilterable())
}

/// One watch event, to pass on (the line, newline included) or to drop. A pod event passes
/// if the pod is allowed; a Table event keeps its allowed rows and is dropped if none is
/// left; a bookmark and an error pass; anything else is dropped (fail closed).
pub(crate) fn event(
    line: &[u8],
    allowed: &dyn Fn(&BTreeMap<String, String>) -> bool,
) -> Option<Vec<u8>> {
    let Ok(mut value) = serde_json::from_slice::<Value>(line) else {
        // Not JSON (a partial line cannot reach here): nothing to judge it by.
        return None;
    };
    match value.get("type").and_then(Value::as_str) {
        // A bookmark carries a resource version and nothing of a pod; an error, a Status.
        Some("BOOKMARK" | "ERROR") => return Some(line.to_vec()),
        Some("ADDED" | "MODIFIED" | "DELETED") => {}
        _ => return None,
    }
    let object = value.get_mut("object")?;
    match object.get("kind").and_then(Value::as_str) {
        Some("Pod") => labels(object).filter(|l| allowed(l)).map(|_| line.to_vec()),
        Some("Table") => {
            keep(object, "rows", |row| row.get("object"), allowed);
            let empty = object
                .get("rows")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
            if empty {
                return None;
            }
            let mut out = serde_json::to_vec(&value).unwrap_or_default();
            out.push(b'\n');
            Some(out)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frontend_only(labels: &BTreeMap<String, String>) -> bool {
        labels.get("app").map(String::as_str) == Some("frontend")
    }

    fn names(body: &[u8], key: &str, name_of: fn(&Value) -> &Value) -> Vec<String> {
        let v: Value = serde_json::from_slice(body).unwrap();
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| name_of(i).as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn a_pod_list_keeps_the_allowed_pods() {
        let body = br#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[
            {"metadata":{"name":"web-1","labels":{"app":"frontend"}}},
            {"metadata":{"name":"redis-0","labels":{"app":"redis"}}},
            {"metadata":{"name":"bare"}},
            {"metadata":{"name":"odd","labels":{"app":7}}}]}"#;
        let out = list(body, &frontend_only).unwrap();
        assert_eq!(names(&out, "items", |i| &i["metadata"]["name"]), ["web-1"]);
    }

    #[test]
    fn a_table_keeps_the_rows_of_allowed_pods_and_drops_rows_without_an_object() {
        let body = br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","columnDefinitions":[],"rows":[
            {"cells":["web-1"],"object":{"kind":"PartialObjectMetadata","metadata":{"name":"web-1","labels":{"app":"frontend"}}}},
            {"cells":["redis-0"],"object":{"metadata":{"name":"redis-0","labels":{"app":"redis"}}}},
            {"cells":["no-object"]}]}"#;
        let out = list(body, &frontend_only).unwrap();
        assert_eq!(names(&out, "rows", |r| &r["cells"][0]), ["web-1"]);
    }

    #[test]
    fn a_status_passes_and_anything_else_is_refused() {
        let status = br#"{"kind":"Status","code":403,"message":"forbidden"}"#;
        assert_eq!(list(status, &frontend_only), Ok(status.to_vec()));
        // A watch stream served for what the proxy took for a list (a `watch` value it
        // read otherwise), a lone event, a single pod: none is a list to filter.
        let stream = b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"redis-0\"}}}\n{\"type\":\"ADDED\",\"object\":{}}\n";
        let event = br#"{"type":"ADDED","object":{"kind":"Pod","metadata":{"name":"redis-0"}}}"#;
        let pod = br#"{"kind":"Pod","metadata":{"name":"redis-0"}}"#;
        for body in [&stream[..], &event[..], &pod[..], b"not json"] {
            assert!(
                list(body, &frontend_only).is_err(),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn watch_lines_that_are_not_pod_events_are_dropped() {
        // A whole PodList on one line (the server read `watch` otherwise), an event with no
        // object, an unknown type.
        let list = br#"{"kind":"PodList","items":[{"metadata":{"name":"redis-0","labels":{"app":"redis"}}}]}"#;
        let bare = br#"{"type":"ADDED"}"#;
        let odd = br#"{"type":"SURPRISE","object":{"kind":"Pod","metadata":{"labels":{"app":"frontend"}}}}"#;
        for line in [&list[..], &bare[..], &odd[..]] {
            assert_eq!(
                event(line, &frontend_only),
                None,
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn watch_events_of_other_pods_are_dropped() {
        let ours = b"{\"type\":\"ADDED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"web-1\",\"labels\":{\"app\":\"frontend\"}}}}\n";
        let theirs = b"{\"type\":\"MODIFIED\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"name\":\"redis-0\",\"labels\":{\"app\":\"redis\"}}}}\n";
        let bookmark = b"{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"Pod\",\"metadata\":{\"resourceVersion\":\"7\"}}}\n";
        let error = b"{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410}}\n";
        assert_eq!(event(ours, &frontend_only).as_deref(), Some(&ours[..]));
        assert_eq!(event(theirs, &frontend_only), None);
        assert_eq!(
            event(bookmark, &frontend_only).as_deref(),
            Some(&bookmark[..])
        );
        assert_eq!(event(error, &frontend_only).as_deref(), Some(&error[..]));
    }

    #[test]
    fn a_table_watch_event_keeps_its_allowed_rows() {
        let line = br#"{"type":"ADDED","object":{"kind":"Table","rows":[{"cells":["redis-0"],"object":{"metadata":{"labels":{"app":"redis"}}}}]}}"#;
        assert_eq!(event(line, &frontend_only), None);
        let mixed = br#"{"type":"ADDED","object":{"kind":"Table","rows":[{"cells":["web-1"],"object":{"metadata":{"labels":{"app":"frontend"}}}},{"cells":["redis-0"],"object":{"metadata":{"labels":{"app":"redis"}}}}]}}"#;
        let out: Value = serde_json::from_slice(&event(mixed, &frontend_only).unwrap()).unwrap();
        assert_eq!(out["object"]["rows"].as_array().unwrap().len(), 1);
    }
}
