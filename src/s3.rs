//! S3 as rolesh uses it for recordings (`[audit.s3]`): the client (an endpoint of the
//! configuration's, path-style, for VPC endpoints and tests), where a recording goes, and
//! `s3://BUCKET/KEY` names.

use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::S3Settings;

/// A client for `settings`' bucket with `sdk`'s credentials (the broker's own, or the
/// caller's for `rolesh replay` and `check`).
pub(crate) fn client(sdk: &SdkConfig, settings: &S3Settings) -> aws_sdk_s3::Client {
    client_in(sdk, &settings.region, settings.endpoint.as_deref())
}

/// A client for `region` (and `endpoint`, path-style, when given).
pub(crate) fn client_in(
    sdk: &SdkConfig,
    region: &str,
    endpoint: Option<&str>,
) -> aws_sdk_s3::Client {
    let mut conf = aws_sdk_s3::config::Builder::from(sdk).region(Region::new(region.to_string()));
    if let Some(endpoint) = endpoint {
        conf = conf.endpoint_url(endpoint).force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(conf.build())
}

/// The default credential chain (env, profile, web identity, IMDSv2): whoever runs the
/// command.
pub(crate) async fn callers_config() -> SdkConfig {
    let retry = RetryConfig::standard()
        .with_max_attempts(4)
        .with_max_backoff(Duration::from_secs(5));
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(retry)
        .load()
        .await
}

/// `PREFIX/USER/YYYY/MM/DD/SESSION_ID.cast`, the date the recording started (UTC).
pub(crate) fn recording_key(
    prefix: &str,
    user: &str,
    session_id: &str,
    started: SystemTime,
) -> String {
    let seconds = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let date = jiff::Timestamp::from_second(seconds)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    format!(
        "{prefix}{user}/{:04}/{:02}/{:02}/{session_id}.cast",
        date.year(),
        date.month(),
        date.day()
    )
}

/// `s3://BUCKET/KEY` as (bucket, key).
pub(crate) fn parse_url(url: &str) -> Option<(&str, &str)> {
    let (bucket, key) = url.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

/// `s3://BUCKET/KEY`.
pub(crate) fn url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recordings_key_is_prefix_user_date_and_session() {
        let started = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_979_200); // 2025-12-06
        assert_eq!(
            recording_key("bastion-1/", "alice", "0123abcd", started),
            "bastion-1/alice/2025/12/06/0123abcd.cast"
        );
    }

    #[test]
    fn s3_urls_need_a_bucket_and_a_key() {
        assert_eq!(parse_url("s3://b/k/x.cast"), Some(("b", "k/x.cast")));
        assert_eq!(parse_url("s3://b/"), None);
        assert_eq!(parse_url("s3:///k"), None);
        assert_eq!(parse_url("/var/log/x.cast"), None);
    }
}
