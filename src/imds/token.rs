//! IMDSv2 session tokens, stateless: a token carries its own expiry, sealed with an
//! HMAC-SHA256 under a key made at process start. Nothing is stored per token, so memory does
//! not grow with tokens; tokens survive config reloads but not a restart (as on EC2, where a
//! token is bound to the instance).

use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// EC2's bounds on a token's lifetime, in seconds.
pub const TTL_MIN: u32 = 1;
pub const TTL_MAX: u32 = 21_600;

const VERSION: u8 = 1;
/// version (1) + expiry in ms (8) + nonce (8).
const PAYLOAD: usize = 17;
/// Truncated tag: 17 + 25 = 42 bytes, which is 56 base64 characters, the size EC2's are.
const TAG: usize = 25;
const RAW: usize = PAYLOAD + TAG;
/// Length of a token as text.
pub const TOKEN_LEN: usize = RAW / 3 * 4;

/// Issues and verifies tokens.
pub struct TokenAuthority {
    /// Keyed once; each use clones the keyed state instead of re-hashing the key.
    mac: Hmac<Sha256>,
    nonce: AtomicU64,
}

impl std::fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuthority { key: <redacted> }")
    }
}

impl TokenAuthority {
    /// An authority with a fresh random key.
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS random source is available");
        Self::with_key(&key)
    }

    /// An authority with a given key (tests).
    pub fn with_key(key: &[u8]) -> Self {
        let mut seed = [0u8; 8];
        getrandom::fill(&mut seed).expect("the OS random source is available");
        TokenAuthority {
            mac: Hmac::new_from_slice(key).expect("HMAC takes any key length"),
            nonce: AtomicU64::new(u64::from_le_bytes(seed)),
        }
    }

    /// Another instance's authority, keyed from this one's key and `label` (a view's name):
    /// the same label gives the same key (its tokens outlive a reload), and a token one
    /// issues the other refuses, as tokens are per instance.
    pub fn derive(&self, label: &str) -> TokenAuthority {
        let mut key = self.mac.clone();
        key.update(b"fake-metadata view\0");
        key.update(label.as_bytes());
        Self::with_key(&key.finalize().into_bytes())
    }

    /// A token valid for `ttl` seconds from `now_ms`.
    pub fn issue(&self, now_ms: u64, ttl: u32) -> String {
        let mut raw = [0u8; RAW];
        raw[0] = VERSION;
        raw[1..9].copy_from_slice(&(now_ms + u64::from(ttl) * 1000).to_be_bytes());
        raw[9..17].copy_from_slice(&self.nonce.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let tag = self.tag(&raw[..PAYLOAD]);
        raw[PAYLOAD..].copy_from_slice(&tag[..TAG]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The seconds a token has left (rounded up), or `None` if it is forged, malformed or
    /// expired.
    pub fn verify(&self, token: &[u8], now_ms: u64) -> Option<u32> {
        if token.len() != TOKEN_LEN {
            return None;
        }
        let mut raw = [0u8; RAW];
        if URL_SAFE_NO_PAD.decode_slice(token, &mut raw).ok()? != RAW || raw[0] != VERSION {
            return None;
        }
        let mut mac = self.mac.clone();
        mac.update(&raw[..PAYLOAD]);
        mac.verify_truncated_left(&raw[PAYLOAD..]).ok()?;
        let expiry = u64::from_be_bytes(raw[1..9].try_into().ok()?);
        let left = expiry.checked_sub(now_ms).filter(|&ms| ms > 0)?;
        Some(left.div_ceil(1000) as u32)
    }

    fn tag(&self, payload: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }
}

/// Parses the `X-aws-ec2-metadata-token-ttl-seconds` value of a PUT: a decimal integer in
/// 1..=21600, nothing else.
pub fn parse_ttl(v: &[u8]) -> Option<u32> {
    if v.is_empty() || v.len() > 5 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u32 = std::str::from_utf8(v).ok()?.parse().ok()?;
    (TTL_MIN..=TTL_MAX).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_767_323_045_000;

    #[test]
    fn a_token_lives_exactly_its_ttl() {
        let a = TokenAuthority::with_key(b"k");
        let t = a.issue(T0, 21_600);
        assert_eq!(t.len(), 56);
        assert!(
            t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_eq!(a.verify(t.as_bytes(), T0), Some(21_600));
        assert_eq!(a.verify(t.as_bytes(), T0 + 1), Some(21_600));
        assert_eq!(a.verify(t.as_bytes(), T0 + 21_599_001), Some(1));
        assert_eq!(a.verify(t.as_bytes(), T0 + 21_600_000), None);
    }

    #[test]
    fn forged_or_foreign_tokens_fail() {
        let a = TokenAuthority::with_key(b"k");
        let b = TokenAuthority::with_key(b"other");
        let t = a.issue(T0, 60);
        assert_eq!(b.verify(t.as_bytes(), T0), None);
        let mut bad = t.clone().into_bytes();
        bad[5] = if bad[5] == b'A' { b'B' } else { b'A' };
        assert_eq!(a.verify(&bad, T0), None);
        assert_eq!(a.verify(b"", T0), None);
        assert_eq!(a.verify(&[b'='; 56], T0), None);
        assert_ne!(a.issue(T0, 60), a.issue(T0, 60), "two tokens differ");
    }

    #[test]
    fn a_derived_authority_is_another_instance_and_stable() {
        let a = TokenAuthority::with_key(b"k");
        let (x, x2, y) = (a.derive("x"), a.derive("x"), a.derive("y"));
        let t = x.issue(T0, 60);
        assert_eq!(
            x2.verify(t.as_bytes(), T0),
            Some(60),
            "the same view, rebuilt"
        );
        assert_eq!(y.verify(t.as_bytes(), T0), None, "another view");
        assert_eq!(a.verify(t.as_bytes(), T0), None, "the box");
        assert_eq!(x.verify(a.issue(T0, 60).as_bytes(), T0), None);
    }

    #[test]
    fn ttl_header_rules() {
        assert_eq!(parse_ttl(b"21600"), Some(21_600));
        assert_eq!(parse_ttl(b"1"), Some(1));
        for bad in [
            &b""[..],
            b"0",
            b"21601",
            b"-1",
            b" 60",
            b"60s",
            b"999999",
            b"1e3",
        ] {
            assert_eq!(parse_ttl(bad), None, "{bad:?}");
        }
    }
}
