//! Pod Identity's part of the snapshot: each `[[pod]]`'s replies rendered once from its role's
//! credentials (see `crate::pod_identity`), under the token the box's secret gives its
//! service account.

use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::capability::BoxSecret;
use crate::config::{Config, Pod};
use crate::credentials::{CredentialSet, Workload};
use crate::pod_identity::{self, Options, PodInput};

/// The part for `pods`, each with its role's credentials from `creds` (keyed by the service
/// account, `NAMESPACE/NAME`; a pod without an entry is answered as having none yet) and its
/// token `secret.pod_token(service account)`. The `AccountId` is `[instance] account-id`.
/// A `Host` of loopback is accepted too, so the daemon answers at its own port as well; a
/// real client only ever reaches it through `169.254.170.23`, so what it sees is unchanged.
pub fn part(
    pods: &[Pod],
    creds: &CredentialSet,
    secret: &BoxSecret,
    config: &Config,
    now: SystemTime,
) -> pod_identity::Part {
    let inputs: Vec<PodInput<'_>> = pods
        .iter()
        .map(|p| {
            let sa = p.service_account().to_string();
            PodInput {
                token: secret.pod_token(&sa),
                credentials: creds.workloads.get(&Workload::Pod(sa.clone())),
                service_account: sa,
            }
        })
        .collect();
    pod_identity::Part::build(
        &inputs,
        config.instance().account_id().as_str(),
        &Options {
            loopback_hosts: true,
            request_id: request_id(now),
        },
    )
}

/// A UUID-shaped request id for EKS Auth's refusals, new with each snapshot (from the time
/// it was built: nothing secret goes into it).
fn request_id(now: SystemTime) -> String {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let d = Sha256::digest(nanos.to_le_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;
    use crate::credentials::{InstanceProfileId, Issued, Keys, RoleCredentials, RoleName, Secret};
    use crate::pod_identity::{Outcome, Request, respond};

    fn creds(id: &str) -> RoleCredentials {
        RoleCredentials {
            name: RoleName::try_from("r".to_string()).unwrap(),
            instance_profile_arn: "arn:aws:iam::210987654321:instance-profile/r".into(),
            instance_profile_id: InstanceProfileId::try_from("AIPAXFAKEMETADATA0001".to_string())
                .unwrap(),
            set: Ok(Issued {
                keys: Keys {
                    access_key_id: Secret::new(id),
                    secret_access_key: Secret::new("s"),
                    session_token: Some(Secret::new("t")),
                },
                issued: UNIX_EPOCH,
                expires: UNIX_EPOCH + Duration::from_secs(3600),
            }),
        }
    }

    /// Each pod answers to the token the box's secret derives for its service account, with
    /// its own role's keys and the instance's account.
    #[test]
    fn each_pod_answers_to_its_derived_token() {
        let config = Config::from_toml(
            "[instance]\naccount-id = \"210987654321\"\n\
             [[pod]]\nservice-account = \"a/web\"\nrole = \"web\"\n\
             [[pod]]\nservice-account = \"b/batch\"\nrole = \"batch\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        let secret = BoxSecret::from_bytes([7; 32]);
        let creds = CredentialSet {
            workloads: std::collections::BTreeMap::from([
                (Workload::Pod("a/web".into()), creds("ASIAWEB")),
                (Workload::Pod("b/batch".into()), creds("ASIABATCH")),
            ]),
            ..CredentialSet::default()
        };
        let now = UNIX_EPOCH + Duration::from_secs(1000);
        let part = part(config.pods(), &creds, &secret, &config, now);
        let ask = |token: &str| {
            let r = respond(
                &part,
                &Request {
                    method: &http::Method::GET,
                    path: pod_identity::PATH,
                    query: None,
                    host: Some(b"169.254.170.23"),
                    authorization: Some(token.as_bytes()),
                },
            );
            (
                r.outcome.to_string(),
                String::from_utf8(r.body.to_vec()).unwrap(),
            )
        };
        let (outcome, body) = ask(&secret.pod_token("a/web"));
        assert_eq!(outcome, "credentials for a/web");
        assert!(body.starts_with("{\"AccessKeyId\":\"ASIAWEB\","), "{body}");
        assert!(body.contains("\"AccountId\":\"210987654321\""), "{body}");
        let (outcome, body) = ask(&secret.pod_token("b/batch"));
        assert_eq!(outcome, "credentials for b/batch");
        assert!(body.contains("ASIABATCH"), "{body}");
        // Another box's token for the same service account is refused.
        let other = BoxSecret::from_bytes([8; 32]).pod_token("a/web");
        assert_eq!(ask(&other).0, "refused: malformed token");
        // Reached at the daemon's own port.
        let r = respond(
            &part,
            &Request {
                method: &http::Method::GET,
                path: pod_identity::PATH,
                query: None,
                host: Some(b"127.0.0.1:1340"),
                authorization: Some(secret.pod_token("a/web").as_bytes()),
            },
        );
        assert_eq!(r.outcome, Outcome::Credentials("a/web"));
    }

    #[test]
    fn request_ids_are_uuids_that_change_with_time() {
        let a = request_id(UNIX_EPOCH + Duration::from_secs(1));
        let b = request_id(UNIX_EPOCH + Duration::from_secs(2));
        assert_ne!(a, b);
        assert_eq!(a, request_id(UNIX_EPOCH + Duration::from_secs(1)));
        let parts: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(parts, [8, 4, 4, 4, 12], "{a}");
        assert_eq!(&a[14..15], "4", "{a}");
    }
}
