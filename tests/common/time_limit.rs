//! Children that must end in time: one that hangs (a deadlock, a FIFO read
//! that never returns) is killed and fails its test instead of hanging the
//! suite.

use std::io::Read;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// How often a child is looked at: often enough that when two children end
/// a few milliseconds apart, the order in which they are seen to end is the
/// order in which they ended.
const POLL: Duration = Duration::from_millis(5);

/// Waits for `child` at most `limit`; when it takes longer, kills it
/// (SIGKILL), reaps it and returns `None`.
pub fn wait_or_kill(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for a child") {
            return Some(status);
        }
        if start.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// Waits for `child` at most `limit`; when it takes longer, kills it and
/// fails the test, naming it as `what`.
#[track_caller]
pub fn wait_with_limit(mut child: Child, limit: Duration, what: &str) -> ExitStatus {
    match wait_or_kill(&mut child, limit) {
        Some(status) => status,
        None => panic!("{what} did not finish within {limit:?}"),
    }
}

/// Runs `command` with its stdout and stderr captured, as
/// [`Command::output`] does; when it runs longer than `limit`, kills it and
/// fails the test, naming it as `what` and showing its stderr.
#[track_caller]
pub fn output_with_limit(command: &mut Command, limit: Duration, what: &str) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    // Read both pipes while waiting, so that a child writing much is not
    // stopped by a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                pipe.read_to_end(&mut bytes).expect("read a child's output");
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let status = wait_or_kill(&mut child, limit);
    let stdout = stdout.join().expect("stdout reader");
    let stderr = stderr.join().expect("stderr reader");
    let Some(status) = status else {
        panic!(
            "{what} was still running after {limit:?} (hung) and was killed\nstderr:\n{}",
            String::from_utf8_lossy(&stderr)
        );
    };
    Output {
        status,
        stdout,
        stderr,
    }
}
