//! `[imds]`: EC2's instance metadata options, by the same names and meanings. Each snapshot
//! applies them, so a reload does.

use serde::{Deserialize, Serialize};

use super::ruled::Ruled;
use crate::imds::Generation;

/// `[imds]` as the file spells it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub(super) struct RawImds {
    http_endpoint: Toggle,
    pub(super) http_tokens: HttpTokens,
    http_put_response_hop_limit: HopLimit,
    pub(super) http_protocol_ipv6: Toggle,
    instance_metadata_tags: Toggle,
    /// `nitro` | `xen`: how refusals look (empty, or an XHTML page under HTTP/1.0) and the
    /// `system` category; unset, the instance type's family decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) generation: Option<Generation>,
}

impl Default for RawImds {
    fn default() -> Self {
        RawImds {
            http_endpoint: Toggle::Enabled,
            // cloud-init in a Vagrant box speaks IMDSv1 only, so `required` must not be default.
            http_tokens: HttpTokens::Optional,
            http_put_response_hop_limit: HopLimit(1),
            http_protocol_ipv6: Toggle::Disabled,
            instance_metadata_tags: Toggle::Disabled,
            generation: None,
        }
    }
}

/// The checked `[imds]`, with the generation decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Imds {
    http_endpoint: Toggle,
    http_tokens: HttpTokens,
    http_put_response_hop_limit: HopLimit,
    http_protocol_ipv6: Toggle,
    instance_metadata_tags: Toggle,
    generation: Ruled<Generation>,
}

impl Imds {
    /// Resolves the generation: configured, else `instance_type`'s.
    pub(super) fn resolve(raw: RawImds, instance_type: &str) -> Imds {
        Imds {
            http_endpoint: raw.http_endpoint,
            http_tokens: raw.http_tokens,
            http_put_response_hop_limit: raw.http_put_response_hop_limit,
            http_protocol_ipv6: raw.http_protocol_ipv6,
            instance_metadata_tags: raw.instance_metadata_tags,
            generation: Ruled::new(raw.generation, || {
                Generation::of_instance_type(instance_type)
            }),
        }
    }

    /// The form `print-config` shows: the generation only when the file sets it.
    pub(super) fn to_raw(&self) -> RawImds {
        RawImds {
            http_endpoint: self.http_endpoint,
            http_tokens: self.http_tokens,
            http_put_response_hop_limit: self.http_put_response_hop_limit,
            http_protocol_ipv6: self.http_protocol_ipv6,
            instance_metadata_tags: self.instance_metadata_tags,
            generation: self.generation.written(),
        }
    }

    /// Takes IMDSv1 or not (the `--http-tokens` flag).
    pub(super) fn set_http_tokens(&mut self, t: HttpTokens) {
        self.http_tokens = t;
    }

    pub fn http_endpoint(&self) -> Toggle {
        self.http_endpoint
    }

    pub fn http_tokens(&self) -> HttpTokens {
        self.http_tokens
    }

    pub fn http_put_response_hop_limit(&self) -> HopLimit {
        self.http_put_response_hop_limit
    }

    pub fn http_protocol_ipv6(&self) -> Toggle {
        self.http_protocol_ipv6
    }

    pub fn instance_metadata_tags(&self) -> Toggle {
        self.instance_metadata_tags
    }

    /// The IMDS generation served: `generation`, else the instance type's.
    pub fn generation(&self) -> Generation {
        *self.generation.get()
    }
}

super::restart::applied_on_reload!(Imds);

/// `enabled` | `disabled`, as EC2 spells its switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Toggle {
    Enabled,
    Disabled,
}

impl Toggle {
    pub fn is_enabled(self) -> bool {
        self == Toggle::Enabled
    }
}

/// `optional` (IMDSv1 and v2) | `required` (IMDSv2 only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HttpTokens {
    Optional,
    Required,
}

impl std::str::FromStr for HttpTokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "optional" => Ok(HttpTokens::Optional),
            "required" => Ok(HttpTokens::Required),
            _ => Err(format!("`{s}` is not `optional` or `required`")),
        }
    }
}

/// The IP TTL of a token reply: 1..=64, as on EC2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct HopLimit(u8);

impl HopLimit {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<i64> for HopLimit {
    type Error = String;
    fn try_from(v: i64) -> Result<Self, String> {
        match v {
            1..=64 => Ok(HopLimit(v as u8)),
            _ => Err(format!("hop limit {v} is out of range: EC2 allows 1 to 64")),
        }
    }
}

impl From<HopLimit> for i64 {
    fn from(h: HopLimit) -> i64 {
        h.0.into()
    }
}
