//! Workers in-process (for deterministic tests) or as real processes (for kill and signal tests), and a
//! private `redis-server` for tests that restart or flush Redis without disturbing the others.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use mingus_common::Config;
use mingus_common::queue::Queue;
use mingus_worker::WorkerRuntime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A worker runtime running in this process until [`TestWorker::stop`].
pub struct TestWorker {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    pub async fn spawn(config: Arc<Config>, queues: &[Queue]) -> Self {
        let runtime = WorkerRuntime::connect(config)
            .await
            .expect("worker connects");
        let queues = queues.to_vec();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            runtime
                .run(&queues, async {
                    let _ = stopped.await;
                })
                .await
        });
        TestWorker {
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Asks the worker to stop and waits for it (bounded).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(40), task)
            .await
            .expect("worker stops in time")
            .expect("worker task")
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The path of a workspace binary, built once per test process unless the caller built them already
/// (`deploy/local/test.sh` sets `MINGUS_TEST_BINARIES_BUILT=1`). Building from inside `cargo test` would
/// resolve features without the dev-dependencies, relink every binary and race the running suite for
/// memory and the linker: CI once failed with "linking with cc failed" there.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    BUILT.get_or_init(|| {
        if std::env::var("MINGUS_TEST_BINARIES_BUILT").as_deref() == Ok("1") {
            return;
        }
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bins"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the binaries failed");
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("debug").join(name)
}

/// A redis-server of this test's own on a free loopback port, stopped (by its pid) on drop.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    pub dir: PathBuf,
    /// Arguments replacing the default in-memory settings (a configuration file and its overrides).
    args: Option<Vec<String>>,
}

impl RedisServer {
    /// An in-memory server (no RDB, no AOF).
    pub fn start() -> Self {
        Self::start_with(|_, _| None)
    }

    /// A server whose arguments `args(port, dir)` gives (e.g. a production `redis.conf` with the port,
    /// paths and ACL file moved into the test's directory); `None` for the in-memory default.
    pub fn start_with(args: impl FnOnce(u16, &std::path::Path) -> Option<Vec<String>>) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("mingus-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let args = args(port, &dir);
        let mut server = RedisServer {
            port,
            child: None,
            dir,
            args,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        let mut command = Command::new("redis-server");
        match &self.args {
            Some(args) => {
                command.args(args);
            }
            None => {
                command
                    .args([
                        "--bind",
                        "127.0.0.1",
                        "--port",
                        &self.port.to_string(),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .arg("--dir")
                    .arg(&self.dir);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server (SIGKILL), as a crash or a failover would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
