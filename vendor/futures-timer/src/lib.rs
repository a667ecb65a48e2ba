//! kadsip's replacement for `futures-timer` 3 (same API: [`Delay`]), used by
//! libp2p for every substream-upgrade, request and idle timeout. The upstream
//! crate parks all timers on one helper thread and wakes it for every `Delay`
//! created; under libp2p's load that thread cost a fifth of a core and most of
//! the workers' context switches. Here a `Delay` polled inside a tokio runtime
//! is a `tokio::time::Sleep`; polled anywhere else it falls back to a small
//! timer thread of its own.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

mod fallback;

/// A future that completes at a point in time.
pub struct Delay {
    deadline: Instant,
    /// Created on the first poll inside a tokio runtime.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Delay {
    /// A delay that completes `dur` from now.
    pub fn new(dur: Duration) -> Delay {
        Delay {
            deadline: deadline_in(dur),
            sleep: None,
        }
    }

    /// Moves the deadline to `dur` from now, as if newly created.
    pub fn reset(&mut self, dur: Duration) {
        self.deadline = deadline_in(dur);
        if let Some(s) = self.sleep.as_mut() {
            s.as_mut().reset(self.deadline.into());
        }
    }
}

/// The current time on tokio's clock (the same as `Instant::now()` unless a
/// test pauses that clock).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// `now + dur`, saturating at a far but representable instant.
fn deadline_in(dur: Duration) -> Instant {
    let now = now();
    now.checked_add(dur)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl Future for Delay {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.sleep.is_none() {
            if now() >= this.deadline {
                return Poll::Ready(());
            }
            if tokio::runtime::Handle::try_current().is_err() {
                return fallback::poll(this.deadline, cx);
            }
            this.sleep = Some(Box::pin(tokio::time::sleep_until(this.deadline.into())));
        }
        match this.sleep.as_mut() {
            Some(s) => s.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delay")
            .field("deadline", &self.deadline)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn completes_at_its_deadline_and_reset_moves_it() {
        let start = Instant::now();
        Delay::new(Duration::from_millis(30)).await;
        assert!(start.elapsed() >= Duration::from_millis(30));
        // Reset before and after the first poll.
        let mut d = Delay::new(Duration::from_millis(5));
        d.reset(Duration::from_millis(40));
        let t = Instant::now();
        assert!(futures_poll_once(&mut d).is_pending());
        d.reset(Duration::from_millis(60));
        d.await;
        assert!(t.elapsed() >= Duration::from_millis(60));
    }

    fn futures_poll_once(d: &mut Delay) -> Poll<()> {
        let waker = std::task::Waker::noop();
        Pin::new(d).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn works_outside_a_runtime() {
        let start = Instant::now();
        block_on(Delay::new(Duration::from_millis(30)));
        assert!(start.elapsed() >= Duration::from_millis(30));
        // A zero delay is ready at once.
        block_on(Delay::new(Duration::ZERO));
    }

    fn block_on(mut f: Delay) {
        use std::sync::Arc;
        use std::task::Wake;
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Arc::new(Unpark(std::thread::current())).into();
        let mut cx = Context::from_waker(&waker);
        while Pin::new(&mut f).poll(&mut cx).is_pending() {
            std::thread::park();
        }
    }
}
