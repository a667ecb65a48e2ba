//! Progress on stderr: a bar with ETA on a terminal, a plain line every few
//! seconds otherwise (CI logs, pipes).

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Progress reporter for one run.
pub struct Progress {
    tty: bool,
    total: Duration,
    started: Instant,
    last_line: Option<Instant>,
}

impl Progress {
    /// A reporter for a workload of `total`.
    pub fn new(total: Duration) -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            total,
            started: Instant::now(),
            last_line: None,
        }
    }

    fn due(&mut self, every: Duration) -> bool {
        let now = Instant::now();
        if self.tty
            || self
                .last_line
                .is_none_or(|t| now.duration_since(t) >= every)
        {
            self.last_line = Some(now);
            true
        } else {
            false
        }
    }

    /// Nodes started so far while the overlay forms.
    pub fn setup(&mut self, started: usize, of: usize) {
        if started != of && !self.due(Duration::from_secs(5)) {
            return;
        }
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2Kforming overlay: {started}/{of} nodes started");
        } else {
            let _ = writeln!(e, "forming overlay: {started}/{of} nodes started");
        }
        self.started = Instant::now();
    }

    /// One sample of the workload.
    pub fn tick(&mut self, at: Duration, calls: usize, judged: usize, ok: usize, live: usize) {
        if !self.due(Duration::from_secs(5)) {
            return;
        }
        let frac = (at.as_secs_f64() / self.total.as_secs_f64()).clamp(0.0, 1.0);
        let eta = self.total.saturating_sub(at).as_secs();
        let acc = if judged == 0 {
            "  n/a".to_string()
        } else {
            format!("{:5.1}%", ok as f64 / judged as f64 * 100.0)
        };
        let mut e = std::io::stderr().lock();
        if self.tty {
            let width = 30;
            let filled = (frac * width as f64) as usize;
            let _ = write!(
                e,
                "\r\x1b[2K[{}{}] {:3.0}%  calls {calls}  accuracy {acc}  live {live}  ETA {eta}s",
                "=".repeat(filled),
                " ".repeat(width - filled),
                frac * 100.0
            );
        } else {
            let _ = writeln!(
                e,
                "t={:.0}s/{:.0}s calls {calls} accuracy {acc} live {live} eta {eta}s",
                at.as_secs_f64(),
                self.total.as_secs_f64()
            );
        }
    }

    /// The workload is over (calls may still drain).
    pub fn done(&mut self) {
        if self.tty {
            let _ = writeln!(std::io::stderr());
        }
    }
}
