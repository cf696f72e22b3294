//! [`SystemMemory`]: the process's memory as the kernel accounts it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{MemorySample, MemorySource};

/// Reads memory used / limit from Linux, the way the OOM killer sees it:
///
/// 1. **cgroup v2**: the process's own cgroup is taken from
///    `/proc/self/cgroup` (the `0::/path` line); from that cgroup up to the
///    root of `/sys/fs/cgroup`, the first one whose `memory.max` is a number
///    (not `max`) gives the limit, and its `memory.current` the usage (which
///    counts every process in that cgroup, as its limit does).
/// 2. **RSS** otherwise (no cgroup v2, no limit on the way up, or a cgroup
///    v1 machine): `VmRSS` of `/proc/self/status` against a budget in bytes,
///    by default the machine's `MemTotal`.
///
/// Reading is a few small reads of kernel files (no disk), done by the
/// sampler task, never on the call path.
///
/// ```
/// use seawall_shed::{MemorySource, SystemMemory};
///
/// # if cfg!(target_os = "linux") {
/// let mut memory = SystemMemory::detect(None)?;
/// let sample = memory.sample()?;
/// assert!(sample.used > 0 && (0.0..=1.0).contains(&sample.ratio()));
/// assert!(["cgroup", "rss"].contains(&memory.kind()));
/// # }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemMemory {
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Cgroup { current: PathBuf, max: PathBuf },
    Rss { status: PathBuf, budget: u64 },
}

impl SystemMemory {
    /// A limited cgroup v2 if the process runs in one, otherwise RSS
    /// against `rss_budget` bytes (`None`: the machine's total memory).
    /// Fails when neither can be read (not Linux, no `/proc`).
    pub fn detect(rss_budget: Option<u64>) -> io::Result<Self> {
        SystemMemory::detect_in(Path::new("/proc"), Path::new("/sys/fs/cgroup"), rss_budget)
    }

    /// The process's RSS against `budget` bytes, whatever cgroup it runs in.
    pub fn rss(budget: u64) -> Self {
        SystemMemory {
            kind: Kind::Rss {
                status: PathBuf::from("/proc/self/status"),
                budget,
            },
        }
    }

    fn detect_in(
        proc_root: &Path,
        cgroup_root: &Path,
        rss_budget: Option<u64>,
    ) -> io::Result<Self> {
        if let Some((current, max)) = limited_cgroup(proc_root, cgroup_root) {
            return Ok(SystemMemory {
                kind: Kind::Cgroup { current, max },
            });
        }
        let budget = match rss_budget {
            Some(b) => b,
            None => kib_field(&proc_root.join("meminfo"), "MemTotal:")?,
        };
        let status = proc_root.join("self/status");
        kib_field(&status, "VmRSS:")?; // readable here, or fail now
        Ok(SystemMemory {
            kind: Kind::Rss { status, budget },
        })
    }
}

impl MemorySource for SystemMemory {
    fn sample(&mut self) -> io::Result<MemorySample> {
        match &self.kind {
            Kind::Cgroup { current, max } => {
                let limit = read_u64(max)?.ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        "the cgroup's memory.max is now `max`",
                    )
                })?;
                let used = read_u64(current)?.unwrap_or(0);
                Ok(MemorySample { used, limit })
            }
            Kind::Rss { status, budget } => Ok(MemorySample {
                used: kib_field(status, "VmRSS:")?,
                limit: *budget,
            }),
        }
    }

    fn kind(&self) -> &'static str {
        match self.kind {
            Kind::Cgroup { .. } => "cgroup",
            Kind::Rss { .. } => "rss",
        }
    }
}

/// `(memory.current, memory.max)` of the nearest limited cgroup v2 from the
/// process's own up to the root.
fn limited_cgroup(proc_root: &Path, cgroup_root: &Path) -> Option<(PathBuf, PathBuf)> {
    let text = fs::read_to_string(proc_root.join("self/cgroup")).ok()?;
    let own = text.lines().find_map(|l| l.strip_prefix("0::"))?.trim();
    let own = Path::new(own.trim_start_matches('/'));
    own.ancestors().find_map(|dir| {
        let dir = cgroup_root.join(dir);
        let max = dir.join("memory.max");
        let current = dir.join("memory.current");
        match read_u64(&max) {
            Ok(Some(_)) if current.is_file() => Some((current, max)),
            _ => None,
        }
    })
}

/// A file holding one number, or `max` (`None`).
fn read_u64(path: &Path) -> io::Result<Option<u64>> {
    let text = fs::read_to_string(path)?;
    let text = text.trim();
    if text == "max" {
        return Ok(None);
    }
    text.parse().map(Some).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {e}", path.display()),
        )
    })
}

/// The `NAME:  1234 kB` line of a `/proc` file, in bytes.
fn kib_field(path: &Path, name: &str) -> io::Result<u64> {
    let text = fs::read_to_string(path)?;
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .map(|kib| kib.saturating_mul(1024))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("no `{name}` line in {}", path.display()),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch directory, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("seawall-shed-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, path: &str, text: &str) {
            let path = self.0.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const STATUS: &str = "Name:\tx\nVmPeak:\t 9000 kB\nVmRSS:\t    2048 kB\nThreads: 3\n";

    #[test]
    fn the_nearest_limited_cgroup_up_the_tree() {
        let s = Scratch::new("cgroup");
        s.write("proc/self/cgroup", "0::/app/worker\n");
        s.write("cg/app/worker/memory.max", "max\n");
        s.write("cg/app/worker/memory.current", "100\n");
        s.write("cg/app/memory.max", "1000\n");
        s.write("cg/app/memory.current", "250\n");
        let mut m = SystemMemory::detect_in(&s.0.join("proc"), &s.0.join("cg"), Some(1)).unwrap();
        assert_eq!(m.kind(), "cgroup");
        let sample = m.sample().unwrap();
        assert_eq!(
            sample,
            MemorySample {
                used: 250,
                limit: 1000
            }
        );
        assert_eq!(sample.ratio(), 0.25);
        // The limit lifted: the sample fails (and the level would stay).
        s.write("cg/app/memory.max", "max\n");
        assert!(m.sample().is_err());
        // Garbage is an error, never a panic.
        s.write("cg/app/memory.max", "lots\n");
        assert!(m.sample().is_err());
    }

    #[test]
    fn the_root_of_a_namespaced_cgroup() {
        let s = Scratch::new("ns");
        s.write("proc/self/cgroup", "0::/\n");
        s.write("cg/memory.max", "4096\n");
        s.write("cg/memory.current", "1024\n");
        let mut m = SystemMemory::detect_in(&s.0.join("proc"), &s.0.join("cg"), None).unwrap();
        assert_eq!(m.sample().unwrap().ratio(), 0.25);
    }

    #[test]
    fn rss_without_a_limit_or_without_cgroup_v2() {
        let s = Scratch::new("rss");
        s.write("proc/self/status", STATUS);
        s.write("proc/meminfo", "MemTotal:       8192 kB\nMemFree: 1 kB\n");
        // No limit anywhere up the tree.
        s.write("proc/self/cgroup", "0::/app\n");
        s.write("cg/app/memory.max", "max\n");
        s.write("cg/app/memory.current", "100\n");
        let proc_root = s.0.join("proc");
        let cg = s.0.join("cg");
        let mut m = SystemMemory::detect_in(&proc_root, &cg, None).unwrap();
        assert_eq!(m.kind(), "rss");
        assert_eq!(
            m.sample().unwrap(),
            MemorySample {
                used: 2048 * 1024,
                limit: 8192 * 1024
            }
        );
        // A cgroup v1 machine: no `0::` line; the budget given wins.
        s.write("proc/self/cgroup", "4:memory:/app\n");
        let mut m = SystemMemory::detect_in(&proc_root, &cg, Some(4 << 20)).unwrap();
        assert_eq!(m.sample().unwrap().ratio(), 0.5);
    }

    #[test]
    fn nothing_to_read_is_an_error() {
        let s = Scratch::new("none");
        assert!(SystemMemory::detect_in(&s.0.join("proc"), &s.0.join("cg"), Some(1)).is_err());
        s.write("proc/self/status", "Name: x\n");
        assert!(SystemMemory::detect_in(&s.0.join("proc"), &s.0.join("cg"), Some(1)).is_err());
        s.write("proc/self/status", STATUS);
        assert!(SystemMemory::detect_in(&s.0.join("proc"), &s.0.join("cg"), None).is_err());
    }

    /// The real thing on this machine: plausible, whichever source it is.
    #[cfg(target_os = "linux")]
    #[test]
    fn this_machine_reads_plausibly() {
        let total = kib_field(Path::new("/proc/meminfo"), "MemTotal:").unwrap();
        let mut m = SystemMemory::detect(None).unwrap();
        let sample = m.sample().unwrap();
        let ratio = sample.ratio();
        assert!((0.0..=1.0).contains(&ratio), "{sample:?}");
        match m.kind() {
            "rss" => {
                assert!(sample.used > 1 << 20, "RSS {} under 1 MiB", sample.used);
                assert!(
                    sample.used < total,
                    "RSS {} over MemTotal {total}",
                    sample.used
                );
                assert_eq!(sample.limit, total);
                assert!(ratio > 0.0 && ratio < 1.0);
            }
            "cgroup" => {
                assert!(
                    sample.used > 1 << 20,
                    "cgroup usage {} under 1 MiB",
                    sample.used
                );
                assert!(sample.limit > 1 << 20);
            }
            other => panic!("unexpected source {other}"),
        }
        // The explicit RSS reader agrees on the order of magnitude.
        let rss = SystemMemory::rss(total).sample().unwrap();
        assert!(rss.used > 1 << 20 && rss.used < total);
    }
}
