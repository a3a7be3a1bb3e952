//! EC2's JSON style. IMDS documents are printed the way Jackson's default pretty printer does
//! it: `"Key" : value`, objects indented by two spaces, arrays inline as `[ "a", "b" ]`
//! (`[]` when empty). This is a `serde_json` formatter, so any `Serialize` value prints in it.

use std::io;

use serde::Serialize;
use serde_json::ser::Formatter;

/// Serializes `value` in EC2's pretty style.
pub fn to_ec2_string<T: Serialize + ?Sized>(value: &T) -> String {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Ec2Formatter::default());
    value
        .serialize(&mut ser)
        .expect("serializing to memory cannot fail");
    String::from_utf8(out).expect("serde_json writes UTF-8")
}

/// Jackson-like layout; only objects add indentation.
#[derive(Default)]
struct Ec2Formatter {
    depth: usize,
    /// Whether the innermost open container has had a value.
    has_value: Vec<bool>,
}

impl Ec2Formatter {
    fn newline<W: ?Sized + io::Write>(&self, w: &mut W) -> io::Result<()> {
        w.write_all(b"\n")?;
        for _ in 0..self.depth {
            w.write_all(b"  ")?;
        }
        Ok(())
    }
}

impl Formatter for Ec2Formatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.has_value.push(false);
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        if self.has_value.pop() == Some(true) {
            w.write_all(b" ]")
        } else {
            w.write_all(b"]")
        }
    }

    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if let Some(h) = self.has_value.last_mut() {
            *h = true;
        }
        w.write_all(if first { b" " } else { b", " })
    }

    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth += 1;
        self.has_value.push(false);
        w.write_all(b"{")
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.depth -= 1;
        if self.has_value.pop() == Some(true) {
            self.newline(w)?;
            w.write_all(b"}")
        } else {
            w.write_all(b" }")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if let Some(h) = self.has_value.last_mut() {
            *h = true;
        }
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b" : ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_arrays_and_nesting_look_like_ec2() {
        let v = json!({"Code": "Success", "n": 1, "none": null, "list": ["a", "b"], "empty": []});
        assert_eq!(
            to_ec2_string(&v),
            "{\n  \"Code\" : \"Success\",\n  \"empty\" : [],\n  \"list\" : [ \"a\", \"b\" ],\n  \"n\" : 1,\n  \"none\" : null\n}"
        );
        let events = json!([{"Code": "system-reboot", "State": "active"}]);
        assert_eq!(
            to_ec2_string(&events),
            "[ {\n  \"Code\" : \"system-reboot\",\n  \"State\" : \"active\"\n} ]"
        );
        assert_eq!(to_ec2_string(&json!([])), "[]");
    }
}
