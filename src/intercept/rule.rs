//! The kernel objects we own, as plain data: an address on `lo` and iptables rules in three
//! built-in chains (`nat OUTPUT` for the box itself, `nat PREROUTING` and `filter INPUT` for
//! containers).
//!
//! A rule is kept as the argument list that follows `-A <chain>`, written the way
//! `iptables -S` prints it (1.8.x), so "is our rule there?" is a comparison of token lists
//! against the listing. A rule is ours only if it carries `--comment <TAG>`; everything else in
//! the chain belongs to someone else and is never touched.

use std::fmt;
use std::net::IpAddr;

/// The comment that marks a rule as ours.
pub const TAG: &str = "fake-metadata";

/// A built-in chain of a table, where some of our rules live.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chain {
    pub table: &'static str,
    pub name: &'static str,
}

/// Connections the box itself makes: the REDIRECT to the daemon.
pub const NAT_OUTPUT: Chain = Chain {
    table: "nat",
    name: "OUTPUT",
};
/// Connections arriving from other interfaces (containers): the DNAT to the daemon.
pub const NAT_PREROUTING: Chain = Chain {
    table: "nat",
    name: "PREROUTING",
};
/// What reaches the daemon's container address: the LAN and direct connections are dropped.
pub const FILTER_INPUT: Chain = Chain {
    table: "filter",
    name: "INPUT",
};

/// The chain of the box's own REDIRECT (kept for callers that name it).
pub const CHAIN: &str = NAT_OUTPUT.name;

impl fmt::Display for Chain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.table, self.name)
    }
}

/// IPv4 or IPv6: selects `iptables` or `ip6tables`, and the address family on `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An address with its prefix length, as assigned to `lo`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LoAddress {
    pub ip: IpAddr,
    pub prefix_len: u8,
}

impl LoAddress {
    /// A host address: /32 for IPv4, /128 for IPv6.
    pub fn host(ip: IpAddr) -> LoAddress {
        let prefix_len = match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        LoAddress { ip, prefix_len }
    }

    pub fn family(&self) -> Family {
        Family::of(self.ip)
    }
}

impl fmt::Display for LoAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.prefix_len)
    }
}

/// An interface name as iptables matches it with `-i`: a name, or a prefix ending in `+`
/// (`eth+` is every name starting with `eth`). Checked when the config is read, so a bad one
/// is a config error at its line, never an iptables failure at install time.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct InterfacePattern(String);

impl InterfacePattern {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether an interface called `name` matches, as iptables' `-i` does.
    pub fn matches(&self, name: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(prefix) => name.starts_with(prefix),
            None => name == self.0,
        }
    }

    /// The container networks whose traffic reaches the daemon by default: Docker's default
    /// bridge (`docker0`) and its user-defined networks (`br-<id>`), Podman's bridges
    /// (`podman0`, … under netavark) and CNI's (`cni0`; `cni-podman0` of Podman before
    /// netavark). With a bridge, the interface a packet comes in on is the bridge, not the
    /// container's veth. A LAN uplink never has these names (a host bridge is `br0`, a bond
    /// `bond0`, a VLAN `eth0.10`), so whatever it is called, the LAN is not admitted.
    pub fn container_defaults() -> Vec<InterfacePattern> {
        ["docker0", "br-+", "podman+", "cni+"]
            .into_iter()
            .map(|p| InterfacePattern(p.to_string()))
            .collect()
    }
}

impl TryFrom<String> for InterfacePattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let name = s.strip_suffix('+').unwrap_or(&s);
        let bad = |why: &str| Err(format!("`{s}` is not an interface pattern: {why}"));
        if name.is_empty() {
            return bad("give a name or a prefix followed by `+` (e.g. \"eth+\")");
        }
        // IFNAMSIZ is 16 with the terminating NUL.
        if s.len() > 15 {
            return bad("interface names have at most 15 characters");
        }
        if let Some(c) = name
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '/' | ':' | '+' | '!'))
        {
            return bad(&format!("{c:?} cannot be in an interface name"));
        }
        let matches_lo = if s.ends_with('+') {
            "lo".starts_with(name)
        } else {
            name == "lo"
        };
        if matches_lo {
            return bad("it matches `lo`, the box's own connections");
        }
        Ok(InterfacePattern(s))
    }
}

impl From<InterfacePattern> for String {
    fn from(p: InterfacePattern) -> String {
        p.0
    }
}

impl fmt::Display for InterfacePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rule: its family, its chain and the arguments after `-A <chain>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub chain: Chain,
    pub args: Vec<String>,
}

/// Where a new rule goes in its chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Position {
    /// `-A`: after everything else.
    Append,
    /// `-I <chain> 1`: before everything else.
    First,
}

fn owned(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

impl Rule {
    /// Where this rule goes when added. The box's REDIRECT is appended, as it always was. The
    /// container rules go first: other programs' PREROUTING jumps (Docker's `-m addrtype
    /// --dst-type LOCAL -j DOCKER` matches 169.254.169.254 once it is on `lo`, and DNATs any
    /// published port 80) and INPUT accepts (`-i eth0 -j ACCEPT`) must not win over ours.
    pub fn position(&self) -> Position {
        if self.chain == NAT_OUTPUT {
            Position::Append
        } else {
            Position::First
        }
    }

    /// Our REDIRECT of tcp `dest:80` to local `port`, in the canonical `-S` form.
    pub fn redirect(dest: LoAddress, port: u16) -> Rule {
        let family = dest.family();
        let dest = dest.to_string();
        let port = port.to_string();
        let args = [
            "-d",
            &dest,
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            "80",
            "-m",
            "comment",
            "--comment",
            TAG,
            "-j",
            "REDIRECT",
            "--to-ports",
            &port,
        ];
        Rule {
            family,
            chain: NAT_OUTPUT,
            args: owned(&args),
        }
    }

    /// Containers: tcp `dest:80` arriving on an interface matching `pattern` (a container
    /// network) is DNATed to `dest:port`, where the daemon also listens. The destination stays
    /// an address of `lo` (not 127.0.0.1, which would need `route_localnet` and so open every
    /// loopback service to containers), and the source stays the container's, so the daemon
    /// applies the hop limit to it. Traffic from any other interface is not DNATed, and
    /// [`Rule::drop_direct`] drops it.
    pub fn container_dnat(dest: LoAddress, port: u16, pattern: &str) -> Rule {
        let to = format!("{}:{port}", dest.ip);
        let dest = dest.to_string();
        let args = [
            "-d",
            &dest,
            "-i",
            pattern,
            "-p",
            "tcp",
            "-m",
            "tcp",
            "--dport",
            "80",
            "-m",
            "comment",
            "--comment",
            TAG,
            "-j",
            "DNAT",
            "--to-destination",
            &to,
        ];
        Rule {
            family: Family::V4,
            chain: NAT_PREROUTING,
            args: owned(&args),
        }
    }

    /// An interface the user refuses (`[intercept] lan-interfaces`): tcp to the daemon's
    /// container address arriving on interfaces matching `pattern` is dropped, on any port,
    /// DNATed or not, even when a container pattern matches the name too (`br-lan`).
    pub fn drop_from(dest: LoAddress, pattern: &str) -> Rule {
        let dest = dest.to_string();
        let args = [
            "-d",
            &dest,
            "-i",
            pattern,
            "-p",
            "tcp",
            "-m",
            "comment",
            "--comment",
            TAG,
            "-j",
            "DROP",
        ];
        Rule {
            family: Family::V4,
            chain: FILTER_INPUT,
            args: owned(&args),
        }
    }

    /// Everything else: tcp to the daemon's container address, on any port, that did not
    /// come through our DNAT (so not from a container network), from anywhere but the box
    /// itself, is dropped. Linux accepts a packet for an address of `lo` on any interface, so
    /// without this a neighbour that routes 169.254.169.254 through the box could connect to
    /// it on port 80 or the daemon's port.
    pub fn drop_direct(dest: LoAddress) -> Rule {
        let dest = dest.to_string();
        let args = [
            "-d",
            &dest,
            "!",
            "-i",
            "lo",
            "-p",
            "tcp",
            "-m",
            "conntrack",
            "!",
            "--ctstate",
            "DNAT",
            "-m",
            "comment",
            "--comment",
            TAG,
            "-j",
            "DROP",
        ];
        Rule {
            family: Family::V4,
            chain: FILTER_INPUT,
            args: owned(&args),
        }
    }

    /// The input interface (`-i`) of a rule that has one, unless negated.
    pub fn input_interface(&self) -> Option<&str> {
        self.args
            .windows(2)
            .enumerate()
            .find(|(i, w)| w[0] == "-i" && (*i == 0 || self.args[i - 1] != "!"))
            .map(|(_, w)| w[1].as_str())
    }

    /// Parses one line of `iptables -t TABLE -S CHAIN`; `None` for anything but
    /// `-A CHAIN …` (policy lines, warnings, blank lines).
    pub fn from_listing(family: Family, chain: Chain, line: &str) -> Option<Rule> {
        let mut tokens = split_args(line)?;
        if tokens.len() < 2 || tokens[0] != "-A" || tokens[1] != chain.name {
            return None;
        }
        let args = tokens.split_off(2);
        Some(Rule {
            family,
            chain,
            args,
        })
    }

    /// True if the rule carries exactly our comment tag.
    pub fn is_ours(&self) -> bool {
        self.args
            .windows(2)
            .any(|w| w[0] == "--comment" && w[1] == TAG)
    }

    /// The REDIRECT target port, if the rule has one.
    pub fn to_port(&self) -> Option<u16> {
        self.value_of("--to-ports")?.parse().ok()
    }

    /// The destination (`-d`) as printed, if any.
    pub fn destination(&self) -> Option<&str> {
        self.value_of("-d")
    }

    fn value_of(&self, option: &str) -> Option<&str> {
        self.args
            .windows(2)
            .find(|w| w[0] == option)
            .map(|w| w[1].as_str())
    }

    /// The line `iptables -S` would print for this rule.
    pub fn listing(&self) -> String {
        let mut line = format!("-A {}", self.chain.name);
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }
}

impl fmt::Display for Rule {
    /// "IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338" and the like;
    /// rules of an unexpected shape fall back to their `-S` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (family, chain) = (self.family, self.chain);
        let dest = self.destination();
        let dport = self.value_of("--dport");
        match (self.value_of("-j"), dest, dport) {
            (Some("REDIRECT"), Some(dest), _) if self.to_port().is_some() => write!(
                f,
                "{family} {chain} redirect {dest} tcp/80 -> local port {}",
                self.to_port().unwrap_or_default()
            ),
            (Some("DNAT"), Some(dest), Some(dport)) => {
                match (self.value_of("--to-destination"), self.input_interface()) {
                    (Some(to), Some(from)) => write!(
                        f,
                        "{family} {chain} dnat {dest} tcp/{dport} from {from} (containers) -> {to}"
                    ),
                    // The shape before container networks were listed (any interface).
                    (Some(to), None) => write!(
                        f,
                        "{family} {chain} dnat {dest} tcp/{dport} from any interface -> {to}"
                    ),
                    _ => write!(f, "{family} {chain} rule `{}`", self.listing()),
                }
            }
            (Some("DROP"), Some(dest), dport) => {
                let ip = dest.split('/').next().unwrap_or(dest);
                let to = match dport {
                    Some(port) => format!("{ip}:{port}"),
                    None => ip.to_string(),
                };
                match (
                    self.input_interface(),
                    self.args.iter().any(|a| a == "conntrack"),
                ) {
                    (Some(pattern), false) => write!(
                        f,
                        "{family} {chain} drop tcp to {to} from {pattern} (refused)"
                    ),
                    (_, true) => write!(
                        f,
                        "{family} {chain} drop tcp to {to} from elsewhere (not lo, not via the dnat)"
                    ),
                    _ => write!(f, "{family} {chain} rule `{}`", self.listing()),
                }
            }
            _ => write!(f, "{family} {chain} rule `{}`", self.listing()),
        }
    }
}

/// Splits an `iptables -S` line into arguments. iptables double-quotes values that contain
/// spaces (comments mostly) and backslash-escapes quotes inside them. `None` if a quote is
/// left open, so a line we cannot read is never mistaken for ours.
pub fn split_args(line: &str) -> Option<Vec<String>> {
    let mut args = Vec::new();
    let mut current: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if let Some(arg) = current.take() {
                    args.push(arg);
                }
            }
            '"' => {
                let arg = current.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => arg.push(chars.next()?),
                        other => arg.push(other),
                    }
                }
            }
            other => current.get_or_insert_with(String::new).push(other),
        }
    }
    args.extend(current);
    Some(args)
}

/// The inverse of [`split_args`] for one argument.
fn quote(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\') {
        return arg.to_string();
    }
    let escaped = arg.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_rule_is_what_iptables_1_8_9_prints() {
        let rule = Rule::redirect(LoAddress::host("169.254.169.254".parse().unwrap()), 1338);
        assert_eq!(
            rule.listing(),
            "-A OUTPUT -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment \
             fake-metadata -j REDIRECT --to-ports 1338"
        );
        let v6 = Rule::redirect(LoAddress::host("fd00:ec2::254".parse().unwrap()), 8080);
        assert_eq!(v6.family, Family::V6);
        assert_eq!(
            v6.listing(),
            "-A OUTPUT -d fd00:ec2::254/128 -p tcp -m tcp --dport 80 -m comment --comment \
             fake-metadata -j REDIRECT --to-ports 8080"
        );
    }

    #[test]
    fn listing_round_trips_and_ignores_other_lines() {
        let rule = Rule::redirect(LoAddress::host("169.254.169.254".parse().unwrap()), 1338);
        assert_eq!(
            Rule::from_listing(Family::V4, NAT_OUTPUT, &rule.listing()),
            Some(rule)
        );
        let v4 = |line: &str| Rule::from_listing(Family::V4, NAT_OUTPUT, line);
        assert_eq!(v4("-P OUTPUT ACCEPT"), None);
        assert_eq!(v4("-A PREROUTING -j ACCEPT"), None);
        assert_eq!(v4("# Warning: legacy"), None);
        assert_eq!(v4(""), None);
    }

    #[test]
    fn quoted_comments_split_and_only_the_exact_tag_is_ours() {
        let line =
            r#"-A OUTPUT -d 10.0.0.1/32 -m comment --comment "fake-metadata \"x\" y" -j ACCEPT"#;
        let rule = Rule::from_listing(Family::V4, NAT_OUTPUT, line).unwrap();
        assert_eq!(rule.args[5], r#"fake-metadata "x" y"#);
        assert!(!rule.is_ours());
        assert_eq!(rule.listing(), line);
        let near = Rule::from_listing(
            Family::V4,
            NAT_OUTPUT,
            "-A OUTPUT -m comment --comment fake-metadata-2",
        )
        .unwrap();
        assert!(!near.is_ours());
        assert_eq!(split_args(r#"-A OUTPUT "open"#), None);
    }

    /// The container rules as iptables 1.8.9 prints them (nft and legacy alike, checked in a
    /// network namespace by `tests/netns.rs`), so `install` finds them again and never adds
    /// a second copy.
    #[test]
    fn container_rules_are_what_iptables_1_8_9_prints() {
        let imds = LoAddress::host("169.254.169.254".parse().unwrap());
        let dnat = Rule::container_dnat(imds, 1338, "br-+");
        assert_eq!(
            dnat.listing(),
            "-A PREROUTING -d 169.254.169.254/32 -i br-+ -p tcp -m tcp --dport 80 -m comment \
             --comment fake-metadata -j DNAT --to-destination 169.254.169.254:1338"
        );
        assert_eq!(
            (dnat.chain, dnat.position()),
            (NAT_PREROUTING, Position::First)
        );
        let refused = Rule::drop_from(imds, "br-lan");
        assert_eq!(
            refused.listing(),
            "-A INPUT -d 169.254.169.254/32 -i br-lan -p tcp -m comment --comment fake-metadata \
             -j DROP"
        );
        let direct = Rule::drop_direct(imds);
        assert_eq!(
            direct.listing(),
            "-A INPUT -d 169.254.169.254/32 ! -i lo -p tcp -m conntrack ! --ctstate DNAT -m \
             comment --comment fake-metadata -j DROP"
        );
        assert_eq!(direct.chain, FILTER_INPUT);
        assert_eq!(
            direct.input_interface(),
            None,
            "`! -i lo` admits no interface"
        );
        assert_eq!(dnat.input_interface(), Some("br-+"));
        for rule in [&dnat, &refused, &direct] {
            assert!(rule.is_ours());
            assert_eq!(
                Rule::from_listing(Family::V4, rule.chain, &rule.listing()).as_ref(),
                Some(rule)
            );
        }
        assert_eq!(
            dnat.to_string(),
            "IPv4 nat PREROUTING dnat 169.254.169.254/32 tcp/80 from br-+ (containers) -> \
             169.254.169.254:1338"
        );
        assert_eq!(
            refused.to_string(),
            "IPv4 filter INPUT drop tcp to 169.254.169.254 from br-lan (refused)"
        );
        assert_eq!(
            direct.to_string(),
            "IPv4 filter INPUT drop tcp to 169.254.169.254 from elsewhere (not lo, not via the dnat)"
        );
    }

    #[test]
    fn interface_patterns_are_checked() {
        let p = |s: &str| InterfacePattern::try_from(s.to_string());
        for good in ["eth+", "eth0", "en+", "enp0s3", "br-1234567890ab", "wl+"] {
            assert_eq!(p(good).unwrap().as_str(), good);
        }
        let err = |s: &str| p(s).unwrap_err();
        assert!(err("+").contains("give a name or a prefix"), "{}", err("+"));
        assert!(err("").contains("give a name or a prefix"));
        assert!(err("a-very-long-name0").contains("at most 15"));
        assert!(err("eth 0").contains("' ' cannot be"), "{}", err("eth 0"));
        assert!(err("e+th").contains("'+' cannot be"));
        assert!(err("lo").contains("matches `lo`"));
        assert!(err("l+").contains("matches `lo`"));
        let defaults: Vec<String> = InterfacePattern::container_defaults()
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(defaults, ["docker0", "br-+", "podman+", "cni+"]);
    }

    #[test]
    fn rules_display_for_people() {
        let rule = Rule::redirect(LoAddress::host("169.254.169.254".parse().unwrap()), 1338);
        assert_eq!(
            rule.to_string(),
            "IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338"
        );
        let odd = Rule::from_listing(
            Family::V6,
            NAT_OUTPUT,
            "-A OUTPUT -m comment --comment fake-metadata",
        )
        .unwrap();
        assert_eq!(
            odd.to_string(),
            "IPv6 nat OUTPUT rule `-A OUTPUT -m comment --comment fake-metadata`"
        );
    }
}
