//! What `llhls serve` tells a newcomer when it starts: addresses a person can type.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;

/// The log lines up to the WHIP line, of a server on wildcard addresses with publish keys.
fn startup_log(extra: &[&str]) -> String {
    let http = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--http", &format!("0.0.0.0:{http}")])
        .args(["--rtmp", &format!("0.0.0.0:{}", free_port())])
        .args(["--whip-udp", &format!("0.0.0.0:{}", free_udp_port())])
        .args(["--demo", "false"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut text = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        text.push_str(&line);
        text.push('\n');
        if line.contains("WHIP: POST") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        text.contains(&format!("player at http://localhost:{http}/")),
        "{text}"
    );
    assert!(
        !text.contains("://0.0.0.0"),
        "a wildcard address as a URL:\n{text}"
    );
    assert!(!text.contains("HOST"), "a placeholder host:\n{text}");
    text
}

#[test]
fn the_startup_log_gives_reachable_urls_and_the_key_forms() {
    let open = startup_log(&[]);
    assert!(open.contains("/live/NAME "), "{open}");
    assert!(!open.contains("?key="), "{open}");
    assert!(open.contains("/publish"), "{open}");
    let keyed = startup_log(&["--publish-keys", "s3cret"]);
    assert!(keyed.contains("/live/NAME?key=KEY"), "{keyed}");
    assert!(keyed.contains("Authorization: Bearer KEY"), "{keyed}");
    assert!(
        !keyed.contains("s3cret"),
        "the key itself is not logged:\n{keyed}"
    );
}

/// `llhls serve` with `extra`, which must fail at startup; its stderr.
fn failed_startup(extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_llhls"))
        .args(["serve", "--demo", "false"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "started although a port was busy:\n{err}"
    );
    err
}

#[test]
fn a_busy_port_names_the_address_and_the_setting_that_moves_it() {
    let free = || format!("127.0.0.1:{}", free_port());
    let udp = || format!("127.0.0.1:{}", free_udp_port());
    // Ports this test holds, as another server would.
    let tcp_held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp = tcp_held.local_addr().unwrap().to_string();
    let udp_held = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let busy_udp = udp_held.local_addr().unwrap().to_string();
    for (extra, setting) in [
        (
            ["--http", &tcp, "--rtmp", &free(), "--whip-udp", &udp()],
            "--http / LLHLS_HTTP / `http` in the config file",
        ),
        (
            ["--http", &free(), "--rtmp", &tcp, "--whip-udp", &udp()],
            "--rtmp / LLHLS_RTMP / `rtmp` in the config file",
        ),
        (
            [
                "--http",
                &free(),
                "--rtmp",
                &free(),
                "--whip-udp",
                &busy_udp,
            ],
            "--whip-udp / LLHLS_WHIP_UDP / `whip_udp` in the config file",
        ),
    ] {
        let err = failed_startup(&extra);
        let addr = if setting.starts_with("--whip") {
            &busy_udp
        } else {
            &tcp
        };
        assert!(
            err.contains(&format!("on {addr}: the address is already in use")),
            "{err}"
        );
        assert!(err.contains(setting), "{err}");
        assert!(err.contains("another llhls"), "{err}");
    }
    drop((tcp_held, udp_held));
}
