//! A progress line on standard error for `plantmeter import`.
//!
//! Hand-written, not `indicatif` (which the demo uses): indicatif and its terminal crate weigh
//! 78 KB of the stripped gateway binary (measured: 4,980,480 -> 4,902,208 bytes without them),
//! whose budget is 5 MB; `import` needs one line redrawn in place, no more.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, Instant};

/// Cells of the bar.
const WIDTH: usize = 40;

/// Redraws at most this often.
const EVERY: Duration = Duration::from_millis(100);

/// A bar over a file's bytes: `checking [#####...] 12.0/48.0 MiB, 3 s left`.
pub struct Progress {
    what: String,
    total: u64,
    start: Instant,
    drawn: Cell<Option<Instant>>,
}

impl Progress {
    /// A bar over `total` bytes when `on` (the caller's choice: standard error is a terminal).
    pub fn bytes(on: bool, total: u64, what: &str) -> Option<Progress> {
        on.then(|| Progress {
            what: what.to_string(),
            total,
            start: Instant::now(),
            drawn: Cell::new(None),
        })
    }

    /// `done` bytes of the total are through.
    pub fn set_position(&self, done: u64) {
        let now = Instant::now();
        if self
            .drawn
            .get()
            .is_some_and(|t| now.duration_since(t) < EVERY)
        {
            return;
        }
        self.drawn.set(Some(now));
        let line = self.line(done, now.duration_since(self.start));
        // A terminal that went away is no reason to stop an import.
        let _ = write!(std::io::stderr().lock(), "\r{line}\x1b[K");
    }

    /// Take the line off the terminal.
    pub fn finish_and_clear(self) {
        if self.drawn.get().is_some() {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[K");
        }
    }

    fn line(&self, done: u64, elapsed: Duration) -> String {
        let done = done.min(self.total);
        let fraction = if self.total == 0 {
            1.0
        } else {
            done as f64 / self.total as f64
        };
        let filled = ((fraction * WIDTH as f64) as usize).min(WIDTH);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let left = if done == 0 || done >= self.total {
            String::new()
        } else {
            let secs = elapsed.as_secs_f64() * (self.total - done) as f64 / done as f64;
            format!(", {} s left", secs.ceil() as u64)
        };
        format!(
            "{} [{}{}] {:.1}/{:.1} MiB{left}",
            self.what,
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            mib(done),
            mib(self.total),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(total: u64) -> Progress {
        Progress {
            what: "checking".into(),
            total,
            start: Instant::now(),
            drawn: Cell::new(None),
        }
    }

    #[test]
    fn the_line_shows_the_share_done_the_sizes_and_the_time_left() {
        let b = bar(48 * 1024 * 1024);
        assert_eq!(
            b.line(12 * 1024 * 1024, Duration::from_secs(3)),
            format!(
                "checking [{}{}] 12.0/48.0 MiB, 9 s left",
                "#".repeat(10),
                ".".repeat(30)
            )
        );
        assert_eq!(
            b.line(0, Duration::ZERO),
            format!("checking [{}] 0.0/48.0 MiB", ".".repeat(40))
        );
        // Past the end (a file that grew while read) is full, not an overflow.
        assert_eq!(
            b.line(60 * 1024 * 1024, Duration::from_secs(9)),
            format!("checking [{}] 48.0/48.0 MiB", "#".repeat(40))
        );
        assert_eq!(
            bar(0).line(0, Duration::ZERO),
            format!("checking [{}] 0.0/0.0 MiB", "#".repeat(40))
        );
    }
}
