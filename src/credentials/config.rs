//! `[iam]`: the instance profile's role and where its credentials come from.
//!
//! The TOML form is flat ([`RawIam`], kebab-case, unknown keys rejected); [`IamConfig`] is the
//! validated, typed form the manager uses. Single values are checked while they are parsed
//! (newtypes), so the TOML parser reports them with the value's span; rules that tie keys
//! together (which keys each `source` needs, lifetime against refresh-before) are checked in
//! `TryFrom<RawIam>` and reported at the `[iam]` table, naming the keys.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::secret::Secret;
pub use crate::types::HumanDuration;

/// The role a fresh install serves, so that SDKs find credentials at once.
pub const DEFAULT_ROLE: &str = "fake-metadata-role";
/// A stable, recognisable instance profile id (`AIPA` and 17 upper-case alphanumerics).
pub const DEFAULT_INSTANCE_PROFILE_ID: &str = "AIPAXFAKEMETADATA0001";
/// EC2 hands out role credentials valid for about 6 hours.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(6 * 3600);
/// A new set replaces the old this long before the old expires, so every set handed out has
/// at least this much left.
pub const DEFAULT_REFRESH_BEFORE: Duration = Duration::from_secs(3600);
/// The least time left a handed-out set may have: botocore refreshes credentials expiring
/// within ~15 minutes and Java SDK v1 breaks under 15 minutes; an hour leaves a margin.
pub const MIN_LEFT: Duration = Duration::from_secs(3600);
/// IAM role sessions last at most 12 hours.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// The shortest interval between two rotations, so a misconfiguration cannot spin.
pub const MIN_ROTATION: Duration = Duration::from_secs(5 * 60);
/// How long `credential_process` may run unless `command-timeout` says otherwise.
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// The validated `[iam]` section. `Debug`, `Display` (its TOML) and `Serialize` show every
/// key or token as `<redacted>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawIam", into = "RawIam")]
pub struct IamConfig {
    /// The role served under `iam/security-credentials/`; `None` (`role = ""`) serves no
    /// `iam/` at all, like an instance without a profile. The instance identity credentials
    /// (`identity-credentials/`) are served either way, as on every EC2 instance.
    pub role: Option<RoleName>,
    pub source: SourceConfig,
    /// How long each handed-out set is valid (its `Expiration` − `LastUpdated`).
    pub lifetime: Duration,
    /// A new set replaces the old this long before the old expires.
    pub refresh_before: Duration,
    pub instance_profile_id: InstanceProfileId,
    /// `iam/info`'s `InstanceProfileArn`; `None`: the profile is named as the role, in the
    /// instance's partition and `[instance] account-id` (checked against both in
    /// `crate::config`).
    pub instance_profile_arn: Option<InstanceProfileArn>,
    /// Whether `iam/security-credentials-extended/` (the same set plus `AccountId`) is
    /// served. Off by default: as of June 2025 EC2 serves it only on allowlisted instances
    /// and answers 404 elsewhere, after which the SDKs fall back to `security-credentials/`
    /// (aws-sdk-java-v2 PR #6176, botocore PR #3498).
    pub extended_credentials: bool,
}

/// Where credentials come from.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// Random, realistic-looking keys from a CSPRNG, new ones at every rotation.
    Generated,
    /// Fixed keys, handed out again with a new `Expiration` at every rotation.
    Static(StaticKeys),
    /// An AWS shared credentials file (INI), re-read when it changes.
    File { path: PathBuf, profile: String },
    /// A command following the AWS `credential_process` contract, run with `sh -c`.
    Process { command: String, timeout: Duration },
}

/// Static keys: in the config itself, or in a file only the daemon can read.
#[derive(Debug, Clone, PartialEq)]
pub enum StaticKeys {
    Inline(Keys),
    /// A TOML file with `access-key-id`, `secret-access-key` and optionally `session-token`;
    /// it must not be readable by group or others.
    File(PathBuf),
}

/// One set of keys as a source provides them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Keys {
    pub access_key_id: Secret,
    pub secret_access_key: Secret,
    /// Long-term keys have none; the document then carries `"Token" : ""`.
    pub session_token: Option<Secret>,
}

/// `source = …`
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    #[default]
    Generated,
    Static,
    File,
    Process,
}

impl SourceConfig {
    pub fn kind(&self) -> SourceKind {
        match self {
            SourceConfig::Generated => SourceKind::Generated,
            SourceConfig::Static(_) => SourceKind::Static,
            SourceConfig::File { .. } => SourceKind::File,
            SourceConfig::Process { .. } => SourceKind::Process,
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::Generated => "generated",
            SourceKind::Static => "static",
            SourceKind::File => "file",
            SourceKind::Process => "process",
        })
    }
}

impl Default for IamConfig {
    fn default() -> Self {
        IamConfig::try_from(RawIam::default()).expect("the built-in [iam] is valid")
    }
}

/// The TOML text of the section, secrets redacted.
impl fmt::Display for IamConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = toml::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(text.trim_end())
    }
}

/// The section as written in TOML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct RawIam {
    role: RoleField,
    source: SourceKind,
    lifetime: HumanDuration,
    refresh_before: HumanDuration,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_access_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credentials_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    command_timeout: Option<HumanDuration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_profile_id: Option<InstanceProfileId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_profile_arn: Option<InstanceProfileArn>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    extended_credentials: bool,
}

impl Default for RawIam {
    fn default() -> Self {
        RawIam {
            role: RoleField(Some(RoleName(DEFAULT_ROLE.into()))),
            source: SourceKind::Generated,
            lifetime: HumanDuration(DEFAULT_LIFETIME),
            refresh_before: HumanDuration(DEFAULT_REFRESH_BEFORE),
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            credentials_file: None,
            file: None,
            profile: None,
            command: None,
            command_timeout: None,
            instance_profile_id: None,
            instance_profile_arn: None,
            extended_credentials: false,
        }
    }
}

impl TryFrom<RawIam> for IamConfig {
    type Error = String;

    fn try_from(r: RawIam) -> Result<Self, String> {
        let (lifetime, refresh_before) = (r.lifetime.0, r.refresh_before.0);
        if refresh_before < MIN_LEFT {
            return Err(format!(
                "[iam] `refresh-before` is {}: it must be at least 1h, because every set handed out has that much left and SDKs misbehave with less (Java SDK v1 under 15 min)",
                HumanDuration(refresh_before)
            ));
        }
        if lifetime > MAX_LIFETIME {
            return Err(format!(
                "[iam] `lifetime` is {}: an IAM role session lasts at most 12h",
                HumanDuration(lifetime)
            ));
        }
        if lifetime < refresh_before.saturating_add(MIN_ROTATION) {
            return Err(format!(
                "[iam] `lifetime` ({}) must exceed `refresh-before` ({}) by at least 5m: a set is replaced `refresh-before` ahead of its expiry",
                HumanDuration(lifetime),
                HumanDuration(refresh_before)
            ));
        }

        if r.role.0.is_none()
            && let Some(arn) = &r.instance_profile_arn
        {
            return Err(format!(
                "[iam] `instance-profile-arn` ({arn}) is set but `role = \"\"`: an instance without a role has no instance profile (no iam/ is served)"
            ));
        }

        let source = SourceKeys {
            source: r.source,
            access_key_id: r.access_key_id,
            secret_access_key: r.secret_access_key,
            session_token: r.session_token,
            credentials_file: r.credentials_file,
            file: r.file,
            profile: r.profile,
            command: r.command,
            command_timeout: r.command_timeout,
        }
        .check("[iam]")?;
        Ok(IamConfig {
            role: r.role.0,
            source,
            lifetime,
            refresh_before,
            instance_profile_id: r
                .instance_profile_id
                .unwrap_or_else(|| InstanceProfileId(DEFAULT_INSTANCE_PROFILE_ID.into())),
            instance_profile_arn: r.instance_profile_arn,
            extended_credentials: r.extended_credentials,
        })
    }
}

impl From<IamConfig> for RawIam {
    fn from(c: IamConfig) -> RawIam {
        let k = SourceKeys::from(c.source);
        RawIam {
            role: RoleField(c.role),
            source: k.source,
            lifetime: HumanDuration(c.lifetime),
            refresh_before: HumanDuration(c.refresh_before),
            access_key_id: k.access_key_id,
            secret_access_key: k.secret_access_key,
            session_token: k.session_token,
            credentials_file: k.credentials_file,
            file: k.file,
            profile: k.profile,
            command: k.command,
            command_timeout: k.command_timeout,
            instance_profile_id: Some(c.instance_profile_id),
            instance_profile_arn: c.instance_profile_arn,
            extended_credentials: c.extended_credentials,
        }
    }
}

/// The keys that say where a role's credentials come from, as `[iam]` spells them; a section
/// that names a role of its own (`[[pod]]`, `[[task]]`) spells them the same way and checks
/// them with [`SourceKeys::check`], so every source is read by one rule. `Serialize` shows
/// every key or token as `<redacted>` (see [`Secret`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct SourceKeys {
    pub source: SourceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<HumanDuration>,
}

impl SourceKeys {
    /// The source these keys describe, or what is wrong with them, in one line that starts
    /// with `section` (`[iam]`, `[[pod]] default/web`) and names the keys.
    pub fn check(self, section: &str) -> Result<SourceConfig, String> {
        let kind = self.source;
        // Keys that only one source reads are refused elsewhere, so a typo'd source is noticed.
        let stray = |key: &str, present: bool, wanted: SourceKind| -> Result<(), String> {
            if present && kind != wanted {
                Err(format!(
                    "{section} `{key}` is only read with `source = \"{wanted}\"` (source is \"{kind}\")"
                ))
            } else {
                Ok(())
            }
        };
        stray(
            "access-key-id",
            self.access_key_id.is_some(),
            SourceKind::Static,
        )?;
        stray(
            "secret-access-key",
            self.secret_access_key.is_some(),
            SourceKind::Static,
        )?;
        stray(
            "session-token",
            self.session_token.is_some(),
            SourceKind::Static,
        )?;
        stray(
            "credentials-file",
            self.credentials_file.is_some(),
            SourceKind::Static,
        )?;
        stray("file", self.file.is_some(), SourceKind::File)?;
        stray("profile", self.profile.is_some(), SourceKind::File)?;
        stray("command", self.command.is_some(), SourceKind::Process)?;
        stray(
            "command-timeout",
            self.command_timeout.is_some(),
            SourceKind::Process,
        )?;

        Ok(match kind {
            SourceKind::Generated => SourceConfig::Generated,
            SourceKind::Static => SourceConfig::Static(
                match (self.access_key_id, self.secret_access_key, self.credentials_file) {
                    (Some(id), Some(secret), None) => StaticKeys::Inline(Keys {
                        access_key_id: id,
                        secret_access_key: secret,
                        session_token: self.session_token,
                    }),
                    (None, None, Some(path)) if self.session_token.is_none() => {
                        StaticKeys::File(path)
                    }
                    (_, _, Some(_)) => {
                        return Err(format!(
                            "{section} set either `credentials-file` or the keys (`access-key-id`, `secret-access-key`, `session-token`), not both"
                        ));
                    }
                    _ => {
                        return Err(format!(
                            "{section} `source = \"static\"` needs `access-key-id` and `secret-access-key` (and optionally `session-token`), or a `credentials-file` holding them"
                        ));
                    }
                },
            ),
            SourceKind::File => SourceConfig::File {
                path: self.file.ok_or_else(|| {
                    format!(
                        "{section} `source = \"file\"` needs `file`: the path of an AWS shared credentials file"
                    )
                })?,
                profile: self.profile.unwrap_or_else(|| "default".into()),
            },
            SourceKind::Process => {
                let command = self.command.ok_or_else(|| {
                    format!(
                        "{section} `source = \"process\"` needs `command`: a shell command printing credential_process JSON"
                    )
                })?;
                if command.trim().is_empty() {
                    return Err(format!("{section} `command` is empty"));
                }
                let timeout = self
                    .command_timeout
                    .map_or(DEFAULT_COMMAND_TIMEOUT, |t| t.0);
                if timeout.is_zero() || timeout > Duration::from_secs(600) {
                    return Err(format!(
                        "{section} `command-timeout` must be between 1s and 10m"
                    ));
                }
                SourceConfig::Process { command, timeout }
            }
        })
    }
}

/// The keys that write `source` back (`print-config`).
impl From<SourceConfig> for SourceKeys {
    fn from(c: SourceConfig) -> SourceKeys {
        let mut k = SourceKeys {
            source: c.kind(),
            ..SourceKeys::default()
        };
        match c {
            SourceConfig::Generated => {}
            SourceConfig::Static(StaticKeys::Inline(keys)) => {
                k.access_key_id = Some(keys.access_key_id);
                k.secret_access_key = Some(keys.secret_access_key);
                k.session_token = keys.session_token;
            }
            SourceConfig::Static(StaticKeys::File(p)) => k.credentials_file = Some(p),
            SourceConfig::File { path, profile } => {
                k.file = Some(path);
                k.profile = Some(profile);
            }
            SourceConfig::Process { command, timeout } => {
                k.command = Some(command);
                k.command_timeout = Some(HumanDuration(timeout));
            }
        }
        k
    }
}

/// An IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`. Unless `instance-profile-arn`
/// says otherwise it is also the instance profile's name, in the profile ARN.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RoleName(String);

impl RoleName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RoleName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if (1..=64).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
        {
            Ok(RoleName(s))
        } else {
            Err(format!(
                "`{s}` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -` (or \"\" for no role)"
            ))
        }
    }
}

/// `role = "NAME"`, or `role = ""` for no role (TOML has no null).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
struct RoleField(Option<RoleName>);

impl TryFrom<String> for RoleField {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            Ok(RoleField(None))
        } else {
            RoleName::try_from(s).map(|r| RoleField(Some(r)))
        }
    }
}

impl From<RoleField> for String {
    fn from(r: RoleField) -> String {
        r.0.map(|n| n.0).unwrap_or_default()
    }
}

/// An instance profile's unique id: `AIPA` and 16 to 124 upper-case letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceProfileId(String);

impl InstanceProfileId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for InstanceProfileId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = s.strip_prefix("AIPA").is_some_and(|rest| {
            (16..=124).contains(&rest.len())
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        });
        if ok {
            Ok(InstanceProfileId(s))
        } else {
            Err(format!(
                "`{s}` is not an instance profile id: `AIPA` and at least 16 upper-case letters or digits, e.g. `{DEFAULT_INSTANCE_PROFILE_ID}`"
            ))
        }
    }
}

impl From<InstanceProfileId> for String {
    fn from(v: InstanceProfileId) -> String {
        v.0
    }
}

/// An instance profile's ARN as `iam/info` serves it:
/// `arn:PARTITION:iam::ACCOUNT:instance-profile/[PATH/]NAME`. The profile's name need not be
/// its role's (the console names them alike, the IAM API need not), and a profile created
/// with a path carries it here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InstanceProfileArn(String);

impl InstanceProfileArn {
    /// The default ARN: a profile named as `role`, in the instance's partition (`aws`,
    /// `aws-cn` in the China regions, `aws-us-gov`, …: an ARN's second field) and account.
    pub fn for_role(partition: &str, account_id: &str, role: &RoleName) -> String {
        format!("arn:{partition}:iam::{account_id}:instance-profile/{role}")
    }

    /// The partition the profile belongs to.
    pub fn partition(&self) -> &str {
        self.0.split(':').nth(1).unwrap_or_default()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The account the profile belongs to.
    pub fn account(&self) -> &str {
        self.0.split(':').nth(4).unwrap_or_default()
    }
}

impl fmt::Display for InstanceProfileArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What is wrong with an instance profile ARN, if anything (IAM's rules: a name is 1 to 128
/// of `A-Z a-z 0-9 + = , . @ _ -`; a path is at most 512 printable ASCII characters).
fn arn_problem(s: &str) -> Option<&'static str> {
    let mut f = s.splitn(6, ':');
    let mut next = || f.next().unwrap_or_default();
    let (arn, partition, service, region, account, resource) =
        (next(), next(), next(), next(), next(), next());
    let name_byte = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
    if arn != "arn" {
        return Some("it must start with `arn:`");
    }
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !partition_ok {
        return Some("the partition must be `aws`, `aws-cn`, `aws-us-gov`, …");
    }
    if service != "iam" {
        return Some("the service must be `iam`");
    }
    if !region.is_empty() {
        return Some("an IAM ARN has no region (`iam::`)");
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Some("the account must be 12 digits");
    }
    let Some(path_name) = resource.strip_prefix("instance-profile/") else {
        return Some("the resource must be `instance-profile/NAME`");
    };
    let (path, name) = path_name.rsplit_once('/').unwrap_or(("", path_name));
    if name.is_empty() || name.len() > 128 || !name.bytes().all(name_byte) {
        return Some("the profile name must be 1 to 128 of `A-Z a-z 0-9 + = , . @ _ -`");
    }
    let path_ok = path.len() + 2 <= 512
        && (path.is_empty()
            || path
                .split('/')
                .all(|seg| !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_graphic())));
    if !path_ok {
        return Some(
            "a path must be segments of printable ASCII without spaces, at most 512 characters",
        );
    }
    None
}

impl TryFrom<String> for InstanceProfileArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        match arn_problem(&s) {
            None => Ok(InstanceProfileArn(s)),
            Some(why) => Err(format!(
                "`{s}` is not an instance profile ARN ({why}): expected `arn:aws:iam::ACCOUNT:instance-profile/NAME` or `…:instance-profile/PATH/NAME`, e.g. `arn:aws:iam::123456789012:instance-profile/web`"
            )),
        }
    }
}

impl From<InstanceProfileArn> for String {
    fn from(v: InstanceProfileArn) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct File {
        #[serde(default)]
        iam: IamConfig,
    }

    fn parse(s: &str) -> Result<IamConfig, String> {
        toml::from_str::<File>(s).map(|f| f.iam).map_err(|e| {
            let line = e
                .span()
                .map_or(0, |sp| s[..sp.start].matches('\n').count() + 1);
            format!("{line}: {}", e.message().trim())
        })
    }

    #[test]
    fn default_serves_a_generated_role() {
        let c = parse("").unwrap();
        assert_eq!(c, IamConfig::default());
        assert_eq!(c.role.as_ref().unwrap().as_str(), DEFAULT_ROLE);
        assert_eq!(c.source, SourceConfig::Generated);
        assert_eq!(c.lifetime, DEFAULT_LIFETIME);
        assert_eq!(c.refresh_before, DEFAULT_REFRESH_BEFORE);
        assert_eq!(c.instance_profile_id.as_str(), DEFAULT_INSTANCE_PROFILE_ID);
    }

    #[test]
    fn empty_role_means_no_role() {
        let c = parse("[iam]\nrole = \"\"\n").unwrap();
        assert_eq!(c.role, None);
    }

    #[test]
    fn durations_take_units_or_seconds() {
        let c = parse("[iam]\nlifetime = \"2h30m\"\nrefresh-before = 3600\n").unwrap();
        assert_eq!(c.lifetime, Duration::from_secs(9000));
        assert_eq!(c.refresh_before, Duration::from_secs(3600));
        assert_eq!(
            HumanDuration(Duration::from_secs(9000)).to_string(),
            "2h30m"
        );
        assert_eq!(HumanDuration(Duration::from_secs(90)).to_string(), "1m30s");
        assert_eq!(HumanDuration(Duration::from_secs(86400)).to_string(), "24h");
        assert_eq!("1d".parse(), Ok(HumanDuration(Duration::from_secs(86400))));
        for bad in ["", "h", "6 h", "6x", "1h30", "-5m"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }

    /// Found by the config fuzzer: a `refresh-before` of u64::MAX seconds overflowed the
    /// `lifetime` check and panicked. Durations over ten years are now refused where parsed.
    #[test]
    fn absurd_durations_are_errors_not_panics() {
        let ten_years = HumanDuration::MAX.as_secs();
        assert!(ten_years.to_string().parse::<HumanDuration>().is_ok());
        for bad in [
            (ten_years + 1).to_string(),
            "18446744073709551615".into(),
            "3651d".into(),
            "99999999999h".into(),
        ] {
            let e = bad.parse::<HumanDuration>().unwrap_err();
            assert!(e.contains("too long"), "{bad}: {e}");
        }
        for text in [
            "[iam]\nrefresh-before = \"00000000000018446744073709551615\"\n",
            "[iam]\nrefresh-before = 9223372036854775807\n",
            "[iam]\nlifetime = \"6h\"\nrefresh-before = \"3651d\"\n",
        ] {
            let e = parse(text).unwrap_err();
            let line = text
                .lines()
                .position(|l| l.starts_with("refresh-before"))
                .unwrap()
                + 1;
            assert!(
                e.starts_with(&format!("{line}: ")) && e.contains("too long"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn each_source_parses() {
        let c = parse("[iam]\nsource = \"static\"\naccess-key-id = \"AKIAEXAMPLEEXAMPLE12\"\nsecret-access-key = \"s3cr3t\"\n").unwrap();
        let SourceConfig::Static(StaticKeys::Inline(k)) = &c.source else {
            panic!("{c:?}")
        };
        assert_eq!(k.secret_access_key.expose(), "s3cr3t");
        assert_eq!(k.session_token, None);

        let c = parse("[iam]\nsource = \"static\"\ncredentials-file = \"/etc/k.toml\"\n").unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Static(StaticKeys::File("/etc/k.toml".into()))
        );

        let c = parse("[iam]\nsource = \"file\"\nfile = \"/c\"\n").unwrap();
        assert_eq!(
            c.source,
            SourceConfig::File {
                path: "/c".into(),
                profile: "default".into()
            }
        );

        let c = parse("[iam]\nsource = \"process\"\ncommand = \"get-creds\"\n").unwrap();
        assert_eq!(
            c.source,
            SourceConfig::Process {
                command: "get-creds".into(),
                timeout: DEFAULT_COMMAND_TIMEOUT
            }
        );
    }

    #[test]
    fn bad_values_are_located_at_the_value() {
        let e = parse("[iam]\n\nrole = \"bad role\"\n").unwrap_err();
        assert!(
            e.starts_with("3: `bad role` is not an IAM role name"),
            "{e}"
        );
        let e = parse("[iam]\nlifetime = \"6 hours\"\n").unwrap_err();
        assert!(e.starts_with("2: `6 hours` is not a duration"), "{e}");
        let e = parse("[iam]\nsource = \"vault\"\n").unwrap_err();
        assert!(e.starts_with("2: unknown variant `vault`"), "{e}");
        let e = parse("[iam]\nrol = \"x\"\n").unwrap_err();
        assert!(e.starts_with("2: unknown field `rol`"), "{e}");
        let e = parse("[iam]\ninstance-profile-id = \"AIDA123\"\n").unwrap_err();
        assert!(
            e.starts_with("2: `AIDA123` is not an instance profile id"),
            "{e}"
        );
        let e = parse("[iam]\nsource = \"static\"\naccess-key-id = \"AKIA\"\nsecret-access-key = \"my secret\"\n").unwrap_err();
        assert!(e.starts_with("4: a key or token must be"), "{e}");
        assert!(!e.contains("my secret"), "{e}");
        let e = parse("[iam]\nsource = \"static\"\naccess-key-id = \"AKIA\"\nsecret-access-key = \"<redacted>\"\n").unwrap_err();
        assert!(e.contains("placeholder"), "{e}");
    }

    #[test]
    fn instance_profile_arn_names_its_own_profile() {
        assert_eq!(parse("").unwrap().instance_profile_arn, None);
        for arn in [
            "arn:aws:iam::123456789012:instance-profile/web-profile",
            "arn:aws:iam::123456789012:instance-profile/team/ops/Web+Profile=1,2.3@x_y-z",
            "arn:aws-cn:iam::123456789012:instance-profile/p",
            "arn:aws-us-gov:iam::123456789012:instance-profile/p",
        ] {
            let c = parse(&format!(
                "[iam]\nrole = \"web\"\ninstance-profile-arn = \"{arn}\"\n"
            ))
            .unwrap_or_else(|e| panic!("{arn}: {e}"));
            let got = c.instance_profile_arn.as_ref().unwrap();
            assert_eq!((got.as_str(), got.account()), (arn, "123456789012"));
        }
        let long_name = format!(
            "arn:aws:iam::123456789012:instance-profile/{}",
            "n".repeat(129)
        );
        let long_path = format!(
            "arn:aws:iam::123456789012:instance-profile/{}/n",
            "p".repeat(511)
        );
        for (arn, why) in [
            ("instance-profile/web", "it must start with `arn:`"),
            (
                "arn:azure:iam::123456789012:instance-profile/p",
                "the partition",
            ),
            (
                "arn:aws:sts::123456789012:instance-profile/p",
                "the service must be `iam`",
            ),
            (
                "arn:aws:iam:us-east-1:123456789012:instance-profile/p",
                "no region",
            ),
            ("arn:aws:iam::1234:instance-profile/p", "12 digits"),
            (
                "arn:aws:iam::123456789012:role/web",
                "`instance-profile/NAME`",
            ),
            (
                "arn:aws:iam::123456789012:instance-profile/",
                "profile name",
            ),
            (
                "arn:aws:iam::123456789012:instance-profile/a b",
                "profile name",
            ),
            ("arn:aws:iam::123456789012:instance-profile/a//b", "a path"),
            (
                "arn:aws:iam::123456789012:instance-profile/sp ace/b",
                "a path",
            ),
            (long_name.as_str(), "profile name"),
            (long_path.as_str(), "at most 512"),
        ] {
            let e = parse(&format!("[iam]\n\ninstance-profile-arn = \"{arn}\"\n")).unwrap_err();
            assert!(
                e.starts_with(&format!("3: `{arn}` is not an instance profile ARN ("))
                    && e.contains(why),
                "{arn}: {e}"
            );
        }
    }

    #[test]
    fn cross_key_problems_name_the_keys() {
        let cases = [
            (
                "refresh-before = \"30m\"",
                "`refresh-before` is 30m: it must be at least 1h",
            ),
            (
                "lifetime = \"1h\"",
                "`lifetime` (1h) must exceed `refresh-before` (1h)",
            ),
            ("lifetime = \"13h\"", "at most 12h"),
            (
                "command = \"x\"",
                "`command` is only read with `source = \"process\"`",
            ),
            (
                "source = \"static\"",
                "needs `access-key-id` and `secret-access-key`",
            ),
            (
                "source = \"static\"\naccess-key-id = \"A\"\nsecret-access-key = \"B\"\ncredentials-file = \"/k\"",
                "not both",
            ),
            ("source = \"file\"", "needs `file`"),
            ("source = \"process\"", "needs `command`"),
            (
                "source = \"process\"\ncommand = \"x\"\ncommand-timeout = 0",
                "between 1s and 10m",
            ),
            (
                "role = \"\"\ninstance-profile-arn = \"arn:aws:iam::123456789012:instance-profile/p\"",
                "`instance-profile-arn` (arn:aws:iam::123456789012:instance-profile/p) is set but `role = \"\"`",
            ),
        ];
        for (body, want) in cases {
            let e = parse(&format!("[iam]\n{body}\n")).unwrap_err();
            // A problem across keys is reported at the `[iam]` table.
            assert!(
                e.starts_with("1: [iam] ") && e.contains(want),
                "{body}: {e}"
            );
        }
        let e = parse("[other]\nx = 1\n\n[iam]\nsource = \"file\"\n").unwrap_err();
        assert!(e.starts_with("4: [iam] "), "{e}");
    }

    #[test]
    fn printed_config_reads_back_and_hides_secrets() {
        for text in [
            "",
            "[iam]\nrole = \"\"\n",
            "[iam]\nsource = \"file\"\nfile = \"/c\"\nprofile = \"dev\"\n",
            "[iam]\nsource = \"process\"\ncommand = \"x\"\ncommand-timeout = \"5s\"\n",
            "[iam]\nrole = \"web\"\ninstance-profile-arn = \"arn:aws:iam::123456789012:instance-profile/a/b\"\n",
        ] {
            let c = parse(text).unwrap();
            let printed = format!("[iam]\n{c}\n");
            assert_eq!(parse(&printed).unwrap(), c, "{printed}");
        }
        let c = parse("[iam]\nsource = \"static\"\naccess-key-id = \"AKIAKEYID\"\nsecret-access-key = \"SECRETVALUE\"\nsession-token = \"TOKENVALUE\"\n").unwrap();
        for shown in [
            format!("{c}"),
            format!("{c:?}"),
            toml::to_string(&c).unwrap(),
        ] {
            for secret in ["AKIAKEYID", "SECRETVALUE", "TOKENVALUE"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        assert!(format!("{c}").contains("secret-access-key = \"<redacted>\""));
    }
}
