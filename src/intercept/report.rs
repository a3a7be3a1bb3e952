//! What install/uninstall did, step by step, for people (Display) and for exit codes
//! (`changed`, `has_failures`).

use std::fmt;

use super::rule::{Chain, Family, LoAddress, Rule, TAG};

/// A kernel object we manage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Address(LoAddress),
    Rule(Rule),
    /// All rules of one family and chain carrying our tag (uninstall, when listing them
    /// failed or found none).
    TaggedRules(Family, Chain),
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Address(addr) => write!(f, "address {addr} on lo"),
            Item::Rule(rule) => write!(f, "{rule}"),
            Item::TaggedRules(family, chain) => write!(f, "{family} {chain} rules tagged {TAG}"),
        }
    }
}

/// What happened to one item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Added,
    AlreadyPresent,
    Removed,
    /// Uninstall found nothing to remove.
    Absent,
    /// The step failed; the message is the error's one line.
    Failed(String),
}

impl Outcome {
    fn changed(&self) -> bool {
        matches!(self, Outcome::Added | Outcome::Removed)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Added => f.write_str("added"),
            Outcome::AlreadyPresent => f.write_str("already present"),
            Outcome::Removed => f.write_str("removed"),
            Outcome::Absent => f.write_str("not present, nothing to remove"),
            Outcome::Failed(message) => write!(f, "FAILED: {message}"),
        }
    }
}

/// One line of a report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    pub item: Item,
    pub outcome: Outcome,
}

/// The steps of one install or uninstall, in the order they ran.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub steps: Vec<Step>,
}

impl Report {
    pub(super) fn push(&mut self, item: Item, outcome: Outcome) {
        self.steps.push(Step { item, outcome });
    }

    /// True if anything in the kernel was added or removed.
    pub fn changed(&self) -> bool {
        self.steps.iter().any(|s| s.outcome.changed())
    }

    /// True if any step failed (uninstall goes on past failures; install never returns a
    /// report with one).
    pub fn has_failures(&self) -> bool {
        self.steps
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Failed(_)))
    }
}

impl fmt::Display for Report {
    /// One line per step, "address 169.254.169.254/32 on lo: added"; "nothing to do" if empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.steps.is_empty() {
            return f.write_str("nothing to do");
        }
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{}: {}", step.item, step.outcome)?;
        }
        Ok(())
    }
}
