//! The command line of `rolesh-token`, which is that of `rolesh token` (SPEC §4):
//!
//! ```text
//! rolesh-token --cluster NAME
//! rolesh-token --cluster-name NAME [--region R] [--role-arn ARN] [--sts-regional-endpoints legacy|regional]
//! ```
//!
//! Parsed by hand (`--flag VALUE` and `--flag=VALUE`), not with clap: clap's command
//! building is most of what a small binary would otherwise map at start-up.

use std::ffi::OsString;

use crate::error::Failure;
use crate::sign::StsEndpoints;

/// What `rolesh token` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenArgs {
    /// `--cluster NAME`: the broker signs with the user's own role.
    Broker { cluster: String },
    /// `--cluster-name NAME …`: a drop-in for `aws eks get-token`.
    Standalone(StandaloneArgs),
}

/// `rolesh token --cluster-name`, as plain values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandaloneArgs {
    pub cluster_name: String,
    pub region: Option<String>,
    pub role_arn: Option<String>,
    /// `--sts-regional-endpoints`; absent: `AWS_STS_REGIONAL_ENDPOINTS`, else regional.
    pub endpoints: Option<StsEndpoints>,
}

pub const USAGE: &str = "usage: rolesh-token --cluster NAME\n       rolesh-token --cluster-name NAME [--region R] [--role-arn ARN] [--sts-regional-endpoints legacy|regional]";

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Token(TokenArgs),
    Help,
    Version,
}

/// The flags, each at most once.
#[derive(Default)]
struct Flags {
    cluster: Option<String>,
    cluster_name: Option<String>,
    region: Option<String>,
    role_arn: Option<String>,
    endpoints: Option<String>,
}

impl Flags {
    fn slot(&mut self, flag: &str) -> Option<&mut Option<String>> {
        Some(match flag {
            "--cluster" => &mut self.cluster,
            "--cluster-name" => &mut self.cluster_name,
            "--region" => &mut self.region,
            "--role-arn" => &mut self.role_arn,
            "--sts-regional-endpoints" => &mut self.endpoints,
            _ => return None,
        })
    }
}

/// Parses the arguments after the program name.
pub fn parse(args: &[OsString]) -> Result<Parsed, Failure> {
    let mut flags = Flags::default();
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let arg = arg
            .to_str()
            .ok_or_else(|| usage(format!("{arg:?} is not valid UTF-8")))?;
        match arg {
            "-h" | "--help" => return Ok(Parsed::Help),
            "-V" | "--version" => return Ok(Parsed::Version),
            _ => {}
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => (flag, Some(value.to_string())),
            _ => (arg, None),
        };
        let slot = flags
            .slot(flag)
            .ok_or_else(|| usage(format!("unexpected argument {arg:?}")))?;
        if slot.is_some() {
            return Err(usage(format!("{flag} is given twice")));
        }
        let value = match inline {
            Some(value) => value,
            None => rest
                .next()
                .and_then(|v| v.to_str())
                .map(str::to_string)
                .ok_or_else(|| usage(format!("{flag} needs a value")))?,
        };
        *slot = Some(value);
    }
    flags.into_args().map(Parsed::Token)
}

impl Flags {
    fn into_args(self) -> Result<TokenArgs, Failure> {
        match (self.cluster, self.cluster_name) {
            (Some(_), Some(_)) => Err(usage("--cluster and --cluster-name exclude each other")),
            (None, None) => Err(usage("--cluster or --cluster-name is required")),
            (Some(cluster), None) => {
                if self.region.is_some() || self.role_arn.is_some() || self.endpoints.is_some() {
                    return Err(usage(
                        "--region, --role-arn and --sts-regional-endpoints go with --cluster-name only",
                    ));
                }
                Ok(TokenArgs::Broker { cluster })
            }
            (None, Some(cluster_name)) => Ok(TokenArgs::Standalone(StandaloneArgs {
                cluster_name,
                region: self.region,
                role_arn: self.role_arn,
                endpoints: self
                    .endpoints
                    .as_deref()
                    .map(|word| {
                        StsEndpoints::parse(word).ok_or_else(|| {
                            usage(format!(
                                "--sts-regional-endpoints must be \"legacy\" or \"regional\", not {word:?}"
                            ))
                        })
                    })
                    .transpose()?,
            })),
        }
    }
}

fn usage(why: impl std::fmt::Display) -> Failure {
    Failure::usage(format!("{why}\n{USAGE}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, Failure> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse(&args)
    }

    #[test]
    fn both_forms_and_both_spellings() {
        assert_eq!(
            p(&["--cluster", "prod"]),
            Ok(Parsed::Token(TokenArgs::Broker {
                cluster: "prod".into()
            }))
        );
        assert_eq!(p(&["--cluster=prod"]), p(&["--cluster", "prod"]));
        assert_eq!(
            p(&[
                "--cluster-name",
                "demo",
                "--region=eu-west-1",
                "--role-arn",
                "arn:aws:iam::1:role/x",
                "--sts-regional-endpoints",
                "legacy",
            ]),
            Ok(Parsed::Token(TokenArgs::Standalone(StandaloneArgs {
                cluster_name: "demo".into(),
                region: Some("eu-west-1".into()),
                role_arn: Some("arn:aws:iam::1:role/x".into()),
                endpoints: Some(StsEndpoints::Legacy),
            })))
        );
        assert_eq!(p(&["--help"]), Ok(Parsed::Help));
        assert_eq!(p(&["--cluster", "x", "-V"]), Ok(Parsed::Version));
    }

    #[test]
    fn what_clap_refuses_is_a_usage_error() {
        for bad in [
            &[][..],
            &["--cluster"],
            &["--cluster", "a", "--cluster", "b"],
            &["--cluster", "a", "--cluster-name", "b"],
            &["--cluster", "a", "--region", "us-east-1"],
            &["--cluster-name", "a", "--sts-regional-endpoints", "global"],
            &["token", "--cluster", "a"],
            &["--cluster-name", "a", "--profile", "x"],
        ] {
            let err = p(bad).unwrap_err();
            assert_eq!(err.code, crate::error::EXIT_USAGE, "{bad:?}");
            assert!(err.message.ends_with(USAGE), "{bad:?}: {}", err.message);
        }
    }
}
