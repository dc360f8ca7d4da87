//! The machine a run happens on, and the CPUs it may use: `--cpus` pins the
//! orchestrator with `sched_setaffinity` before anything is started, and
//! every party (roles, relay, `mailboxd`, `redis-server`) inherits that set
//! through `fork` and `exec`. Nothing is pinned by default.
//!
//! What was used goes into the output (a `run` JSON line, the stderr
//! summary), so that figures are never read without it.

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};

/// A `--cpus` list, as one command-line value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// [`parse_cpus`] for clap.
pub fn parse_cpu_list(text: &str) -> Result<CpuList, String> {
    parse_cpus(text).map(CpuList)
}

/// Parses a CPU list as `taskset -c` and `/sys` write it: `0,2-3`.
pub fn parse_cpus(text: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| {
            s.trim()
                .parse::<usize>()
                .map_err(|_| format!("{s:?} in {text:?} is not a CPU number"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    return Err(format!("{part:?} in {text:?} is an empty range"));
                }
                cpus.extend(low..=high);
            }
            None => cpus.push(number(part)?),
        }
    }
    cpus.sort_unstable();
    cpus.dedup();
    if cpus.iter().any(|&cpu| cpu >= libc::CPU_SETSIZE as usize) {
        return Err(format!(
            "{text:?} names a CPU above {}",
            libc::CPU_SETSIZE - 1
        ));
    }
    Ok(cpus)
}

/// Restricts this process, and so every process it starts afterwards, to
/// `cpus`.
pub fn pin(cpus: &[usize]) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        // SAFETY: `cpu` was checked against CPU_SETSIZE by parse_cpus, so
        // the bit is inside `set`.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is this
    // thread, and threads created later inherit its mask.
    let status =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if status != 0 {
        let error = std::io::Error::last_os_error();
        bail!("cannot pin to CPUs {cpus:?} (sched_setaffinity): {error}");
    }
    Ok(())
}

/// The CPUs this process may run on now.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: as in `pin`; the kernel writes the mask into `set`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, writable cpu_set_t of the size given.
    let status =
        unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if status != 0 {
        return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: every `cpu` is below CPU_SETSIZE, inside `set`.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
        .collect())
}

/// The machine: online cores, CPU model, kernel release.
pub fn describe() -> Value {
    // SAFETY: sysconf has no preconditions.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| cpu_model(&info))
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_owned())
        .unwrap_or_else(|_| "unknown".into());
    json!({ "cores": cores.max(0), "model": model, "kernel": kernel })
}

/// The first `model name` of `/proc/cpuinfo` text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim().to_owned())
}

/// `0,2-3` for `[0, 2, 3]`.
pub fn format_cpus(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let start = cpus[index];
        let mut end = start;
        while index + 1 < cpus.len() && cpus[index + 1] == end + 1 {
            index += 1;
            end = cpus[index];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        index += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_print_like_taskset() {
        assert_eq!(parse_cpus("0"), Ok(vec![0]));
        assert_eq!(parse_cpus("3,0-1,1"), Ok(vec![0, 1, 3]));
        assert!(parse_cpus("1-0").is_err());
        assert!(parse_cpus("a").is_err());
        assert!(parse_cpus("").is_err());
        assert!(parse_cpus("100000").is_err());
        assert_eq!(format_cpus(&[0, 1, 3, 5, 6, 7]), "0-1,3,5-7");
        assert_eq!(format_cpus(&[]), "");
    }

    #[test]
    fn the_cpu_model_is_the_first_model_name() {
        let info =
            "processor\t: 0\nmodel name\t: AMD EPYC 7763\n\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(info).as_deref(), Some("AMD EPYC 7763"));
        assert_eq!(cpu_model("flags: x"), None);
    }

    #[test]
    fn this_process_may_run_somewhere() {
        assert!(!allowed_cpus().unwrap().is_empty());
        assert!(describe()["cores"].as_i64().unwrap() >= 1);
    }
}
