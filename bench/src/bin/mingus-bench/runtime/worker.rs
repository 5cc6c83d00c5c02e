//! The worker under test: a child process running the production worker (`mingus_worker::run`, what
//! `mingus-worker` runs) for the `bench` queue, with the ledger on and the metrics recorder on a free port.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{DateTime, Utc};

use mingus_bench::BenchEnv;

/// `USER_HZ`: 100 on every Linux architecture we run on.
const CLOCK_TICKS_PER_SECOND: f64 = 100.0;

pub struct WorkerProcess {
    child: Child,
    /// The queue it serves.
    queue: String,
    pub pid: u32,
    pub metrics_port: u16,
    pub spawned_at: DateTime<Utc>,
    pub spawned: Instant,
    pub log: PathBuf,
}

/// A loopback port nobody listens on right now.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

impl WorkerProcess {
    /// Starts `<bin> [serve-worker] --queues bench` against the benchmark's database and key prefix.
    /// Without `worker_bin`, the benchmark binary itself serves (its hidden `serve-worker` command calls the
    /// same `mingus_worker::run` as `mingus-worker`), so a stale `mingus-worker` build can never be measured.
    pub fn spawn(
        env: &BenchEnv,
        worker_bin: Option<&PathBuf>,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        Self::spawn_for(env, worker_bin, log, "bench")
    }

    /// Like [`WorkerProcess::spawn`], serving `queue`.
    pub fn spawn_for(
        env: &BenchEnv,
        worker_bin: Option<&PathBuf>,
        log: PathBuf,
        queue: &str,
    ) -> anyhow::Result<Self> {
        let metrics_port = free_port()?;
        let mut command = match worker_bin {
            Some(bin) => Command::new(bin),
            None => {
                let mut command = Command::new(std::env::current_exe()?);
                command.arg("serve-worker");
                command
            }
        };
        // Logs go to stdout (JSON lines), panics to stderr: both into the log file.
        let stdout =
            std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
        let stderr = stdout.try_clone()?;
        // The production log filter (RUST_LOG unset: `info,…`) unless MINGUS_BENCH_WORKER_LOG asks for another.
        match std::env::var("MINGUS_BENCH_WORKER_LOG") {
            Ok(filter) => command.env("RUST_LOG", filter),
            Err(_) => command.env_remove("RUST_LOG"),
        };
        command
            .args(["--queues", queue])
            .env("DATABASE_URL", &env.db_url)
            .env("REDIS_URL", &env.redis_url)
            .env("REDIS_KEY_PREFIX", &env.prefix)
            .env(
                "MINGUS_WORKER_METRICS_ADDR",
                format!("127.0.0.1:{metrics_port}"),
            )
            .env("MINGUS_ENV", "development")
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let spawned_at = Utc::now();
        let spawned = Instant::now();
        let child = command.spawn().context("spawn the worker process")?;
        let pid = child.id();
        Ok(WorkerProcess {
            child,
            queue: queue.to_owned(),
            pid,
            metrics_port,
            spawned_at,
            spawned,
            log,
        })
    }

    /// Resident memory of the worker process (VmRSS), in MiB.
    pub fn rss_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib / 1024.0)
    }

    /// CPU time (user + system) the worker process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
        let rest = stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        Some(ticks / CLOCK_TICKS_PER_SECOND)
    }

    /// Fails if the process has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the worker exited early ({status}); see {}",
                self.log.display()
            );
        }
        Ok(())
    }

    /// Waits until the worker has registered with the queue (it is then fetching); returns how long
    /// that took since the spawn.
    pub async fn wait_registered(
        &mut self,
        env: &BenchEnv,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let workers = env.keys.workers();
        self.wait_registered_in(env, &workers, limit).await
    }

    /// [`Self::wait_registered`] for a worker of another queue than `bench` (its `workers` key).
    pub async fn wait_registered_in(
        &mut self,
        env: &BenchEnv,
        workers: &str,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let mut conn = env.redis();
        let tag = format!(":{}:", self.pid);
        let deadline = Instant::now() + limit;
        loop {
            self.ensure_running()?;
            let names: Vec<String> = redis::cmd("ZRANGE")
                .arg(workers)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await?;
            if names
                .iter()
                .any(|n| n.starts_with(&format!("{}@", self.queue)) && n.contains(&tag))
            {
                return Ok(self.spawned.elapsed());
            }
            if Instant::now() > deadline {
                bail!(
                    "the worker did not register within {limit:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Scrapes the worker's Prometheus endpoint and returns its finished attempts for the queue (the sum of
    /// `mingus_jobs_total` over kinds and outcomes).
    pub async fn processed_metric(&self) -> anyhow::Result<f64> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let fetch = async {
            let mut stream =
                tokio::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).await?;
            stream
                .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                .await?;
            let mut body = String::new();
            stream.read_to_string(&mut body).await?;
            anyhow::Ok(body)
        };
        let body = tokio::time::timeout(Duration::from_secs(5), fetch)
            .await
            .context("metrics scrape timed out")??;
        Ok(body
            .lines()
            .filter(|l| {
                l.starts_with("mingus_jobs_total{")
                    && l.contains(&format!("queue=\"{}\"", self.queue))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum())
    }

    /// SIGTERM (graceful drain), then SIGKILL if it has not exited within `limit`.
    pub async fn stop(mut self, limit: Duration) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!(
                        "the worker stopped with {status}; see {}",
                        self.log.display()
                    );
                }
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the worker did not stop within {limit:?} and was killed");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // Never leave the child behind (an error path, a panic): kill it by its own pid.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
