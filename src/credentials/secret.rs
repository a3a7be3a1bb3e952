//! [`Secret`]: a string that never shows itself. Keys and tokens live only in this type (and in
//! the rendered JSON bodies the tree serves), so a stray `{:?}`, a log line or `print-config`
//! cannot leak them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What `Debug`, `Display` and `Serialize` print instead of the value.
pub const REDACTED: &str = "<redacted>";

/// A secret string (an access key id, a secret key, a session token).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself: only for rendering the credentials documents.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// At most the first four characters (`ASIA…`), enough to tell key ids apart in a log
    /// line without revealing them.
    pub fn hint(&self) -> String {
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…")
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// `print-config` shows `"<redacted>"`; that placeholder is refused when read back (see
/// [`Deserialize`]) so a printed config is never mistaken for the real keys.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s == REDACTED {
            return Err(serde::de::Error::custom(
                "`<redacted>` is the placeholder `print-config` shows: put the real value here",
            ));
        }
        if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            // Never echo the value: it is a secret even when it is malformed.
            return Err(serde::de::Error::custom(
                "a key or token must be non-empty, without spaces or control characters",
            ));
        }
        Ok(Secret(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_shows_the_value() {
        let s = Secret::new("ASIAVERYSECRET");
        assert_eq!(format!("{s}"), REDACTED);
        assert_eq!(format!("{s:?}"), REDACTED);
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"<redacted>\"");
        assert_eq!(s.hint(), "ASIA…");
        assert_eq!(s.expose(), "ASIAVERYSECRET");
    }
}
