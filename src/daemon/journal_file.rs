//! The journal's file (`[journal] file`): its entries as JSON lines, appended by a task that
//! reads the ring a few times a second, so a request never waits on the disk. What the ring
//! lost between two reads (a burst larger than it) is written as `{"missed":N}`. The file is
//! reopened on SIGHUP like the log file (logrotate).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use super::logging::LogFile;
use crate::snapshot::Published;

/// How often the ring is read.
const EVERY: Duration = Duration::from_millis(250);

/// Appends what the journal records to `file` until the task is dropped: every entry since
/// the start (not since this task's first turn, which may come after the first requests).
pub async fn write(file: Arc<LogFile>, published: Arc<Published>) {
    let mut next = 1;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = String::new();
    loop {
        tick.tick().await;
        let batch = published.journal.read_through_clears(next);
        next = batch.next;
        out.clear();
        batch.write_json_lines(&mut out);
        if !out.is_empty() {
            // One write under the file's lock: a reopen never splits a line.
            let _ = (&*file).write_all(out.as_bytes());
        }
    }
}
