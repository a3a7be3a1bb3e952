//! The scenario's vocabulary: spot actions, event codes and states, Auto Scaling lifecycle
//! states, event ids, and the maintenance event a change adds, each as EC2 writes it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Moment;

macro_rules! names {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $text)] $variant),+
        }

        impl $name {
            /// Every value, as written.
            pub const ALL: &[&str] = &[$($text),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        concat!("`{}` is not a valid ", stringify!($name), ": use one of {}"),
                        s,
                        Self::ALL.join(", ")
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names!(
    /// What a spot interruption does.
    SpotAction {
        Terminate = "terminate",
        Stop = "stop",
        Hibernate = "hibernate",
    }
);
names!(
    /// A scheduled event's `Code`.
    EventCode {
        InstanceReboot = "instance-reboot",
        SystemReboot = "system-reboot",
        SystemMaintenance = "system-maintenance",
        InstanceRetirement = "instance-retirement",
        InstanceStop = "instance-stop",
    }
);
names!(
    /// A scheduled event's `State`.
    EventState {
        Active = "active",
        Completed = "completed",
        Canceled = "canceled",
    }
);
names!(
    /// `autoscaling/target-lifecycle-state`.
    AsgState {
        Detached = "Detached",
        InService = "InService",
        Standby = "Standby",
        Terminated = "Terminated",
        WarmedHibernated = "Warmed:Hibernated",
        WarmedRunning = "Warmed:Running",
        WarmedStopped = "Warmed:Stopped",
        WarmedTerminated = "Warmed:Terminated",
    }
);

impl EventCode {
    /// The description EC2 gives such an event when none is set.
    pub fn default_description(self) -> &'static str {
        match self {
            EventCode::InstanceReboot => "The instance is scheduled for a reboot",
            EventCode::SystemReboot => "scheduled reboot",
            EventCode::SystemMaintenance => "scheduled maintenance",
            EventCode::InstanceRetirement => "The instance is scheduled for retirement",
            EventCode::InstanceStop => "The instance is scheduled for a stop",
        }
    }
}

/// `instance-event-` and 17 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EventId(pub(super) String);

impl EventId {
    const PREFIX: &str = "instance-event-";

    /// A fresh random id.
    pub fn random() -> EventId {
        let mut b = [0u8; 9];
        getrandom::fill(&mut b).expect("the OS random source is available");
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        EventId(format!("{}{}", Self::PREFIX, &hex[..17]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for EventId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == 17 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if ok {
            Ok(EventId(s))
        } else {
            Err(format!(
                "`{s}` is not an event id: expected `instance-event-` and 17 lower-case hex digits"
            ))
        }
    }
}

impl FromStr for EventId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventId::try_from(s.to_string())
    }
}

impl From<EventId> for String {
    fn from(v: EventId) -> String {
        v.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A maintenance event to add. Relative times count from when it is added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct EventSpec {
    pub code: EventCode,
    /// Given, or made up when the change is accepted (so `ctl` can print it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<EventId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<EventState>,
    /// Default: when the event is added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<Moment>,
    /// Default: two hours after `not-before`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<Moment>,
    /// Default: none (the key is left out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before_deadline: Option<Moment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}
