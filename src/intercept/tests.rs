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

/// The kernel as two lists: addresses on lo, and `-S` lines per family.
#[derive(Default)]
struct FakeHost {
    addresses: Vec<LoAddress>,
    rules: BTreeMap<Family, Vec<String>>,
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
        self.rules.entry(family).or_default()
    }

    /// Everything observable, for "the host is as it was".
    fn snapshot(&self) -> (Vec<LoAddress>, BTreeMap<Family, Vec<String>>) {
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
        let tag = format!("--comment {TAG} ");
        self.rules
            .get(&family)
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

    fn list_rules(&mut self, family: Family) -> Result<Vec<String>, InterceptError> {
        self.call(Op::ListRules(family))?;
        let mut lines = vec!["-P OUTPUT ACCEPT".to_string()];
        lines.extend(self.chain(family).iter().cloned());
        Ok(lines)
    }

    fn add_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        self.call(Op::AddRule(rule.family))?;
        self.chain(rule.family).push(rule.listing());
        Ok(())
    }

    fn delete_rule(&mut self, rule: &Rule) -> Result<(), InterceptError> {
        self.call(Op::DeleteRule(rule.family))?;
        let line = rule.listing();
        let chain = self.chain(rule.family);
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

fn plan(port: u16, ipv6: bool) -> Plan {
    Plan::new(port, ipv6).unwrap()
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
        Plan::new(0, false),
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

    let chain = &host.rules[&Family::V4];
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
    assert_eq!(host.rules[&Family::V4], vec![want]);
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
        fn list_rules(&mut self, f: Family) -> Result<Vec<String>, InterceptError> {
            self.0.list_rules(f)
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
         IPv6 nat OUTPUT rules tagged fake-metadata: not present, nothing to remove\n\
         address 169.254.169.254/32 on lo: not present, nothing to remove\n\
         address fd00:ec2::254/128 on lo: not present, nothing to remove"
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
