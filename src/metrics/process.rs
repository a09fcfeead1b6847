//! The `process_*` metrics of Prometheus' client libraries, read from `/proc/self` at
//! scrape time (Linux; elsewhere they are left out): nothing on the request path.

use std::fmt::Write as _;

/// What the kernel counts CPU time and start time in (`USER_HZ`, fixed by the kernel's
/// ABI for `/proc`; sysconf(_SC_CLK_TCK) answers the same on every Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// Appends the process metrics that could be read.
pub fn render(out: &mut String) {
    if let Some(stat) = Stat::read() {
        metric(
            out,
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            (stat.utime + stat.stime) as f64 / TICKS_PER_SECOND,
        );
        metric(
            out,
            "process_virtual_memory_bytes",
            "gauge",
            "Virtual memory size, in bytes.",
            stat.vsize as f64,
        );
        if let Some(boot) = boot_time() {
            metric(
                out,
                "process_start_time_seconds",
                "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                boot as f64 + stat.start_ticks as f64 / TICKS_PER_SECOND,
            );
        }
    }
    if let Some(bytes) = resident_bytes() {
        metric(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size, in bytes.",
            bytes as f64,
        );
    }
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        // One of them is the listing's own descriptor.
        let open = entries.count().saturating_sub(1);
        metric(out, "process_open_fds", "gauge", "Open file descriptors.", open as f64);
    }
    if let Some(max) = max_fds() {
        metric(
            out,
            "process_max_fds",
            "gauge",
            "The limit on open file descriptors.",
            max as f64,
        );
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}");
}

/// The fields of `/proc/self/stat` that the metrics need.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    vsize: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// The command name (field 2) is in parentheses and may hold spaces and `)`: the
    /// fields are counted from after its last `)`.
    fn parse(text: &str) -> Option<Self> {
        let rest = &text[text.rfind(')')? + 1..];
        // After the name: field 3 (state) is index 0 here, so field N is index N - 3.
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            utime: field(14)?,
            stime: field(15)?,
            start_ticks: field(22)?,
            vsize: field(23)?,
        })
    }
}

/// Resident memory from the `VmRSS` line of `/proc/self/status` (in kB there), which
/// needs no page size.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// The system's boot time, from the `btime` line of `/proc/stat`.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

/// The soft limit of `Max open files` in `/proc/self/limits`.
fn max_fds() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::Stat;

    #[test]
    fn a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() {
        let line = "4242 (envoi (a) b) S 1 4242 4242 0 -1 4194560 1 0 0 0 250 75 0 0 20 0 9 0 123456 987654321 3210 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        assert_eq!(
            Stat::parse(line),
            Some(Stat {
                utime: 250,
                stime: 75,
                start_ticks: 123456,
                vsize: 987654321,
            })
        );
    }

    #[test]
    fn this_process_has_readable_process_metrics() {
        let mut out = String::new();
        super::render(&mut out);
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
        ] {
            assert!(out.contains(&format!("\n{name} ")), "{name}\n{out}");
        }
    }
}
