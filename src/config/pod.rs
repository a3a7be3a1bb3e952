//! `[[pod]]`: a Kubernetes service account that gets a role through EKS Pod Identity. A pod of
//! that account presents its token to the agent at 169.254.170.23 and receives the role's
//! credentials (`crate::pod_identity`).
//!
//! [`PodSpec`] is the entry as written: in the file, and as `ctl pod add` sends it over the
//! control socket (JSON). [`Pod::check`] is the one check both go through, so the file and the
//! socket refuse the same things with the same line. The credential source has `[iam]`'s keys
//! and is read by the same rule ([`SourceKeys::check`]); how long each set lives and when it
//! is replaced are `[iam]`'s `lifetime` and `refresh-before`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::locate::{Located, Spans};
use crate::credentials::{HumanDuration, RoleName, Secret, SourceConfig, SourceKeys, SourceKind};

/// The cluster a pod's requests name when `cluster` is not set. It appears nowhere in the
/// agent's replies (the agent passes it to EKS Auth only); it names the pod's cluster in
/// listings and logs.
pub const DEFAULT_CLUSTER: &str = "default";

/// One `[[pod]]` as written (kebab-case keys, unknown keys refused). Values are checked by
/// [`Pod::check`], not here, so the file and `ctl pod add` share its messages. `Serialize`
/// shows inline keys as `<redacted>` (see [`Secret`]): `ctl pod add` can send a
/// `credentials-file`, `file` or `command`, not the keys themselves.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PodSpec {
    /// `NAMESPACE/NAME`.
    pub service_account: String,
    /// The IAM role the pod's service account is associated with.
    pub role: String,
    /// The EKS cluster's name ([`DEFAULT_CLUSTER`] when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    // Where the role's credentials come from: `[iam]`'s keys, read by `SourceKeys::check`.
    // Written out here (not flattened) so that unknown keys are refused and a bad value is
    // located at its span.
    #[serde(default)]
    pub source: SourceKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Secret>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<HumanDuration>,
}

impl PodSpec {
    /// An entry for `service_account` with `role`, generated credentials, the default cluster.
    pub fn new(service_account: impl Into<String>, role: impl Into<String>) -> PodSpec {
        PodSpec {
            service_account: service_account.into(),
            role: role.into(),
            ..PodSpec::default()
        }
    }

    fn source_keys(self) -> SourceKeys {
        SourceKeys {
            source: self.source,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            session_token: self.session_token,
            credentials_file: self.credentials_file,
            file: self.file,
            profile: self.profile,
            command: self.command,
            command_timeout: self.command_timeout,
        }
    }
}

/// A checked `[[pod]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Pod {
    service_account: ServiceAccount,
    role: RoleName,
    cluster: ClusterName,
    source: SourceConfig,
}

/// What is wrong with a `[[pod]]` entry: one line each, naming the value and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PodError {
    #[error("`{value}` is not a service account (NAMESPACE/NAME): {why}")]
    ServiceAccount { value: String, why: String },
    #[error(
        "pod {service_account}: `{value}` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`"
    )]
    Role {
        service_account: String,
        value: String,
    },
    #[error(
        "pod {service_account}: `{value}` is not an EKS cluster name: 1 to 100 of `A-Z a-z 0-9 - _`, starting with a letter or digit"
    )]
    Cluster {
        service_account: String,
        value: String,
    },
    /// The source keys, as [`SourceKeys::check`] words it (`[[pod]] NAMESPACE/NAME` first).
    #[error("{0}")]
    Source(String),
}

impl PodError {
    /// The key of the entry this error blames, to locate it in a file.
    pub fn key(&self) -> &'static str {
        match self {
            PodError::ServiceAccount { .. } => "service-account",
            PodError::Role { .. } => "role",
            PodError::Cluster { .. } => "cluster",
            PodError::Source(_) => "source",
        }
    }
}

impl Pod {
    /// The one check of an entry, for the file and for `ctl pod add` alike.
    pub fn check(spec: PodSpec) -> Result<Pod, PodError> {
        let service_account = ServiceAccount::parse(&spec.service_account)?;
        let named = service_account.to_string();
        let role = RoleName::try_from(spec.role.clone()).map_err(|_| PodError::Role {
            service_account: named.clone(),
            value: spec.role.clone(),
        })?;
        let cluster = match &spec.cluster {
            None => ClusterName(DEFAULT_CLUSTER.into()),
            Some(c) => ClusterName::parse(c).ok_or_else(|| PodError::Cluster {
                service_account: named.clone(),
                value: c.clone(),
            })?,
        };
        let source = spec
            .source_keys()
            .check(&format!("[[pod]] {named}:"))
            .map_err(PodError::Source)?;
        Ok(Pod {
            service_account,
            role,
            cluster,
            source,
        })
    }

    /// `NAMESPACE/NAME`: the pod's key (in `ctl pod …`, and what its token is derived from).
    pub fn service_account(&self) -> &ServiceAccount {
        &self.service_account
    }

    pub fn role(&self) -> &RoleName {
        &self.role
    }

    pub fn cluster(&self) -> &str {
        &self.cluster.0
    }

    /// Where the role's credentials come from (rotated by `[iam]`'s `lifetime` and
    /// `refresh-before`).
    pub fn credentials_source(&self) -> &SourceConfig {
        &self.source
    }

    /// The entry as written back (`print-config`; inline keys redacted when serialized).
    pub fn to_spec(&self) -> PodSpec {
        let k = SourceKeys::from(self.source.clone());
        PodSpec {
            service_account: self.service_account.to_string(),
            role: self.role.to_string(),
            cluster: (self.cluster.0 != DEFAULT_CLUSTER).then(|| self.cluster.0.clone()),
            source: k.source,
            access_key_id: k.access_key_id,
            secret_access_key: k.secret_access_key,
            session_token: k.session_token,
            credentials_file: k.credentials_file,
            file: k.file,
            profile: k.profile,
            command: k.command,
            command_timeout: k.command_timeout,
        }
    }
}

/// A Kubernetes service account, `NAMESPACE/NAME`, by Kubernetes' rules: the namespace a
/// DNS-1123 label (at most 63), the name a DNS-1123 subdomain (at most 253).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceAccount {
    namespace: String,
    name: String,
}

impl ServiceAccount {
    pub fn parse(s: &str) -> Result<ServiceAccount, PodError> {
        let bad = |why: String| PodError::ServiceAccount {
            value: s.to_string(),
            why,
        };
        let (namespace, name) = s
            .split_once('/')
            .ok_or_else(|| bad("there is no `/` between the namespace and the name".into()))?;
        if let Some(why) = label_problem(namespace) {
            return Err(bad(format!(
                "the namespace {why}: a DNS-1123 label is 1 to 63 of `a-z 0-9 -`, starting and ending with a letter or digit"
            )));
        }
        if let Some(why) = subdomain_problem(name) {
            return Err(bad(format!(
                "the name {why}: a DNS-1123 subdomain is 1 to 253 of `a-z 0-9 - .`, each part between dots starting and ending with a letter or digit"
            )));
        }
        Ok(ServiceAccount {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ServiceAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl std::str::FromStr for ServiceAccount {
    type Err = PodError;
    fn from_str(s: &str) -> Result<Self, PodError> {
        ServiceAccount::parse(s)
    }
}

/// What makes `s` not a DNS-1123 label, if anything.
fn label_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 63 {
        return Some(format!("is {} characters long", s.len()));
    }
    part_problem(s, |b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
    })
}

/// What makes `s` not a DNS-1123 subdomain, if anything.
fn subdomain_problem(s: &str) -> Option<String> {
    if s.is_empty() {
        return Some("is empty".into());
    }
    if s.len() > 253 {
        return Some(format!("is {} characters long", s.len()));
    }
    s.split('.').find_map(|part| {
        if part.is_empty() {
            Some("has an empty part between dots".into())
        } else {
            part_problem(part, |b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'
            })
        }
    })
}

fn part_problem(s: &str, allowed: impl Fn(u8) -> bool) -> Option<String> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii() || !allowed(*c as u8)) {
        return Some(format!("has `{c}`"));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (first, last) = (s.as_bytes()[0], s.as_bytes()[s.len() - 1]);
    if !alnum(first) || !alnum(last) {
        return Some(format!("`{s}` starts or ends with `-`"));
    }
    None
}

/// An EKS cluster name: 1 to 100 of `A-Z a-z 0-9 - _`, starting with a letter or digit (as
/// EKS Auth's `AssumeRoleForPodIdentity` takes it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ClusterName(String);

impl ClusterName {
    fn parse(s: &str) -> Option<ClusterName> {
        let ok = (1..=100).contains(&s.len())
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| ClusterName(s.into()))
    }
}

/// The checked entries of a file, or every problem, each at the key it blames in its own
/// `[[pod]]` table; a service account written twice is blamed at its second entry.
pub(super) fn check_all(specs: &[PodSpec], spans: &Spans<'_>) -> Result<Vec<Pod>, Vec<Located>> {
    let mut pods: Vec<Pod> = Vec::with_capacity(specs.len());
    let mut problems = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        match Pod::check(spec.clone()) {
            Ok(pod) => {
                if let Some(first) = pods
                    .iter()
                    .position(|p| p.service_account == pod.service_account)
                {
                    let at = spans.in_array("pod", first, "service-account");
                    problems.push(spans.blame_in_array(
                        "pod",
                        i,
                        "service-account",
                        format!(
                            "service account `{}` already has a [[pod]]{}: give each one entry",
                            pod.service_account,
                            at.map(|l| format!(" (line {})", l.line))
                                .unwrap_or_default()
                        ),
                    ));
                }
                pods.push(pod);
            }
            Err(e) => problems.push(spans.blame_in_array("pod", i, e.key(), e.to_string())),
        }
    }
    if problems.is_empty() {
        Ok(pods)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_body: &str) -> Result<Pod, String> {
        let spec: PodSpec = toml::from_str(toml_body).map_err(|e| e.message().to_string())?;
        Pod::check(spec).map_err(|e| e.to_string())
    }

    #[test]
    fn an_entry_has_a_service_account_a_role_and_iams_sources() {
        let p = check("service-account = \"team-a/web\"\nrole = \"web-role\"\n").unwrap();
        assert_eq!(
            (p.service_account().namespace(), p.service_account().name()),
            ("team-a", "web")
        );
        assert_eq!(p.service_account().to_string(), "team-a/web");
        assert_eq!(p.role().as_str(), "web-role");
        assert_eq!(p.cluster(), DEFAULT_CLUSTER);
        assert_eq!(p.credentials_source(), &SourceConfig::Generated);

        let p = check(
            "service-account = \"ops/s3.reader\"\nrole = \"r\"\ncluster = \"dev_1\"\n\
             source = \"file\"\nfile = \"/etc/creds\"\nprofile = \"dev\"\n",
        )
        .unwrap();
        assert_eq!(p.cluster(), "dev_1");
        assert_eq!(
            p.credentials_source(),
            &SourceConfig::File {
                path: "/etc/creds".into(),
                profile: "dev".into()
            }
        );
        let p = check(
            "service-account = \"a/b\"\nrole = \"r\"\nsource = \"process\"\ncommand = \"get\"\ncommand-timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(
            p.credentials_source(),
            &SourceConfig::Process {
                command: "get".into(),
                timeout: std::time::Duration::from_secs(5)
            }
        );
    }

    #[test]
    fn service_accounts_follow_kubernetes_rules() {
        let long_label = "n".repeat(63);
        let long_name = ["a"; 127].join(".");
        for ok in [
            "default/default",
            "kube-system/aws-node",
            "a/b",
            "0ns/1.2-3",
            &format!("{long_label}/{long_name}"),
        ] {
            ServiceAccount::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        let too_long_label = format!("{}/x", "n".repeat(64));
        let too_long_name = format!("ns/{}", "a".repeat(254));
        for (bad, why) in [
            ("web", "there is no `/`"),
            ("/web", "the namespace is empty"),
            ("default/", "the name is empty"),
            ("Default/web", "the namespace has `D`"),
            ("team.a/web", "the namespace has `.`"),
            ("-team/web", "the namespace `-team` starts or ends with `-`"),
            ("ns/Web", "the name has `W`"),
            ("ns/web_1", "the name has `_`"),
            ("ns/a/b", "the name has `/`"),
            ("ns/a..b", "the name has an empty part between dots"),
            ("ns/a.-b", "the name `-b` starts or ends with `-`"),
            ("ns/wéb", "the name has `é`"),
            (
                too_long_label.as_str(),
                "the namespace is 64 characters long",
            ),
            (too_long_name.as_str(), "the name is 254 characters long"),
        ] {
            let e = ServiceAccount::parse(bad).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!(
                    "`{bad}` is not a service account (NAMESPACE/NAME): {why}"
                )),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn each_bad_value_gets_one_line_naming_it() {
        let cases = [
            (
                "service-account = \"web\"\nrole = \"r\"",
                "service-account",
                "`web` is not a service account (NAMESPACE/NAME): there is no `/` between the namespace and the name",
            ),
            (
                "service-account = \"a/b\"\nrole = \"bad role\"",
                "role",
                "pod a/b: `bad role` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`",
            ),
            (
                "service-account = \"a/b\"\nrole = \"\"",
                "role",
                "pod a/b: `` is not an IAM role name",
            ),
            (
                "service-account = \"a/b\"\nrole = \"r\"\ncluster = \"-x\"",
                "cluster",
                "pod a/b: `-x` is not an EKS cluster name",
            ),
            (
                "service-account = \"a/b\"\nrole = \"r\"\ncommand = \"x\"",
                "source",
                "[[pod]] a/b: `command` is only read with `source = \"process\"` (source is \"generated\")",
            ),
            (
                "service-account = \"a/b\"\nrole = \"r\"\nsource = \"static\"",
                "source",
                "[[pod]] a/b: `source = \"static\"` needs `access-key-id` and `secret-access-key`",
            ),
        ];
        for (body, key, want) in cases {
            let spec: PodSpec = toml::from_str(body).unwrap();
            let e = Pod::check(spec).unwrap_err();
            assert_eq!(e.key(), key, "{body}");
            let line = e.to_string();
            assert!(
                line.starts_with(want) && !line.contains('\n'),
                "{body}: {line}"
            );
        }
        // Unknown keys and malformed values are refused by the parser (located at them).
        assert!(
            check("service-account = \"a/b\"\nrole = \"r\"\nrol = \"x\"")
                .unwrap_err()
                .starts_with("unknown field `rol`")
        );
        assert!(
            check("role = \"r\"")
                .unwrap_err()
                .contains("missing field `service-account`")
        );
    }

    /// `ctl pod add` sends the entry as JSON; the daemon reads it back and checks it the same.
    #[test]
    fn the_entry_goes_over_the_socket_as_json() {
        let spec = PodSpec {
            cluster: Some("dev".into()),
            source: SourceKind::Static,
            credentials_file: Some("/etc/k.toml".into()),
            ..PodSpec::new("team-a/web", "web-role")
        };
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            json,
            r#"{"service-account":"team-a/web","role":"web-role","cluster":"dev","source":"static","credentials-file":"/etc/k.toml"}"#
        );
        let back: PodSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
        let pod = Pod::check(back).unwrap();
        assert_eq!(pod.to_spec(), spec);
        // The minimal form: just the two keys.
        let min: PodSpec = serde_json::from_str(r#"{"service-account":"a/b","role":"r"}"#).unwrap();
        assert_eq!(Pod::check(min).unwrap().to_spec(), PodSpec::new("a/b", "r"));
    }

    #[test]
    fn written_back_it_hides_inline_keys() {
        let p = check(
            "service-account = \"a/b\"\nrole = \"r\"\nsource = \"static\"\n\
             access-key-id = \"AKIAKEYID\"\nsecret-access-key = \"SECRETVALUE\"\nsession-token = \"TOKENVALUE\"\n",
        )
        .unwrap();
        for shown in [
            toml::to_string(&p.to_spec()).unwrap(),
            serde_json::to_string(&p.to_spec()).unwrap(),
            format!("{p:?}"),
        ] {
            for secret in ["AKIAKEYID", "SECRETVALUE", "TOKENVALUE"] {
                assert!(!shown.contains(secret), "{shown}");
            }
        }
        assert!(
            toml::to_string(&p.to_spec())
                .unwrap()
                .contains("secret-access-key = \"<redacted>\"")
        );
    }

    fn load(text: &str) -> Result<super::super::Config, String> {
        super::super::Config::from_toml(text, std::path::Path::new("c.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_file_lists_pods_in_order() {
        let c = load(
            "[[pod]]\nservice-account = \"team-a/web\"\nrole = \"web-role\"\n\n\
             [[pod]]\nservice-account = \"team-b/batch\"\nrole = \"batch\"\nsource = \"file\"\nfile = \"/c\"\n",
        )
        .unwrap();
        let names: Vec<String> = c
            .pods()
            .iter()
            .map(|p| p.service_account().to_string())
            .collect();
        assert_eq!(names, ["team-a/web", "team-b/batch"]);
        assert!(load("").unwrap().pods().is_empty());
    }

    /// Each problem at its own entry's key, `FILE:LINE:COL`, all of them at once.
    #[test]
    fn problems_are_located_in_their_own_entry() {
        let text = "[[pod]]\nservice-account = \"a/web\"\nrole = \"r\"\n\n\
                    [[pod]]\nservice-account = \"a/batch\"\n  role = \"bad role\"\n\n\
                    [[pod]]\n  service-account = \"a/web\"\nrole = \"r2\"\n\n\
                    [[pod]]\nservice-account = \"a/x\"\nrole = \"r\"\nsource = \"process\"\n";
        let e = load(text).unwrap_err();
        let lines: Vec<&str> = e.lines().collect();
        assert_eq!(
            lines,
            [
                "c.toml:7:3: pod a/batch: `bad role` is not an IAM role name: 1 to 64 of `A-Z a-z 0-9 + = , . @ _ -`",
                "c.toml:10:3: service account `a/web` already has a [[pod]] (line 2): give each one entry",
                "c.toml:16:1: [[pod]] a/x: `source = \"process\"` needs `command`: a shell command printing credential_process JSON",
            ]
        );
        // A value the parser refuses is located at the value.
        let e = load("[[pod]]\nservice-account = \"a/b\"\nrole = \"r\"\nsource = \"vault\"\n")
            .unwrap_err();
        assert!(e.starts_with("c.toml:4:10: unknown variant `vault`"), "{e}");
        // A source problem with no `source` key is blamed on the entry.
        let e = load("[[pod]]\nservice-account = \"a/b\"\nrole = \"r\"\n\n[[pod]]\nservice-account = \"a/c\"\nrole = \"r\"\nfile = \"/x\"\n")
            .unwrap_err();
        assert!(
            e.starts_with("c.toml:5:") || e.starts_with("c.toml:6:"),
            "{e}"
        );
        assert!(e.contains("[[pod]] a/c: `file` is only read"), "{e}");
    }

    #[test]
    fn print_config_shows_pods_and_reads_back() {
        let c = load(
            "[[pod]]\nservice-account = \"team-a/web\"\nrole = \"web-role\"\ncluster = \"dev\"\n\
             [[pod]]\nservice-account = \"b/c\"\nrole = \"r\"\nsource = \"process\"\ncommand = \"x\"\n",
        )
        .unwrap();
        let shown = c.to_toml();
        assert!(
            shown.contains("[[pod]]\nservice-account = \"team-a/web\"\nrole = \"web-role\"\ncluster = \"dev\"\nsource = \"generated\"\n"),
            "{shown}"
        );
        let again = load(&shown).unwrap();
        assert_eq!(again.pods(), c.pods());
        // Inline keys are shown redacted, and the placeholder is refused when read back.
        let c = load(
            "[[pod]]\nservice-account = \"a/b\"\nrole = \"r\"\nsource = \"static\"\n\
             access-key-id = \"AKIAKEYID\"\nsecret-access-key = \"SECRETVALUE\"\n",
        )
        .unwrap();
        let shown = c.to_toml();
        assert!(
            !shown.contains("SECRETVALUE") && !shown.contains("AKIAKEYID"),
            "{shown}"
        );
        assert!(load(&shown).unwrap_err().contains("placeholder"));
    }
}
