//! Container logs as a CRI runtime writes them (`<RFC3339Nano> <stream> F <line>`, one file
//! per container run under `<ns>_<pod>_<uid>/<container>/<restartCount>.log`, as in
//! /var/log/pods), which kwok serves to the apiserver, and the termination message the
//! kubelet cuts from them under `terminationMessagePolicy: FallbackToLogsOnError`.

use std::io::Write;
use std::path::{Path, PathBuf};

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// At most this many of the last log lines become a termination message...
pub const MESSAGE_LINES: usize = 80;
/// ...and at most this many bytes of them (the end is kept).
pub const MESSAGE_BYTES: usize = 2048;

/// The log file of one container run.
pub fn run_file(
    dir: &Path,
    ns: &str,
    pod: &str,
    uid: &str,
    container: &str,
    restart: i32,
) -> PathBuf {
    dir.join(format!("{ns}_{pod}_{uid}"))
        .join(container)
        .join(format!("{restart}.log"))
}

/// One line in CRI format.
pub fn cri_line(stream: &str, text: &str) -> String {
    let now = jiff::Timestamp::now();
    format!(
        "{} {stream} F {text}\n",
        now.strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
    )
}

/// Copies a process's output stream into the run's log file, a CRI line per line.
pub async fn copy_stream(stream: impl AsyncRead + Unpin, name: &'static str, file: PathBuf) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let entry = cri_line(name, &line);
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&file)
            .and_then(|mut f| f.write_all(entry.as_bytes()));
        if let Err(e) = written {
            eprintln!("kubelet: writing {}: {e}", file.display());
        }
    }
}

/// The text of a CRI log (timestamps and stream tags removed).
pub fn text_of(cri: &str) -> String {
    cri.lines()
        .map(|l| {
            let mut parts = l.splitn(4, ' ');
            let (_ts, _stream, _tag) = (parts.next(), parts.next(), parts.next());
            parts.next().unwrap_or_default()
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The termination message from a run's log: the last 80 lines, at most their last 2 KiB.
pub fn termination_tail(cri: &str) -> String {
    let text = text_of(cri);
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let tail: String = lines[lines.len().saturating_sub(MESSAGE_LINES)..].concat();
    if tail.len() <= MESSAGE_BYTES {
        return tail;
    }
    let mut cut = tail.len() - MESSAGE_BYTES;
    while !tail.is_char_boundary(cut) {
        cut += 1;
    }
    tail[cut..].to_owned()
}
