//! The link-local services the daemon answers as. An EC2 host has several: the instance
//! metadata service at `169.254.169.254` (and `fd00:ec2::254`), and for its containers the
//! ECS agent's endpoints and EKS Pod Identity. Each is an [`Endpoint`]: a listener knows which
//! one it serves, the snapshot holds each one's part, the interception plan routes each one's
//! addresses, a fault is scoped to one. Adding a service starts with a variant here.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// One link-local service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Endpoint {
    /// The instance metadata service (IMDS).
    Imds,
    /// The ECS agent's endpoints for tasks: credentials (`/v2/credentials/<id>`) and task
    /// metadata (`/v3/<id>`, `/v4/<id>`).
    Ecs,
    /// EKS Pod Identity's agent: `/v1/credentials` with the pod's token.
    PodIdentity,
}

/// The IMDS address programs connect to.
pub const IMDS_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The IMDS IPv6 address (Nitro instances).
pub const IMDS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);
/// The ECS agent's address for task credentials and metadata.
pub const ECS_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The EKS Pod Identity agent's address.
pub const POD_IDENTITY_V4: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 23);
/// The EKS Pod Identity agent's IPv6 address.
pub const POD_IDENTITY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x23);

impl Endpoint {
    /// Every endpoint, in the order `status` and the interception plan list them.
    pub const ALL: [Endpoint; 3] = [Endpoint::Imds, Endpoint::Ecs, Endpoint::PodIdentity];

    /// The name used in the config file, `ctl` flags and logs.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Imds => "imds",
            Endpoint::Ecs => "ecs",
            Endpoint::PodIdentity => "pod-identity",
        }
    }

    /// The IPv4 address clients connect to.
    pub fn ipv4(self) -> Ipv4Addr {
        match self {
            Endpoint::Imds => IMDS_V4,
            Endpoint::Ecs => ECS_V4,
            Endpoint::PodIdentity => POD_IDENTITY_V4,
        }
    }

    /// The IPv6 address clients connect to, where EC2 has one.
    pub fn ipv6(self) -> Option<Ipv6Addr> {
        match self {
            Endpoint::Imds => Some(IMDS_V6),
            // The ECS agent listens on IPv4 only (tasks in `awsvpc` IPv6-only mode reach it
            // through the same IPv4 link-local route).
            Endpoint::Ecs => None,
            Endpoint::PodIdentity => Some(POD_IDENTITY_V6),
        }
    }

    /// The port clients connect to.
    pub fn port(self) -> u16 {
        match self {
            Endpoint::Imds | Endpoint::Ecs | Endpoint::PodIdentity => 80,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An endpoint name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown endpoint `{0}` (known: {known})", known = Endpoint::ALL.map(Endpoint::name).join(", "))]
pub struct UnknownEndpoint(pub String);

impl std::str::FromStr for Endpoint {
    type Err = UnknownEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::ALL
            .into_iter()
            .find(|e| e.name() == s)
            .ok_or_else(|| UnknownEndpoint(s.to_owned()))
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_what_is_known() {
        for e in Endpoint::ALL {
            assert_eq!(e.name().parse::<Endpoint>(), Ok(e));
        }
        let err = "ecs-agent".parse::<Endpoint>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown endpoint `ecs-agent` (known: imds, ecs, pod-identity)"
        );
    }
}
