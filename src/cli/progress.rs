//! The progress report every long command uses (`send`, `fetch --from/--to`, `subscriber
//! import`, `db copy`). A leaf: it imports no command module.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::Arc;

/// Progress of a long command-line job: on a terminal, an indicatif bar with the rate and the
/// time left; otherwise (a log file, systemd, a pipe) a quiet `tracing` line every 5 seconds or
/// every tenth of the way, and one at the end. Cheap to clone and to `inc` from any thread.
///
/// Every long command uses it: `progress(len, "sending digests")`, then `inc(1)` per item
/// and `finish()` at the end.
#[derive(Clone)]
pub struct Progress {
    inner: Arc<ProgressInner>,
}

struct ProgressInner {
    what: &'static str,
    /// `Some` on a terminal.
    bar: Option<ProgressBar>,
    len: std::sync::atomic::AtomicU64,
    done: std::sync::atomic::AtomicU64,
    started: std::time::Instant,
    /// When the last log line was written and at which tenth (log mode only).
    last_log: std::sync::Mutex<(std::time::Instant, u64)>,
}

/// How often, at most, the log mode writes a line when tenths come slowly.
const PROGRESS_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A progress report for `len` items of `what` ("sending digests", "importing subscribers").
pub fn progress(len: u64, what: &'static str) -> Progress {
    use std::io::IsTerminal;
    let on_terminal = std::io::stderr().is_terminal();
    progress_to(len, what, on_terminal)
}

fn progress_to(len: u64, what: &'static str, on_terminal: bool) -> Progress {
    let bar = on_terminal.then(|| {
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what);
        bar
    });
    let now = std::time::Instant::now();
    Progress {
        inner: Arc::new(ProgressInner {
            what,
            bar,
            len: len.into(),
            done: 0.into(),
            started: now,
            last_log: std::sync::Mutex::new((now, 0)),
        }),
    }
}

impl Progress {
    /// `n` more items done.
    pub fn inc(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let done = self.inner.done.fetch_add(n, Ordering::Relaxed) + n;
        if let Some(bar) = &self.inner.bar {
            bar.inc(n);
            return;
        }
        let len = self.inner.len.load(Ordering::Relaxed);
        let tenth = (done * 10).checked_div(len).unwrap_or(0);
        let Ok(mut last) = self.inner.last_log.try_lock() else {
            // Another thread is writing the line right now; the next call will catch up.
            return;
        };
        if tenth > last.1 || last.0.elapsed() >= PROGRESS_LOG_EVERY {
            *last = (std::time::Instant::now(), tenth);
            drop(last);
            self.log_line(done, len, false);
        }
    }

    /// The job is over: clears the bar, or logs the final count and rate.
    pub fn finish(&self) {
        use std::sync::atomic::Ordering;
        if let Some(bar) = &self.inner.bar {
            bar.finish_and_clear();
            return;
        }
        let done = self.inner.done.load(Ordering::Relaxed);
        self.log_line(done, self.inner.len.load(Ordering::Relaxed), true);
    }

    fn log_line(&self, done: u64, len: u64, finished: bool) {
        let elapsed = self.inner.started.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed.max(1e-9);
        let what = self.inner.what;
        if finished {
            tracing::info!(
                what,
                done,
                total = len,
                rate = format!("{rate:.0}/s"),
                elapsed = format!("{elapsed:.1}s"),
                "finished"
            );
        } else {
            let left = if rate > 0.0 {
                len.saturating_sub(done) as f64 / rate
            } else {
                f64::NAN
            };
            tracing::info!(
                what,
                done,
                total = len,
                rate = format!("{rate:.0}/s"),
                eta = format!("{left:.0}s"),
                "progress"
            );
        }
    }
}

/// The embed job's progress (`jobs::embed`) as [`progress`] bars: one per phase (papers, then
/// interests), each finished when the next starts or the bar is dropped.
#[derive(Default)]
pub struct EmbedBars {
    current: std::sync::Mutex<Option<Progress>>,
}

impl paperboy::jobs::embed::EmbedProgress for EmbedBars {
    fn start(&self, total: u64, what: &'static str) {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(previous) = current.replace(progress(total, what)) {
            previous.finish();
        }
    }

    fn advance(&self, n: u64) {
        if let Some(bar) = &*self.current.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.inc(n);
        }
    }
}

impl Drop for EmbedBars {
    fn drop(&mut self) {
        if let Some(bar) = self
            .current
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish();
        }
    }
}
