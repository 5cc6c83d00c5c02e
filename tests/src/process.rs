//! A `mingus-worker` child process for kill and signal tests; it is ended by its pid on drop.

use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::{JobEnv, binary};

pub struct WorkerProcess {
    child: Option<Child>,
}

impl WorkerProcess {
    /// Starts `mingus-worker --queues <queues>` against `env`, with extra variables.
    pub fn start(env: &JobEnv, queues: &str, extra: &[(&str, &str)]) -> Self {
        let mut command = Command::new(binary("mingus-worker"));
        command
            .args(["--queues", queues])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (key, value) in env.process_env() {
            command.env(key, value);
        }
        for (key, value) in extra {
            command.env(key, value);
        }
        let log = std::env::var_os("TEST_LOG").is_some();
        command.stdout(if log { Stdio::inherit() } else { Stdio::null() });
        command.stderr(if log { Stdio::inherit() } else { Stdio::null() });
        WorkerProcess {
            child: Some(command.spawn().expect("mingus-worker starts")),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits (bounded) for the process to exit and returns its status.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let started = Instant::now();
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                self.child = None;
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "worker did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
