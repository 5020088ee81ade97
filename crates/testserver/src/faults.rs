//! Injected faults: what a test asks `/files/<name>` to do wrong, and the
//! bookkeeping of how many more times it must.

use std::collections::HashMap;
use std::time::Duration;

/// Something `/files/<name>` does wrong on purpose (see
/// [`Server::fault`](crate::Server::fault)).
///
/// Counted faults (`times`) are used up by `GET` requests only; a `HEAD`
/// request sees the always-on faults ([`NotFound`](Fault::NotFound),
/// [`WrongSize`](Fault::WrongSize)'s length) and is otherwise answered
/// normally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer `status` (e.g. 500, 503, 429) for the next `times` requests,
    /// then serve normally. A 429 or 503 carries `Retry-After: 0`.
    Status {
        /// The status code to answer.
        status: u16,
        /// How many requests get it.
        times: usize,
    },
    /// Send the headers (with the full `Content-Length`) and half of the
    /// body, then reset the connection (`SO_LINGER` 0, so the peer gets a
    /// TCP RST), `times` times.
    ResetMidBody {
        /// How many requests get it.
        times: usize,
    },
    /// Send a `Content-Length` of the full size but only half of the body,
    /// then close the connection cleanly (FIN), `times` times.
    Truncate {
        /// How many requests get it.
        times: usize,
    },
    /// Always serve the right length but one byte flipped (the middle
    /// one): a wrong hash. An empty file is served as it is.
    WrongBytes,
    /// Always serve the file with one byte appended, with a matching
    /// `Content-Length`: a wrong size (and so a wrong hash).
    WrongSize,
    /// Always answer 404.
    NotFound,
    /// Wait `delay` before sending the first byte of the response, `times`
    /// times.
    SlowFirstByte {
        /// How long to wait.
        delay: Duration,
        /// How many requests get it.
        times: usize,
    },
}

/// What one request gets, once a fault has been consulted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Serve normally.
    None,
    /// Answer this status.
    Status(u16),
    /// Half of the body, then a reset.
    Reset,
    /// Half of the body, then a clean close.
    Truncate,
    /// The right length, one byte flipped.
    WrongBytes,
    /// One byte more.
    WrongSize,
    /// 404.
    NotFound,
    /// Wait, then serve normally.
    Delay(Duration),
}

/// The faults in force, by file name.
#[derive(Debug, Default)]
pub(crate) struct FaultTable {
    faults: HashMap<String, Fault>,
}

impl FaultTable {
    /// Sets (replaces) the fault of `file_name`.
    pub fn set(&mut self, file_name: &str, fault: Fault) {
        if remaining(&fault) == Some(0) {
            self.faults.remove(file_name);
        } else {
            self.faults.insert(file_name.to_owned(), fault);
        }
    }

    /// Removes every fault.
    pub fn clear(&mut self) {
        self.faults.clear();
    }

    /// The effect on a `GET` of `file_name`, using up one of a counted
    /// fault's `times`.
    pub fn take(&mut self, file_name: &str) -> Effect {
        let Some(fault) = self.faults.get_mut(file_name) else {
            return Effect::None;
        };
        let effect = effect(fault);
        match fault {
            Fault::Status { times, .. }
            | Fault::ResetMidBody { times }
            | Fault::Truncate { times }
            | Fault::SlowFirstByte { times, .. } => {
                *times -= 1;
                if *times == 0 {
                    self.faults.remove(file_name);
                }
            }
            Fault::WrongBytes | Fault::WrongSize | Fault::NotFound => {}
        }
        effect
    }

    /// The effect on a `HEAD` of `file_name`: the always-on faults only,
    /// nothing used up.
    pub fn peek(&self, file_name: &str) -> Effect {
        match self.faults.get(file_name).map(effect) {
            Some(e @ (Effect::NotFound | Effect::WrongSize | Effect::WrongBytes)) => e,
            _ => Effect::None,
        }
    }
}

fn remaining(fault: &Fault) -> Option<usize> {
    match fault {
        Fault::Status { times, .. }
        | Fault::ResetMidBody { times }
        | Fault::Truncate { times }
        | Fault::SlowFirstByte { times, .. } => Some(*times),
        Fault::WrongBytes | Fault::WrongSize | Fault::NotFound => None,
    }
}

fn effect(fault: &Fault) -> Effect {
    match fault {
        Fault::Status { status, .. } => Effect::Status(*status),
        Fault::ResetMidBody { .. } => Effect::Reset,
        Fault::Truncate { .. } => Effect::Truncate,
        Fault::WrongBytes => Effect::WrongBytes,
        Fault::WrongSize => Effect::WrongSize,
        Fault::NotFound => Effect::NotFound,
        Fault::SlowFirstByte { delay, .. } => Effect::Delay(*delay),
    }
}

/// The body a request with `effect` gets instead of `bytes`.
pub(crate) fn alter(effect: Effect, mut bytes: Vec<u8>) -> Vec<u8> {
    match effect {
        Effect::WrongBytes if !bytes.is_empty() => {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
        }
        Effect::WrongSize => bytes.push(b'\n'),
        _ => {}
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_run_out() {
        let mut table = FaultTable::default();
        table.set("a", Fault::Truncate { times: 2 });
        assert_eq!(table.peek("a"), Effect::None);
        assert_eq!(table.take("a"), Effect::Truncate);
        assert_eq!(table.take("a"), Effect::Truncate);
        assert_eq!(table.take("a"), Effect::None);
        table.set(
            "a",
            Fault::Status {
                status: 500,
                times: 0,
            },
        );
        assert_eq!(table.take("a"), Effect::None);
        table.set("a", Fault::NotFound);
        assert_eq!(
            (table.take("a"), table.peek("a")),
            (Effect::NotFound, Effect::NotFound)
        );
        table.clear();
        assert_eq!(table.take("a"), Effect::None);
    }

    #[test]
    fn bodies_are_altered() {
        assert_eq!(alter(Effect::WrongBytes, vec![1, 2, 3]), [1, 0xfd, 3]);
        assert_eq!(alter(Effect::WrongSize, vec![1]), [1, b'\n']);
        assert!(alter(Effect::WrongBytes, Vec::new()).is_empty());
    }
}
