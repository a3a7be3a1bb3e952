//! The environment an AWS client peer (botocore, the AWS CLI, the `aws-config` crate, …) runs
//! in: nothing of the test runner's (no `AWS_*`, no proxies, no profile of the machine's),
//! profile files that do not exist, and the IMDS endpoint override when a test gives one.
//! Every peer test builds its client's environment here, so they all mean the same thing by
//! "an unconfigured client".

use std::ffi::OsString;
use std::process::Command;

/// `HOME` of a peer: a directory that does not exist.
pub const HOME: &str = "/nonexistent/fm-home";
/// `AWS_CONFIG_FILE` of a peer: a file that does not exist.
pub const CONFIG_FILE: &str = "/nonexistent/fm-aws/config";
/// `AWS_SHARED_CREDENTIALS_FILE` of a peer: a file that does not exist.
pub const CREDENTIALS_FILE: &str = "/nonexistent/fm-aws/credentials";

/// A peer's whole environment; [`AwsEnv::apply`] replaces a command's with it.
#[derive(Debug, Clone)]
pub struct AwsEnv {
    vars: Vec<(String, OsString)>,
}

/// The environment of an AWS client that finds IMDS at `endpoint` (`http://127.0.0.1:PORT`,
/// no trailing `/`): `AWS_EC2_METADATA_SERVICE_ENDPOINT` is set the way users set it, with
/// the trailing `/`. `None`: no override, the client's default (169.254.169.254).
pub fn aws_env(endpoint: Option<&str>) -> AwsEnv {
    let mut e = AwsEnv {
        vars: vec![
            ("PATH".into(), std::env::var_os("PATH").unwrap_or_default()),
            ("HOME".into(), HOME.into()),
            ("AWS_CONFIG_FILE".into(), CONFIG_FILE.into()),
            (
                "AWS_SHARED_CREDENTIALS_FILE".into(),
                CREDENTIALS_FILE.into(),
            ),
        ],
    };
    if let Some(url) = endpoint {
        e = e.set("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("{url}/"));
    }
    e
}

impl AwsEnv {
    /// Sets (or replaces) one variable, e.g. `AWS_METADATA_SERVICE_NUM_ATTEMPTS`.
    pub fn set(mut self, key: &str, value: impl Into<OsString>) -> Self {
        let value = value.into();
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.vars.push((key.into(), value)),
        }
        self
    }

    /// Sets each of `vars`.
    pub fn set_all(self, vars: &[(&str, &str)]) -> Self {
        vars.iter().fold(self, |e, (k, v)| e.set(k, *v))
    }

    /// Clears `cmd`'s environment and gives it this one.
    pub fn apply<'c>(&self, cmd: &'c mut Command) -> &'c mut Command {
        cmd.env_clear();
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// `prog` with this environment.
    pub fn command(&self, prog: &str) -> Command {
        let mut c = Command::new(prog);
        self.apply(&mut c);
        c
    }
}
