//! Listening sockets handed over by systemd (socket activation, the `sd_listen_fds` protocol).
//!
//! With `scripts/llhls.socket`, systemd owns the HTTP and RTMP listening sockets and passes them
//! to each start of the service as file descriptors 3 and up (`LISTEN_FDS`, `LISTEN_PID`,
//! `LISTEN_FDNAMES`). The sockets outlive the process: while llhls restarts (a crash, `kill
//! -9`, a deploy) new connections wait in the kernel's backlog instead of being refused, and
//! are accepted once it is back. Players give up on refused requests (hls.js stops on its
//! third, about 3 s after a server goes down) but wait for a slow answer.
//!
//! Each passed socket is used for the listener whose name it carries (`http`, `rtmp`), or,
//! unnamed, for the one whose configured port it listens on; sockets that match neither are
//! logged and left unused. Without these variables, llhls binds its addresses itself.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, IntoRawFd};

/// The first file descriptor systemd passes (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;

/// A listening socket passed to this process.
pub struct Passed {
    /// Its `FileDescriptorName=` (empty when systemd gave none).
    pub name: String,
    pub listener: TcpListener,
    pub addr: SocketAddr,
}

/// The sockets passed to this process, if `LISTEN_PID` names it. Call once, at startup.
pub fn take() -> Vec<Passed> {
    let var = |k: &str| std::env::var(k).ok();
    passed(
        var("LISTEN_PID").as_deref(),
        var("LISTEN_FDS").as_deref(),
        var("LISTEN_FDNAMES").as_deref(),
        std::process::id(),
    )
    .into_iter()
    .filter_map(|(fd, name)| {
        let listener = adopt(fd);
        match listener
            .local_addr()
            .and_then(|addr| listener.set_nonblocking(true).map(|()| addr))
        {
            Ok(addr) => Some(Passed {
                name,
                listener,
                addr,
            }),
            Err(e) => {
                // Not ours to close: with wrong variables, the number may be a descriptor the
                // process opened itself (the runtime's epoll, a log file).
                let _ = listener.into_raw_fd();
                tracing::warn!(fd, "socket activation: file descriptor {fd} is not a listening TCP socket ({e}); ignored");
                None
            }
        }
    })
    .collect()
}

/// Takes ownership of the passed descriptor `fd`.
///
/// The one unsafe call of the binary: there is no safe way to own a descriptor the process
/// inherited. Sound because systemd passed `fd` to this process for it to own (`LISTEN_PID`
/// names it): it stayed open since, so no descriptor the process opened itself has its number,
/// and [`take`] runs once. A number that is not a socket (variables set by mistake) makes
/// `local_addr` fail, and [`take`] gives it back without closing it.
#[allow(unsafe_code)]
fn adopt(fd: i32) -> TcpListener {
    // SAFETY: see above.
    unsafe { TcpListener::from_raw_fd(fd) }
}

/// The descriptors and names the variables describe for process `pid` (none when they are
/// absent, malformed or meant for another process).
fn passed(
    pid: Option<&str>,
    fds: Option<&str>,
    names: Option<&str>,
    our_pid: u32,
) -> Vec<(i32, String)> {
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Vec::new();
    };
    if pid.trim().parse::<u32>().ok() != Some(our_pid) {
        return Vec::new();
    }
    let Some(n) = fds
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|n| (1..=64).contains(n))
    else {
        return Vec::new();
    };
    let names: Vec<&str> = names.map(|n| n.split(':').collect()).unwrap_or_default();
    (0..n)
        .map(|i| {
            let name = names.get(i as usize).copied().unwrap_or("");
            (FIRST_FD + i, name.to_string())
        })
        .collect()
}

/// Takes the passed socket for the listener `name` configured on `addr`: the one named so, else
/// an unnamed one (or one named after the socket unit) listening on `addr`'s port.
pub fn pick(passed: &mut Vec<Passed>, name: &str, addr: SocketAddr) -> Option<TcpListener> {
    let i = passed.iter().position(|p| p.name == name).or_else(|| {
        passed.iter().position(|p| {
            p.name != "http" && p.name != "rtmp" && addr.port() != 0 && p.addr.port() == addr.port()
        })
    })?;
    let p = passed.remove(i);
    tracing::info!(listener = name, addr = %p.addr, "socket activation: using the socket systemd passed");
    Some(p.listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sockets_passed_to_this_process_are_taken() {
        assert_eq!(
            passed(Some("42"), Some("2"), Some("http:rtmp"), 42),
            [(3, "http".to_string()), (4, "rtmp".to_string())]
        );
        // Another process's (a parent that did not clear them), none, or nonsense.
        assert!(passed(Some("41"), Some("2"), None, 42).is_empty());
        assert!(passed(None, Some("2"), None, 42).is_empty());
        assert!(passed(Some("42"), Some("0"), None, 42).is_empty());
        assert!(passed(Some("42"), Some("x"), None, 42).is_empty());
        assert!(passed(Some("42"), Some("100000"), None, 42).is_empty());
        // Without names (or fewer names than sockets): matched by port later.
        assert_eq!(
            passed(Some("42"), Some("2"), Some("llhls.socket"), 42),
            [(3, "llhls.socket".to_string()), (4, String::new())]
        );
    }

    #[test]
    fn a_socket_is_picked_by_name_then_by_port() {
        let bind = || {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            (l, addr)
        };
        let (a, a_addr) = bind();
        let (b, b_addr) = bind();
        let mut v = vec![
            Passed {
                name: "llhls.socket".into(),
                listener: a,
                addr: a_addr,
            },
            Passed {
                name: "rtmp".into(),
                listener: b,
                addr: b_addr,
            },
        ];
        // Named: whatever its port.
        let rtmp = pick(&mut v, "rtmp", "0.0.0.0:1935".parse().unwrap()).unwrap();
        assert_eq!(rtmp.local_addr().unwrap(), b_addr);
        // Unnamed: only on the configured port.
        assert!(pick(&mut v, "http", "0.0.0.0:1".parse().unwrap()).is_none());
        let http = pick(
            &mut v,
            "http",
            SocketAddr::new([0, 0, 0, 0].into(), a_addr.port()),
        );
        assert_eq!(http.unwrap().local_addr().unwrap(), a_addr);
        assert!(v.is_empty());
    }
}
