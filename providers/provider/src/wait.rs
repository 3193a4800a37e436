//! The one waiting mechanism every resource uses: poll a status with
//! exponential backoff and jitter until a condition holds, retrying
//! retryable errors, under a deadline. Resources only say how to read their
//! status and what "done" means.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::{Progress, ProviderError};

/// How often to poll: starts at `initial`, doubles up to `max`, each sleep
/// jittered by ±`jitter` (0.0..1.0) so parallel waits do not poll in step.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(15),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The sleep before attempt `attempt` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let base = self
            .initial
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.max);
        let spread = base.as_secs_f64() * self.jitter;
        let offset = (jitter_unit() * 2.0 - 1.0) * spread;
        Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
    }
}

/// A number in [0, 1) from the clock's low bits: enough to spread polls,
/// no need for a random number generator here.
fn jitter_unit() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    // Mix the bits so consecutive calls are not monotone.
    let mixed = nanos.wrapping_mul(2_654_435_761) >> 8;
    f64::from(mixed % 10_000) / 10_000.0
}

/// When a wait's end is expected: the step's usual duration. Polls come
/// every `interval` from 70% of it to 150%, so the end is seen within
/// about `interval` of happening, while the long quiet start of a slow
/// create is polled with the ordinary backoff.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub usual: Duration,
    pub interval: Duration,
}

impl Expected {
    /// The sleep before the next poll, `elapsed` into the wait, where the
    /// backoff alone would sleep `normal`.
    pub fn delay(&self, elapsed: Duration, normal: Duration) -> Duration {
        let opens = self.usual.mul_f64(0.7);
        let closes = self.usual.mul_f64(1.5);
        if elapsed >= opens && elapsed <= closes {
            self.interval.min(normal)
        } else if elapsed < opens && elapsed + normal > opens {
            // Wake when the window opens, not a backoff step after.
            (opens - elapsed).max(self.interval.min(normal))
        } else {
            normal
        }
    }
}

/// What one look at a status found.
pub enum Poll<T> {
    /// Done, with the value.
    Ready(T),
    /// Not yet; the text says why, for the progress line.
    Pending(String),
}

/// Polls `check` until it returns `Ready`, or fails with `Timeout` after
/// `timeout` (whose message carries the last pending reason, so a user sees
/// why it never got ready). Retryable errors count as pending; other errors
/// end the wait at once.
pub async fn poll_until<T, F, Fut>(
    what: &str,
    timeout: Duration,
    backoff: Backoff,
    progress: &dyn Progress,
    check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ProviderError>>,
{
    poll_until_expecting(what, timeout, backoff, None, progress, check).await
}

/// [`poll_until`], polling sooner around the step's usual end (see
/// [`Expected`]).
pub async fn poll_until_expecting<T, F, Fut>(
    what: &str,
    timeout: Duration,
    backoff: Backoff,
    expected: Option<Expected>,
    progress: &dyn Progress,
    mut check: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ProviderError>>,
{
    let start = Instant::now();
    let mut attempt = 0u32;
    let mut last = String::from("no answer yet");
    loop {
        match check().await {
            Ok(Poll::Ready(value)) => return Ok(value),
            Ok(Poll::Pending(reason)) => {
                if reason != last {
                    progress.report(&reason);
                }
                last = reason;
            }
            Err(e) if e.is_retryable() => {
                last = format!("retrying after: {e}");
                progress.report(&last);
            }
            Err(e) => return Err(e),
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            return Err(ProviderError::Timeout {
                what: format!("waiting for {what}: {last}"),
                after: timeout,
            });
        }
        let normal = backoff.delay(attempt);
        let sleep = expected
            .map_or(normal, |e| e.delay(elapsed, normal))
            .min(timeout - elapsed);
        attempt = attempt.saturating_add(1);
        tokio::time::sleep(sleep).await;
    }
}

/// Runs one API call, retrying retryable errors up to `attempts` times with
/// backoff; the last error is returned as it came.
pub async fn retry<T, F, Fut>(
    attempts: u32,
    backoff: Backoff,
    mut call: F,
) -> Result<T, ProviderError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let mut attempt = 0u32;
    loop {
        match call().await {
            Err(e) if e.is_retryable() && attempt + 1 < attempts => {
                tokio::time::sleep(backoff.delay(attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_come_sooner_around_the_usual_end_only() {
        let e = Expected {
            usual: Duration::from_secs(600),
            interval: Duration::from_secs(2),
        };
        let normal = Duration::from_secs(15);
        let at = |s: u64| e.delay(Duration::from_secs(s), normal);
        // The quiet start: the ordinary backoff.
        assert_eq!(at(60), normal);
        // The next step would cross 70% (420 s): wake at 420 s.
        assert_eq!(at(410), Duration::from_secs(10));
        // From 70% to 150% of the usual duration: every 2 s.
        assert_eq!(at(420), Duration::from_secs(2));
        assert_eq!(at(700), Duration::from_secs(2));
        assert_eq!(at(900), Duration::from_secs(2));
        // Long overdue: back to the backoff.
        assert_eq!(at(901), normal);
        // Never slower than the backoff itself.
        assert_eq!(
            e.delay(Duration::from_secs(500), Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
    use crate::NoProgress;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
            jitter: 0.2,
        }
    }

    #[test]
    fn backoff_grows_to_its_cap_with_bounded_jitter() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            jitter: 0.2,
        };
        for attempt in 0..10 {
            let d = b.delay(attempt).as_secs_f64();
            let base = (0.1 * 2f64.powi(attempt as i32)).min(1.0);
            assert!(
                d >= base * 0.8 - 1e-9 && d <= base * 1.2 + 1e-9,
                "{attempt}: {d}"
            );
        }
    }

    #[tokio::test]
    async fn poll_returns_once_ready_and_retries_throttling() {
        let calls = AtomicU32::new(0);
        let value = poll_until("thing", Duration::from_secs(5), fast(), &NoProgress, || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                match n {
                    0 => Err(ProviderError::retryable("Rate exceeded")),
                    1 => Ok(Poll::Pending("CREATING".into())),
                    _ => Ok(Poll::Ready(n)),
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(value, 2);
    }

    #[tokio::test]
    async fn poll_times_out_naming_the_last_reason() {
        let err = poll_until::<(), _, _>(
            "etcd",
            Duration::from_millis(30),
            fast(),
            &NoProgress,
            || async { Ok(Poll::Pending("PVC Pending: no StorageClass".into())) },
        )
        .await
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("etcd") && text.contains("no StorageClass"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn poll_fails_fast_on_api_errors() {
        let calls = AtomicU32::new(0);
        let err = poll_until::<(), _, _>("x", Duration::from_secs(5), fast(), &NoProgress, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ProviderError::api("AccessDenied")) }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, ProviderError::Api { .. }));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn retry_gives_up_after_the_attempts() {
        let calls = AtomicU32::new(0);
        let err = retry::<(), _, _>(3, fast(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(ProviderError::retryable("SlowDown")) }
        })
        .await
        .unwrap_err();
        assert!(err.is_retryable());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
