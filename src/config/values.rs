//! Rules for single values: durations, ARNs, STS names, regions, cluster names, URLs.
//! Each returns the reason a value is wrong, to be placed at its position.

use std::time::Duration;

/// `15m`, `1h`, `1h30m`, `90s`, `7d` within `[min, max]` (jiff's "friendly" duration
/// format: `1h 30m` and `90 seconds` are accepted too; a day is 24 hours).
pub fn duration(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let invalid = |why: &dyn std::fmt::Display| {
        format!("invalid duration {text:?} ({why}); write it like \"15m\" or \"1h\"")
    };
    let span: jiff::Span = text.trim().parse().map_err(|e| invalid(&e))?;
    // Years and months have no fixed length; as averages (humantime's, which the first
    // versions read durations with) they are still far out of every range.
    let calendar = jiff::SignedDuration::from_secs(
        i64::from(span.get_years()) * 31_557_600 + i64::from(span.get_months()) * 2_630_016,
    );
    let signed = span
        .years(0)
        .months(0)
        .to_duration(jiff::SpanRelativeTo::days_are_24_hours())
        .map_err(|e| invalid(&e))?
        .saturating_add(calendar);
    let d = Duration::try_from(signed).map_err(|_| invalid(&"it is negative"))?;
    if d < min || d > max {
        return Err(format!(
            "duration {text:?} is out of range: it must be between {} and {}",
            short(min),
            short(max)
        ));
    }
    Ok(d)
}

/// `1h30m`, `24h`, `90s`: how rolesh writes durations back (hours are the largest unit, as
/// in the configuration).
pub fn short(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// Units of byte sizes: binary (`KiB` = 1024) and decimal (`kB` = 1000), as `du` and
/// systemd write them.
const BYTE_UNITS: [(&str, u64); 9] = [
    ("B", 1),
    ("KiB", 1 << 10),
    ("MiB", 1 << 20),
    ("GiB", 1 << 30),
    ("TiB", 1 << 40),
    ("kB", 1_000),
    ("MB", 1_000_000),
    ("GB", 1_000_000_000),
    ("TB", 1_000_000_000_000),
];

/// `1GiB`, `500MiB`, `64KiB`, `2GB`, `4096` (bytes) within `[min, max]`.
pub fn byte_size(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let invalid = || format!("invalid size {text:?}; write it like \"1GiB\" or \"500MiB\"");
    let trimmed = text.trim();
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(digits_end);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let unit = unit.trim();
    let factor = match unit {
        "" => 1,
        _ => BYTE_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, f)| *f)
            .ok_or_else(invalid)?,
    };
    let bytes = number.checked_mul(factor).ok_or_else(invalid)?;
    if !(min..=max).contains(&bytes) {
        return Err(format!(
            "size {text:?} is out of range: it must be between {} and {}",
            human_bytes(min),
            human_bytes(max)
        ));
    }
    Ok(bytes)
}

/// `1.5 GiB`, `512 KiB`, `100 B`: a byte count for people.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value.fract() == 0.0 {
        format!("{value:.0} {}", units[unit])
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// `[audit] min_free`: the free space the recordings file system keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MinFree {
    /// A share of the file system's size (`5%`); 0 turns the check off.
    Percent(u8),
    Bytes(u64),
}

impl MinFree {
    /// Whether `available` bytes free out of `total` is below this.
    pub fn is_below(self, available: u64, total: u64) -> bool {
        match self {
            MinFree::Percent(p) => u128::from(available) * 100 < u128::from(total) * u128::from(p),
            MinFree::Bytes(b) => available < b,
        }
    }
}

impl std::fmt::Display for MinFree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MinFree::Percent(p) => write!(f, "{p}%"),
            MinFree::Bytes(b) => f.write_str(&human_bytes(*b)),
        }
    }
}

/// `5%` (0–99) or a byte size (`10GiB`).
pub fn min_free(text: &str) -> Result<MinFree, String> {
    if let Some(percent) = text.trim().strip_suffix('%') {
        return match percent.trim().parse::<u8>() {
            Ok(p) if p < 100 => Ok(MinFree::Percent(p)),
            _ => Err(format!(
                "invalid share {text:?}: a whole percentage from 0% to 99%"
            )),
        };
    }
    byte_size(text, 0, u64::MAX).map(MinFree::Bytes)
}

/// `"a", "b" or "c"`: the values a key takes, for messages.
pub fn one_of<'a>(words: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = words.map(|w| format!("{w:?}")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// serde: a `Duration` as whole seconds (how `whoami` carries session limits).
pub mod whole_seconds {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_secs)
    }
}

/// serde: an `Option` whose key must be present (`null` for none). Without this serde
/// takes a missing key for `None`, and a malformed answer would pass for an empty one.
pub fn required<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    <Option<T> as serde::Deserialize>::deserialize(d)
}

const PARTITIONS: [&str; 5] = ["aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b"];

/// `arn:PARTITION:iam::ACCOUNT:role[/PATH/]NAME`, the only kind of ARN rolesh assumes.
pub fn role_arn(arn: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "invalid role ARN {arn:?}: {why} (expected arn:aws:iam::123456789012:role/NAME)"
        ))
    };
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return bad("not an ARN");
    }
    if !PARTITIONS.contains(&parts[1]) {
        return bad("unknown partition");
    }
    if parts[2] != "iam" || !parts[3].is_empty() {
        return bad("not an IAM ARN");
    }
    if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
        return bad("the account must be 12 digits");
    }
    let Some(path_and_name) = parts[5].strip_prefix("role/") else {
        return bad("not a role");
    };
    let name = path_and_name.rsplit('/').next().unwrap_or("");
    if name.is_empty() || name.len() > 64 || !name.chars().all(is_iam_name_char) {
        return bad("the role name must be 1-64 characters of letters, digits and +=,.@_-");
    }
    if path_and_name.len() > 512 + 64
        || !path_and_name
            .chars()
            .all(|c| c == '/' || is_iam_name_char(c))
    {
        return bad("the role path may hold only letters, digits, / and +=,.@_-");
    }
    Ok(())
}

/// The role name from a role ARN (`…:role/path/NAME` → `NAME`).
pub fn role_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn is_iam_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// STS's rule for RoleSessionName and SourceIdentity: 2-64 of `[A-Za-z0-9+=,.@_-]`.
pub fn sts_name(what: &str, value: &str) -> Result<(), String> {
    if !(2..=64).contains(&value.len()) {
        return Err(format!(
            "{what} {value:?} must be 2-64 characters long (it is {})",
            value.chars().count()
        ));
    }
    if let Some(c) = value.chars().find(|c| !is_iam_name_char(*c)) {
        return Err(format!(
            "{what} {value:?} contains {c:?}; STS allows only letters, digits and +=,.@_-"
        ));
    }
    if value.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("{what} {value:?} must not start with \"aws:\""));
    }
    Ok(())
}

/// Characters STS allows in session tag keys and values.
pub fn is_tag_char(c: char) -> bool {
    c.is_alphanumeric() || c.is_whitespace() || "_.:/=+-@".contains(c)
}

/// A session tag key: 1-128 characters, not under the reserved `aws:` prefix.
pub fn tag_key(key: &str) -> Result<(), String> {
    if key.is_empty() || key.chars().count() > 128 {
        return Err(format!("tag key {key:?} must be 1-128 characters"));
    }
    if let Some(c) = key.chars().find(|c| !is_tag_char(*c)) {
        return Err(format!(
            "tag key {key:?} contains {c:?}; STS allows letters, digits, spaces and _.:/=+-@"
        ));
    }
    if key.to_ascii_lowercase().starts_with("aws:") {
        return Err(format!("tag key {key:?} uses the reserved prefix \"aws:\""));
    }
    Ok(())
}

/// `us-east-1`, `eu-west-2`, `us-gov-west-1`, `cn-north-1`, …
pub fn region(region: &str) -> Result<(), String> {
    let mut parts = region.split('-');
    let ok = region.len() <= 32
        && parts
            .next()
            .is_some_and(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .next_back()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && region.split('-').count() >= 3
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid AWS region {region:?} (expected something like \"us-east-1\")"
        ))
    }
}

/// EKS cluster names: 1-100 characters, a letter or digit first, then letters, digits,
/// `-` and `_`.
pub fn cluster_name(name: &str) -> Result<(), String> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 100
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid cluster name {name:?}: EKS names are 1-100 letters, digits, `-` and `_`, starting with a letter or digit"
        ))
    }
}

/// An `https://` URL, or `http://` to a loopback host (a stand-in in tests).
pub fn endpoint_url(url: &str) -> Result<(), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("invalid URL {url:?}: expected https://HOST[:PORT]"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host_of(authority);
    if host.is_empty() || authority.contains('@') || url.chars().any(char::is_whitespace) {
        return Err(format!("invalid URL {url:?}: expected https://HOST[:PORT]"));
    }
    match scheme {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => Err(format!(
            "plain http is allowed only to a loopback address, not {host:?}; use https"
        )),
        _ => Err(format!("invalid URL {url:?}: the scheme must be https")),
    }
}

fn host_of(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Linux user and group names as NSS can return them: no whitespace, `:` or `/`.
pub fn account_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 256
        || name
            .chars()
            .any(|c| c.is_whitespace() || c == ':' || c == '/' || c.is_control())
    {
        return Err(format!("invalid {what} name {name:?}"));
    }
    Ok(())
}

/// A Kubernetes user name (`credentials.identity`): printable, no spaces, at most 253.
pub fn kube_user_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 253
        || name.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "invalid Kubernetes user name {name:?} (as the cluster knows the broker's credential, e.g. \"rolesh-broker\" or \"system:serviceaccount:rolesh:broker\")"
        ));
    }
    // `rolesh rbac` lets this name impersonate every mapped user: not a name the cluster
    // gives to others (anonymous, a node, every pod of a namespace).
    if let Some(rest) = name.strip_prefix("system:") {
        let account = rest
            .strip_prefix("serviceaccount:")
            .and_then(|r| r.split_once(':'))
            .filter(|(ns, sa)| !ns.is_empty() && !sa.is_empty() && !sa.contains(':'));
        return match account {
            Some((_, "default")) => Err(format!(
                "{name:?} is the service account of every pod in its namespace that names none: give the broker its own"
            )),
            Some(_) => Ok(()),
            None => Err(format!(
                "{name:?} is a name the cluster gives to others (system:…): the broker's identity must be its own user or service account (system:serviceaccount:NS:NAME)"
            )),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_in_range() {
        let min = Duration::from_secs(900);
        let max = Duration::from_secs(12 * 3600);
        assert_eq!(duration("1h", min, max), Ok(Duration::from_secs(3600)));
        assert_eq!(duration("1h30m", min, max), Ok(Duration::from_secs(5400)));
        assert_eq!(
            duration("5m", min, max).unwrap_err(),
            "duration \"5m\" is out of range: it must be between 15m and 12h"
        );
        assert!(
            duration("soon", min, max)
                .unwrap_err()
                .starts_with("invalid duration \"soon\"")
        );
    }

    #[test]
    fn durations_in_every_form_the_examples_use() {
        let (min, max) = (Duration::ZERO, Duration::from_secs(7 * 86400));
        for (text, secs) in [
            ("90s", 90),
            ("1m", 60),
            ("30m", 1800),
            ("12h", 43200),
            ("1h 30m", 5400),
            ("7d", 604800),
        ] {
            assert_eq!(
                duration(text, min, max),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert!(duration("-5m", min, max).unwrap_err().contains("negative"));
        assert!(
            duration("1y", min, max)
                .unwrap_err()
                .contains("out of range")
        );
    }

    #[test]
    fn byte_sizes_in_binary_and_decimal_units() {
        assert_eq!(byte_size("1GiB", 0, u64::MAX), Ok(1 << 30));
        assert_eq!(byte_size("500MiB", 0, u64::MAX), Ok(500 << 20));
        assert_eq!(byte_size("2 GB", 0, u64::MAX), Ok(2_000_000_000));
        assert_eq!(byte_size("4096", 0, u64::MAX), Ok(4096));
        for bad in ["", "1.5GiB", "1gib", "GiB", "-1MiB", "99999999999TiB"] {
            assert!(
                byte_size(bad, 0, u64::MAX)
                    .unwrap_err()
                    .contains("invalid size"),
                "{bad}"
            );
        }
        assert_eq!(
            byte_size("1KiB", 1 << 20, 1 << 40).unwrap_err(),
            "size \"1KiB\" is out of range: it must be between 1 MiB and 1 TiB"
        );
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
    }

    #[test]
    fn min_free_as_a_share_or_a_size() {
        assert_eq!(min_free("5%"), Ok(MinFree::Percent(5)));
        assert_eq!(min_free("10GiB"), Ok(MinFree::Bytes(10 << 30)));
        assert!(min_free("100%").is_err());
        assert!(min_free("5.5%").is_err());
        assert!(MinFree::Percent(5).is_below(4, 100));
        assert!(!MinFree::Percent(5).is_below(5, 100));
        assert!(!MinFree::Percent(0).is_below(0, 100));
        assert!(MinFree::Bytes(10).is_below(9, 100));
    }

    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(one_of(["a", "b", "c"].into_iter()), "\"a\", \"b\" or \"c\"");
        assert_eq!(one_of(["a"].into_iter()), "\"a\"");
    }

    #[test]
    fn short_durations() {
        assert_eq!(short(Duration::from_secs(86400)), "24h");
        assert_eq!(short(Duration::from_secs(5400)), "1h30m");
        assert_eq!(short(Duration::from_secs(59)), "59s");
    }

    #[test]
    fn role_arns() {
        assert!(role_arn("arn:aws:iam::123456789012:role/alice").is_ok());
        assert!(role_arn("arn:aws-us-gov:iam::123456789012:role/path/to/x").is_ok());
        assert!(
            role_arn("arn:aws:iam::12345:role/alice")
                .unwrap_err()
                .contains("12 digits")
        );
        assert!(
            role_arn("arn:aws:iam::123456789012:user/alice")
                .unwrap_err()
                .contains("not a role")
        );
        assert!(role_arn("arn:aws:s3:::bucket").is_err());
        assert!(role_arn("alice").unwrap_err().contains("not an ARN"));
        assert!(role_arn("arn:aws:iam::123456789012:role/a b").is_err());
        assert_eq!(role_name("arn:aws:iam::123456789012:role/p/q/name"), "name");
    }

    #[test]
    fn sts_names() {
        assert!(sts_name("session name", "alice").is_ok());
        assert!(sts_name("session name", "a").unwrap_err().contains("2-64"));
        assert!(
            sts_name("session name", &"a".repeat(70))
                .unwrap_err()
                .contains("it is 70")
        );
        assert!(
            sts_name("session name", "al ice")
                .unwrap_err()
                .contains("' '")
        );
    }

    #[test]
    fn regions_and_urls() {
        assert!(region("us-east-1").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("useast1").is_err());
        assert!(region("US-EAST-1").is_err());
        assert!(endpoint_url("https://sts.example.com").is_ok());
        assert!(endpoint_url("http://127.0.0.1:4566").is_ok());
        assert!(endpoint_url("http://[::1]:4566/").is_ok());
        assert!(
            endpoint_url("http://sts.example.com")
                .unwrap_err()
                .contains("loopback")
        );
        assert!(endpoint_url("ftp://x").is_err());
    }
}
