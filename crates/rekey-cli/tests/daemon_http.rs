//! The daemon's `/healthz` and `/metrics` listener against hostile clients,
//! through the binary and a real OpenBao: a client that stops in the middle
//! of its request line is disconnected within the header-read timeout (5 s);
//! a client that keeps opening idle connections can neither stop `/healthz`
//! answering nor rotation; SIGTERM with such connections open still ends the
//! daemon promptly.
//!
//! The daemon runs with 256 file descriptors (`ulimit -n`), so "many
//! connections" is a few hundred: more than a listener without a connection
//! limit can accept.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The daemon's header-read timeout.
const HEADER_READ: Duration = Duration::from_secs(5);

async fn get(url: &str) -> Option<(u16, String)> {
    let r = reqwest::Client::new().get(url).timeout(Duration::from_secs(2)).send().await.ok()?;
    let s = r.status().as_u16();
    Some((s, r.text().await.unwrap_or_default()))
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((200, _)) = get(&format!("http://127.0.0.1:{port}/healthz")).await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the daemon did not come up on port {port}");
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in:\n{text}"))
}

/// A daemon over one secret rotated every second, limited to 256 open files;
/// with `verify_for`, each candidate is verified by a command that takes that long.
struct Daemon {
    child: tokio::process::Child,
    port: u16,
    path: String,
    initial: String,
}

impl Daemon {
    async fn start(bao: &Bao, name: &str, verify_for: Option<u32>) -> Self {
        let dir = scratch(name);
        let path = format!("{}/s", unique(name));
        let initial = format!("{name}-initial-s3cr3t-value");
        bao.put(&path, json!({ "value": initial })).await;
        let mut cfg = format!("{}[policies.fast]\nschedule = \"every 1s\"\nstrategy = \"staged\"\n", vault_store(bao));
        if let Some(secs) = verify_for {
            cfg.push_str(&format!(
                "require_verification = true\nverification_tests = [\"slow\"]\n\
                 [[verifier]]\nname = \"slow\"\ntype = \"command\"\nprogram = \"/bin/sleep\"\n\
                 args = [\"{secs}\"]\ntimeout = \"30s\"\n"
            ));
        }
        cfg.push_str(&format!(
            "[[secret]]\npath = \"{path}\"\npolicy = \"fast\"\n[daemon]\nshutdown_timeout = \"20s\"\n"
        ));
        let cfg = write_config(&dir, &cfg);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut cmd = tokio::process::Command::new("/bin/sh");
        cmd.arg("-c").arg("ulimit -n 256 && exec \"$0\" \"$@\"").arg(bin());
        cmd.arg("-c").arg(&cfg).args(["run", "--json", "--listen", &listen]);
        for k in ["VAULT_TOKEN", "BAO_TOKEN", "VAULT_ADDR", "BAO_ADDR", "REKEY_CONFIG", "RUST_LOG"] {
            cmd.env_remove(k);
        }
        cmd.env("VAULT_TOKEN", &bao.token);
        cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).kill_on_drop(true);
        let child = cmd.spawn().expect("rekey run starts");
        wait_healthy(port).await;
        Self { child, port, path, initial }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends SIGTERM (to the process this test started, by its pid).
    fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let ok = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs").success();
        assert!(ok, "kill -TERM {pid}");
    }

    /// Waits for the exit (at most `within`) and keeps the output for the leak check.
    async fn exit(self, within: Duration) -> Run {
        let out = tokio::time::timeout(within, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("the daemon did not exit within {within:?} of SIGTERM"))
            .expect("output");
        keep_output(&out)
    }
}

/// Opens up to `n` connections that send `first` (maybe nothing) and then
/// nothing; gives up after three in a row cannot connect within a second
/// (a listener that stopped accepting has a full queue).
async fn connections(addr: SocketAddr, n: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut conns = Vec::with_capacity(n);
    let mut failed_in_a_row = 0;
    while conns.len() < n && failed_in_a_row < 3 {
        let Ok(Ok(mut c)) = tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await else {
            failed_in_a_row += 1;
            continue;
        };
        if c.write_all(first).await.is_ok() {
            conns.push(c);
            failed_in_a_row = 0;
        } else {
            failed_in_a_row += 1;
        }
    }
    conns
}

async fn idle_connections(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    connections(addr, n, b"").await
}

/// How long until the server closes `c` (EOF or reset); panics after `limit`.
async fn closed_within(mut c: TcpStream, limit: Duration) -> Duration {
    let t = Instant::now();
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit.saturating_sub(t.elapsed()), c.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => {}
            Err(_) => panic!("the connection is still open after {limit:?}"),
        }
    }
}

#[tokio::test]
async fn a_client_that_stops_mid_request_line_is_disconnected_within_the_header_timeout() {
    let Some(bao) = Bao::from_env() else { return };
    let d = Daemon::start(&bao, "http-slow", None).await;
    let limit = HEADER_READ + Duration::from_secs(3);
    // Half a request line, then nothing.
    let mut half = TcpStream::connect(d.addr()).await.unwrap();
    half.write_all(b"GET /heal").await.unwrap();
    // Nothing at all.
    let silent = TcpStream::connect(d.addr()).await.unwrap();
    // A byte every 400 ms, for ever (each byte alone would beat an idle timer).
    let mut trickle = TcpStream::connect(d.addr()).await.unwrap();
    let (mut rd, mut wr) = trickle.split();
    let trickled = async {
        let t = Instant::now();
        let mut buf = [0u8; 64];
        for b in b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-a: ".iter().chain(std::iter::repeat(&b'a')) {
            if wr.write_all(&[*b]).await.is_err() {
                return t.elapsed();
            }
            match tokio::time::timeout(Duration::from_millis(400), rd.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return t.elapsed(),
                Ok(Ok(_)) => panic!("a response to a head that never ended"),
                Err(_) => assert!(t.elapsed() < limit, "the trickling connection is still open after {limit:?}"),
            }
        }
        unreachable!()
    };
    let (half_after, silent_after, trickle_after) =
        tokio::join!(closed_within(half, limit), closed_within(silent, limit), trickled);
    for (what, after) in [("half a request line", half_after), ("nothing", silent_after), ("a trickle", trickle_after)]
    {
        assert!(
            after >= HEADER_READ - Duration::from_millis(500),
            "{what}: closed after {after:?}, before the header timeout"
        );
        eprintln!("a client sending {what} was disconnected after {after:?}");
    }
    let (_, m) = get(&d.url("/metrics")).await.expect("metrics");
    assert!(metric(&m, "rekey_http_connections_closed_total{reason=\"header_timeout\"}") >= 3.0, "{m}");
    // Well-behaved clients are served throughout.
    assert!(matches!(get(&d.url("/healthz")).await, Some((200, _))));
    d.sigterm();
    let run = d.exit(Duration::from_secs(10)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}

#[tokio::test]
async fn many_idle_connections_cannot_stop_healthz_or_rotation() {
    let Some(bao) = Bao::from_env() else { return };
    let d = Daemon::start(&bao, "http-flood", None).await;
    let (v0, _, _) = bao.metadata(&d.path).await;
    let t0 = Instant::now();
    let mut held = idle_connections(d.addr(), 600).await;
    eprintln!("opened {} idle connections in {:?}", held.len(), t0.elapsed());
    assert!(held.len() > 300, "more connections than the daemon has file descriptors: {}", held.len());
    // And keep opening more while the probes run.
    let addr = d.addr();
    let flood = tokio::spawn(async move {
        let mut more = Vec::new();
        loop {
            more.extend(idle_connections(addr, 20).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
            if more.len() > 2000 {
                more.drain(..1000);
            }
        }
    });
    for round in 0..6 {
        let t = Instant::now();
        let r = get(&d.url("/healthz")).await;
        assert!(
            matches!(r, Some((200, ref b)) if b.contains("\"ok\"")),
            "round {round}: /healthz did not answer with {} idle connections open: {r:?}",
            held.len()
        );
        assert!(t.elapsed() < Duration::from_secs(1), "round {round}: /healthz took {:?}", t.elapsed());
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (_, m) = get(&d.url("/metrics")).await.expect("metrics");
    assert!(metric(&m, "rekey_http_connections_open") <= 64.0, "{m}");
    assert!(metric(&m, "rekey_http_connections_closed_total{reason=\"evicted\"}") >= 500.0, "{m}");
    let (v1, _, _) = bao.metadata(&d.path).await;
    assert!(v1 >= v0 + 2, "rotation went on under the flood: versions {v0} -> {v1}");
    flood.abort();
    held.clear();
    d.sigterm();
    let now = bao.read(&d.path).await["value"].as_str().unwrap().to_owned();
    let initial = d.initial.clone();
    let run = d.exit(Duration::from_secs(10)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_no_leak(&[initial, now]);
}

#[tokio::test]
async fn sigterm_with_hostile_connections_open_stops_the_daemon_promptly() {
    let Some(bao) = Bao::from_env() else { return };
    // Each rotation is verified for 2 s, so SIGTERM finds one in flight.
    let d = Daemon::start(&bao, "http-term", Some(2)).await;
    let held = idle_connections(d.addr(), 400).await;
    assert!(held.len() > 300, "more connections than the daemon has file descriptors: {}", held.len());
    // Wait for a rotation to start (in flight goes from 0 to 1).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen_idle = false;
    loop {
        let m = get(&d.url("/metrics")).await;
        let m = m.unwrap_or_else(|| panic!("/metrics did not answer with {} connections open", held.len()));
        let in_flight = metric(&m.1, "rekey_rotations_in_flight");
        seen_idle |= in_flight == 0.0;
        if seen_idle && in_flight >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no rotation started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Connections whose own deadlines end well after the daemon should:
    // half a request (5 s) and kept alive after a request (30 s).
    let halves = connections(d.addr(), 16, b"GET /metr").await;
    let mut kept = connections(d.addr(), 8, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
    for c in &mut kept {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(2), c.read(&mut buf)).await.unwrap().unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    }
    let open = held.len() + halves.len() + kept.len();
    let t = Instant::now();
    d.sigterm();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = get(&d.url("/healthz")).await;
    assert!(
        matches!(r, Some((503, ref b)) if b.contains("stopping")),
        "/healthz says stopping with {open} connections open: {r:?}"
    );
    // The rotation in flight finishes (within about 2 s), then the daemon exits
    // without waiting for any connection.
    let run = d.exit(HEADER_READ - Duration::from_millis(500)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["interrupted"], false, "{}", run.stdout);
    eprintln!("stopped {:?} after SIGTERM with {open} connections open", t.elapsed());
    drop((held, halves, kept));
}
