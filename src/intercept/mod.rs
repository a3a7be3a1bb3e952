//! Interception: make unmodified programs that connect to `http://169.254.169.254/` (and
//! optionally `http://[fd00:ec2::254]/`) reach the daemon on `127.0.0.1:<port>`.
//!
//! Two kernel objects per address family do it for the box itself: the address on `lo` (so
//! the kernel treats the destination as local and never routes it to a real gateway) and a
//! `nat OUTPUT` REDIRECT of tcp/80 to the daemon's port. Containers on bridges and veths
//! (IPv4) get more: a `nat PREROUTING` DNAT of tcp/80 to `169.254.169.254:<port>`, where the
//! daemon also listens, from each container network (`docker0`, `br-+`, …: an allow-list, so
//! a LAN uplink of any name is left out), and `filter INPUT` drops of everything else that
//! reaches that address from outside the box (and of the interfaces the user refuses).
//! [`Plan`] says which, computed purely from the config.
//! [`install`], [`uninstall`] and [`status`] carry it out through the [`Host`] trait, the only
//! way this module touches the kernel: [`system::SystemHost`] is the real one, the unit tests
//! use an in-memory fake.
//!
//! Rules: every step is idempotent and reports whether it changed anything; only rules tagged
//! with [`TAG`] are ever touched; a failed install undoes what it did; uninstall removes all
//! that is ours and goes on past errors.

mod error;
mod probe;
mod report;
mod rule;
pub mod system;

use std::fmt;
use std::net::IpAddr;

pub use error::InterceptError;
pub use probe::{INSTANCE_ID_PATH, ask, probe, probe_instance_id};
pub use report::{Item, Outcome, Report, Step};
pub use rule::{
    CHAIN, Chain, FILTER_INPUT, Family, InterfacePattern, LoAddress, NAT_OUTPUT, NAT_PREROUTING,
    Position, Rule, TAG, split_args,
};

use crate::endpoint::Endpoint;
pub use crate::endpoint::{IMDS_V4, IMDS_V6};

/// The IMDS address of a family as a host address on `lo`.
pub fn imds_address(family: Family) -> LoAddress {
    Endpoint::Imds
        .lo_address(family)
        .unwrap_or_else(|| unreachable!("IMDS has an address of each family"))
}

/// One endpoint as interception routes it: its link-local address(es) to the daemon's `port`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub port: u16,
}

impl Endpoint {
    /// The endpoint's address of `family` as a host address on `lo`, if it has one.
    pub fn lo_address(self, family: Family) -> Option<LoAddress> {
        match family {
            Family::V4 => Some(LoAddress::host(IpAddr::V4(self.ipv4()))),
            Family::V6 => self.ipv6().map(|a| LoAddress::host(IpAddr::V6(a))),
        }
    }
}

/// The chains our rules may live in, per family: `uninstall` sweeps all of them, and `install`
/// of a plan without the container path removes what an earlier one put there.
pub const MANAGED: [(Family, Chain); 4] = [
    (Family::V4, NAT_OUTPUT),
    (Family::V4, NAT_PREROUTING),
    (Family::V4, FILTER_INPUT),
    (Family::V6, NAT_OUTPUT),
];

/// What must be in place for the daemon to answer at each endpoint's address(es).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The endpoints routed, in the order their addresses and rules appear.
    pub routes: Vec<Route>,
    /// Host addresses to put on `lo`: each route's, IPv4 first.
    pub addresses: Vec<LoAddress>,
    /// The chains this plan manages, each with exactly the rules of ours it should hold (an
    /// empty list: none of ours may stay there).
    pub chains: Vec<(Family, Chain)>,
    /// Our rules, in the order of `chains`.
    pub rules: Vec<Rule>,
}

/// Each interface once, in the order first seen (every endpoint has the same ones).
fn distinct<'a>(names: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

impl Plan {
    /// The plan for `routes` (IPv4 always, IPv6 too if asked, for endpoints that have an IPv6
    /// address), for the box's own connections only; [`Plan::with_containers`] adds the
    /// container path.
    pub fn new(routes: &[Route], ipv6: bool) -> Result<Plan, InterceptError> {
        if routes.iter().any(|r| r.port == 0) {
            return Err(InterceptError::InvalidPort);
        }
        let mut families = vec![Family::V4];
        if ipv6 {
            families.push(Family::V6);
        }
        let mut addresses = Vec::new();
        let mut rules = Vec::new();
        for &family in &families {
            for route in routes {
                if let Some(a) = route.endpoint.lo_address(family) {
                    addresses.push(a);
                    rules.push(Rule::redirect(a, route.port));
                }
            }
        }
        let chains = MANAGED
            .into_iter()
            .filter(|(f, _)| *f == Family::V4 || ipv6)
            .collect();
        Ok(Plan {
            routes: routes.to_vec(),
            addresses,
            chains,
            rules,
        })
    }

    /// Adds the container path (IPv4), closed by default: for each endpoint, the DNAT of
    /// tcp/80 to `<its address>:<port>` only from the interfaces of `admit` (container
    /// networks), a drop of that address from each interface of `refuse`, and a drop of
    /// everything else that reaches it from outside the box without the DNAT. A LAN neighbour
    /// that routes 169.254.169.254 through the box gets nothing, whatever the uplink is called.
    pub fn with_containers(
        mut self,
        admit: &[InterfacePattern],
        refuse: &[InterfacePattern],
    ) -> Plan {
        for route in &self.routes {
            let Some(dest) = route.endpoint.lo_address(Family::V4) else {
                continue;
            };
            for pattern in admit {
                self.rules
                    .push(Rule::container_dnat(dest, route.port, pattern.as_str()));
            }
            for pattern in refuse {
                self.rules.push(Rule::drop_from(dest, pattern.as_str()));
            }
            self.rules.push(Rule::drop_direct(dest));
        }
        self.rules
            .sort_by_key(|r| self.chains.iter().position(|c| *c == (r.family, r.chain)));
        self
    }

    /// The interfaces whose connections to 169.254.169.254:80 reach the daemon, besides the
    /// box's own (`lo`): none without the container path.
    pub fn admitted(&self) -> Vec<&str> {
        distinct(
            self.rules
                .iter()
                .filter(|r| r.chain == NAT_PREROUTING)
                .filter_map(Rule::input_interface),
        )
    }

    /// The interfaces refused even when a container pattern matches them.
    pub fn refused(&self) -> Vec<&str> {
        distinct(
            self.rules
                .iter()
                .filter(|r| r.chain == FILTER_INPUT && !r.args.iter().any(|a| a == "conntrack"))
                .filter_map(Rule::input_interface),
        )
    }

    /// Whether the plan routes containers.
    pub fn containers(&self) -> bool {
        self.rules.iter().any(|r| r.chain == NAT_PREROUTING)
    }

    /// The addresses containers are DNATed to, one per endpoint, where the daemon must
    /// listen: none without the container path.
    pub fn container_targets(&self) -> Vec<(Endpoint, std::net::SocketAddr)> {
        if !self.containers() {
            return Vec::new();
        }
        self.routes
            .iter()
            .map(|r| {
                let addr = std::net::SocketAddr::from((r.endpoint.ipv4(), r.port));
                (r.endpoint, addr)
            })
            .collect()
    }

    fn wanted(&self, family: Family, chain: Chain) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.family == family && r.chain == chain)
    }
}

/// The kernel, as far as interception needs it. Implementations perform exactly one kernel
/// operation per call and no policy: idempotency, tagging and rollback live in this module.
pub trait Host {
    /// Is `addr` (address and prefix length) assigned to `lo`?
    fn has_address(&mut self, addr: &LoAddress) -> Result<bool, InterceptError>;
    /// Assigns `addr` to `lo`, succeeding if it already is (`ip addr replace`).
    fn add_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError>;
    /// Removes `addr` from `lo`.
    fn delete_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError>;
    /// `iptables -t TABLE -S CHAIN` for `family`, one line per element.
    fn list_rules(&mut self, family: Family, chain: Chain) -> Result<Vec<String>, InterceptError>;
    /// Adds `rule` to its chain, at [`Rule::position`].
    fn add_rule(&mut self, rule: &Rule) -> Result<(), InterceptError>;
    /// Deletes the first rule of its chain equal to `rule`.
    fn delete_rule(&mut self, rule: &Rule) -> Result<(), InterceptError>;
}

/// How to undo one change made by install.
enum Undo {
    DeleteAddress(LoAddress),
    DeleteRule(Rule),
    RestoreRule(Rule),
}

/// The report and the undo log of an install in progress.
#[derive(Default)]
struct Journal {
    report: Report,
    undo: Vec<Undo>,
}

/// Puts `plan` in place. A second run changes nothing and its report says so. Our rules that
/// differ from the plan (another port, duplicates) are replaced, so there is always exactly
/// one. On error everything this run changed is undone, then the error is returned; if undoing
/// fails too, the error is [`InterceptError::RollbackIncomplete`].
pub fn install(plan: &Plan, host: &mut dyn Host) -> Result<Report, InterceptError> {
    let mut journal = Journal::default();
    let result = (|| {
        for addr in &plan.addresses {
            ensure_address(host, addr, &mut journal)?;
        }
        for &(family, chain) in &plan.chains {
            let wanted: Vec<&Rule> = plan.wanted(family, chain).collect();
            ensure_rules(host, family, chain, &wanted, &mut journal)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(journal.report),
        Err(cause) => Err(rollback(host, journal.undo, cause)),
    }
}

/// Ensures `addr` is on `lo`; returns whether it had to be added.
fn ensure_address(
    host: &mut dyn Host,
    addr: &LoAddress,
    journal: &mut Journal,
) -> Result<bool, InterceptError> {
    if host.has_address(addr)? {
        journal
            .report
            .push(Item::Address(*addr), Outcome::AlreadyPresent);
        return Ok(false);
    }
    host.add_address(addr)?;
    journal.undo.push(Undo::DeleteAddress(*addr));
    journal.report.push(Item::Address(*addr), Outcome::Added);
    Ok(true)
}

/// Ensures our rules in `chain` are exactly `wanted`, one copy each; returns whether anything
/// changed. New rules are added before stale ones are deleted, so there is no moment without
/// a redirect.
fn ensure_rules(
    host: &mut dyn Host,
    family: Family,
    chain: Chain,
    wanted: &[&Rule],
    journal: &mut Journal,
) -> Result<bool, InterceptError> {
    let mut left = our_rules(host, family, chain)?;
    let mut changed = false;
    for want in wanted {
        if let Some(i) = left.iter().position(|r| r == *want) {
            left.remove(i);
            journal
                .report
                .push(Item::Rule((*want).clone()), Outcome::AlreadyPresent);
        } else {
            host.add_rule(want)?;
            journal.undo.push(Undo::DeleteRule((*want).clone()));
            journal
                .report
                .push(Item::Rule((*want).clone()), Outcome::Added);
            changed = true;
        }
    }
    for rule in left {
        host.delete_rule(&rule)?;
        journal.undo.push(Undo::RestoreRule(rule.clone()));
        journal.report.push(Item::Rule(rule), Outcome::Removed);
        changed = true;
    }
    Ok(changed)
}

/// Our tagged rules of `family` in `chain`, in chain order.
fn our_rules(
    host: &mut dyn Host,
    family: Family,
    chain: Chain,
) -> Result<Vec<Rule>, InterceptError> {
    Ok(host
        .list_rules(family, chain)?
        .iter()
        .filter_map(|line| Rule::from_listing(family, chain, line))
        .filter(Rule::is_ours)
        .collect())
}

/// Undoes `undo` newest first. Restored rules go where new ones go ([`Rule::position`]), which
/// is harmless: our rules of one chain do not depend on their order among themselves.
fn rollback(host: &mut dyn Host, undo: Vec<Undo>, cause: InterceptError) -> InterceptError {
    let failures: Vec<InterceptError> = undo
        .into_iter()
        .rev()
        .filter_map(|step| {
            match step {
                Undo::DeleteAddress(addr) => host.delete_address(&addr),
                Undo::DeleteRule(rule) => host.delete_rule(&rule),
                Undo::RestoreRule(rule) => host.add_rule(&rule),
            }
            .err()
        })
        .collect();
    if failures.is_empty() {
        cause
    } else {
        InterceptError::RollbackIncomplete {
            cause: Box::new(cause),
            failures,
        }
    }
}

/// Removes everything of ours: every rule tagged [`TAG`] in every chain of [`MANAGED`],
/// whatever its port, then every endpoint's addresses on `lo` (IPv6 too if `ipv6_too`),
/// whichever endpoints the config routes. Goes on past
/// errors; each one is a [`Outcome::Failed`] step (see [`Report::has_failures`]). A second
/// run is a no-op.
pub fn uninstall(host: &mut dyn Host, ipv6_too: bool) -> Report {
    let families: &[Family] = if ipv6_too {
        &[Family::V4, Family::V6]
    } else {
        &[Family::V4]
    };
    let mut report = Report::default();
    for (family, chain) in MANAGED {
        if !families.contains(&family) {
            continue;
        }
        match our_rules(host, family, chain) {
            Err(e) => report.push(
                Item::TaggedRules(family, chain),
                Outcome::Failed(e.to_string()),
            ),
            Ok(rules) if rules.is_empty() => {
                report.push(Item::TaggedRules(family, chain), Outcome::Absent)
            }
            Ok(rules) => {
                for rule in rules {
                    let outcome = match host.delete_rule(&rule) {
                        Ok(()) => Outcome::Removed,
                        Err(e) => Outcome::Failed(e.to_string()),
                    };
                    report.push(Item::Rule(rule), outcome);
                }
            }
        }
    }
    let addresses = families.iter().flat_map(|&f| {
        Endpoint::ALL
            .into_iter()
            .filter_map(move |e| e.lo_address(f))
    });
    for addr in addresses {
        let outcome = match host.has_address(&addr) {
            Ok(false) => Outcome::Absent,
            Ok(true) => match host.delete_address(&addr) {
                Ok(()) => Outcome::Removed,
                Err(e) => Outcome::Failed(e.to_string()),
            },
            Err(e) => Outcome::Failed(e.to_string()),
        };
        report.push(Item::Address(addr), outcome);
    }
    report
}

/// Whether the plan's addresses and exact rules are in place. (Whether the daemon answers
/// through them is [`ask`].)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub addresses: Vec<(LoAddress, bool)>,
    pub rules: Vec<(Rule, bool)>,
    /// Rules of ours that are not in the plan (another port, duplicates); the first match in
    /// the chain wins, so they may send traffic elsewhere.
    pub stale: Vec<Rule>,
}

impl Status {
    /// Everything present and nothing stale.
    pub fn in_place(&self) -> bool {
        self.addresses.iter().all(|(_, ok)| *ok)
            && self.rules.iter().all(|(_, ok)| *ok)
            && self.stale.is_empty()
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = |ok: bool| if ok { "present" } else { "MISSING" };
        let mut lines = Vec::new();
        for (addr, ok) in &self.addresses {
            lines.push(format!("{}: {}", Item::Address(*addr), word(*ok)));
        }
        for (rule, ok) in &self.rules {
            lines.push(format!("{rule}: {}", word(*ok)));
        }
        for rule in &self.stale {
            lines.push(format!(
                "{rule}: STALE (`fake-metadata install` replaces it)"
            ));
        }
        f.write_str(&lines.join("\n"))
    }
}

/// Checks `plan` against the host without changing anything.
pub fn status(plan: &Plan, host: &mut dyn Host) -> Result<Status, InterceptError> {
    let mut addresses = Vec::new();
    for addr in &plan.addresses {
        addresses.push((*addr, host.has_address(addr)?));
    }
    let mut rules = Vec::new();
    let mut stale = Vec::new();
    for &(family, chain) in &plan.chains {
        let mut left = our_rules(host, family, chain)?;
        for want in plan.wanted(family, chain) {
            let found = left.iter().position(|r| r == want);
            if let Some(i) = found {
                left.remove(i);
            }
            rules.push((want.clone(), found.is_some()));
        }
        stale.extend(left);
    }
    Ok(Status {
        addresses,
        rules,
        stale,
    })
}

#[cfg(test)]
mod tests;
