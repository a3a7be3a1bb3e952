//! Where the daemon's lines go: journald (structured fields) when systemd connected us to the
//! journal, else stderr; and, when configured, a file that SIGHUP reopens so logrotate can
//! rename it. A file that cannot be written is reported once and the daemon keeps serving.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Environment variable that overrides `[log] level`.
pub const LEVEL_ENV: &str = "FAKE_METADATA_LOG";

/// A log file that can be reopened in place.
#[derive(Debug)]
pub struct LogFile {
    what: (&'static str, &'static str),
    path: PathBuf,
    file: Mutex<FileState>,
    /// Whether this process created the file (then it may give it to the user it becomes).
    created: AtomicBool,
}

#[derive(Debug)]
struct FileState {
    file: Option<File>,
    /// Set once a failure was reported, so a full disk does not flood the journal.
    failing: bool,
}

impl LogFile {
    /// A file at `path`, not opened yet ([`LogFile::reopen`] opens it). `what`: what it is,
    /// and what happens while it cannot be opened, for the error.
    pub fn new(path: &Path, what: (&'static str, &'static str)) -> Arc<LogFile> {
        Arc::new(LogFile {
            what,
            path: path.to_path_buf(),
            file: Mutex::new(FileState {
                file: None,
                failing: false,
            }),
            created: AtomicBool::new(false),
        })
    }

    /// Closes and reopens the file (after logrotate renamed it).
    pub fn reopen(&self) -> bool {
        let existed = self.path.exists();
        let opened = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path);
        let mut st = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match opened {
            Ok(f) => {
                self.created.store(!existed, Ordering::Relaxed);
                st.file = Some(f);
                st.failing = false;
                true
            }
            Err(e) => {
                st.file = None;
                if !st.failing {
                    st.failing = true;
                    drop(st);
                    tracing::error!(path = %self.path.display(), error = %e,
                        "cannot open the {}; {} until it can be reopened (SIGHUP)", self.what.0, self.what.1);
                }
                false
            }
        }
    }

    /// What the file is ("log file", "journal file").
    pub fn what(&self) -> &'static str {
        self.what.0
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Gives the file to `uid`/`gid` if this process created it: a daemon started as root
    /// opens its log before it drops to the service user, and must still be able to reopen
    /// it on SIGHUP afterwards. A file that was there before keeps its owner.
    pub fn hand_over(&self, uid: u32, gid: u32) -> io::Result<()> {
        if !self.created.load(Ordering::Relaxed) {
            return Ok(());
        }
        let st = self.file.lock().unwrap_or_else(|p| p.into_inner());
        match st.file.as_ref() {
            // The open file itself, not the path: nothing can be swapped in between.
            Some(f) => std::os::unix::fs::fchown(f, Some(uid), Some(gid)),
            None => Ok(()),
        }
    }
}

/// Each log record is one write into the file, under the lock (so a reopen never splits it).
impl Write for &LogFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = st.file.as_mut() {
            if let Err(e) = f.write_all(buf) {
                if !st.failing {
                    st.failing = true;
                    // Said on stderr, not through tracing: we are inside a log call.
                    eprintln!(
                        "fake-metadata: cannot write the {} {}: {e}; keeping on serving",
                        self.what.0,
                        self.path.display()
                    );
                }
            } else {
                st.failing = false;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A log record written as exactly one line: a control character inside it (a newline in a
/// value someone gave the daemon) is written escaped (`\n`, `\x1b`), so no value can start
/// a line of its own. Only the record's final newline stays; ANSI escapes stay when `ansi`
/// (the colours of a terminal), and tabs always.
#[derive(Debug)]
pub struct OneLine<W> {
    inner: W,
    ansi: bool,
}

impl<W> OneLine<W> {
    pub fn new(inner: W, ansi: bool) -> Self {
        OneLine { inner, ansi }
    }

    fn escapes(&self, b: u8) -> bool {
        (b.is_ascii_control() && b != b'\t' && !(self.ansi && b == 0x1b)) || b == 0x7f
    }
}

impl<W: Write> Write for OneLine<W> {
    /// The formatter hands each record over in one call; it is escaped whole.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (body, end) = match buf.strip_suffix(b"\n") {
            Some(body) => (body, &b"\n"[..]),
            None => (buf, &b""[..]),
        };
        if !body.iter().any(|&b| self.escapes(b)) {
            self.inner.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut line = Vec::with_capacity(buf.len() + 16);
        for &b in body {
            match b {
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b if self.escapes(b) => line.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
                b => line.push(b),
            }
        }
        line.extend_from_slice(end);
        self.inner.write_all(&line)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The log file as a writer the formatter can make per record.
struct FileWriter(Arc<LogFile>);

impl Write for FileWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&*self.0).flush()
    }
}

/// Installs the global subscriber. `level` is the config's filter (the environment wins).
pub fn init(level: &str, file: Option<&Path>) -> Option<Arc<LogFile>> {
    // `Targets` (a level, or `target=level` pairs) rather than `EnvFilter`, whose directive
    // parser compiles regexes: a few hundred KiB of code and heap, and time, at every start.
    let parse = |s: &str| s.parse::<Targets>().ok();
    let configured =
        parse(level).unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let chosen = std::env::var(LEVEL_ENV)
        .ok()
        .and_then(|v| parse(&v))
        .unwrap_or(configured);
    let filter = || chosen.clone();
    // systemd sets JOURNAL_STREAM when our stderr is the journal; only then write natively.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .and_then(|_| tracing_journald::layer().ok())
        .map(|l| l.with_syslog_identifier("fake-metadata".into()));
    let stderr = journald.is_none().then(|| {
        let ansi = io::IsTerminal::is_terminal(&io::stderr());
        tracing_subscriber::fmt::layer()
            .with_writer(move || OneLine::new(io::stderr(), ansi))
            .with_ansi(ansi)
            .with_target(false)
    });
    let logfile = file.map(|p| LogFile::new(p, ("log file", "logging to the journal/stderr only")));
    let file_layer = logfile.clone().map(|lf| {
        tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_target(false)
            .with_writer(move || OneLine::new(FileWriter(lf.clone()), false))
            .with_filter(filter())
    });
    let _ = tracing_subscriber::registry()
        .with(journald.map(|l| l.with_filter(filter())))
        .with(stderr.map(|l| l.with_filter(filter())))
        .with(file_layer)
        .try_init();
    // Opened after the subscriber exists, so a failure to open is itself logged.
    if let Some(lf) = &logfile {
        lf.reopen();
    }
    logfile
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::OneLine;

    fn written(record: &[u8], ansi: bool) -> String {
        let mut out = Vec::new();
        let mut w = OneLine::new(&mut out, ansi);
        assert_eq!(w.write(record).unwrap(), record.len());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_value_cannot_start_a_log_line() {
        let forged =
            b"INFO fault fault-1 started: drop on any method meta-data/x\nERROR forged\r\n";
        assert_eq!(
            written(forged, false),
            "INFO fault fault-1 started: drop on any method meta-data/x\\nERROR forged\\r\n"
        );
        assert_eq!(
            written(b"a\x1b[2Jb\tc\x7f\n", false),
            "a\\x1b[2Jb\tc\\x7f\n"
        );
        // A terminal keeps its colours; a plain record goes through as it is.
        assert_eq!(
            written(b"\x1b[32mINFO\x1b[0m x\n", true),
            "\x1b[32mINFO\x1b[0m x\n"
        );
        assert_eq!(written(b"plain line\n", false), "plain line\n");
    }
}
