//! IMDS's credential documents, rendered from the one [`CredentialSet`]: the role's under
//! `meta-data/iam/` (with a role), the instance identity credentials under
//! `meta-data/identity-credentials/ec2/`. Another endpoint renders its own documents from the
//! same set, so that every one serves the same keys at every rotation.

use serde::Serialize;

use crate::credentials::{CredentialSet, Issued, RoleCredentials, Unavailable, ec2_time};
use crate::metadata::json::to_ec2_string;

/// The leaves to serve, as (path below the version root, body): the role's documents when
/// there is a role (`-extended` too when `extended`, `[iam] extended-credentials`), then the
/// instance identity credentials once issued. The role's credentials are under
/// `meta-data/iam/security-credentials/<role>` only, so any other role name is a 404.
pub fn leaves(set: &CredentialSet, extended: bool) -> Vec<(String, String)> {
    let mut leaves = Vec::new();
    if let Some(role) = &set.role {
        let [info, creds, ext] = role_leaves(role, &set.account_id);
        leaves.extend([info, creds]);
        if extended {
            leaves.push(ext);
        }
    }
    if let Some(id) = &set.identity {
        leaves.push((
            "meta-data/identity-credentials/ec2/info".into(),
            to_ec2_string(&IdentityInfoDoc {
                code: SUCCESS,
                last_updated: ec2_time(id.issued),
                account_id: &set.account_id,
            }),
        ));
        leaves.push((
            "meta-data/identity-credentials/ec2/security-credentials/ec2-instance".into(),
            to_ec2_string(&CredentialsDoc::of(id)),
        ));
    }
    leaves
}

/// `iam/info`, `iam/security-credentials/<role>` and its `-extended` twin.
fn role_leaves(role: &RoleCredentials, account_id: &str) -> [(String, String); 3] {
    let (info, creds, extended) = match &role.set {
        Ok(set) => (
            to_ec2_string(&InfoDoc {
                code: SUCCESS,
                last_updated: ec2_time(set.issued),
                instance_profile_arn: &role.instance_profile_arn,
                instance_profile_id: role.instance_profile_id.as_str(),
            }),
            to_ec2_string(&CredentialsDoc::of(set)),
            to_ec2_string(&ExtendedDoc {
                base: CredentialsDoc::of(set),
                account_id,
            }),
        ),
        // A failure reads the same on every path.
        Err(why) => {
            let doc = to_ec2_string(&FailureDoc::of(why));
            (doc.clone(), doc.clone(), doc)
        }
    };
    let name = &role.name;
    [
        ("meta-data/iam/info".to_string(), info),
        (format!("meta-data/iam/security-credentials/{name}"), creds),
        // What the newer SDKs ask first: the same set, from the same snapshot, plus the
        // account.
        (
            format!("meta-data/iam/security-credentials-extended/{name}"),
            extended,
        ),
    ]
}

/// The `Code` of a valid set's documents.
const SUCCESS: &str = "Success";

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct InfoDoc<'a> {
    code: &'a str,
    last_updated: String,
    instance_profile_arn: &'a str,
    instance_profile_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct CredentialsDoc<'a> {
    code: &'a str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    token: &'a str,
    expiration: String,
}

impl<'a> CredentialsDoc<'a> {
    fn of(set: &'a Issued) -> Self {
        CredentialsDoc {
            code: SUCCESS,
            last_updated: ec2_time(set.issued),
            kind: "AWS-HMAC",
            access_key_id: set.keys.access_key_id.expose(),
            secret_access_key: set.keys.secret_access_key.expose(),
            token: set.keys.session_token.as_ref().map_or("", |t| t.expose()),
            expiration: ec2_time(set.expires),
        }
    }
}

/// The `security-credentials-extended/<role>` document: the same fields, then `AccountId`
/// (no capture of a real one was found; the SDKs read it by name).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExtendedDoc<'a> {
    #[serde(flatten)]
    base: CredentialsDoc<'a>,
    account_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct FailureDoc<'a> {
    code: &'a str,
    message: &'a str,
    last_updated: String,
}

impl<'a> FailureDoc<'a> {
    fn of(why: &'a Unavailable) -> Self {
        FailureDoc {
            code: why.code,
            message: &why.message,
            last_updated: ec2_time(why.since),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct IdentityInfoDoc<'a> {
    code: &'a str,
    last_updated: String,
    account_id: &'a str,
}
