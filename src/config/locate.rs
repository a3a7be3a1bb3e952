//! Where a problem is in a config file: `FILE:LINE:COL`. A value the parser refuses carries
//! its own span; a problem found later (one that spans several keys, a user-data file that
//! cannot be read) is located at the key it blames, found by its path in the parsed
//! document's spans, so two keys of the same name in different tables are never confused.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One problem in a configuration file, located where it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl Located {
    /// A problem at byte `offset` of `text`.
    pub fn at(file: &Path, text: &str, offset: usize, message: String) -> Located {
        let (line, col) = line_col(text, offset);
        Located {
            file: file.to_path_buf(),
            line,
            col,
            message,
        }
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.message
        )
    }
}

/// The spans of a parsed file, to locate problems found after deserializing it.
pub struct Spans<'t> {
    text: &'t str,
    file: &'t Path,
    root: Option<Spanned<DeTable<'t>>>,
}

impl<'t> Spans<'t> {
    pub fn new(text: &'t str, file: &'t Path) -> Spans<'t> {
        Spans {
            text,
            file,
            root: DeTable::parse(text).ok(),
        }
    }

    /// The span of the key at `path` (table names, then the key), if the file writes it.
    /// Inside an array of tables the first table that has the key counts.
    pub fn key(&self, path: &[&str]) -> Option<Range<usize>> {
        let (last, tables) = path.split_last()?;
        let mut table = self.root.as_ref()?.get_ref();
        for name in tables {
            table = match table.get(*name).map(|v| v.get_ref())? {
                DeValue::Table(t) => t,
                DeValue::Array(a) => a.iter().find_map(|v| match v.get_ref() {
                    DeValue::Table(t) if t.contains_key(*last) => Some(t),
                    _ => None,
                })?,
                _ => return None,
            };
        }
        table.get_key_value(*last).map(|(k, _)| k.span())
    }

    /// Where the `index`th table of the array of tables `array` (`[[pod]]`) writes `key`
    /// (the message left empty); `None` if it does not.
    pub fn in_array(&self, array: &str, index: usize, key: &str) -> Option<Located> {
        let (table, _) = self.array_table(array, index)?;
        let (k, _) = table.get_key_value(key)?;
        Some(Located::at(
            self.file,
            self.text,
            k.span().start,
            String::new(),
        ))
    }

    /// A problem blamed on `key` in the `index`th table of `array`, or on that table when it
    /// does not write the key (the file's start if there is no such table).
    pub fn blame_in_array(&self, array: &str, index: usize, key: &str, message: String) -> Located {
        let offset = self.array_table(array, index).map_or(0, |(table, span)| {
            table
                .get_key_value(key)
                .map_or(span.start, |(k, _)| k.span().start)
        });
        Located::at(self.file, self.text, offset, message)
    }

    fn array_table(&self, array: &str, index: usize) -> Option<(&DeTable<'t>, Range<usize>)> {
        let root = self.root.as_ref()?.get_ref();
        match root.get(array)?.get_ref() {
            DeValue::Array(a) => {
                let v = a.get(index)?;
                match v.get_ref() {
                    DeValue::Table(t) => Some((t, v.span())),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// A problem blamed on the key at `path` (the file's start if it is not written there).
    pub fn blame(&self, path: &[&str], message: String) -> Located {
        let offset = self.key(path).map_or(0, |s| s.start);
        Located::at(self.file, self.text, offset, message)
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_by_their_table_not_their_name() {
        let text = "[log]\nfile = \"/var/log/x\"\n\n[user-data]\n  file = \"/nope\"\n";
        let s = Spans::new(text, Path::new("c.toml"));
        assert_eq!(
            s.blame(&["user-data", "file"], "m".into()).to_string(),
            "c.toml:5:3: m"
        );
        assert_eq!(s.blame(&["log", "file"], "m".into()).line, 2);
        let dotted = "instance.region = \"eu-west-1\"\n";
        let s = Spans::new(dotted, Path::new("c.toml"));
        assert_eq!(s.blame(&["instance", "region"], "m".into()).col, 10);
        assert_eq!(s.blame(&["instance", "absent"], "m".into()).line, 1);
    }
}
