//! One origin on a real loopback socket, fed by the synthetic publisher, for the socket-level
//! tests (`loopback.rs`, `limits.rs`).

#![allow(dead_code)] // each test file uses its own part of it

use std::time::{Duration, Instant};

use llhls_origin::server::{serve, ServerConfig};
use llhls_origin::{Command, Origin, OriginConfig, StreamInput};
use llhls_packager::synth::Publisher;
use llhls_packager::{Packager, PackagerConfig};
use tokio::net::TcpListener;

pub struct Running {
    pub addr: std::net::SocketAddr,
    pub input: StreamInput,
    pub publisher: Publisher,
    /// Dropping (or sending on) it stops the server.
    pub stop: tokio::sync::oneshot::Sender<()>,
}

/// A server with stream `name` (30 fps video plus audio) that has played four seconds.
pub async fn start(origin: OriginConfig, server: ServerConfig, name: &str) -> Running {
    let origin = Origin::new(origin);
    let publisher = Publisher::new(30.0, 30);
    let p = Packager::new(PackagerConfig::default(), publisher.tracks()).unwrap();
    let input = origin.create_stream(name, p).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(serve(origin, listener, server, async move {
        let _ = rx.await;
    }));
    let mut r = Running {
        addr,
        input,
        publisher,
        stop,
    };
    r.feed(77 * 4).await;
    r
}

impl Running {
    pub async fn feed(&mut self, n: usize) {
        for _ in 0..n {
            let (f, w) = self.publisher.next_frame();
            self.input.send(Command::Frame(f, w)).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    pub fn last_part(&self) -> (u64, u32) {
        self.input.stream.current().unwrap().snapshot.renditions[0]
            .last_part()
            .unwrap()
    }

    /// Feeds frames until a new part is published.
    pub async fn feed_part(&mut self) {
        let before = self.last_part();
        while self.last_part() == before {
            self.feed(1).await;
        }
    }

    /// Blocking requests held on the stream.
    pub fn held(&self) -> usize {
        self.input
            .stream
            .held
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits (up to 20 s) until `n` requests are held.
    pub async fn wait_held(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.held() < n {
            assert!(
                Instant::now() < deadline,
                "{} held, expected {n}",
                self.held()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
