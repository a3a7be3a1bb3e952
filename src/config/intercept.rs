//! `[intercept]`: what `fake-metadata install` routes to the daemon besides the box's own
//! connections. `install` applies it and the daemon binds the containers' listener at start,
//! so a change needs both again.

use serde::{Deserialize, Serialize};

use super::Reload;
use crate::intercept::InterfacePattern;

/// `[intercept]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawIntercept {
    /// Route IMDS (169.254.169.254, and fd00:ec2::254 with `http-protocol-ipv6`).
    imds: bool,
    /// Route the ECS agent's endpoints (169.254.170.2), for tasks' credentials and metadata.
    ecs: bool,
    /// Route EKS Pod Identity (169.254.170.23, and fd00:ec2::23 with `http-protocol-ipv6`).
    pod_identity: bool,
    /// Containers on the container networks (Docker, compose, podman, k3s's and other CNI
    /// bridges, kind; LXC, libvirt and others through `container-interfaces`) reach
    /// 169.254.169.254 through the box, as on EC2, where the token reply's hop limit
    /// decides IMDSv2 for them. `false` keeps them out: they then get no metadata at all (use
    /// it when they must not see this box's identity and credentials, or when another
    /// metadata proxy serves them).
    containers: bool,
    /// Container networks whose connections reach the daemon, besides the defaults
    /// (`docker0`, `br-+`, `podman+`, `cni+`; iptables names, `+` = any suffix): e.g. `cbr0`
    /// (kubenet), `lxcbr0`, `virbr+`, `veth+` (containers routed without a bridge). Traffic
    /// from any other interface (the LAN, whatever its uplink is called) is dropped.
    container_interfaces: Vec<InterfacePattern>,
    /// Interfaces whose traffic never reaches the daemon, even if a container pattern matches
    /// them (a LAN bridge named `br-lan`). Default: none, the allow-list above keeps the LAN
    /// out. (Before the allow-list, this listed the LAN's NIC names; such a list still works.)
    lan_interfaces: Vec<InterfacePattern>,
}

impl Default for RawIntercept {
    fn default() -> Self {
        RawIntercept {
            imds: true,
            ecs: true,
            pod_identity: true,
            containers: true,
            container_interfaces: Vec::new(),
            lan_interfaces: Vec::new(),
        }
    }
}

/// The checked `[intercept]`, with the container networks admitted worked out.
#[derive(Debug, Clone, PartialEq)]
pub struct Intercept {
    imds: bool,
    ecs: bool,
    pod_identity: bool,
    containers: bool,
    container_interfaces: Vec<InterfacePattern>,
    admitted: Vec<InterfacePattern>,
    lan_interfaces: Vec<InterfacePattern>,
}

impl Intercept {
    pub(super) fn resolve(raw: RawIntercept) -> Intercept {
        // The defaults, then the configured ones not already among them.
        let mut admitted = InterfacePattern::container_defaults();
        for p in &raw.container_interfaces {
            if !admitted.contains(p) {
                admitted.push(p.clone());
            }
        }
        Intercept {
            imds: raw.imds,
            ecs: raw.ecs,
            pod_identity: raw.pod_identity,
            containers: raw.containers,
            container_interfaces: raw.container_interfaces,
            admitted,
            lan_interfaces: raw.lan_interfaces,
        }
    }

    pub(super) fn to_raw(&self) -> RawIntercept {
        RawIntercept {
            imds: self.imds,
            ecs: self.ecs,
            pod_identity: self.pod_identity,
            containers: self.containers,
            container_interfaces: self.container_interfaces.clone(),
            lan_interfaces: self.lan_interfaces.clone(),
        }
    }

    /// Whether `install` routes `endpoint`'s addresses to the daemon (off: not one address
    /// or rule of it).
    pub fn routes(&self, endpoint: crate::endpoint::Endpoint) -> bool {
        use crate::endpoint::Endpoint;
        match endpoint {
            Endpoint::Imds => self.imds,
            Endpoint::Ecs => self.ecs,
            Endpoint::PodIdentity => self.pod_identity,
        }
    }

    /// Whether containers reach the daemon at all.
    pub fn containers(&self) -> bool {
        self.containers
    }

    /// The container networks admitted: the defaults, then the configured ones.
    pub fn admitted(&self) -> &[InterfacePattern] {
        &self.admitted
    }

    /// Interfaces refused even when a container pattern matches them.
    pub fn lan_interfaces(&self) -> &[InterfacePattern] {
        &self.lan_interfaces
    }
}

impl Default for Intercept {
    fn default() -> Self {
        Intercept::resolve(RawIntercept::default())
    }
}

/// `install` puts the rules in place, and the daemon binds the containers' listener at start.
impl Reload for Intercept {
    fn needs_restart(&self, new: &Self) -> Vec<&'static str> {
        super::restart::if_changed(
            self,
            new,
            "config reload: [intercept] changed; run `fake-metadata install` and restart the \
             daemon to apply that",
        )
    }
}
