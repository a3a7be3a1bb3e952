//! Generated credentials: random, but shaped like EC2's, so clients that check the shape (key
//! id prefix, lengths, token encoding) accept them. They authenticate nothing on real AWS.

use base64::Engine as _;

use super::config::Keys;
use super::secret::Secret;

const UPPER_ALNUM: &[u8; 36] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRET_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
/// EC2 session tokens are base64 of a binary blob that opens with these bytes (so they all
/// start `IQoJb3JpZ2luX2Vj`); 12 bytes keep the base64 prefix stable.
const TOKEN_HEAD: &[u8; 12] = b"!\n\torigin_ec";
/// Random bytes after the head: gives a token of about 1 000 characters, like EC2's.
const TOKEN_BODY: usize = 744;

/// A fresh temporary set: `ASIA` + 16 upper-case alphanumerics, a 40-character secret and a
/// long session token, all from the operating system's CSPRNG.
pub fn keys() -> Result<Keys, getrandom::Error> {
    let mut token = TOKEN_HEAD.to_vec();
    token.resize(TOKEN_HEAD.len() + TOKEN_BODY, 0);
    getrandom::fill(&mut token[TOKEN_HEAD.len()..])?;
    Ok(Keys {
        access_key_id: Secret::new(format!("ASIA{}", pick(UPPER_ALNUM, 16)?)),
        secret_access_key: Secret::new(pick(SECRET_CHARS, 40)?),
        session_token: Some(Secret::new(
            base64::engine::general_purpose::STANDARD.encode(token),
        )),
    })
}

/// `n` characters drawn uniformly from `alphabet` (rejection sampling, so no modulo bias).
fn pick(alphabet: &[u8], n: usize) -> Result<String, getrandom::Error> {
    let limit = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        getrandom::fill(&mut buf)?;
        for &b in buf.iter().filter(|&&b| usize::from(b) < limit) {
            if out.len() == n {
                break;
            }
            out.push(char::from(alphabet[usize::from(b) % alphabet.len()]));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_match_ec2() {
        let a = keys().unwrap();
        let b = keys().unwrap();
        let id = a.access_key_id.expose();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("ASIA"));
        assert!(
            id[4..]
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        );
        let secret = a.secret_access_key.expose();
        assert_eq!(secret.len(), 40);
        assert!(secret.bytes().all(|c| SECRET_CHARS.contains(&c)));
        let token = a.session_token.as_ref().unwrap().expose();
        assert!(token.starts_with("IQoJb3JpZ2luX2Vj"), "{token}");
        assert!(token.len() > 1000, "{}", token.len());
        assert_ne!(a, b);
    }
}
