//! Real CPU saturation of the world's apiserver, and the load that makes a start-up cache
//! sync heavy, through `scripts/testenv saturate` and `scripts/testenv load`.
//!
//! The world's kube-apiserver (and its datastore, etcd or kine) runs in a CPU cgroup of its
//! own from `scripts/testenv up`; [`Saturation::start`] caps it at a share of one core and
//! the returned guard lifts the cap when dropped, also while a test panics. A timer in the
//! world lifts it too (after [`Saturation::SAFETY`] unless told otherwise), so a test
//! process that is killed never leaves the world saturated.
//!
//! Saturation throttles the one apiserver every world test shares: a test binary that uses
//! it must run its scenarios one after another and no other world test alongside.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::World;

fn testenv(testenv_dir: &Path, args: &[&str]) -> std::process::Output {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testenv");
    Command::new(script)
        .args(args)
        .env("CATALYST_TESTENV_DIR", testenv_dir)
        .output()
        .unwrap_or_else(|e| panic!("scripts/testenv {}: {e}", args.join(" ")))
}

fn testenv_ok(testenv_dir: &Path, args: &[&str]) -> String {
    let out = testenv(testenv_dir, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "scripts/testenv {} failed ({}):\n{stderr}",
        args.join(" "),
        out.status
    );
    stderr
}

/// A CPU cap on the world's apiserver; lifted when dropped.
pub struct Saturation {
    testenv_dir: PathBuf,
    safety: Duration,
    datastore: bool,
}

impl Saturation {
    /// How long the world's own timer leaves a cap in place when the guard never drops.
    pub const SAFETY: Duration = Duration::from_secs(600);

    /// Caps the world's kube-apiserver at `percent` % of one core.
    pub fn start(world: &World, percent: u32) -> Saturation {
        Saturation::with(world, percent, Saturation::SAFETY, false)
    }

    /// Caps kube-apiserver, and with `datastore` etcd or kine too, at `percent` % of one
    /// core each; the world lifts the cap by itself after `safety`.
    pub fn with(world: &World, percent: u32, safety: Duration, datastore: bool) -> Saturation {
        super::turn::assert_alone("capping the apiserver's CPU");
        let cap = Saturation {
            testenv_dir: world.testenv_dir(),
            safety,
            datastore,
        };
        cap.set(percent);
        cap
    }

    /// Moves the cap to `percent` % of one core (the world's timer starts again), as a
    /// fresh cluster's load rises when a controller's informers list it all at once.
    pub fn set(&self, percent: u32) {
        let percent = percent.to_string();
        let seconds = self.safety.as_secs().max(1).to_string();
        let mut args = vec!["saturate", percent.as_str(), seconds.as_str()];
        if self.datastore {
            args.push("--datastore");
        }
        testenv_ok(&self.testenv_dir, &args);
    }

    /// Lifts the cap now (dropping the guard does the same).
    pub fn lift(self) {}
}

/// How long [`readyz_median`] gives each read; one unanswered by then counts as this long.
pub const READYZ_LIMIT: Duration = Duration::from_secs(6);

/// The median of seven `/readyz` reads, each given at most [`READYZ_LIMIT`].
pub async fn readyz_median(client: &kube::Client) -> Duration {
    let mut took = Vec::new();
    for _ in 0..7 {
        let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
        let started = std::time::Instant::now();
        let answered = tokio::time::timeout(READYZ_LIMIT, client.request_text(request)).await;
        took.push(match answered {
            Ok(Ok(_)) => started.elapsed(),
            _ => READYZ_LIMIT,
        });
    }
    took.sort();
    took[3]
}

impl Drop for Saturation {
    fn drop(&mut self) {
        undo(
            &self.testenv_dir,
            "saturate",
            "lifting the CPU cap (the world's timer lifts it later)",
        );
    }
}

/// What a guard does when dropped: `scripts/testenv WHAT off`. A failure panics, unless
/// the test is panicking already (then it is only said, so the test's own panic shows).
fn undo(testenv_dir: &Path, what: &str, doing: &str) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/testenv");
    let out = Command::new(script)
        .args([what, "off"])
        .env("CATALYST_TESTENV_DIR", testenv_dir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            eprintln!("{}", String::from_utf8_lossy(&o.stderr).trim());
        }
        _ if std::thread::panicking() => eprintln!("{doing} failed: {out:?}"),
        _ => panic!("{doing} failed: {out:?}"),
    }
}

/// The CPU cgroup's throttling counters of a world process (`kube-apiserver`, `etcd`,
/// `kine`), from its cpu.stat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuStat {
    /// Enforcement periods (100 ms each) in which the process was runnable.
    pub nr_periods: u64,
    /// Periods in which it used up its quota and was held back.
    pub nr_throttled: u64,
    /// Total time it was held back.
    pub throttled: Duration,
}

impl CpuStat {
    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: &CpuStat) -> CpuStat {
        CpuStat {
            nr_periods: self.nr_periods - earlier.nr_periods,
            nr_throttled: self.nr_throttled - earlier.nr_throttled,
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

/// The directory of a world process's CPU cgroup.
pub fn cgroup_dir(world: &World, process: &str) -> PathBuf {
    let file = world.testenv_dir().join("cgroups").join(process);
    let dir = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        let why = std::fs::read_to_string(world.testenv_dir().join("cgroups/unavailable"))
            .unwrap_or_default();
        panic!(
            "{}: {e}: {process} has no CPU cgroup in this world ({})",
            file.display(),
            why.trim()
        )
    });
    PathBuf::from(dir.trim())
}

/// CPU time a world process (`kube-apiserver`, `kine`, `etcd`) has used so far: utime +
/// stime of /proc/<pid>/stat, in clock ticks of 1/100 s (USER_HZ, fixed on Linux).
pub fn cpu_used(world: &World, process: &str) -> Duration {
    let pid_file = world.testenv_dir().join(format!("pids/{process}.pid"));
    let pid = std::fs::read_to_string(&pid_file)
        .unwrap_or_else(|e| panic!("{}: {e}", pid_file.display()));
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .unwrap_or_else(|e| panic!("{process} (pid {}) is not running: {e}", pid.trim()));
    // The fields after the command, whose name may hold spaces: state is the 3rd field.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The share of a core under which the apiserver counts as settled.
pub const SETTLED_SHARE: f64 = 0.08;

/// Waits (at most three minutes) until kube-apiserver has used less than
/// [`SETTLED_SHARE`] of a core over 10 s: the work a change of the world left (the watch
/// events of thousands of new load objects, their garbage) is done, so a cap starts on a
/// settled apiserver, as in the calibration. Capped at 1 % before that, it works through
/// the backlog for minutes and answers nothing meanwhile. Returns the last share measured.
pub async fn settled(world: &World) -> f64 {
    const WINDOW: Duration = Duration::from_secs(10);
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let (used, at) = (cpu_used(world, "kube-apiserver"), std::time::Instant::now());
        tokio::time::sleep(WINDOW).await;
        let share =
            (cpu_used(world, "kube-apiserver") - used).as_secs_f64() / at.elapsed().as_secs_f64();
        if share < SETTLED_SHARE {
            return share;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "kube-apiserver still used {:.0} % of a core three minutes on",
            share * 100.0
        );
    }
}

/// Reads the throttling counters of a world process's CPU cgroup (cgroup v1
/// `throttled_time` in ns, or v2 `throttled_usec`).
pub fn cpu_stat(world: &World, process: &str) -> CpuStat {
    parse_cpu_stat(&cgroup_dir(world, process).join("cpu.stat"))
}

/// Parses a cpu.stat file (cgroup v1 or v2).
pub fn parse_cpu_stat(path: &Path) -> CpuStat {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let field = |name: &str| {
        text.lines().find_map(|l| {
            let (key, value) = l.split_once(' ')?;
            (key == name).then(|| value.trim().parse::<u64>().expect("a number in cpu.stat"))
        })
    };
    let throttled = match (field("throttled_time"), field("throttled_usec")) {
        (Some(ns), _) => Duration::from_nanos(ns),
        (None, Some(us)) => Duration::from_micros(us),
        (None, None) => panic!("{} has no throttled time:\n{text}", path.display()),
    };
    CpuStat {
        nr_periods: field("nr_periods").expect("nr_periods in cpu.stat"),
        nr_throttled: field("nr_throttled").expect("nr_throttled in cpu.stat"),
        throttled,
    }
}

/// The namespace `scripts/testenv load` fills.
pub const LOAD_NAMESPACE: &str = "testenv-load";

/// Makes the world hold `count` load Services (~1 KB each), their EndpointSlices and
/// `count / 3` Running Pods on the kwok node in [`LOAD_NAMESPACE`] (`scripts/testenv load`;
/// quick when they are there already). The guard removes them when dropped, also while a
/// test panics, so a failed test never leaves the world harsher for the next one.
pub fn load(world: &World, count: u32) -> Load {
    super::turn::assert_alone("loading the world with a busy cluster's objects");
    let summary = testenv_ok(&world.testenv_dir(), &["load", &count.to_string()]);
    Load {
        testenv_dir: world.testenv_dir(),
        summary: summary.trim().to_owned(),
    }
}

/// The load objects of [`load`]; removed (`scripts/testenv load off`) when dropped.
pub struct Load {
    testenv_dir: PathBuf,
    /// The script's summary line.
    pub summary: String,
}

impl Drop for Load {
    fn drop(&mut self) {
        undo(&self.testenv_dir, "load", "removing the load");
    }
}
