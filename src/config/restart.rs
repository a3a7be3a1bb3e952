//! What a reload (SIGHUP) cannot apply. Most sections go into the next snapshot; those the
//! daemon uses only while it starts (the sockets it binds, its logging) say so here, and the
//! daemon's reload logs each line instead of keeping its own list.

/// A section of the config, and what of a change to it only a restart applies.
pub trait Reload {
    /// Each part of the change from `self` to `new` that a reload cannot apply, as the line
    /// the daemon logs; empty when the next snapshot applies all of it.
    fn needs_restart(&self, new: &Self) -> Vec<&'static str>;
}

/// A section the next snapshot applies whole.
macro_rules! applied_on_reload {
    ($($t:ty),* $(,)?) => {$(
        impl $crate::config::Reload for $t {
            fn needs_restart(&self, _new: &Self) -> Vec<&'static str> {
                Vec::new()
            }
        }
    )*};
}
pub(super) use applied_on_reload;

/// The one line when `old` and `new` differ.
pub(super) fn if_changed<T: PartialEq + ?Sized>(
    old: &T,
    new: &T,
    line: &'static str,
) -> Vec<&'static str> {
    if old == new { Vec::new() } else { vec![line] }
}
