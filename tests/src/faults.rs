//! Peers of the fault tests' own, which a test may stop, kill and start
//! again without touching what the other tests use: a NATS server with
//! JetStream, a PostgreSQL cluster, and a TCP relay in front of a domain
//! controller that can be cut.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::free_port;

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port_open(port) {
        assert!(Instant::now() < deadline, "{what} did not open port {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A nats-server with JetStream of a test's own, its store in a directory
/// that outlives a restart.
pub struct PrivateNats {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateNats {
    pub fn start() -> Self {
        let mut nats = Self {
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        nats.run();
        nats
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting nats-server (Debian package nats-server; tests/run.sh installs it)");
        self.child = Some(child);
        wait_port(self.port, "nats-server");
    }

    /// Kills the server (SIGKILL: no clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and store.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "still running");
        self.run();
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// PostgreSQL's server programs (Debian: /usr/lib/postgresql/<version>/bin).
fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect(
            "PostgreSQL's server programs under /usr/lib/postgresql (Debian package postgresql)",
        )
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("initdb under /usr/lib/postgresql/*/bin (Debian package postgresql)")
}

/// A PostgreSQL cluster of a test's own (trust authentication on
/// loopback), run as the `postgres` user, removed when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    let mut full = vec![pg_bin().join(args[0]).display().to_string()];
    full.extend(args[1..].iter().map(|a| (*a).to_owned()));
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .args(&full)
        .stdin(Stdio::null())
        .output()
        .expect("running PostgreSQL's tools as postgres (runuser)");
    assert!(
        out.status.success(),
        "{full:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl PrivatePostgres {
    pub fn start() -> Self {
        let dir = PathBuf::from(format!("/var/tmp/dirsync-pg-{}", crate::tag()));
        std::fs::create_dir_all(&dir).unwrap();
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(chown.success());
        let data = dir.join("data").display().to_string();
        as_postgres(&[
            "initdb",
            "-D",
            &data,
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let pg = Self {
            port: free_port(),
            dir,
        };
        pg.run();
        pg
    }

    fn run(&self) {
        let data = self.dir.join("data").display().to_string();
        let log = self.dir.join("log").display().to_string();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        as_postgres(&[
            "pg_ctl", "-D", &data, "-l", &log, "-o", &opts, "-w", "start",
        ]);
        wait_port(self.port, "PostgreSQL");
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server as a crash would (immediate: no checkpoint,
    /// every connection dropped) and starts it again.
    pub fn crash_and_restart(&self) {
        let data = self.dir.join("data").display().to_string();
        as_postgres(&["pg_ctl", "-D", &data, "-m", "immediate", "-w", "stop"]);
        self.run();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.dir.join("data").display().to_string();
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(pg_bin().join("pg_ctl"))
            .args(["-D", &data, "-m", "immediate", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP relay from `listen` to `target`, a link that can be made bad:
/// cut (every connection closed once the target has sent `cut_after`
/// bytes on one, the middle of a paged read), slow (each chunk delayed,
/// the bandwidth capped) or stalled (past `stall_after` bytes nothing
/// more is forwarded, the connection left open: a link that went dead
/// without a reset). This kernel has no `sch_netem` for `tc netem`; the
/// relay is the lossy, slow link's effect on a TCP stream, in user space.
pub struct Relay {
    pub listen: SocketAddr,
    link: Arc<Link>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Link {
    cut: AtomicBool,
    cut_after: AtomicU64,
    stall_after: AtomicU64,
    stalled: AtomicBool,
    delay_ms: AtomicU64,
    bytes_per_second: AtomicU64,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Relay {
    /// Listens on `listen` (e.g. 127.0.0.21:636) and relays to `target`.
    pub async fn start(listen: SocketAddr, target: SocketAddr) -> Self {
        let listener = TcpListener::bind(listen)
            .await
            .unwrap_or_else(|e| panic!("binding the relay to {listen}: {e}"));
        let link = Arc::new(Link {
            cut_after: AtomicU64::new(u64::MAX),
            stall_after: AtomicU64::new(u64::MAX),
            ..Link::default()
        });
        let l = link.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if l.cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused as a dead host's would be
                }
                let l = l.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, l).await;
                    }
                });
            }
        });
        Self { listen, link, task }
    }

    /// Cuts a connection once the target has sent `bytes` on it, and
    /// every connection after.
    pub fn cut_after(&self, bytes: u64) {
        self.link.cut_after.store(bytes, Ordering::SeqCst);
    }

    /// Whether a connection was cut.
    pub fn was_cut(&self) -> bool {
        self.link.cut.load(Ordering::SeqCst)
    }

    /// Delays every chunk `delay_ms` each way and caps the bandwidth.
    pub fn slow(&self, delay_ms: u64, bytes_per_second: u64) {
        self.link.delay_ms.store(delay_ms, Ordering::SeqCst);
        self.link
            .bytes_per_second
            .store(bytes_per_second, Ordering::SeqCst);
    }

    /// Stops forwarding once the target has sent `bytes` on a connection,
    /// keeping it open.
    pub fn stall_after(&self, bytes: u64) {
        self.link.stall_after.store(bytes, Ordering::SeqCst);
    }

    /// Whether a connection stalled.
    pub fn stalled(&self) -> bool {
        self.link.stalled.load(Ordering::SeqCst)
    }
}

impl Link {
    /// What the link does to a chunk of `n` bytes: waits as a slow link
    /// would.
    async fn pace(&self, n: usize) {
        let delay = self.delay_ms.load(Ordering::SeqCst);
        let rate = self.bytes_per_second.load(Ordering::SeqCst);
        let mut wait = Duration::from_millis(delay);
        if rate > 0 {
            wait += Duration::from_secs_f64(n as f64 / rate as f64);
        }
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

async fn relay(client: TcpStream, server: TcpStream, link: Arc<Link>) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let cut = &link.cut;
    let up = async {
        let mut buf = vec![0u8; 16 << 10];
        while let Ok(n) = cr.read(&mut buf).await {
            if n == 0 || cut.load(Ordering::SeqCst) {
                break;
            }
            link.pace(n).await;
            if sw.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 << 10];
        let mut sent = 0u64;
        while let Ok(n) = sr.read(&mut buf).await {
            if n == 0 || cut.load(Ordering::SeqCst) {
                break;
            }
            link.pace(n).await;
            let cut_at = link.cut_after.load(Ordering::SeqCst);
            let stall_at = link.stall_after.load(Ordering::SeqCst);
            let limit = cut_at.min(stall_at);
            let take = (limit.saturating_sub(sent)).min(n as u64) as usize;
            if cw.write_all(&buf[..take]).await.is_err() {
                break;
            }
            sent += take as u64;
            if take < n {
                if stall_at <= cut_at {
                    // Dead without a reset: the connection stays open.
                    link.stalled.store(true, Ordering::SeqCst);
                    std::future::pending::<()>().await;
                }
                cut.store(true, Ordering::SeqCst);
                break;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
    // Both halves dropped: the connection closes as a dead host's would.
}
