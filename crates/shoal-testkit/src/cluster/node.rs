//! One `shoal server` child process: how it is started, signalled, probed
//! for readiness and logged.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};

use super::http;
use crate::workload::connect;

/// The environment variable that tells a node how to dial its peers (see the crate docs).
pub const PEER_ADDRS_ENV: &str = "SHOAL_PEER_ADDRS";

/// Bytes of each node's log shown by [`Cluster::dump_logs`](crate::Cluster::dump_logs).
const LOG_TAIL_BYTES: u64 = 16 * 1024;
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a node listens and keeps its files.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    /// 1-based index in the cluster, also the node id peers route by.
    pub id: usize,
    pub pg_addr: SocketAddr,
    pub rpc_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub data_dir: PathBuf,
    /// stdout and stderr of every run of this node, each run headed by a marker line.
    pub log_path: PathBuf,
}

/// A node's process state.
pub(crate) struct NodeProcess {
    pub(crate) info: NodeInfo,
    /// `SHOAL_PEER_ADDRS` for this node (empty: not set).
    pub(crate) peer_addrs: String,
    child: Option<Child>,
    paused: bool,
    runs: u32,
}

impl NodeProcess {
    pub(crate) fn new(info: NodeInfo, peer_addrs: String) -> NodeProcess {
        NodeProcess { info, peer_addrs, child: None, paused: false, runs: 0 }
    }

    /// The running child's pid.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(crate) fn is_paused(&self) -> bool {
        self.paused
    }

    /// Whether the child is alive (a paused child is alive).
    pub(crate) fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Starts the server; `join` is the RPC address of a member to join.
    pub(crate) fn spawn(&mut self, binary: &Path, join: Option<SocketAddr>, extra_args: &[String]) -> Result<()> {
        ensure!(self.child.is_none(), "node {} is already running", self.info.id);
        std::fs::create_dir_all(&self.info.data_dir)
            .with_context(|| format!("creating {}", self.info.data_dir.display()))?;
        let mut cmd = Command::new(binary);
        cmd.arg("server")
            .arg("--data")
            .arg(&self.info.data_dir)
            .arg("--pg")
            .arg(self.info.pg_addr.to_string())
            .arg("--rpc")
            .arg(self.info.rpc_addr.to_string())
            .arg("--http")
            .arg(self.info.http_addr.to_string());
        if let Some(join) = join {
            cmd.arg("--join").arg(join.to_string());
        }
        cmd.args(extra_args);
        // Nothing from the test's own environment may change how nodes authenticate or dial.
        cmd.env_remove("SHOAL_PASSWORD").env_remove(PEER_ADDRS_ENV);
        if !self.peer_addrs.is_empty() {
            cmd.env(PEER_ADDRS_ENV, &self.peer_addrs);
        }

        self.runs += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.info.log_path)
            .with_context(|| format!("opening {}", self.info.log_path.display()))?;
        writeln!(log, "===== shoal-testkit: node {} run {}: {cmd:?} =====", self.info.id, self.runs)?;
        cmd.stdin(Stdio::null()).stdout(Stdio::from(log.try_clone()?)).stderr(Stdio::from(log));
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", binary.display()))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// SIGKILL and reap. A node that is not running is left as it is.
    pub(crate) fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL also ends a stopped (paused) process.
            let _ = child.kill();
            let _ = child.wait();
        }
        self.paused = false;
    }

    /// SIGSTOP: the process keeps its sockets but answers nothing. Returns
    /// once every thread of it has stopped: kill(2) only queues the signal,
    /// and a thread running on another (virtual) CPU may go on for a moment,
    /// long enough to answer a query sent right after.
    pub(crate) fn pause(&mut self) -> Result<()> {
        self.signal(libc::SIGSTOP)?;
        self.paused = true;
        let pid = self.pid().ok_or_else(|| anyhow!("node {} has no process", self.info.id))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            ensure!(Instant::now() < deadline, "node {} did not stop within 5 s of SIGSTOP", self.info.id);
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    /// SIGCONT after [`NodeProcess::pause`].
    pub(crate) fn resume(&mut self) -> Result<()> {
        self.signal(libc::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn signal(&mut self, signal: libc::c_int) -> Result<()> {
        ensure!(self.is_running(), "node {} is not running", self.info.id);
        let pid = self.pid().ok_or_else(|| anyhow!("node {} has no process", self.info.id))?;
        let pid = libc::pid_t::try_from(pid).context("pid out of range")?;
        // SAFETY: kill(2) on a child we have not reaped, so the pid is still ours.
        if unsafe { libc::kill(pid, signal) } != 0 {
            bail!("signal {signal} to node {}: {}", self.info.id, std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Polls until the node's `/api/status` answers and its PostgreSQL port
    /// completes a startup handshake; returns the status document.
    pub(crate) async fn wait_ready(&mut self, timeout: Duration) -> Result<serde_json::Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                bail!("node {} exited during startup ({status}); log:\n{}", self.info.id, self.log_tail());
            }
            let last_error = match self.probe().await {
                Ok(status) => return Ok(status),
                Err(e) => e,
            };
            if Instant::now() > deadline {
                bail!(
                    "node {} not ready after {timeout:?} (last probe: {last_error:#}); log:\n{}",
                    self.info.id,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn probe(&self) -> Result<serde_json::Value> {
        let status = self.status().await?;
        connect(self.info.pg_addr, PROBE_TIMEOUT).await.context("PostgreSQL port")?;
        Ok(status)
    }

    /// The node's `/api/status` document.
    pub(crate) async fn status(&self) -> Result<serde_json::Value> {
        let (code, body) = http::get(self.info.http_addr, "/api/status", PROBE_TIMEOUT).await?;
        ensure!(code == 200, "/api/status answered {code}: {body}");
        serde_json::from_str(&body).context("/api/status is not JSON")
    }

    fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// The end of this node's log (all runs).
    pub(crate) fn log_tail(&self) -> String {
        let read = || -> std::io::Result<String> {
            let mut file = File::open(&self.info.log_path)?;
            let len = file.metadata()?.len();
            let start = len.saturating_sub(LOG_TAIL_BYTES);
            file.seek(SeekFrom::Start(start))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            Ok(if start > 0 { format!("[… {start} earlier bytes omitted …]\n{text}") } else { text })
        };
        read().unwrap_or_else(|e| format!("[no log at {}: {e}]", self.info.log_path.display()))
    }
}

/// Asks Linux to SIGKILL the child when the thread that spawned it exits, so
/// a test process that dies without running destructors leaves no node behind.
///
/// The death signal follows the spawning *thread*: spawn from a runtime's
/// worker or the test thread, never from a short-lived `spawn_blocking` thread.
#[cfg(target_os = "linux")]
fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe; called before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe system calls, without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent may have died before prctl took effect.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

#[cfg(not(target_os = "linux"))]
fn die_with_parent(_cmd: &mut Command) {}

/// Whether every thread of process `pid` is stopped (state `T` in
/// `/proc/<pid>/task/<tid>/stat`; an exiting thread, `Z` or `X`, cannot
/// answer either). False when it cannot tell.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    tasks.flatten().all(|task| {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // The state follows the command name, which is in parentheses and may contain spaces.
        matches!(stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next()), Some('T' | 'Z' | 'X'))
    })
}
