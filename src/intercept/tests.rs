//! Install/uninstall/status against an in-memory host: idempotency, replacement, foreign rules,
//! rollback after injected failures.

use std::collections::BTreeMap;

use super::*;

/// A host operation, for injecting failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    HasAddress,
    AddAddress(Family),
    DeleteAddress,
    ListRules(Family),
    AddRule(Family),
    DeleteRule(Family),
}

/// `-S` lines per family and chain.
type Chains = BTreeMap<(Family, Chain), Vec<String>>;

/// The kernel as lists: addresses on lo, and `-S` lines per family and chain.
#[derive(Default)]
struct FakeHost {
    addresses: Vec<LoAddress>,
    rules: Chains,
    /// Fails the `nth` call (0-based) of `op`.
    fail: Option<(Op, usize)>,
    calls: Vec<Op>,
}

impl FakeHost {
    fn call(&mut self, op: Op) -> Result<(), InterceptError> {
        let nth = self.calls.iter().filter(|&&c| c == op).count();
        self.calls.push(op);
        match self.fail {
            Some((f, n)) if f == op && n == nth => Err(InterceptError::Netlink {
                action: format!("{op:?}"),
                message: "injected failure".into(),
            }),
            _ => Ok(()),
        }
    }

    fn chain(&mut self, family: Family) -> &mut Vec<String> {
        self.chain_of(family, NAT_OUTPUT)
    }

    fn chain_of(&mut self, family: Family, chain: Chain) -> &mut Vec<String> {
        self.rules.entry((family, chain)).or_default()
    }

    /// Everything observable, for "the host is as it was".
    fn snapshot(&self) -> (Vec<LoAddress>, Chains) {
        let mut addresses = self.addresses.clone();
        addresses.sort();
        let rules = self
            .rules
            .iter()
            .map(|(f, r)| (*f, r.clone()))
            .filter(|(_, r)| !r.is_empty())
            .collect();
        (addresses, rules)
    }

    fn tagged(&self, family: Family) -> Vec<String> {
        self.tagged_in(family, NAT_OUTPUT)
    }

    fn tagged_in(&self, family: Family, chain: Chain) -> Vec<String> {
        let tag = format!("--comment {TAG} ");
        self.rules
            .get(&(family, chain))
            .into_iter()
            .flatten()
            .filter(|l| l.contains(&tag))
            .cloned()
            .collect()
    }
}

impl Host for FakeHost {
    fn has_address(&mut self, addr: &LoAddress) -> Result<bool, InterceptError> {
        self.call(Op::HasAddress)?;
        Ok(self.addresses.contains(addr))
    }

    fn add_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError> {
        self.call(Op::AddAddress(addr.family()))?;
        if !self.addresses.contains(addr) {
            self.addresses.push(*addr);
        }
        Ok(())
    }

    fn delete_address(&mut self, addr: &LoAddress) -> Result<(), InterceptError> {
        self.call(Op::DeleteAddress)?;
        let before = self.addresses.len();
        self.addresses.retain(|a| a != addr);
        assert_ne!(before, self.addresses.len(), "deleted an absent address");
        Ok(())
    }

    fn list_rules(&mut self, family: Family, chain: Chain) -> Result<Vec<String>, InterceptError> {
        self.call(Op::ListRules(family))?;
        let mut lines = vec![format!("-P {} ACCEPT", chain.name)];
        lines.extend(self.chain_of(family, chain).iter().cloned());
        Ok(lines)
    }

    fn add_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        self.call(Op::AddRule(rule.family))?;
        let line = rule.listing();
        let chain = self.chain_of(rule.family, rule.chain);
        match rule.position() {
            Position::Append => chain.push(line),
            Position::First => chain.insert(0, line),
        }
        Ok(())
    }

    fn delete_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        self.call(Op::DeleteRule(rule.family))?;
        let line = rule.listing();
        let chain = self.chain_of(rule.family, rule.chain);
        let pos = chain
            .iter()
            .position(|l| *l == line)
            .expect("deleted an absent rule");
        chain.remove(pos);
        Ok(())
    }
}

const FOREIGN: &str = "-A OUTPUT -d 10.9.9.9/32 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9";
const FOREIGN_NEAR_TAG: &str =
    "-A OUTPUT -d 169.254.169.254/32 -m comment --comment \"fake-metadata old\" -j ACCEPT";

fn imds(port: u16) -> Route {
    Route {
        endpoint: Endpoint::Imds,
        port,
    }
}

fn plan(port: u16, ipv6: bool) -> Plan {
    Plan::new(&[imds(port)], ipv6).unwrap()
}

fn host_with_foreign_rules() -> FakeHost {
    let mut host = FakeHost::default();
    host.chain(Family::V4)
        .extend([FOREIGN.to_string(), FOREIGN_NEAR_TAG.to_string()]);
    host.chain(Family::V6)
        .push("-A OUTPUT -j ACCEPT".to_string());
    host
}

#[test]
fn plan_is_pure_data() {
    let p = plan(1338, false);
    assert_eq!(p.addresses, vec![imds_address(Family::V4)]);
    assert_eq!(p.addresses[0].to_string(), "169.254.169.254/32");
    assert_eq!(p.rules.len(), 1);
    assert_eq!(p.rules[0].to_port(), Some(1338));
    assert!(p.rules[0].is_ours());

    let p6 = plan(8080, true);
    assert_eq!(p6.addresses[1].to_string(), "fd00:ec2::254/128");
    assert_eq!(p6.rules[1].family, Family::V6);
    assert_eq!(p6.rules[1].destination(), Some("fd00:ec2::254/128"));

    assert!(matches!(
        Plan::new(&[imds(0)], false),
        Err(InterceptError::InvalidPort)
    ));
    // The hint names a key the config has.
    let hint = InterceptError::InvalidPort.to_string();
    assert!(hint.contains("set `listen` under [server]"), "{hint}");
}

#[test]
fn install_twice_changes_nothing_the_second_time() {
    let mut host = host_with_foreign_rules();
    let first = install(&plan(1338, true), &mut host).unwrap();
    assert!(first.changed());
    assert_eq!(
        first.to_string(),
        "address 169.254.169.254/32 on lo: added\n\
         address fd00:ec2::254/128 on lo: added\n\
         IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338: added\n\
         IPv6 nat OUTPUT redirect fd00:ec2::254/128 tcp/80 -> local port 1338: added"
    );
    let after_first = host.snapshot();

    let second = install(&plan(1338, true), &mut host).unwrap();
    assert!(!second.changed());
    assert!(
        second
            .steps
            .iter()
            .all(|s| s.outcome == Outcome::AlreadyPresent)
    );
    assert!(
        second
            .to_string()
            .contains("address 169.254.169.254/32 on lo: already present")
    );
    assert_eq!(host.snapshot(), after_first);
    assert_eq!(host.tagged(Family::V4).len(), 1);
    assert_eq!(host.tagged(Family::V6).len(), 1);
}

#[test]
fn port_change_replaces_our_rule_and_leaves_foreign_ones() {
    let mut host = host_with_foreign_rules();
    install(&plan(1338, false), &mut host).unwrap();
    let report = install(&plan(1444, false), &mut host).unwrap();
    assert!(report.changed());
    assert!(report.to_string().contains("local port 1444: added"));
    assert!(report.to_string().contains("local port 1338: removed"));

    let chain = &host.rules[&(Family::V4, NAT_OUTPUT)];
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0], FOREIGN);
    assert_eq!(chain[1], FOREIGN_NEAR_TAG);
    assert_eq!(chain[2], plan(1444, false).rules[0].listing());
}

#[test]
fn duplicate_rules_of_ours_collapse_to_one() {
    let mut host = FakeHost::default();
    let want = plan(1338, false).rules[0].listing();
    host.chain(Family::V4).extend([want.clone(), want.clone()]);
    host.addresses.push(imds_address(Family::V4));
    let report = install(&plan(1338, false), &mut host).unwrap();
    assert!(report.changed());
    assert_eq!(host.rules[&(Family::V4, NAT_OUTPUT)], vec![want]);
}

#[test]
fn failed_rule_step_removes_the_address_again() {
    let mut host = host_with_foreign_rules();
    let before = host.snapshot();
    host.fail = Some((Op::AddRule(Family::V4), 0));
    let err = install(&plan(1338, false), &mut host).unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert_eq!(host.snapshot(), before);
}

#[test]
fn failure_late_in_an_upgrade_restores_everything() {
    // v4 done at port 1338 already; upgrading to 1444 with IPv6 fails on the last step.
    let mut host = host_with_foreign_rules();
    install(&plan(1338, false), &mut host).unwrap();
    let before = host.snapshot();
    host.fail = Some((Op::AddRule(Family::V6), 0));
    install(&plan(1444, true), &mut host).unwrap_err();
    assert_eq!(host.snapshot(), before);

    // Failing while deleting the stale rule also rolls back the new one.
    host.calls.clear();
    host.fail = Some((Op::DeleteRule(Family::V4), 0));
    install(&plan(1444, false), &mut host).unwrap_err();
    assert_eq!(host.snapshot(), before);
}

#[test]
fn every_failure_point_leaves_the_host_as_it_was() {
    let ops = [
        Op::HasAddress,
        Op::AddAddress(Family::V4),
        Op::AddAddress(Family::V6),
        Op::ListRules(Family::V4),
        Op::ListRules(Family::V6),
        Op::AddRule(Family::V4),
        Op::AddRule(Family::V6),
        Op::DeleteRule(Family::V4),
    ];
    for op in ops {
        for nth in 0..2 {
            let mut host = host_with_foreign_rules();
            install(&plan(1338, false), &mut host).unwrap();
            let before = host.snapshot();
            host.calls.clear();
            host.fail = Some((op, nth));
            let result = install(&plan(1444, true), &mut host);
            if result.is_err() {
                assert_eq!(host.snapshot(), before, "failing {op:?} #{nth}");
            }
        }
    }
}

#[test]
fn rollback_failure_is_reported_with_both_errors() {
    /// A host that cannot remove addresses, so rolling back an install fails.
    struct StuckAddresses(FakeHost);
    impl Host for StuckAddresses {
        fn has_address(&mut self, a: &LoAddress) -> Result<bool, InterceptError> {
            self.0.has_address(a)
        }
        fn add_address(&mut self, a: &LoAddress) -> Result<(), InterceptError> {
            self.0.add_address(a)
        }
        fn delete_address(&mut self, _: &LoAddress) -> Result<(), InterceptError> {
            Err(InterceptError::PermissionDenied {
                action: "delete address".into(),
            })
        }
        fn list_rules(&mut self, f: Family, c: Chain) -> Result<Vec<String>, InterceptError> {
            self.0.list_rules(f, c)
        }
        fn add_rule(&mut self, r: &Rule) -> Result<(), InterceptError> {
            self.0.add_rule(r)
        }
        fn delete_rule(&mut self, r: &Rule) -> Result<(), InterceptError> {
            self.0.delete_rule(r)
        }
    }
    // Both addresses and the v4 rule go in, then listing v6 rules fails: rollback deletes the
    // rule, then fails on both addresses.
    let mut host = StuckAddresses(FakeHost {
        fail: Some((Op::ListRules(Family::V6), 0)),
        ..FakeHost::default()
    });
    let err = install(&plan(1338, true), &mut host).unwrap_err();
    let InterceptError::RollbackIncomplete { cause, failures } = &err else {
        panic!("{err:?}");
    };
    assert!(cause.to_string().contains("injected failure"));
    assert_eq!(failures.len(), 2);
    assert!(
        err.to_string().contains("run `fake-metadata uninstall`"),
        "{err}"
    );
    assert!(
        host.0.tagged(Family::V4).is_empty(),
        "the rule was still rolled back"
    );
}

#[test]
fn uninstall_removes_all_of_ours_and_only_ours() {
    let mut host = host_with_foreign_rules();
    install(&plan(1338, true), &mut host).unwrap();
    // A stale rule of ours with another port, as a crashed older version might leave.
    host.chain(Family::V4)
        .push(plan(9999, false).rules[0].listing());

    let report = uninstall(&mut host, true);
    assert!(report.changed());
    assert!(!report.has_failures());
    assert!(report.to_string().contains("local port 9999: removed"));
    assert_eq!(host.snapshot(), host_with_foreign_rules().snapshot());

    let again = uninstall(&mut host, true);
    assert!(!again.changed());
    assert_eq!(
        again.to_string(),
        "IPv4 nat OUTPUT rules tagged fake-metadata: not present, nothing to remove\n\
         IPv4 nat PREROUTING rules tagged fake-metadata: not present, nothing to remove\n\
         IPv4 filter INPUT rules tagged fake-metadata: not present, nothing to remove\n\
         IPv6 nat OUTPUT rules tagged fake-metadata: not present, nothing to remove\n\
         address 169.254.169.254/32 on lo: not present, nothing to remove\n\
         address 169.254.170.2/32 on lo: not present, nothing to remove\n\
         address 169.254.170.23/32 on lo: not present, nothing to remove\n\
         address fd00:ec2::254/128 on lo: not present, nothing to remove\n\
         address fd00:ec2::23/128 on lo: not present, nothing to remove"
    );
}

#[test]
fn uninstall_goes_on_past_errors_and_reports_them() {
    let mut host = host_with_foreign_rules();
    install(&plan(1338, true), &mut host).unwrap();
    host.calls.clear();
    host.fail = Some((Op::ListRules(Family::V4), 0));
    let report = uninstall(&mut host, true);
    assert!(report.has_failures());
    let text = report.to_string();
    assert!(
        text.contains("IPv4 nat OUTPUT rules tagged fake-metadata: FAILED: "),
        "{text}"
    );
    // Everything else still went.
    assert!(host.tagged(Family::V6).is_empty());
    assert!(host.addresses.is_empty());
    // The next run finishes the job.
    let report = uninstall(&mut host, true);
    assert!(!report.has_failures());
    assert!(host.tagged(Family::V4).is_empty());
}

#[test]
fn status_sees_missing_and_stale() {
    let mut host = FakeHost::default();
    let p = plan(1338, false);
    let s = status(&p, &mut host).unwrap();
    assert!(!s.in_place());
    assert_eq!(
        s.to_string(),
        "address 169.254.169.254/32 on lo: MISSING\n\
         IPv4 nat OUTPUT redirect 169.254.169.254/32 tcp/80 -> local port 1338: MISSING"
    );
    install(&p, &mut host).unwrap();
    assert!(status(&p, &mut host).unwrap().in_place());

    host.chain(Family::V4)
        .insert(0, plan(7, false).rules[0].listing());
    let s = status(&p, &mut host).unwrap();
    assert!(!s.in_place());
    assert_eq!(s.stale.len(), 1);
    assert!(s.to_string().contains("local port 7: STALE"));

    // status only reads.
    host.calls.clear();
    status(&plan(1338, true), &mut host).unwrap();
    assert!(
        host.calls
            .iter()
            .all(|op| matches!(op, Op::HasAddress | Op::ListRules(_)))
    );
}

fn admitted() -> Vec<InterfacePattern> {
    InterfacePattern::container_defaults()
}

fn containers(port: u16) -> Plan {
    plan(port, false).with_containers(&admitted(), &[])
}

/// Docker's nat PREROUTING jump and a foreign INPUT accept, as they are on a box with Docker.
fn host_with_docker() -> FakeHost {
    let mut host = host_with_foreign_rules();
    host.chain_of(Family::V4, NAT_PREROUTING)
        .push("-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".into());
    host.chain_of(Family::V4, FILTER_INPUT)
        .push("-A INPUT -i eth0 -j ACCEPT".into());
    host
}

#[test]
fn container_plan_adds_dnat_and_drops_in_their_chains() {
    let p = containers(1338);
    assert!(p.containers());
    assert_eq!(
        p.container_targets(),
        [(Endpoint::Imds, "169.254.169.254:1338".parse().unwrap())]
    );
    assert!(!plan(1338, true).containers());
    assert_eq!(plan(1338, true).container_targets(), []);
    let chains: Vec<String> = p.rules.iter().map(|r| r.chain.to_string()).collect();
    assert_eq!(
        chains,
        [
            "nat OUTPUT",
            "nat PREROUTING",
            "nat PREROUTING",
            "nat PREROUTING",
            "nat PREROUTING",
            "filter INPUT"
        ]
    );
    let text: Vec<String> = p.rules.iter().map(ToString::to_string).collect();
    assert_eq!(
        text[1..5],
        ["docker0", "br-+", "podman+", "cni+"].map(|i| format!(
            "IPv4 nat PREROUTING dnat 169.254.169.254/32 tcp/80 from {i} (containers) -> \
             169.254.169.254:1338"
        ))
    );
    assert_eq!(
        text[5],
        "IPv4 filter INPUT drop tcp to 169.254.169.254 from elsewhere (not lo, not via the dnat)"
    );
    assert_eq!(p.admitted(), ["docker0", "br-+", "podman+", "cni+"]);
    // Every rule of the plan sits in a chain the plan manages, and IPv6 has no container path.
    assert!(
        p.rules
            .iter()
            .all(|r| p.chains.contains(&(r.family, r.chain)))
    );
    let p6 = plan(1338, true).with_containers(&admitted(), &[]);
    assert!(
        p6.rules
            .iter()
            .all(|r| r.family == Family::V4 || r.chain == NAT_OUTPUT)
    );
    // A refused interface is one more drop, whatever the container patterns say.
    let lan = InterfacePattern::try_from("br-lan".to_string()).unwrap();
    let p = plan(1338, false).with_containers(&admitted(), &[lan]);
    assert_eq!(p.refused(), ["br-lan"]);
    assert!(
        p.rules.iter().any(|r| r.to_string()
            == "IPv4 filter INPUT drop tcp to 169.254.169.254 from br-lan (refused)")
    );
}

/// Issue 27, item 9: the container path is an allow-list. Every DNAT names a container
/// network, so a LAN uplink is never admitted, whatever it is called: a NIC, a host bridge
/// (`br0`), a bond, a VLAN, or any other name.
#[test]
fn the_lan_is_not_admitted_whatever_its_uplink_is_called() {
    let p = containers(1338);
    let dnats: Vec<&Rule> = p
        .rules
        .iter()
        .filter(|r| r.chain == NAT_PREROUTING)
        .collect();
    assert!(!dnats.is_empty());
    assert!(
        dnats.iter().all(|r| r.input_interface().is_some()),
        "a DNAT from any interface: {dnats:?}"
    );
    let admits = |name: &str| {
        p.admitted().iter().any(|pat| {
            InterfacePattern::try_from(pat.to_string())
                .unwrap()
                .matches(name)
        })
    };
    for uplink in [
        "eth0", "enp0s3", "ens5", "wlan0", "br0", "bond0", "eth0.10", "vlan10", "team0", "lan",
        "uplink", "bridge0", "virbr0",
    ] {
        assert!(!admits(uplink), "{uplink} is admitted");
    }
    for container_net in [
        "docker0",
        "br-1a2b3c4d5e6f",
        "podman0",
        "podman1",
        "cni0",
        "cni-podman0",
    ] {
        assert!(admits(container_net), "{container_net} is not admitted");
    }
    // Nothing but the DNAT'd container traffic and the box itself reaches the address.
    let drops: Vec<&Rule> = p.rules.iter().filter(|r| r.chain == FILTER_INPUT).collect();
    assert_eq!(drops.len(), 1);
    assert!(drops[0].args.windows(3).any(|w| w == ["!", "-i", "lo"]));
    assert!(!drops[0].args.iter().any(|a| a == "--dport"), "every port");
}

#[test]
fn container_rules_go_before_dockers_and_install_is_idempotent() {
    let mut host = host_with_docker();
    let first = install(&containers(1338), &mut host).unwrap();
    assert_eq!(
        first
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Added)
            .count(),
        7,
        "{first}"
    );
    let prerouting = &host.rules[&(Family::V4, NAT_PREROUTING)];
    assert_eq!(prerouting.len(), 5);
    assert!(
        prerouting[..4].iter().all(|r| r.contains("-j DNAT")),
        "ours first: {prerouting:?}"
    );
    let input = &host.rules[&(Family::V4, FILTER_INPUT)];
    assert_eq!(
        input.last().unwrap(),
        "-A INPUT -i eth0 -j ACCEPT",
        "our drops first"
    );
    let after_first = host.snapshot();

    let second = install(&containers(1338), &mut host).unwrap();
    assert!(!second.changed(), "{second}");
    assert_eq!(host.snapshot(), after_first);
    assert!(status(&containers(1338), &mut host).unwrap().in_place());

    // Docker restarting re-adds its jump at the top (or appends it): ours stay, one copy each,
    // and install leaves the order as it finds it.
    host.chain_of(Family::V4, NAT_PREROUTING)
        .retain(|l| !l.contains("DOCKER"));
    host.chain_of(Family::V4, NAT_PREROUTING).insert(
        0,
        "-A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER".into(),
    );
    let third = install(&containers(1338), &mut host).unwrap();
    assert!(!third.changed(), "{third}");
    assert_eq!(host.tagged_in(Family::V4, NAT_PREROUTING).len(), 4);
}

#[test]
fn turning_containers_off_or_a_new_port_replaces_the_container_rules() {
    let mut host = host_with_docker();
    install(&containers(1338), &mut host).unwrap();
    let moved = install(&containers(1444), &mut host).unwrap();
    assert!(
        moved.to_string().contains("-> 169.254.169.254:1444: added"),
        "{moved}"
    );
    assert!(
        moved
            .to_string()
            .contains("-> 169.254.169.254:1338: removed"),
        "{moved}"
    );
    assert!(
        host.tagged_in(Family::V4, NAT_PREROUTING)
            .iter()
            .all(|l| l.contains("169.254.169.254:1444"))
    );
    assert_eq!(host.tagged_in(Family::V4, FILTER_INPUT).len(), 1);

    let off = install(&plan(1444, false), &mut host).unwrap();
    assert_eq!(
        off.steps
            .iter()
            .filter(|s| s.outcome == Outcome::Removed)
            .count(),
        5
    );
    assert!(host.tagged_in(Family::V4, NAT_PREROUTING).is_empty());
    assert!(host.tagged_in(Family::V4, FILTER_INPUT).is_empty());
    assert_eq!(
        host.tagged(Family::V4).len(),
        1,
        "the box's own redirect stays"
    );
    // Docker's rules were never touched.
    assert_eq!(host.rules[&(Family::V4, NAT_PREROUTING)].len(), 1);
    assert_eq!(host.rules[&(Family::V4, FILTER_INPUT)].len(), 1);
}

/// The previous version's container rules (a DNAT from any interface, drops of the LAN's
/// NIC names): an upgrade's install replaces them, and uninstall sweeps them.
const PREVIOUS_CONTAINER_RULES: [(Chain, &str); 6] = [
    (
        NAT_PREROUTING,
        "-A PREROUTING -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m comment --comment \
         fake-metadata -j DNAT --to-destination 169.254.169.254:1338",
    ),
    (
        FILTER_INPUT,
        "-A INPUT -d 169.254.169.254/32 -i eth+ -p tcp -m tcp --dport 1338 -m comment \
         --comment fake-metadata -j DROP",
    ),
    (
        FILTER_INPUT,
        "-A INPUT -d 169.254.169.254/32 -i en+ -p tcp -m tcp --dport 1338 -m comment \
         --comment fake-metadata -j DROP",
    ),
    (
        FILTER_INPUT,
        "-A INPUT -d 169.254.169.254/32 -i wl+ -p tcp -m tcp --dport 1338 -m comment \
         --comment fake-metadata -j DROP",
    ),
    (
        FILTER_INPUT,
        "-A INPUT -d 169.254.169.254/32 -i ww+ -p tcp -m tcp --dport 1338 -m comment \
         --comment fake-metadata -j DROP",
    ),
    (
        FILTER_INPUT,
        "-A INPUT -d 169.254.169.254/32 ! -i lo -p tcp -m tcp --dport 1338 -m conntrack ! \
         --ctstate DNAT -m comment --comment fake-metadata -j DROP",
    ),
];

fn host_with_previous_version() -> FakeHost {
    let mut host = host_with_docker();
    install(&plan(1338, false), &mut host).unwrap();
    for (chain, line) in PREVIOUS_CONTAINER_RULES {
        host.chain_of(Family::V4, chain).insert(0, line.into());
    }
    host
}

#[test]
fn an_upgrade_replaces_the_previous_container_rules() {
    let mut host = host_with_previous_version();
    let s = status(&containers(1338), &mut host).unwrap();
    assert_eq!(s.stale.len(), 6, "{s}");
    assert!(
        s.to_string().contains(
            "IPv4 nat PREROUTING dnat 169.254.169.254/32 tcp/80 from any interface -> \
             169.254.169.254:1338: STALE"
        ),
        "{s}"
    );
    let report = install(&containers(1338), &mut host).unwrap();
    assert_eq!(
        report
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Removed)
            .count(),
        6,
        "{report}"
    );
    assert!(status(&containers(1338), &mut host).unwrap().in_place());
    for (chain, line) in PREVIOUS_CONTAINER_RULES {
        assert!(
            !host.rules[&(Family::V4, chain)].iter().any(|l| l == line),
            "{line}"
        );
    }

    let mut host = host_with_previous_version();
    let report = uninstall(&mut host, false);
    assert!(!report.has_failures(), "{report}");
    assert_eq!(host.snapshot(), host_with_docker().snapshot());
}

#[test]
fn a_failed_container_step_rolls_back_everything() {
    // Five rules to add (the four DNATs, the drop): fail each in turn.
    for nth in 0..6 {
        let mut host = host_with_docker();
        install(&plan(1338, false), &mut host).unwrap();
        let before = host.snapshot();
        host.calls.clear();
        host.fail = Some((Op::AddRule(Family::V4), nth));
        let result = install(&containers(1338), &mut host);
        if nth == 5 {
            assert!(result.is_ok(), "there is no sixth rule to add");
            continue;
        }
        assert!(result.is_err(), "failing add #{nth}");
        assert_eq!(host.snapshot(), before, "failing add #{nth}");
    }
}

#[test]
fn uninstall_sweeps_container_rules_whatever_the_config() {
    let mut host = host_with_docker();
    install(&containers(1338), &mut host).unwrap();
    let report = uninstall(&mut host, false);
    assert!(!report.has_failures(), "{report}");
    assert_eq!(
        report
            .steps
            .iter()
            .filter(|s| s.outcome == Outcome::Removed)
            .count(),
        7
    );
    assert_eq!(host.snapshot(), host_with_docker().snapshot());
}

#[test]
fn status_reports_the_container_rules() {
    let mut host = host_with_docker();
    install(&plan(1338, false), &mut host).unwrap();
    let s = status(&containers(1338), &mut host).unwrap();
    assert!(!s.in_place());
    let text = s.to_string();
    assert!(
        text.contains(
            "IPv4 nat PREROUTING dnat 169.254.169.254/32 tcp/80 from docker0 (containers) -> \
             169.254.169.254:1338: MISSING"
        ),
        "{text}"
    );
    install(&containers(1338), &mut host).unwrap();
    let s = status(&plan(1338, false), &mut host).unwrap();
    assert_eq!(
        s.stale.len(),
        5,
        "container rules are stale when the path is off"
    );
}
