//! The configuration: one TOML file (kebab-case keys, unknown keys rejected), the environment
//! and command-line flags, merged with precedence flag > env > file > built-in default.
//!
//! Every value is validated while it is parsed (newtypes with `try_from`), so a bad value is
//! reported by the TOML parser with the span of the offending key or value; problems that span
//! several keys are located by the key's path in the file ([`locate`]). [`ConfigError`]
//! renders each as `FILE:LINE:COL: message`. A `Config` that exists is valid, and holds all it
//! needs: the user data is read when it is loaded, not when a snapshot is built.
//!
//! `schema` holds the sections as the file spells them; this module loads, checks and
//! resolves them, and hands each domain its own settings ([`Config::imds_options`], the
//! `[iam]` and `[scenario]` sections, which their modules define).

mod locate;
mod schema;

use std::collections::BTreeMap;
use std::net::Ipv6Addr;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::imds;
use crate::machine::MachineFacts;
pub use crate::types::{AccountId, Ec2Id, Ipv6Cidr, Mac, MetaPath, Region, TagKey, Zone};
pub use locate::Located;
use locate::Spans;
pub use schema::*;

/// The default port the daemon listens on (loopback only).
pub const DEFAULT_PORT: u16 = 1338;
/// EC2 caps raw user data at 16 KiB.
pub const USER_DATA_MAX: usize = 16 * 1024;
/// The largest config file read: far above any hand-written one and any `snapshot` file
/// (a crawl keeps at most [`crate::crawl::plan::Limits`]' `max_kept` bytes, which its
/// escaping cannot grow past this), small enough that a mistaken path (`/dev/zero`, a
/// log) is refused at once instead of read into memory.
pub const CONFIG_MAX: usize = 32 << 20;

/// The whole configuration, after defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    pub server: Server,
    pub imds: Imds,
    pub instance: Instance,
    #[serde(skip_serializing_if = "UserData::is_unset")]
    pub user_data: UserData,
    /// Instance tags, served under `tags/instance/` when `instance-metadata-tags` is enabled.
    pub tags: BTreeMap<TagKey, String>,
    /// Extra or overriding leaves: `"meta-data/some/path" = "value"`.
    pub paths: BTreeMap<MetaPath, String>,
    /// The IAM role and where its credentials come from.
    pub iam: crate::credentials::IamConfig,
    pub log: Log,
    /// Spot notices, events, rebalance and ASG state on a timeline from the daemon's start.
    #[serde(skip_serializing_if = "crate::scenario::ScenarioConfig::is_empty")]
    pub scenario: crate::scenario::ScenarioConfig,
    /// The control socket `fake-metadata ctl` talks to.
    pub control: ControlConfig,
    /// `[[fault]]`: faults in force from the start (see [`crate::fault`]).
    #[serde(rename = "fault", skip_serializing_if = "Vec::is_empty")]
    pub faults: Vec<crate::fault::Spec>,
    /// A tree crawled from a real instance, served in place of the one `[instance]` makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
    /// What `install` routes to the daemon: containers too, and which interfaces never.
    pub intercept: Intercept,
    /// The user data's bytes, read once when the file is loaded (never on a rebuild).
    #[serde(skip)]
    user_data_bytes: Option<Bytes>,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {why}", path.display())]
    Read { path: PathBuf, why: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
    #[error("{0}")]
    Env(String),
}

/// Overrides from the environment and the command line (flag > env, merged by clap).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub listen: Vec<SocketAddr>,
    pub http_tokens: Option<HttpTokens>,
}

impl Config {
    /// Parses TOML text; `file` names it in error messages. Values not set take the built-in
    /// defaults (no facts from the machine: see [`Config::load`]).
    pub fn from_toml(text: &str, file: &Path) -> Result<Config, ConfigError> {
        Config::parse(text, file, &MachineFacts::none())
    }

    /// Parses TOML text, filling what is not set from `facts`.
    pub fn parse(text: &str, file: &Path, facts: &MachineFacts) -> Result<Config, ConfigError> {
        let mut cfg: Config = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            ConfigError::Invalid(vec![Located::at(
                file,
                text,
                offset,
                e.message().trim().to_string(),
            )])
        })?;
        let spans = Spans::new(text, file);
        cfg.check(&spans)?;
        cfg.user_data_bytes = cfg.user_data.load(&spans)?;
        cfg.instance.resolve(facts);
        Ok(cfg)
    }

    /// Reads and parses a file (with the built-in defaults, no facts from the machine).
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        Config::read(path, &MachineFacts::none())
    }

    /// Reads the file boundedly, as the user-data file is read: a regular file only (a FIFO
    /// would block, a device never end), opened without blocking, at most [`CONFIG_MAX`].
    fn read(path: &Path, facts: &MachineFacts) -> Result<Config, ConfigError> {
        use std::io::Read as _;
        let refused = |why: String| ConfigError::Read {
            path: path.to_path_buf(),
            why,
        };
        let f = schema::open_regular(path, "a config file").map_err(refused)?;
        let mut bytes = Vec::new();
        f.take(CONFIG_MAX as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refused(e.to_string()))?;
        if bytes.len() > CONFIG_MAX {
            return Err(refused(format!(
                "it is over {} MiB, the most a config file may be",
                CONFIG_MAX >> 20
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| {
            refused(format!(
                "it is not UTF-8 text (byte {})",
                e.utf8_error().valid_up_to()
            ))
        })?;
        Config::parse(&text, path, facts)
    }

    /// The built-in defaults, with derived values filled in.
    pub fn builtin() -> Config {
        Config::builtin_with(&MachineFacts::none())
    }

    fn builtin_with(facts: &MachineFacts) -> Config {
        let mut c = Config::default();
        c.instance.resolve(facts);
        c
    }

    /// Loads the effective configuration as the daemon uses it: built-in defaults, facts
    /// of this machine (unless `[instance] from-host = false`), the file (if any), then the
    /// overrides.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let facts = MachineFacts::gather();
        let mut c = match path {
            Some(p) => Config::read(p, &facts)?,
            None => Config::builtin_with(&facts),
        };
        if !o.listen.is_empty() {
            c.server.listen = Some(o.listen.clone());
        }
        if let Some(t) = o.http_tokens {
            c.imds.http_tokens = t;
        }
        Ok(c)
    }

    /// Checks that span several keys, located at the key they blame.
    fn check(&self, spans: &Spans<'_>) -> Result<(), ConfigError> {
        let mut problems = Vec::new();
        let mut blame = |key: &[&str], message: String| problems.push(spans.blame(key, message));
        if let Some(r) = &self.instance.region
            && self.instance.availability_zone.region() != r.as_str()
        {
            blame(
                &["instance", "availability-zone"],
                format!(
                    "availability zone `{}` is not in region `{}`",
                    self.instance.availability_zone, r
                ),
            );
        }
        if self.instance.partition_number.is_some() && self.instance.placement_group.is_none() {
            blame(
                &["instance", "partition-number"],
                "`partition-number` needs `placement-group` (the partition placement group)".into(),
            );
        }
        if self.user_data.text.is_some() && self.user_data.file.is_some() {
            blame(
                &["user-data", "file"],
                "user data: set `text` or `file`, not both".into(),
            );
        }
        if let Some(t) = &self.user_data.text
            && t.len() > USER_DATA_MAX
        {
            blame(
                &["user-data", "text"],
                format!("user data is {} bytes; EC2 allows at most 16 KiB", t.len()),
            );
        }
        if let Some(l) = &self.server.listen
            && l.is_empty()
        {
            blame(
                &["server", "listen"],
                "`listen` is empty: give at least one address".into(),
            );
        }
        if let Some(l) = &self.server.listen
            && self.imds.http_protocol_ipv6.is_enabled()
            && !l.iter().any(|a| a.ip() == Ipv6Addr::LOCALHOST)
        {
            blame(
                &["imds", "http-protocol-ipv6"],
                "IPv6 interception delivers to [::1]: add \"[::1]:PORT\" to [server] listen".into(),
            );
        }
        if let Err(e) = self
            .log
            .level
            .parse::<tracing_subscriber::filter::Targets>()
        {
            blame(
                &["log", "level"],
                format!("`{}` is not a log filter: {e}", self.log.level),
            );
        }
        // Linear: a path's descendants, if any, sort right after `PATH/`.
        for p in self.paths.keys() {
            let below = format!("{}/", p.as_str());
            if let Some((clash, _)) = self
                .paths
                .range::<str, _>((
                    std::ops::Bound::Included(below.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .filter(|(q, _)| q.as_str().starts_with(&below))
            {
                blame(
                    &["paths", p.as_str()],
                    format!("`{p}` is a value but `{clash}` makes it a directory"),
                );
            }
        }
        if let Some(arn) = &self.iam.instance_profile_arn
            && arn.account() != self.instance.account_id.as_str()
        {
            blame(
                &["iam", "instance-profile-arn"],
                format!(
                    "[iam] `instance-profile-arn` is in account {}, but [instance] account-id is {}: an instance's profile is in its own account",
                    arn.account(),
                    self.instance.account_id
                ),
            );
        }
        if let Some(r) = &self.replay {
            check_replay(r, &mut blame);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(problems))
        }
    }

    /// The raw user data, as read when this config was loaded.
    pub fn user_data(&self) -> Option<&Bytes> {
        self.user_data_bytes.as_ref()
    }

    /// EC2's metadata options as the IMDS applies them.
    pub fn imds_options(&self) -> imds::Options {
        imds::Options {
            endpoint_enabled: self.imds.http_endpoint.is_enabled(),
            tokens_required: self.imds.http_tokens == HttpTokens::Required,
            hop_limit: self.imds.http_put_response_hop_limit.get(),
            generation: self.generation(),
        }
    }

    /// What `install` puts in place for this config: each endpoint's route (today IMDS), the
    /// box's own REDIRECT to the port the daemon listens on (IPv6 too with `http-protocol-ipv6`), and the container path unless
    /// `[intercept] containers = false`.
    pub fn intercept_plan(
        &self,
    ) -> Result<crate::intercept::Plan, crate::intercept::InterceptError> {
        let imds = crate::intercept::Route {
            endpoint: crate::endpoint::Endpoint::Imds,
            port: self.server.redirect_port(),
        };
        let plan = crate::intercept::Plan::new(&[imds], self.imds.http_protocol_ipv6.is_enabled())?;
        Ok(if self.intercept.containers {
            plan.with_containers(&self.intercept.admitted(), &self.intercept.lan_interfaces)
        } else {
            plan
        })
    }

    /// The IMDS generation served: `[imds] generation`, else the instance type's.
    pub fn generation(&self) -> imds::Generation {
        self.imds
            .generation
            .unwrap_or_else(|| imds::Generation::of_instance_type(self.instance.instance_type()))
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        let mut shown = self.clone();
        shown.server.listen = Some(self.server.listen_addrs());
        toml::to_string(&shown).expect("a Config always serializes")
    }
}

/// `[replay]`: what [`Replay::refused`] refuses, blamed on each leaf.
fn check_replay(r: &Replay, blame: &mut impl FnMut(&[&str], String)) {
    for (p, why) in r.refused() {
        blame(&["replay", "leaves", p.as_str()], why);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::Endpoint;

    fn parse(s: &str) -> Result<Config, String> {
        Config::from_toml(s, Path::new("c.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::builtin());
    }

    #[test]
    fn unknown_key_is_located() {
        let e = parse("[imds]\nhttp-tokens = \"optional\"\nbogus = 1\n").unwrap_err();
        assert!(e.starts_with("c.toml:3:1: unknown field `bogus`"), "{e}");
    }

    #[test]
    fn bad_values_are_located() {
        let e = parse("[imds]\nhttp-tokens = \"sometimes\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2:15: unknown variant `sometimes`"),
            "{e}"
        );
        let e = parse("[imds]\nhttp-put-response-hop-limit = 65\n").unwrap_err();
        assert_eq!(
            e,
            "c.toml:2:31: hop limit 65 is out of range: EC2 allows 1 to 64"
        );
        let e = parse("[instance]\ninstance-id = \"x-1\"\n").unwrap_err();
        assert!(e.starts_with("c.toml:2:15: `x-1` is not an EC2 id"), "{e}");
        let e = parse("[tags]\n\"_index\" = \"x\"\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2:1: `_index` is not a tag key"),
            "{e}"
        );
    }

    #[test]
    fn cross_key_problems_name_the_key() {
        let e = parse("[instance]\nregion = \"eu-west-1\"\navailability-zone = \"us-east-1a\"\n")
            .unwrap_err();
        assert_eq!(
            e,
            "c.toml:3:1: availability zone `us-east-1a` is not in region `eu-west-1`"
        );
    }

    #[test]
    fn the_instance_profile_is_in_the_instances_account() {
        let arn = "\"arn:aws:iam::210987654321:instance-profile/ops/web-profile\"";
        let e = parse(&format!(
            "[iam]\nrole = \"web\"\n  instance-profile-arn = {arn}\n"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "c.toml:3:3: [iam] `instance-profile-arn` is in account 210987654321, but [instance] account-id is 123456789012: an instance's profile is in its own account"
        );
        let c = parse(&format!(
            "[instance]\naccount-id = \"210987654321\"\n[iam]\ninstance-profile-arn = {arn}\n"
        ))
        .unwrap();
        assert_eq!(
            c.iam.instance_profile_arn.unwrap().as_str(),
            arn.trim_matches('"')
        );
        // A malformed one is refused at its value.
        let e = parse("[iam]\ninstance-profile-arn = \"arn:aws:iam::210987654321:role/web\"\n")
            .unwrap_err();
        assert!(
            e.starts_with("c.toml:2:24: `arn:aws:iam::210987654321:role/web` is not an instance profile ARN (the resource must be `instance-profile/NAME`)"),
            "{e}"
        );
    }

    #[test]
    fn derived_values_follow_the_zone_and_address() {
        let c =
            parse("[instance]\navailability-zone = \"eu-west-1b\"\nlocal-ipv4 = \"10.0.0.5\"\n")
                .unwrap();
        assert_eq!(c.instance.region(), "eu-west-1");
        assert_eq!(
            c.instance.hostname(),
            "ip-10-0-0-5.eu-west-1.compute.internal"
        );
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let c = parse("[tags]\nName = \"web\"\n[paths]\n\"meta-data/custom/x\" = \"1\"\n").unwrap();
        let again = parse(&c.to_toml()).unwrap();
        let mut expect = c.clone();
        expect.server.listen = Some(c.server.listen_addrs());
        assert_eq!(again, expect);
    }

    #[test]
    fn intercept_section_turns_the_container_path_off_and_checks_patterns() {
        let c = parse("").unwrap();
        assert!(c.intercept.containers);
        let plan = c.intercept_plan().unwrap();
        assert_eq!(
            plan.container_targets(),
            [(Endpoint::Imds, "169.254.169.254:1338".parse().unwrap())]
        );
        let off = parse("[intercept]\ncontainers = false\n").unwrap();
        assert_eq!(off.intercept_plan().unwrap().container_targets(), []);
        assert_eq!(plan.admitted(), ["docker0", "br-+", "podman+", "cni+"]);
        assert!(plan.refused().is_empty());
        let custom = parse(
            "[server]\nlisten = [\"127.0.0.1:9\"]\n[intercept]\n\
             container-interfaces = [\"cbr0\", \"docker0\"]\nlan-interfaces = [\"br-lan\"]\n",
        )
        .unwrap();
        let plan = custom.intercept_plan().unwrap();
        assert_eq!(
            plan.container_targets(),
            [(Endpoint::Imds, "169.254.169.254:9".parse().unwrap())]
        );
        assert_eq!(
            plan.admitted(),
            ["docker0", "br-+", "podman+", "cni+", "cbr0"]
        );
        assert_eq!(plan.refused(), ["br-lan"]);
        let e = parse("[intercept]\nlan-interfaces = [\"eth+\", \"lo\"]\n").unwrap_err();
        assert!(
            e.starts_with("c.toml:2:") && e.contains("`lo` is not an interface pattern"),
            "{e}"
        );
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            listen: vec!["127.0.0.1:9".parse().unwrap()],
            http_tokens: Some(HttpTokens::Required),
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.server.listen_addrs(), o.listen);
        assert_eq!(c.imds.http_tokens, HttpTokens::Required);
    }
}
