//! A value the file may leave to a rule (a default, another key, this machine): held
//! resolved, with whether the file wrote it, so that `print-config` shows what was written
//! and no more where the rule is not worth printing.

/// A resolved value, and whether the file wrote it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Ruled<T> {
    value: T,
    written: bool,
}

impl<T> Ruled<T> {
    /// What the file wrote, else what `rule` makes.
    pub(super) fn new(written: Option<T>, rule: impl FnOnce() -> T) -> Ruled<T> {
        match written {
            Some(value) => Ruled {
                value,
                written: true,
            },
            None => Ruled {
                value: rule(),
                written: false,
            },
        }
    }

    pub(super) fn get(&self) -> &T {
        &self.value
    }
}

impl<T: Clone> Ruled<T> {
    /// The value as the file wrote it; `None` when the rule made it.
    pub(super) fn written(&self) -> Option<T> {
        self.written.then(|| self.value.clone())
    }
}

impl<T: Clone> Ruled<Vec<T>> {
    /// A list the file writes as empty when it leaves it to the rule.
    pub(super) fn list(written: Vec<T>, rule: impl FnOnce() -> Vec<T>) -> Ruled<Vec<T>> {
        Ruled::new((!written.is_empty()).then_some(written), rule)
    }

    /// The list as the file wrote it; empty when the rule made it.
    pub(super) fn written_list(&self) -> Vec<T> {
        self.written().unwrap_or_default()
    }
}
