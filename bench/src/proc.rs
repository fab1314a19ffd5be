//! CPU time and resident memory of a process and its descendants, from /proc.

use std::collections::HashMap;
use std::fs;

/// Clock ticks per second for /proc/<pid>/stat times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// (ppid, utime + stime in ticks) of one process; all its threads included.
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = text.get(text.rfind(')')? + 1..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

/// `pid` and every live descendant (a wrapper that forks workers counts whole).
pub fn tree(pid: u32) -> Vec<u32> {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            if let Some(p) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) {
                if let Some((ppid, _)) = stat(p) {
                    parent.insert(p, ppid);
                }
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while let Some(&p) = out.get(i) {
        out.extend(parent.iter().filter(|(_, &pp)| pp == p).map(|(&c, _)| c));
        i += 1;
    }
    out
}

/// CPU seconds (user + system) used so far by the processes.
pub fn cpu_seconds(pids: &[u32]) -> f64 {
    let ticks: u64 = pids.iter().filter_map(|&p| stat(p)).map(|(_, t)| t).sum();
    ticks as f64 / ticks_per_second()
}

/// Resident set size in KiB (VmRSS), summed over the processes.
pub fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum::<u64>()
}
