//! When to try a request again, and how long to wait first.
//!
//! Retried: connect errors, timeouts, HTTP 408, 429 and 5xx, and bodies cut
//! short (a reset mid-body, fewer bytes than `Content-Length`). Never
//! retried: other 4xx, and a complete body whose size or hash is wrong (the
//! server serves the wrong file; asking again gets the same wrong file).
//!
//! The wait before retry `n` (0-based) is "equal jitter" exponential
//! backoff: `d = min(max, initial · 2ⁿ)`, then a uniformly random wait in
//! `[d/2, d]`, so that many clients failing together do not retry together.
//! A `Retry-After` in seconds (429, 503) replaces it, capped at `max`.

use std::time::Duration;

use url::Url;

use crate::Error;

/// The backoff schedule between retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the first retry (before jitter).
    pub initial: Duration,
    /// The longest wait, and the cap on a server's `Retry-After`.
    pub max: Duration,
}

impl Default for Backoff {
    /// 0.5 s, 1 s, 2 s, … up to 10 s.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// The un-jittered wait before retry `retry` (0 for the first retry).
    pub fn ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The wait before retry `retry`: uniformly random in
    /// `[ceiling/2, ceiling]` ([`Backoff::ceiling`]), or the server's
    /// `Retry-After` capped at [`Backoff::max`].
    pub fn delay(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut fastrand::Rng,
    ) -> Duration {
        if let Some(wait) = retry_after {
            return wait.min(self.max);
        }
        let ceiling = self.ceiling(retry);
        let half = ceiling / 2;
        let spread = u64::try_from((ceiling - half).as_nanos()).unwrap_or(u64::MAX);
        half + Duration::from_nanos(rng.u64(0..=spread))
    }
}

/// `Retry-After` as a number of seconds (RFC 9110 § 10.2.3); `None` for an
/// HTTP date or anything else, in which case the backoff schedule applies.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absurdly many digits: as long as anyone would wait (capped later).
    Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
}

/// Whether an HTTP status is worth asking again for.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// One attempt's failure: fatal (returned as it is) or transient (retried
/// while retries remain, then turned into an [`Error`]).
#[derive(Debug)]
pub(crate) enum Failure {
    Fatal(Error),
    Transient(Transient),
    /// A status that is not retried (4xx but 408 and 429), from `url`
    /// (the URL after redirects).
    Refused {
        url: Url,
        status: u16,
    },
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure::Fatal(error)
    }
}

/// A failure that another attempt may not have.
#[derive(Debug)]
pub(crate) enum Transient {
    /// 408, 429 or 5xx, with the server's `Retry-After`.
    Status {
        status: u16,
        retry_after: Option<Duration>,
    },
    /// A connect or read timeout.
    Timeout(Duration),
    /// The connection could not be made, or broke before the response.
    Connect(String),
    /// The body ended before it was complete.
    CutShort {
        received: u64,
        expected: Option<u64>,
    },
}

impl Transient {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Transient::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn into_error(self, url: &Url, attempts: u32) -> Error {
        let url = url.clone();
        match self {
            Transient::Status { status, .. } => Error::Status {
                url,
                status,
                attempts,
            },
            Transient::Timeout(timeout) => Error::Timeout {
                url,
                timeout,
                attempts,
            },
            Transient::Connect(reason) => Error::Connect {
                url,
                reason,
                attempts,
            },
            Transient::CutShort { received, expected } => Error::CutShort {
                url,
                received,
                expected,
                attempts,
            },
        }
    }

    fn describe(&self) -> String {
        match self {
            Transient::Status { status, .. } => format!("HTTP {status}"),
            Transient::Timeout(timeout) => format!("no answer within {timeout:?}"),
            Transient::Connect(reason) => reason.clone(),
            Transient::CutShort { received, .. } => {
                format!("body cut short after {received} bytes")
            }
        }
    }
}

/// How many times to retry, and how long to wait in between.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub retries: u32,
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// Runs `attempt` (given the 0-based attempt number) until it succeeds,
    /// fails fatally, or has failed transiently `retries + 1` times.
    pub fn run<T>(
        &self,
        url: &Url,
        mut attempt: impl FnMut(u32) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut rng = fastrand::Rng::new();
        let mut number = 0;
        loop {
            match attempt(number) {
                Ok(value) => return Ok(value),
                Err(Failure::Fatal(error)) => return Err(error),
                Err(Failure::Refused { url, status }) => {
                    return Err(Error::Status {
                        url,
                        status,
                        attempts: number + 1,
                    });
                }
                Err(Failure::Transient(transient)) if number >= self.retries => {
                    return Err(transient.into_error(url, number + 1));
                }
                Err(Failure::Transient(transient)) => {
                    let wait = self
                        .backoff
                        .delay(number, transient.retry_after(), &mut rng);
                    tracing::warn!(
                        "{}: {}; retrying in {:.1}s ({} of {})",
                        crate::error::redacted(url),
                        transient.describe(),
                        wait.as_secs_f64(),
                        number + 1,
                        self.retries
                    );
                    std::thread::sleep(wait);
                    number += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_schedule_doubles_up_to_the_cap() {
        let backoff = Backoff {
            initial: 100 * MS,
            max: 1000 * MS,
        };
        let ceilings: Vec<_> = (0..6).map(|n| backoff.ceiling(n)).collect();
        assert_eq!(
            ceilings,
            [100 * MS, 200 * MS, 400 * MS, 800 * MS, 1000 * MS, 1000 * MS]
        );
        assert_eq!(backoff.ceiling(u32::MAX), 1000 * MS, "no overflow");
    }

    #[test]
    fn jitter_stays_within_half_and_whole_of_the_ceiling_and_varies() {
        let backoff = Backoff {
            initial: 100 * MS,
            max: 10_000 * MS,
        };
        let mut rng = fastrand::Rng::with_seed(7);
        for retry in 0..5 {
            let ceiling = backoff.ceiling(retry);
            let waits: Vec<_> = (0..200)
                .map(|_| backoff.delay(retry, None, &mut rng))
                .collect();
            assert!(
                waits.iter().all(|w| *w >= ceiling / 2 && *w <= ceiling),
                "{waits:?}"
            );
            let distinct: std::collections::HashSet<_> = waits.iter().collect();
            assert!(distinct.len() > 100, "jittered, not constant");
        }
    }

    #[test]
    fn retry_after_replaces_the_schedule_and_is_capped() {
        let backoff = Backoff {
            initial: 100 * MS,
            max: 5000 * MS,
        };
        let mut rng = fastrand::Rng::with_seed(1);
        assert_eq!(
            backoff.delay(0, Some(Duration::ZERO), &mut rng),
            Duration::ZERO
        );
        assert_eq!(backoff.delay(3, Some(2000 * MS), &mut rng), 2000 * MS);
        assert_eq!(
            backoff.delay(0, Some(Duration::from_secs(3600)), &mut rng),
            5000 * MS
        );
    }

    #[test]
    fn retry_after_is_read_in_seconds_only() {
        assert_eq!(parse_retry_after("0"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            parse_retry_after("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(parse_retry_after("-1"), None);
        assert_eq!(parse_retry_after("1.5"), None);
        assert_eq!(parse_retry_after(""), None);
    }

    #[test]
    fn only_408_429_and_5xx_are_retried() {
        for status in [408, 429, 500, 502, 503, 504, 599] {
            assert!(is_retryable_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 410, 418] {
            assert!(!is_retryable_status(status), "{status}");
        }
    }

    #[test]
    fn transient_failures_are_retried_then_reported_with_the_attempt_count() {
        let url = Url::parse("http://127.0.0.1:1/x").unwrap();
        let policy = RetryPolicy {
            retries: 2,
            backoff: Backoff {
                initial: MS,
                max: MS,
            },
        };
        let mut calls = 0;
        let result: Result<(), Error> = policy.run(&url, |_| {
            calls += 1;
            Err(Failure::Transient(Transient::Status {
                status: 503,
                retry_after: None,
            }))
        });
        assert_eq!(calls, 3);
        assert!(matches!(
            result,
            Err(Error::Status {
                status: 503,
                attempts: 3,
                ..
            })
        ));

        let mut calls = 0;
        let result = policy.run(&url, |n| {
            calls += 1;
            if n == 0 {
                Err(Failure::Transient(Transient::Timeout(MS)))
            } else {
                Ok(n)
            }
        });
        assert_eq!((calls, result.ok()), (2, Some(1)));
    }
}
