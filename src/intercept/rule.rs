//! The kernel objects we own, as plain data: an address on `lo` and a `nat OUTPUT` rule.
//!
//! A rule is kept as the argument list that follows `-A OUTPUT`, written the way
//! `iptables -S` prints it (1.8.x), so "is our rule there?" is a comparison of token lists
//! against the listing. A rule is ours only if it carries `--comment <TAG>`; everything else in
//! the chain belongs to someone else and is never touched.

use std::fmt;
use std::net::IpAddr;

/// The comment that marks a rule as ours.
pub const TAG: &str = "fake-metadata";

/// The chain our rule lives in (table `nat`).
pub const CHAIN: &str = "OUTPUT";

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

/// One rule of `nat OUTPUT`: its family and the arguments after `-A OUTPUT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub family: Family,
    pub args: Vec<String>,
}

impl Rule {
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
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// Parses one line of `iptables -t nat -S OUTPUT`; `None` for anything but `-A OUTPUT …`
    /// (policy lines, warnings, blank lines).
    pub fn from_listing(family: Family, line: &str) -> Option<Rule> {
        let mut tokens = split_args(line)?;
        if tokens.len() < 2 || tokens[0] != "-A" || tokens[1] != CHAIN {
            return None;
        }
        let args = tokens.split_off(2);
        Some(Rule { family, args })
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
        let mut line = format!("-A {CHAIN}");
        for arg in &self.args {
            line.push(' ');
            line.push_str(&quote(arg));
        }
        line
    }
}

impl fmt::Display for Rule {
    /// "IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338"; rules of an
    /// unexpected shape fall back to their `-S` line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.destination(), self.to_port()) {
            (Some(dest), Some(port)) => write!(
                f,
                "{} nat OUTPUT redirect {dest} tcp/80 -> local port {port}",
                self.family
            ),
            _ => write!(f, "{} nat rule `{}`", self.family, self.listing()),
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
        assert_eq!(Rule::from_listing(Family::V4, &rule.listing()), Some(rule));
        assert_eq!(Rule::from_listing(Family::V4, "-P OUTPUT ACCEPT"), None);
        assert_eq!(
            Rule::from_listing(Family::V4, "-A PREROUTING -j ACCEPT"),
            None
        );
        assert_eq!(Rule::from_listing(Family::V4, "# Warning: legacy"), None);
        assert_eq!(Rule::from_listing(Family::V4, ""), None);
    }

    #[test]
    fn quoted_comments_split_and_only_the_exact_tag_is_ours() {
        let line =
            r#"-A OUTPUT -d 10.0.0.1/32 -m comment --comment "fake-metadata \"x\" y" -j ACCEPT"#;
        let rule = Rule::from_listing(Family::V4, line).unwrap();
        assert_eq!(rule.args[5], r#"fake-metadata "x" y"#);
        assert!(!rule.is_ours());
        assert_eq!(rule.listing(), line);
        let near = Rule::from_listing(Family::V4, "-A OUTPUT -m comment --comment fake-metadata-2")
            .unwrap();
        assert!(!near.is_ours());
        assert_eq!(split_args(r#"-A OUTPUT "open"#), None);
    }

    #[test]
    fn rules_display_for_people() {
        let rule = Rule::redirect(LoAddress::host("169.254.169.254".parse().unwrap()), 1338);
        assert_eq!(
            rule.to_string(),
            "IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338"
        );
        let odd =
            Rule::from_listing(Family::V6, "-A OUTPUT -m comment --comment fake-metadata").unwrap();
        assert_eq!(
            odd.to_string(),
            "IPv6 nat rule `-A OUTPUT -m comment --comment fake-metadata`"
        );
    }
}
