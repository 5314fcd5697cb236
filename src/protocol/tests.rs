use super::*;

fn parse(line: &str) -> Result<Request, WireError> {
    Request::parse(line.as_bytes())
}

#[test]
fn requests_round_trip_with_the_version_first() {
    let request = Request::Token {
        cluster: "prod".into(),
    };
    let line = request.to_line();
    assert!(line.starts_with(r#"{"v":1,"op":"token","#), "{line}");
    assert_eq!(parse(&line).unwrap(), request);
    assert_eq!(Request::Whoami {}.to_line(), r#"{"v":1,"op":"whoami"}"#);
}

#[test]
fn claims_about_identity_are_refused_not_trusted() {
    let e = parse(r#"{"v":1,"op":"token","cluster":"prod","uid":0,"user":"root"}"#).unwrap_err();
    assert_eq!(e.code, ErrorCode::BadRequest);
    assert!(e.message.contains("unknown field `uid`"), "{}", e.message);
    let e = parse(r#"{"v":1,"op":"whoami","user":"root"}"#).unwrap_err();
    assert!(e.message.contains("unknown field `user`"), "{}", e.message);
}

#[test]
fn bad_requests_say_why() {
    let cases = [
        ("{", "not a JSON request"),
        (r#"{"op":"whoami"}"#, "missing \"v\""),
        (r#"{"v":2,"op":"whoami"}"#, "version 2"),
        (r#"{"v":1}"#, "missing \"op\""),
        (r#"{"v":1,"op":"token"}"#, "missing field `cluster`"),
        (r#"{"v":1,"op":"token","cluster":7}"#, "invalid type"),
        (r#"{"v":1,"op":"sudo"}"#, "unknown variant `sudo`"),
        (
            r#"{"v":1,"op":"record","session_id":"../x","cols":80,"rows":24}"#,
            "lowercase hex",
        ),
    ];
    for (line, why) in cases {
        let e = parse(line).unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{line}");
        assert!(e.message.contains(why), "{line}: {}", e.message);
    }
}

#[test]
fn session_events_cannot_claim_identity_or_grant_access() {
    let r = parse(r#"{"v":1,"op":"event","fields":{"event":"exec","user":"root","uid":0,"role_arn":"x","pod":"web-1","exit_code":3,"shell":"/bin/bash"}}"#).unwrap();
    let Request::Event { fields, .. } = r else {
        panic!("{r:?}")
    };
    let (e, extra) = fields.accepted().unwrap();
    assert_eq!(e.pod.as_deref(), Some("web-1"));
    assert_eq!(e.exit_code, Some(3));
    assert_eq!(extra.as_deref(), Some(r#"{"shell":"/bin/bash"}"#));
    // (`denied` parses: the broker takes it from the monitor alone.)
    for forged in ["token", "assume_role", ""] {
        let line = format!(r#"{{"v":1,"op":"event","fields":{{"event":"{forged}"}}}}"#);
        assert!(parse(&line).is_err(), "{forged}");
    }
    assert!(
        parse(r#"{"v":1,"op":"event","fields":{"event":"login","session_id":"../x"}}"#).is_err()
    );
    let r = parse(r#"{"v":1,"op":"event","fields":{"event":"login","Bad-Name":1}}"#).unwrap();
    let Request::Event { fields, .. } = r else {
        panic!()
    };
    assert!(fields.accepted().unwrap_err().contains("not a field name"));
}

#[test]
fn record_requests_are_checked() {
    let ok = parse(r#"{"v":1,"op":"record","session_id":"0123abcd0123abcd","cols":80,"rows":24}"#);
    assert!(matches!(
        ok,
        Ok(Request::Record(RecordStart { cols: 80, .. }))
    ));
    for bad in [
        r#"{"v":1,"op":"record","session_id":"../../etc/passwd","cols":80,"rows":24}"#,
        r#"{"v":1,"op":"record","session_id":"0123abcd0123abcd","cols":0,"rows":24}"#,
        r#"{"v":1,"op":"record","cols":80,"rows":24}"#,
        r#"{"v":1,"op":"record","session_id":"0123abcd0123abcd","cols":80,"rows":24,"user":"root"}"#,
    ] {
        assert!(parse(bad).is_err(), "{bad}");
    }
}

fn whoami_json() -> serde_json::Value {
    serde_json::json!({
        "user": "alice", "uid": 1001, "rule": "mapping.users.alice", "origin": "c.toml:3:9",
        "role_arn": "arn:aws:iam::123456789012:role/a", "access": "user",
        "access_namespaces": null, "session_name": "alice", "source_identity": "alice",
        "tags": {"b": "2", "a": "1"},
        "clusters": [{"name": "demo", "region": "us-east-1", "default_namespace": "web",
                      "namespaces": [{"name": "web", "selectors": ["app=frontend"]}],
                      "access": "direct", "discovered": null}],
        "session": {"mode": "shell", "shell": "/bin/bash", "path": "/usr/bin:/bin",
                    "allowed_commands": ["kubectl"], "file_transfer": false,
                    "idle_timeout_secs": 1800, "max_duration_secs": 43200, "banner": null,
                    "record": "off", "record_input": false, "exec_command": null,
                    "editor": "rnano", "record_redact": true},
        "session_override": null,
    })
}

#[test]
fn a_whoami_answer_reads_back_whole() {
    let line = whoami_json().to_string();
    let who: Whoami = parse_answer(&line).unwrap().unwrap();
    assert_eq!(who.uid, 1001);
    assert_eq!(
        who.grant.tags,
        vec![("b".into(), "2".into()), ("a".into(), "1".into())]
    );
    assert_eq!(
        who.grant.session.max_duration,
        std::time::Duration::from_secs(43200)
    );
    let again = serde_json::to_value(&who).unwrap();
    assert_eq!(
        again,
        whoami_json(),
        "what the broker sends is what it read"
    );
}

#[test]
fn a_malformed_whoami_answer_is_an_error_not_a_default() {
    let broken = [
        ("/session/shell", "missing field `shell`"),
        ("/uid", "missing field `uid`"),
        (
            "/session/max_duration_secs",
            "missing field `max_duration_secs`",
        ),
        ("/session/banner", "missing field `banner`"),
        (
            "/clusters/0/default_namespace",
            "missing field `default_namespace`",
        ),
        ("/clusters/0/discovered", "missing field `discovered`"),
    ];
    for (pointer, why) in broken {
        let mut v = whoami_json();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        v.pointer_mut(if parent.is_empty() { "" } else { parent })
            .and_then(|p| p.as_object_mut())
            .unwrap()
            .remove(key);
        let err = parse_answer::<Whoami>(&v.to_string()).unwrap_err();
        assert!(err.contains(why), "{pointer}: {err}");
    }
    let mut v = whoami_json();
    v["session"]["mode"] = "root-shell".into();
    assert!(parse_answer::<Whoami>(&v.to_string()).is_err());
    let mut v = whoami_json();
    v["clusters"][0]["namespaces"][0]["selectors"][0] = "app in (".into();
    let err = parse_answer::<Whoami>(&v.to_string()).unwrap_err();
    assert!(err.contains("invalid selector"), "{err}");
}

#[test]
fn errors_read_back_and_redact() {
    let line = WireError::new(ErrorCode::Sts, "STS said k8s-aws-v1.abcdef").to_line();
    assert!(!line.contains("abcdef"), "{line}");
    let answer: Result<Whoami, WireError> = parse_answer(&line).unwrap();
    assert_eq!(answer.unwrap_err().code, ErrorCode::Sts);
    assert!(parse_answer::<Ack>(r#"{"error":{"code":"nope","message":"x"}}"#).is_err());
}

/// `rolesh-token` writes its `token` request with the token path's own writer: it must be
/// the line `Request::Token` is.
#[test]
fn the_exec_plugins_token_request_is_the_protocols() {
    for cluster in ["prod", "a\"b\\c"] {
        let request = Request::Token {
            cluster: cluster.into(),
        };
        assert_eq!(
            rolesh_token_core::wire::token_request_line(cluster),
            request.to_line()
        );
        assert_eq!(Request::parse(request.to_line().as_bytes()), Ok(request));
    }
    assert_eq!(rolesh_token_core::wire::REDACTED, crate::redact::REDACTED);
}
