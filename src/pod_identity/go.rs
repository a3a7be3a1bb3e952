//! What the agent's bytes look like because it is written in Go: `encoding/json`'s string
//! escaping, `time.RFC3339Nano`, `net/http`'s `ServeMux` path cleaning and redirect page, and
//! how `internal/validation/request.go` reads the `Host`. Each function says which Go code it
//! follows (Go 1.26, the agent's `.go-version` at d4dc0f3).

use std::borrow::Cow;
use std::time::SystemTime;

use time::OffsetDateTime;

/// Appends `s` as a JSON string the way `encoding/json.Marshal` writes it (HTML escaping on):
/// `"` `\` and the control characters escaped (`\b \f \n \r \t` by name since Go 1.22,
/// others as `\u00XX`), `<` `>` `&` and U+2028/U+2029 as `\uXXXX`, lower-case hex.
pub fn json_string(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&') => {
                let b = c as u8;
                out.push_str("\\u00");
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `t` as Go's `time.RFC3339Nano` formats a UTC time (`2006-01-02T15:04:05.999999999Z07:00`):
/// the fraction without trailing zeros, no dot when it is zero, `Z` for UTC.
pub fn rfc3339_nano(t: SystemTime) -> String {
    let t = OffsetDateTime::from(t);
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = t.nanosecond();
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// `net/http`'s `cleanPath`: a leading `/`, `path.Clean` (no `.`, `..` or empty segments),
/// the trailing `/` kept. Borrowed when `p` is already clean (every real request).
pub fn clean_path(p: &str) -> Cow<'_, str> {
    if is_clean(p) {
        return Cow::Borrowed(p);
    }
    let rooted: Cow<'_, str> = if p.starts_with('/') {
        Cow::Borrowed(p)
    } else {
        Cow::Owned(format!("/{p}"))
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(rooted.len());
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    // The root, or the trailing `/` kept.
    if out.is_empty() || rooted.ends_with('/') {
        out.push('/');
    }
    Cow::Owned(out)
}

/// Whether `cleanPath` leaves `p` as it is.
fn is_clean(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let body = rest.strip_suffix('/').unwrap_or(rest);
    !body.is_empty()
        && body
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
}

/// Whether the escaped path `p` is `want` once each `%XX` is decoded (Go's `ServeMux` matches
/// a pattern's literal segments against the unescaped segments). No allocation.
pub fn path_is(p: &str, want: &str) -> bool {
    let (p, want) = (p.as_bytes(), want.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < p.len() {
        let b = if p[i] == b'%' {
            match (
                p.get(i + 1).copied().and_then(hex_val),
                p.get(i + 2).copied().and_then(hex_val),
            ) {
                (Some(h), Some(l)) => {
                    i += 3;
                    // An escaped `/` is part of a segment, never a separator.
                    let b = h << 4 | l;
                    if b == b'/' {
                        return false;
                    }
                    b
                }
                _ => return false,
            }
        } else {
            i += 1;
            p[i - 1]
        };
        if want.get(j) != Some(&b) {
            return false;
        }
        j += 1;
    }
    j == want.len()
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The host the agent compares with its addresses (`validateRequestTargetHost`): the host
/// part when `net.SplitHostPort` accepts `h`, else `h`; then one pair of brackets removed.
pub fn target_host(h: &str) -> &str {
    let h = split_host_port(h).unwrap_or(h);
    if h.len() > 1 && h.starts_with('[') && h.ends_with(']') {
        &h[1..h.len() - 1]
    } else {
        h
    }
}

/// The host of `host:port` or `[host]:port` as `net.SplitHostPort` splits it; `None` where
/// it returns an error (no port, too many colons, stray brackets).
fn split_host_port(h: &str) -> Option<&str> {
    let i = h.rfind(':')?;
    let (host, j, k) = if h.starts_with('[') {
        // The first `]` must come just before the last `:`.
        let end = h.find(']')?;
        if end + 1 != i {
            return None;
        }
        (&h[1..end], 1, end + 1)
    } else {
        let host = &h[..i];
        if host.contains(':') {
            return None;
        }
        (host, 0, 0)
    };
    if h[j..].contains('[') || h[k..].contains(']') {
        return None;
    }
    Some(host)
}

/// `html.EscapeString`-like escaping `http.Redirect` applies to the URL in its page
/// (`htmlReplacer`: `&` `<` `>` `"` `'`).
pub fn html_escape(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `http.Redirect`'s `hexEscapeNonASCII`: each byte ≥ 0x80 of the `Location` as `%XX`.
pub fn hex_escape_non_ascii(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b < 0x80 {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn json_strings_are_escaped_as_go_escapes_them() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c<d>e&f\u{1}\n\t\u{8}\u{c}\u{2028}é/+=");
        assert_eq!(
            s,
            r#""a\"b\\c\u003cd\u003ee\u0026f\u0001\n\t\b\f\u2028é/+=""#
        );
    }

    /// `pkg/credentials/model_test.go`'s time and what `RFC3339Nano` does with zeros.
    #[test]
    fn times_are_rfc3339_nano_in_utc() {
        // 1996-03-27T07:45:23.123456789Z
        let t = UNIX_EPOCH + Duration::new(827_912_723, 123_456_789);
        assert_eq!(rfc3339_nano(t), "1996-03-27T07:45:23.123456789Z");
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::new(827_912_723, 120_000_000)),
            "1996-03-27T07:45:23.12Z"
        );
        assert_eq!(
            rfc3339_nano(UNIX_EPOCH + Duration::from_secs(827_912_723)),
            "1996-03-27T07:45:23Z"
        );
    }

    #[test]
    fn paths_are_cleaned_as_servemux_cleans_them() {
        for (p, want) in [
            ("/v1/credentials", "/v1/credentials"),
            ("/", "/"),
            ("", "/"),
            ("v1/credentials", "/v1/credentials"),
            ("/v1//credentials", "/v1/credentials"),
            ("//v1/credentials", "/v1/credentials"),
            ("/v1/./credentials", "/v1/credentials"),
            ("/v1/x/../credentials", "/v1/credentials"),
            ("/v1/credentials/", "/v1/credentials/"),
            ("/v1/credentials/.", "/v1/credentials"),
            ("/v1/credentials/..", "/v1"),
            ("/../..", "/"),
            ("*", "/*"),
        ] {
            assert_eq!(clean_path(p), want, "{p}");
        }
        assert!(matches!(clean_path("/v1/credentials"), Cow::Borrowed(_)));
    }

    #[test]
    fn escaped_segments_match_unescaped() {
        assert!(path_is("/v1/credentials", "/v1/credentials"));
        assert!(path_is("/v1/%63redentials", "/v1/credentials"));
        assert!(path_is("/v1/credential%73", "/v1/credentials"));
        assert!(!path_is("/v1%2fcredentials", "/v1/credentials"));
        assert!(!path_is("/v1/credentials%", "/v1/credentials"));
        assert!(!path_is("/v1/credentials/", "/v1/credentials"));
        assert!(!path_is("/v1/credential", "/v1/credentials"));
    }

    /// `internal/validation/request_test.go`'s hosts, and `net.SplitHostPort`'s refusals.
    #[test]
    fn hosts_are_read_as_the_agent_reads_them() {
        for (h, want) in [
            ("169.254.170.23", "169.254.170.23"),
            ("169.254.170.23:80", "169.254.170.23"),
            ("fd00:ec2::23", "fd00:ec2::23"),
            ("[fd00:ec2::23]", "fd00:ec2::23"),
            ("[fd00:ec2::23]:4213", "fd00:ec2::23"),
            ("127.0.0.1:24432", "127.0.0.1"),
            ("localhost", "localhost"),
            ("", ""),
            ("[]", ""),
            ("[x]y:1", "[x]y:1"),
        ] {
            assert_eq!(target_host(h), want, "{h}");
        }
    }

    #[test]
    fn redirect_urls_are_escaped() {
        assert_eq!(
            html_escape("/a?b=1&c='\"<>"),
            "/a?b=1&amp;c=&#39;&#34;&lt;&gt;"
        );
        assert_eq!(hex_escape_non_ascii("/é"), "/%C3%A9");
    }
}
