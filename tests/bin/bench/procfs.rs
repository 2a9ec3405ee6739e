//! What the benchmark reads about the gateway's processes from /proc (Linux): CPU time and memory.

use anyhow::Context;

/// Clock ticks per second, the unit of utime and stime in /proc/PID/stat (sysconf(_SC_CLK_TCK)).
pub fn clk_tck() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

/// utime + stime of `pid` (all its threads), in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("odd /proc/PID/stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')': state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: u64 = f.get(11).context("no utime")?.parse()?;
    let stime: u64 = f.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Summed over `pids`, in milliseconds of CPU.
pub fn cpu_ms(pids: &[u32]) -> anyhow::Result<f64> {
    let mut ticks = 0;
    for &p in pids {
        ticks += cpu_ticks(p)?;
    }
    Ok(ticks as f64 * 1000.0 / clk_tck() as f64)
}

/// A `Key:   123 kB` line of /proc/PID/status, in kB.
pub fn status_kb(pid: u32, key: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(key) && l[key.len()..].starts_with(':'))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?;
    let kb = line[key.len() + 1..].trim().trim_end_matches("kB").trim();
    Ok(kb.parse()?)
}

/// `key` summed over `pids`, in MB.
pub fn sum_mb(pids: &[u32], key: &str) -> f64 {
    pids.iter()
        .filter_map(|&p| status_kb(p, key).ok())
        .sum::<u64>() as f64
        / 1024.0
}

/// The 1-minute load average of the machine.
pub fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}
