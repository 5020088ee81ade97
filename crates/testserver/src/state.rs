//! What the server's threads share: the catalog, the test's settings, the
//! faults, the counters and the open connections.

use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::catalog::Catalog;
use crate::faults::FaultTable;
use crate::tls::Tls;
use crate::{IndexFormat, UrlStyle};

/// Locks `mutex`, ignoring poisoning: every critical section leaves its
/// data consistent, and a panicking test thread must not break the server.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How the simple index presents the files, as the test set it.
#[derive(Debug, Default)]
pub(crate) struct Settings {
    pub format: IndexFormat,
    pub url_style: UrlStyle,
    /// Yanked files, by file name, with their reason.
    pub yanked: HashMap<String, Option<String>>,
    /// `Requires-Python` of files, by file name.
    pub requires_python: HashMap<String, String>,
}

/// The state shared by the [`Server`](crate::Server) handle, the accept
/// thread and the connection threads.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Where the listener is bound.
    pub addr: SocketAddr,
    pub catalog: Catalog,
    pub settings: Mutex<Settings>,
    pub faults: Mutex<FaultTable>,
    /// GETs of `/files/<name>`, by name.
    pub file_requests: Mutex<HashMap<String, usize>>,
    pub index_requests: AtomicUsize,
    pub proxied: AtomicUsize,
    /// `CONNECT` tunnels opened (answered 200).
    pub tunnels: AtomicUsize,
    /// The TLS identity of an HTTPS server; `None` for plain HTTP.
    pub tls: Option<Tls>,
    stop: AtomicBool,
    /// A clone of every open connection, so that stopping can shut them
    /// down (which wakes a thread blocked reading or writing).
    connections: Mutex<HashMap<u64, TcpStream>>,
    next_connection: AtomicU64,
}

impl Shared {
    pub fn new(addr: SocketAddr, catalog: Catalog, tls: Option<Tls>) -> Shared {
        Shared {
            addr,
            catalog,
            settings: Mutex::default(),
            faults: Mutex::default(),
            file_requests: Mutex::default(),
            index_requests: AtomicUsize::new(0),
            proxied: AtomicUsize::new(0),
            tunnels: AtomicUsize::new(0),
            tls,
            stop: AtomicBool::new(false),
            connections: Mutex::default(),
            next_connection: AtomicU64::new(0),
        }
    }

    /// `https` for a TLS server, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Tells every thread to stop and shuts every open connection down.
    /// Connections registered later are shut down as they register.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for stream in lock(&self.connections).values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    /// Registers an open connection; `None` if it could not be cloned.
    pub fn register(&self, stream: &TcpStream) -> Option<u64> {
        let clone = stream.try_clone().ok()?;
        let id = self.next_connection.fetch_add(1, Ordering::SeqCst);
        let mut connections = lock(&self.connections);
        if self.stopping() {
            let _ = clone.shutdown(Shutdown::Both);
        }
        connections.insert(id, clone);
        Some(id)
    }

    /// Forgets a connection whose thread is done with it.
    pub fn deregister(&self, id: u64) {
        lock(&self.connections).remove(&id);
    }
}
