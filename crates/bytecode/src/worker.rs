//! One worker process: spawned isolated, greeted, given one file at a
//! time, stopped and reaped whatever happens.

use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::{Error, Job, Outcome, Settings};

/// The most of a worker's stderr an error quotes.
const STDERR_EXCERPT: usize = 2000;
/// The longest reply message keel accepts (a compile error's text).
const MAX_MESSAGE: u32 = 1 << 20;
/// How long a worker whose input was closed gets to exit before it is
/// killed.
const EXIT_GRACE: Duration = Duration::from_millis(500);

/// Reply status bytes of `compile_worker.py`.
const COMPILED: u8 = 0;
const NOT_COMPILABLE: u8 = 1;
const FAILED: u8 = 2;

/// One reply: a status byte and a message.
struct Reply {
    status: u8,
    message: String,
}

/// A running worker. Dropping it closes its input, and kills and reaps it
/// if it does not exit at once.
pub(crate) struct Worker {
    python: PathBuf,
    child: Child,
    stdin: Option<ChildStdin>,
    replies: Receiver<std::io::Result<Reply>>,
    stderr_path: PathBuf,
    greeted: bool,
}

impl Worker {
    /// Starts `python -I -S -B compile_worker.py MODE` in `cwd`, every
    /// `PYTHON*` variable removed, stderr to `stderr_path`. The worker gets
    /// SIGKILL if the thread that started it dies (a killed keel leaves no
    /// worker behind).
    pub(crate) fn spawn(
        settings: &Settings,
        cwd: &Path,
        script: &Path,
        stderr_path: PathBuf,
    ) -> Result<Worker, Error> {
        let stderr = fs_err::File::create(&stderr_path)?.into_file();
        let mut command = Command::new(&settings.python);
        command
            .args(["-I", "-S", "-B"])
            .arg(script)
            .arg(settings.invalidation.python_name())
            .current_dir(cwd)
            // Its own process group, so that stopping it stops whatever a
            // wrapper script (a shim) started too.
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        keel_python::remove_python_variables(&mut command);
        // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches
        // no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                rustix::process::set_parent_process_death_signal(Some(
                    rustix::process::Signal::KILL,
                ))
                .map_err(std::io::Error::from)
            });
        }
        let mut child = command.spawn().map_err(|source| Error::Spawn {
            python: settings.python.clone(),
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let (sender, replies) = std::sync::mpsc::channel();
        // The reader ends when the pipe closes. It is never joined: a
        // process the worker left holding the pipe must not hold keel up.
        if let Some(mut stdout) = stdout {
            std::thread::spawn(move || {
                loop {
                    let reply = read_reply(&mut stdout);
                    let stop = reply.is_err();
                    if sender.send(reply).is_err() || stop {
                        break;
                    }
                }
            });
        }
        Ok(Worker {
            python: settings.python.clone(),
            child,
            stdin,
            replies,
            stderr_path,
            greeted: false,
        })
    }

    /// Waits for the greeting and checks it against the probe.
    pub(crate) fn greet(&mut self, settings: &Settings) -> Result<(), Error> {
        if self.greeted {
            return Ok(());
        }
        let reply = match self.receive(settings.timeout) {
            Received::Reply(reply) => reply,
            Received::TimedOut => {
                self.stop();
                return Err(Error::StartTimedOut {
                    python: self.python.clone(),
                    timeout: settings.timeout.unwrap_or_default(),
                    stderr: self.stderr(),
                });
            }
            Received::Gone(what) => return Err(self.failed(None, what)),
        };
        let expected = settings.greeting();
        if reply.status != COMPILED || reply.message != expected {
            self.stop();
            return Err(Error::Handshake {
                python: self.python.clone(),
                expected,
                found: reply.message,
            });
        }
        self.greeted = true;
        Ok(())
    }

    /// Compiles one file.
    pub(crate) fn compile(
        &mut self,
        job: &Job,
        timeout: Option<Duration>,
    ) -> Result<Outcome, Error> {
        let mut request = Vec::new();
        let earlier = job.earlier.clone().unwrap_or_default();
        for field in [&job.source, &job.bytecode, &job.named, &earlier] {
            let bytes = field.as_os_str().as_bytes();
            let length = u32::try_from(bytes.len()).map_err(|_| Error::Write {
                file: job.source.clone(),
                message: "the path is too long".into(),
            })?;
            request.extend_from_slice(&length.to_be_bytes());
            request.extend_from_slice(bytes);
        }
        let sent = match self.stdin.as_mut() {
            Some(stdin) => stdin.write_all(&request).and_then(|()| stdin.flush()),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        if let Err(e) = sent {
            return Err(self.failed(Some(&job.source), format!("stopped reading requests ({e})")));
        }
        match self.receive(timeout) {
            Received::Reply(Reply {
                status: COMPILED, ..
            }) => Ok(Outcome::Compiled),
            Received::Reply(Reply {
                status: NOT_COMPILABLE,
                message,
            }) => Ok(Outcome::NotCompiled { reason: message }),
            Received::Reply(Reply {
                status: FAILED,
                message,
            }) => Err(Error::Write {
                file: job.source.clone(),
                message,
            }),
            Received::Reply(Reply { status, .. }) => {
                self.stop();
                Err(self.failed(
                    Some(&job.source),
                    format!("sent an unknown status {status}"),
                ))
            }
            Received::TimedOut => {
                self.stop();
                Err(Error::FileTimedOut {
                    python: self.python.clone(),
                    file: job.source.clone(),
                    timeout: timeout.unwrap_or_default(),
                })
            }
            Received::Gone(what) => Err(self.failed(Some(&job.source), what)),
        }
    }

    fn receive(&mut self, timeout: Option<Duration>) -> Received {
        let received = match timeout {
            Some(limit) => self.replies.recv_timeout(limit),
            None => self
                .replies
                .recv()
                .map_err(|_| RecvTimeoutError::Disconnected),
        };
        match received {
            Ok(Ok(reply)) => Received::Reply(reply),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Received::Gone(self.exit_description())
            }
            Ok(Err(e)) => {
                self.stop();
                Received::Gone(format!("sent a malformed reply ({e})"))
            }
            Err(RecvTimeoutError::Timeout) => Received::TimedOut,
            Err(RecvTimeoutError::Disconnected) => Received::Gone(self.exit_description()),
        }
    }

    /// How the worker ended, once its output closed.
    fn exit_description(&mut self) -> String {
        let deadline = Instant::now() + EXIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return format!("exited ({status})"),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Ok(None) => {
                    self.stop();
                    return "closed its output".into();
                }
                Err(e) => return format!("cannot be waited for ({e})"),
            }
        }
    }

    fn failed(&self, file: Option<&Path>, what: String) -> Error {
        Error::WorkerFailed {
            python: self.python.clone(),
            file: file.map(Path::to_path_buf),
            what,
            stderr: self.stderr(),
        }
    }

    /// Kills and reaps the worker (an error means it has exited already;
    /// the wait reaps it either way).
    fn stop(&mut self) {
        self.stdin = None;
        if let Some(group) = i32::try_from(self.child.id())
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        {
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The end of what the worker wrote to stderr.
    fn stderr(&self) -> String {
        let mut bytes = Vec::new();
        if let Ok(mut file) = fs_err::File::open(&self.stderr_path) {
            let _ = file.read_to_end(&mut bytes);
        }
        let start = bytes.len().saturating_sub(STDERR_EXCERPT);
        String::from_utf8_lossy(&bytes[start..]).trim().to_string()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        // End of input ends an idle worker; one that does not exit at once
        // is killed. Either way it is reaped here.
        self.stdin = None;
        let deadline = Instant::now() + EXIT_GRACE;
        while matches!(self.child.try_wait(), Ok(None)) {
            if Instant::now() >= deadline {
                self.stop();
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

enum Received {
    Reply(Reply),
    TimedOut,
    /// The worker is gone; how.
    Gone(String),
}

/// Reads one reply: a status byte, a 4-byte big-endian length, the message.
fn read_reply(input: &mut impl Read) -> std::io::Result<Reply> {
    let mut header = [0u8; 5];
    input.read_exact(&mut header)?;
    let length = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if length > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a reply of {length} bytes"),
        ));
    }
    let mut message = vec![0u8; length as usize];
    input.read_exact(&mut message)?;
    Ok(Reply {
        status: header[0],
        message: String::from_utf8_lossy(&message).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_is_a_status_a_length_and_a_message() {
        let mut bytes: &[u8] = &[1, 0, 0, 0, 3, b'b', b'a', b'd', 0, 0, 0, 0, 0];
        let reply = read_reply(&mut bytes).expect("a reply");
        assert_eq!((reply.status, reply.message.as_str()), (1, "bad"));
        let reply = read_reply(&mut bytes).expect("a second reply");
        assert_eq!((reply.status, reply.message.as_str()), (0, ""));
        let end = read_reply(&mut bytes).err().map(|e| e.kind());
        assert_eq!(end, Some(std::io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn a_reply_claiming_a_huge_message_is_malformed() {
        let mut bytes: &[u8] = &[0, 0xff, 0xff, 0xff, 0xff];
        let error = read_reply(&mut bytes).err().map(|e| e.kind());
        assert_eq!(error, Some(std::io::ErrorKind::InvalidData));
    }
}
