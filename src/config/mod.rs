//! The configuration: one TOML file (kebab-case keys, unknown keys rejected), the environment
//! and command-line flags, merged with precedence flag > env > file > built-in default.
//!
//! Each section has its own module with two forms: the raw one, as the file spells it
//! (serde), and the checked one, whose private fields are resolved when the config is loaded
//! (defaults, values from this machine and values derived from other keys), read through
//! methods. Every value is validated while it is parsed (newtypes with `try_from`), so a bad
//! value is reported by the TOML parser with the span of the offending key or value; problems
//! that span several keys ([`check`]) are located by the key's path in the file ([`locate`]).
//! [`ConfigError`] renders each as `FILE:LINE:COL: message`. A `Config` that exists is valid,
//! and holds all it needs: the user data is read when it is loaded, not when a snapshot is
//! built. Each section says what of a change to it only a restart applies ([`Reload`]).
//!
//! `[iam]` and `[scenario]` are defined by their own modules, which take them as they are.

mod check;
mod container;
mod control;
mod imds;
mod instance;
mod intercept;
mod journal;
mod locate;
mod log;
mod network_interface;
mod pod;
mod replay;
mod restart;
mod ruled;
mod server;
mod task;
mod user_data;
mod view;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::credentials::IamConfig;
use crate::machine::MachineFacts;
use crate::scenario::ScenarioConfig;
pub use crate::types::{AccountId, Ec2Id, Ipv6Cidr, Mac, MetaPath, Region, TagKey, Zone};
pub use container::{ContainerSpec, DockerInspectError, NetworkSpec, from_docker_inspect};
pub use control::{ControlConfig, DEFAULT_GROUP, DEFAULT_SOCKET};
pub use imds::{HopLimit, HttpTokens, Imds, Toggle};
pub use instance::{
    DEFAULT_INSTANCE_ID, DEFAULT_INSTANCE_TYPE, DEFAULT_INSTANCE_TYPE_ARM64, DEFAULT_LOCAL_IPV4,
    DEFAULT_MAC, DEFAULT_SUBNET, DEFAULT_VPC, Instance, PartitionNumber, PublicKey,
};
pub use intercept::Intercept;
pub use journal::Journal as JournalConfig;
pub use locate::Located;
use locate::Spans;
pub use log::Log;
pub use network_interface::NetworkInterface;
pub use pod::{DEFAULT_EKS_CLUSTER, Pod, PodError, PodSpec, ServiceAccount};
pub use replay::{Replay, ReplayPath, ReplayValue};
pub use restart::Reload;
pub use server::{DEFAULT_PORT, MaxConnections, Server};
pub use task::{DEFAULT_IMAGE, DEFAULT_REVISION, Task, TaskError, TaskSpec};
pub use user_data::UserData;
pub use view::{Covers, Source, View};

/// EC2 caps raw user data at 16 KiB.
pub const USER_DATA_MAX: usize = 16 * 1024;
/// The largest config file read: far above any hand-written one and any `snapshot` file
/// (a crawl keeps at most [`crate::crawl::plan::Limits`]' `max_kept` bytes, which its
/// escaping cannot grow past this), small enough that a mistaken path (`/dev/zero`, a
/// log) is refused at once instead of read into memory.
pub const CONFIG_MAX: usize = 32 << 20;

/// The file as it spells it; also the form `print-config` shows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
struct RawConfig {
    server: server::RawServer,
    imds: imds::RawImds,
    instance: instance::RawInstance,
    #[serde(skip_serializing_if = "user_data::RawUserData::is_unset")]
    user_data: user_data::RawUserData,
    /// Instance tags, served under `tags/instance/` when `instance-metadata-tags` is enabled.
    tags: BTreeMap<TagKey, String>,
    /// Extra or overriding leaves: `"meta-data/some/path" = "value"`.
    paths: BTreeMap<MetaPath, String>,
    /// The IAM role and where its credentials come from.
    iam: IamConfig,
    log: log::RawLog,
    /// The request journal: who asked what.
    journal: journal::RawJournal,
    /// Spot notices, events, rebalance and ASG state on a timeline from the daemon's start.
    #[serde(skip_serializing_if = "ScenarioConfig::is_empty")]
    scenario: ScenarioConfig,
    /// The control socket `fake-metadata ctl` talks to.
    control: control::RawControl,
    /// `[[fault]]`: faults in force from the start (see [`crate::fault`]).
    #[serde(rename = "fault", skip_serializing_if = "Vec::is_empty")]
    faults: Vec<crate::fault::Spec>,
    /// `[[task]]`: ECS tasks served by the ECS agent's endpoint.
    #[serde(rename = "task", skip_serializing_if = "Vec::is_empty")]
    tasks: Vec<TaskSpec>,
    /// A tree crawled from a real instance, served in place of the one `[instance]` makes.
    #[serde(skip_serializing_if = "Option::is_none")]
    replay: Option<Replay>,
    /// What `install` routes to the daemon: containers too, and which interfaces never.
    intercept: intercept::RawIntercept,
    /// `[[pod]]`: service accounts that get a role through EKS Pod Identity.
    #[serde(rename = "pod", skip_serializing_if = "Vec::is_empty")]
    pods: Vec<PodSpec>,
    /// `[[view]]`: clients served an instance of their own (printed by `to_toml` from the
    /// checked views).
    #[serde(rename = "view", skip_serializing)]
    views: Vec<view::RawView>,
}

/// The whole configuration, checked and resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    server: Server,
    imds: Imds,
    instance: Instance,
    user_data: UserData,
    tags: BTreeMap<TagKey, String>,
    paths: BTreeMap<MetaPath, String>,
    iam: IamConfig,
    log: Log,
    journal: JournalConfig,
    scenario: ScenarioConfig,
    control: ControlConfig,
    faults: Vec<crate::fault::Spec>,
    tasks: Vec<Task>,
    replay: Option<Replay>,
    intercept: Intercept,
    pods: Vec<Pod>,
    views: Vec<View>,
    /// What is allowed but likely a mistake (two views that cover one client), located.
    warnings: Warnings,
}

/// A config's warnings: where they are in its text, not what the config means, so two
/// configs that mean the same (a file and its `print-config`) are equal whatever they say.
#[derive(Debug, Clone, Default)]
struct Warnings(Vec<Located>);

impl PartialEq for Warnings {
    fn eq(&self, _: &Warnings) -> bool {
        true
    }
}

/// A config file built into the binary, standing in for one the user gives.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// How errors name it.
    pub name: &'static str,
    pub text: &'static str,
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            ConfigError::Invalid(vec![Located::at(
                file,
                text,
                offset,
                e.message().trim().to_string(),
            )])
        })?;
        let spans = Spans::new(text, file);
        let pods = check::check(&raw, &spans)?;
        let tasks = task::check_all(&raw.tasks, &spans)?;
        let user_data = UserData::load(raw.user_data.clone(), &spans)?;
        let (views, warnings) = view::check_all(&raw, text, &spans, facts)?;
        let mut config = Config::resolve(raw, user_data, tasks, facts).with_pods(pods);
        config.views = views;
        config.warnings = Warnings(warnings);
        Ok(config)
    }

    /// The checked sections of a file that passed [`check::check`].
    fn resolve(
        raw: RawConfig,
        user_data: UserData,
        tasks: Vec<Task>,
        facts: &MachineFacts,
    ) -> Config {
        let instance = Instance::resolve(raw.instance, facts, raw.imds.generation);
        Config {
            imds: imds::Imds::resolve(raw.imds, instance.instance_type()),
            instance,
            server: Server::resolve(raw.server),
            user_data,
            tags: raw.tags,
            paths: raw.paths,
            iam: raw.iam,
            log: Log::resolve(raw.log),
            journal: JournalConfig::resolve(raw.journal),
            scenario: raw.scenario,
            control: ControlConfig::resolve(raw.control),
            faults: raw.faults,
            tasks,
            replay: raw.replay,
            intercept: Intercept::resolve(raw.intercept),
            // Checked by `check::check`; set by `parse` (the built-in config has none).
            pods: Vec::new(),
            // Checked and set by `parse`, as the pods are.
            views: Vec::new(),
            warnings: Warnings::default(),
        }
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
        let f = user_data::open_regular(path, "a config file").map_err(refused)?;
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
        Config::resolve(RawConfig::default(), UserData::default(), Vec::new(), facts)
    }

    /// Loads the effective configuration as the daemon uses it: built-in defaults, facts
    /// of this machine (unless `[instance] from-host = false`), the file (if any), then the
    /// overrides.
    pub fn load(path: Option<&Path>, o: &Overrides) -> Result<Config, ConfigError> {
        let facts = MachineFacts::gather();
        let c = match path {
            Some(p) => Config::read(p, &facts)?,
            None => Config::builtin_with(&facts),
        };
        Ok(c.overridden(o))
    }

    /// Loads `preset` in place of a file, then the overrides (`fake-metadata aemm` without
    /// `--config`: AEMM's default values).
    pub fn load_preset(preset: &Preset, o: &Overrides) -> Result<Config, ConfigError> {
        let c = Config::parse(preset.text, Path::new(preset.name), &MachineFacts::gather())?;
        Ok(c.overridden(o))
    }

    /// The flags and environment over the file, in the box's config and each view's (a
    /// view's instance takes `--http-tokens` as the box's does).
    fn overridden(mut self, o: &Overrides) -> Config {
        let c = &mut self;
        if !o.listen.is_empty() {
            c.server.set_listen(o.listen.clone());
        }
        if let Some(t) = o.http_tokens {
            c.imds.set_http_tokens(t);
        }
        for v in &mut c.views {
            v.config_mut().overridden_in_place(o);
        }
        self
    }

    fn overridden_in_place(&mut self, o: &Overrides) {
        let me = std::mem::replace(self, Config::builtin());
        *self = me.overridden(o);
    }

    /// This config listening on `addrs` instead, as `--listen` does (its views' too).
    pub fn with_listen(mut self, addrs: Vec<SocketAddr>) -> Config {
        for v in &mut self.views {
            let inner = v.config_mut();
            inner.server.set_listen(addrs.clone());
        }
        self.server.set_listen(addrs);
        self
    }

    /// This config with `pods` in place of its `[[pod]]`s (those `ctl pod add|remove` changed).
    pub fn with_pods(mut self, pods: Vec<Pod>) -> Config {
        self.pods = pods;
        self
    }

    /// This config with `scenario` in place of its `[scenario]` (`fake-metadata aemm`'s).
    pub fn with_scenario(mut self, scenario: ScenarioConfig) -> Config {
        self.scenario = scenario;
        self
    }

    /// This config with `tags` in place of its `[tags]` (those `ctl tags` changed).
    pub fn with_tags(mut self, tags: BTreeMap<TagKey, String>) -> Config {
        self.tags = tags;
        self
    }

    /// What of the change from `self` to `new` only a restart applies, as the lines the
    /// daemon logs at a reload. `[imds]`, `[instance]`, `[user-data]`, `[tags]`, `[paths]`,
    /// `[iam]`, `[scenario]`, `[[fault]]`, `[[task]]` and `[replay]` go into the next snapshot.
    pub fn needs_restart(&self, new: &Config) -> Vec<&'static str> {
        let mut out = self.server.needs_restart(&new.server);
        out.extend(self.intercept.needs_restart(&new.intercept));
        out.extend(self.log.needs_restart(&new.log));
        out.extend(self.journal.needs_restart(&new.journal));
        out.extend(self.control.needs_restart(&new.control));
        out.extend(self.imds.needs_restart(&new.imds));
        out.extend(self.instance.needs_restart(&new.instance));
        out.extend(self.user_data.needs_restart(&new.user_data));
        if let (Some(a), Some(b)) = (&self.replay, &new.replay) {
            out.extend(a.needs_restart(b));
        }
        out
    }

    /// `[server]`: where and how the daemon listens.
    pub fn server(&self) -> &Server {
        &self.server
    }

    /// `[imds]`: EC2's instance metadata options.
    pub fn imds(&self) -> &Imds {
        &self.imds
    }

    /// `[instance]`: what the tree and the identity document are made of.
    pub fn instance(&self) -> &Instance {
        &self.instance
    }

    /// `[user-data]`, as read when this config was loaded.
    pub fn user_data(&self) -> &UserData {
        &self.user_data
    }

    /// Instance tags, served under `tags/instance/` when `instance-metadata-tags` is enabled.
    pub fn tags(&self) -> &BTreeMap<TagKey, String> {
        &self.tags
    }

    /// `[paths]`: extra or overriding leaves.
    pub fn paths(&self) -> &BTreeMap<MetaPath, String> {
        &self.paths
    }

    /// `[iam]`: the IAM role and where its credentials come from.
    pub fn iam(&self) -> &IamConfig {
        &self.iam
    }

    /// `[log]`: where the daemon writes.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// `[journal]`: the request journal.
    pub fn journal(&self) -> &JournalConfig {
        &self.journal
    }

    /// `[scenario]`: spot notices, events, rebalance and ASG state on a timeline.
    pub fn scenario(&self) -> &ScenarioConfig {
        &self.scenario
    }

    /// `[control]`: the socket `fake-metadata ctl` talks to.
    pub fn control(&self) -> &ControlConfig {
        &self.control
    }

    /// `[[fault]]`: faults in force from the start.
    pub fn faults(&self) -> &[crate::fault::Spec] {
        &self.faults
    }

    /// `[[task]]`: the ECS tasks, each checked by [`Task::check`].
    pub fn tasks(&self) -> &[Task] {
        &self.tasks
    }

    /// `[replay]`: a crawled tree served in place of the one `[instance]` makes.
    pub fn replay(&self) -> Option<&Replay> {
        self.replay.as_ref()
    }

    /// `[intercept]`: what `install` routes to the daemon.
    pub fn intercept(&self) -> &Intercept {
        &self.intercept
    }

    /// `[[pod]]`: the service accounts that get a role through EKS Pod Identity, in the
    /// file's order, each once.
    pub fn pods(&self) -> &[Pod] {
        &self.pods
    }

    /// `[[view]]`: the clients served an instance of their own, in the file's order (the
    /// first that covers a client is its view).
    pub fn views(&self) -> &[View] {
        &self.views
    }

    /// The view named `name`.
    pub fn view(&self, name: &str) -> Option<&View> {
        self.views.iter().find(|v| v.name().as_str() == name)
    }

    /// What is allowed but likely a mistake, located in the file (`check-config` prints
    /// them, the daemon logs them).
    pub fn warnings(&self) -> &[Located] {
        &self.warnings.0
    }

    /// EC2's metadata options as the IMDS applies them.
    pub fn imds_options(&self) -> crate::imds::Options {
        crate::imds::Options {
            endpoint_enabled: self.imds.http_endpoint().is_enabled(),
            tokens_required: self.imds.http_tokens() == HttpTokens::Required,
            hop_limit: self.imds.http_put_response_hop_limit().get(),
            generation: self.imds.generation(),
        }
    }

    /// What `install` puts in place for this config: each endpoint's route (today IMDS), the
    /// box's own REDIRECT to the port the daemon listens on (IPv6 too with `http-protocol-ipv6`), and the container path unless
    /// `[intercept] containers = false`.
    pub fn intercept_plan(
        &self,
    ) -> Result<crate::intercept::Plan, crate::intercept::InterceptError> {
        let routes: Vec<_> = crate::endpoint::Endpoint::ALL
            .into_iter()
            .filter(|&e| self.intercept.routes(e))
            .filter_map(|endpoint| {
                let port = self.server.redirect_port(endpoint)?;
                Some(crate::intercept::Route { endpoint, port })
            })
            .collect();
        let plan =
            crate::intercept::Plan::new(&routes, self.imds.http_protocol_ipv6().is_enabled())?;
        Ok(if self.intercept.containers() {
            plan.with_containers(self.intercept.admitted(), self.intercept.lan_interfaces())
        } else {
            plan
        })
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        let shown = RawConfig {
            server: self.server.to_raw(),
            imds: self.imds.to_raw(),
            instance: self.instance.to_raw(),
            user_data: self.user_data.to_raw(),
            tags: self.tags.clone(),
            paths: self.paths.clone(),
            iam: self.iam.clone(),
            log: self.log.to_raw(),
            journal: self.journal.to_raw(),
            scenario: self.scenario.clone(),
            control: self.control.to_raw(),
            faults: self.faults.clone(),
            tasks: self.tasks.iter().map(Task::to_spec).collect(),
            replay: self.replay.clone(),
            intercept: self.intercept.to_raw(),
            pods: self.pods.iter().map(Pod::to_spec).collect(),
            views: Vec::new(),
        };
        if self.views.is_empty() {
            return toml::to_string(&shown).expect("a Config always serializes");
        }
        let mut doc = toml::Table::try_from(&shown).expect("a Config always serializes");
        let views = self
            .views
            .iter()
            .map(|v| v.shown().clone().into())
            .collect();
        doc.insert("view".into(), toml::Value::Array(views));
        toml::to_string(&doc).expect("a Config always serializes")
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
        // In the instance's partition too.
        let e = parse(&format!(
            "[instance]\naccount-id = \"210987654321\"\navailability-zone = \"cn-north-1a\"\n\
             [iam]\ninstance-profile-arn = {arn}\n"
        ))
        .unwrap_err();
        assert_eq!(
            e,
            "c.toml:5:1: [iam] `instance-profile-arn` is in partition aws, but the instance's region is in aws-cn: an instance's profile is in its own partition"
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

    /// `local-hostname`: the box's own name with `from-host`, unless EC2's form is asked for
    /// (`hostname-type`, EC2's `PrivateDnsNameOptions`); `hostname` wins over both.
    #[test]
    fn the_host_name_is_the_boxs_unless_ec2s_form_is_asked_for() {
        let facts = MachineFacts {
            hostname: Some("devbox".into()),
            ..MachineFacts::none()
        };
        let name = |toml: &str| {
            let c = Config::parse(toml, Path::new("c.toml"), &facts).unwrap();
            c.instance.hostname().to_string()
        };
        let id = "instance-id = \"i-0abc1234def567890\"\nlocal-ipv4 = \"10.0.0.5\"\n";
        assert_eq!(name(&format!("[instance]\n{id}")), "devbox");
        assert_eq!(
            name(&format!("[instance]\n{id}hostname-type = \"ip-name\"\n")),
            "ip-10-0-0-5.ec2.internal"
        );
        assert_eq!(
            name(&format!(
                "[instance]\n{id}hostname-type = \"resource-name\"\n"
            )),
            "i-0abc1234def567890.ec2.internal"
        );
        assert_eq!(
            name(&format!(
                "[instance]\n{id}availability-zone = \"eu-west-1b\"\nhostname-type = \"resource-name\"\n"
            )),
            "i-0abc1234def567890.eu-west-1.compute.internal"
        );
        assert_eq!(
            name(&format!(
                "[instance]\n{id}hostname = \"web-1\"\nhostname-type = \"resource-name\"\n"
            )),
            "web-1"
        );
        let e = parse("[instance]\nhostname-type = \"dns-name\"\n").unwrap_err();
        assert!(e.starts_with("c.toml:2:17:"), "{e}");
    }

    #[test]
    fn printed_config_parses_back_to_itself() {
        let c = parse("[tags]\nName = \"web\"\n[paths]\n\"meta-data/custom/x\" = \"1\"\n").unwrap();
        let again = parse(&c.to_toml()).unwrap();
        let expect = c.clone().with_listen(c.server.listen_addrs().to_vec());
        assert_eq!(again, expect);
    }

    #[test]
    fn intercept_section_turns_the_container_path_off_and_checks_patterns() {
        let c = parse("").unwrap();
        assert!(c.intercept.containers());
        let plan = c.intercept_plan().unwrap();
        assert_eq!(
            plan.container_targets(),
            [
                (Endpoint::Imds, "169.254.169.254:1338".parse().unwrap()),
                (Endpoint::Ecs, "169.254.170.2:1339".parse().unwrap()),
                (
                    Endpoint::PodIdentity,
                    "169.254.170.23:1340".parse().unwrap()
                ),
            ]
        );
        // A switch per endpoint: off leaves it out of the plan; `[]` serves it nowhere.
        let some =
            parse("[server]\npod-identity-listen = []\n[intercept]\nimds = false\n").unwrap();
        assert_eq!(
            some.intercept_plan().unwrap().container_targets(),
            [(Endpoint::Ecs, "169.254.170.2:1339".parse().unwrap())]
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
            [
                (Endpoint::Imds, "169.254.169.254:9".parse().unwrap()),
                (Endpoint::Ecs, "169.254.170.2:10".parse().unwrap()),
                (Endpoint::PodIdentity, "169.254.170.23:11".parse().unwrap()),
            ]
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
    fn sections_say_what_only_a_restart_applies() {
        let old = parse("").unwrap();
        let new = parse(
            "[server]\nlisten = [\"127.0.0.1:9\"]\nmax-connections = 5\n\
             [log]\nlevel = \"debug\"\n[control]\nenabled = false\n\
             [intercept]\ncontainers = false\n",
        )
        .unwrap();
        assert_eq!(
            old.needs_restart(&new),
            [
                "config reload: the listen addresses changed; restart the daemon to apply that",
                "config reload: [server] max-connections changed; restart the daemon to apply that",
                "config reload: [intercept] changed; run `fake-metadata install` and restart the daemon to apply that",
                "config reload: [log] file/level changed; restart the daemon to apply that",
                "config reload: [control] changed; restart the daemon to apply that",
            ]
        );
        let applied = parse(
            "[server]\nkeep-alive = true\n[log]\nrequests = true\n\
             [imds]\nhttp-tokens = \"required\"\n[instance]\ninstance-type = \"m4.large\"\n\
             [tags]\nName = \"web\"\n[user-data]\ntext = \"x\"\n",
        )
        .unwrap();
        assert_eq!(old.needs_restart(&applied), Vec::<&str>::new());
    }

    #[test]
    fn derived_values_are_resolved_when_checked_and_printed_as_before() {
        let c = parse(
            "[instance]\ninstance-type = \"m4.large\"\nsubnet-id = \"subnet-1\"\n\
             ipv6 = \"2600:1f18::5\"\n\
             [[instance.network-interfaces]]\nmac = \"0e:00:00:00:00:02\"\ndevice-number = 1\n\
             interface-id = \"eni-2\"\nlocal-ipv4s = [\"10.0.0.6\"]\n\
             ipv6s = [\"2600:1f18:0:1::7\"]\nsecurity-groups = [\"web\"]\n\
             subnet-id = \"subnet-1\"\n",
        )
        .unwrap();
        let i = c.instance();
        // The generation and `system` follow the (Xen) instance type.
        assert_eq!(c.imds().generation(), crate::imds::Generation::Xen);
        assert_eq!(i.system(), "xen");
        let nic = &i.network_interfaces()[0];
        assert_eq!(nic.subnet_id(), "subnet-1");
        assert_eq!(nic.subnet_ipv4_cidr_block(), DEFAULT_SUBNET);
        assert_eq!(nic.security_groups(), ["web"]);
        assert_eq!(nic.security_group_ids(), i.security_group_ids());
        assert_eq!(
            nic.subnet_ipv6_cidr_blocks()[0].as_str(),
            "2600:1f18:0:1::/64"
        );
        assert_eq!(nic.vpc_ipv6_cidr_blocks()[0].as_str(), "2600:1f18::/56");
        let primary = i.primary_interface();
        assert_eq!(primary.mac().as_str(), i.mac());
        assert_eq!(
            primary.subnet_ipv6_cidr_blocks()[0].as_str(),
            "2600:1f18::/64"
        );
        // What the rule made is not printed, what the file wrote is (even when the rule
        // would make the same), so the output reads back the same.
        let shown = c.to_toml();
        for absent in [
            "generation",
            "system",
            "ipv6-cidr-blocks",
            "subnet-ipv4-cidr-block = \"172.31.16.0/20\"\nsecurity",
        ] {
            assert!(!shown.contains(absent), "{absent}:\n{shown}");
        }
        assert!(shown.contains("security-groups = [\"web\"]"), "{shown}");
        assert_eq!(
            shown.matches("subnet-id = \"subnet-1\"").count(),
            2,
            "{shown}"
        );
        let expect = c.clone().with_listen(c.server.listen_addrs().to_vec());
        assert_eq!(parse(&shown).unwrap(), expect);
    }

    #[test]
    fn overrides_win() {
        let o = Overrides {
            listen: vec!["127.0.0.1:9".parse().unwrap()],
            http_tokens: Some(HttpTokens::Required),
        };
        let c = Config::load(None, &o).unwrap();
        assert_eq!(c.server.listen_addrs(), o.listen);
        assert_eq!(c.imds.http_tokens(), HttpTokens::Required);
    }
}
