//! JSON as the agent's Go writes it (`encoding/json`'s `Marshal`): compact, no trailing
//! newline, `<`, `>`, `&`, U+2028 and U+2029 escaped as `\u003c`… (Go's HTML-safe default),
//! other control characters as serde_json escapes them (`\n`, `\b`, `\u001f`, as Go ≥ 1.22
//! does), whole floats without a fraction (`2`, not `2.0`), times as RFC 3339 with
//! nanoseconds and trailing zeros dropped (`time.Time`'s `MarshalJSON`).

use std::io;
use std::time::SystemTime;

use bytes::Bytes;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;

/// serde_json's compact formatter plus Go's HTML-safe escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(escaped.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// `value` as Go's `json.Marshal` writes it.
pub fn to_go_vec<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut ser)
        .expect("the agent's documents always serialize");
    out
}

/// `value` as Go's `json.Marshal` writes it, ready to serve.
pub fn to_go<T: Serialize + ?Sized>(value: &T) -> Bytes {
    Bytes::from(to_go_vec(value))
}

/// A Go `float64` field: whole values without a fraction, as Go prints them.
pub fn go_float<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

/// An optional Go `float64` (a `*float64` with `omitempty`: skip when `None`).
pub fn go_float_opt<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => go_float(v, s),
        None => s.serialize_none(),
    }
}

/// A Go `time.Time` as its `MarshalJSON` writes it (`time.RFC3339Nano`, in UTC as the agent
/// converts every time it serves).
pub fn go_time(t: SystemTime) -> String {
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

/// A `time.Time` field.
pub fn go_time_field<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&go_time(*t))
}

/// A `*time.Time` field with `omitempty`.
pub fn go_time_opt<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => go_time_field(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn writes_as_go_does() {
        assert_eq!(
            to_go_vec("a<b>&c\u{2028}\"\n\u{1}é"),
            b"\"a\\u003cb\\u003e\\u0026c\\u2028\\\"\\n\\u0001\xc3\xa9\""
        );
        #[derive(Serialize)]
        struct F {
            #[serde(serialize_with = "go_float")]
            a: f64,
            #[serde(serialize_with = "go_float")]
            b: f64,
        }
        assert_eq!(to_go_vec(&F { a: 2.0, b: 0.25 }), br#"{"a":2,"b":0.25}"#);
        let t = UNIX_EPOCH + Duration::from_secs(1_714_557_600);
        assert_eq!(go_time(t), "2024-05-01T10:00:00Z");
        assert_eq!(
            go_time(t + Duration::from_nanos(123_456_780)),
            "2024-05-01T10:00:00.12345678Z"
        );
        assert_eq!(
            go_time(t + Duration::from_millis(500)),
            "2024-05-01T10:00:00.5Z"
        );
    }
}
