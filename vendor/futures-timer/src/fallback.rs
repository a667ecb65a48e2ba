//! Timers for a `Delay` polled outside any tokio runtime (libp2p never does
//! so in kadsip; this keeps the crate correct for any other caller): one lazily
//! started thread wakes the registered wakers at their deadlines.

use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

struct Timers {
    pending: Mutex<Vec<(Instant, Waker)>>,
    changed: Condvar,
}

fn timers() -> &'static Timers {
    static TIMERS: OnceLock<&'static Timers> = OnceLock::new();
    TIMERS.get_or_init(|| {
        let t: &'static Timers = Box::leak(Box::new(Timers {
            pending: Mutex::new(Vec::new()),
            changed: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("futures-timer-fallback".into())
            .spawn(move || run(t))
            .expect("spawn the timer thread");
        t
    })
}

fn run(t: &'static Timers) {
    let mut pending = t.pending.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        pending.retain(|(at, w)| {
            let due = *at <= now;
            if due {
                w.wake_by_ref();
            }
            !due
        });
        pending = match pending.iter().map(|(at, _)| *at).min() {
            Some(next) => {
                let wait = next.saturating_duration_since(now);
                t.changed
                    .wait_timeout(pending, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => t.changed.wait(pending).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

/// Ready once `deadline` has passed; otherwise the waker is woken then.
pub(crate) fn poll(deadline: Instant, cx: &mut Context<'_>) -> Poll<()> {
    if Instant::now() >= deadline {
        return Poll::Ready(());
    }
    let t = timers();
    let mut pending = t.pending.lock().unwrap_or_else(|e| e.into_inner());
    // A task re-polling its delay replaces its earlier registration.
    pending.retain(|(at, w)| !(*at == deadline && w.will_wake(cx.waker())));
    pending.push((deadline, cx.waker().clone()));
    t.changed.notify_one();
    Poll::Pending
}
