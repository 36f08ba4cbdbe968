//! The process, read from /proc/self at scrape time (Linux; elsewhere
//! these families are left out), under the standard `process_` names, and
//! the build.

use prometheus_client::registry::Unit;

use super::encode::{Family, Value};

pub fn collect(out: &mut Vec<Family>) {
    out.push(
        Family::gauge("herald_build_info", "Always 1; the labels name the build.").with(
            vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            Value::Gauge(1),
        ),
    );
    // SAFETY: sysconf and getrlimit only read process-wide settings.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if let Some(stat) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat(&s))
        && ticks > 0
    {
        let ticks = ticks as f64;
        out.push(
            Family::counter("process_cpu", "User and system CPU time spent.")
                .unit(Unit::Seconds)
                .with(
                    vec![],
                    Value::CounterF((stat.utime + stat.stime) as f64 / ticks),
                ),
        );
        out.push(
            Family::gauge("process_resident_memory", "Resident memory size.")
                .unit(Unit::Bytes)
                .with(vec![], Value::Gauge((stat.rss_pages * page.max(0)) as i64)),
        );
        if let Some(boot) = boot_time_seconds() {
            out.push(
                Family::gauge(
                    "process_start_time",
                    "Start time of the process since the Unix epoch.",
                )
                .unit(Unit::Seconds)
                .with(
                    vec![],
                    Value::GaugeF(boot as f64 + stat.start_ticks as f64 / ticks),
                ),
            );
        }
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push(
            Family::gauge("process_open_fds", "Open file descriptors.")
                .with(vec![], Value::Gauge(fds.count() as i64)),
        );
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
        out.push(
            Family::gauge(
                "process_max_fds",
                "Limit on open file descriptors (RLIMIT_NOFILE).",
            )
            .with(
                vec![],
                Value::Gauge(i64::try_from(limit.rlim_cur).unwrap_or(i64::MAX)),
            ),
        );
    }
}

#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    start_ticks: u64,
    rss_pages: i64,
}

/// Fields of /proc/self/stat after the command name (which may hold spaces
/// and parentheses, hence the last ')').
fn parse_stat(s: &str) -> Option<Stat> {
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field N is f[N - 3].
    Some(Stat {
        utime: f.get(11)?.parse().ok()?,
        stime: f.get(12)?.parse().ok()?,
        start_ticks: f.get(19)?.parse().ok()?,
        rss_pages: f.get(21)?.parse().ok()?,
    })
}

fn boot_time_seconds() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_stat_with_a_hostile_command_name() {
        let line = "42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0 9000 123456 789 18446744073709551615";
        assert_eq!(
            parse_stat(line),
            Some(Stat {
                utime: 250,
                stime: 50,
                start_ticks: 9000,
                rss_pages: 789
            })
        );
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn reads_this_process() {
        let mut out = Vec::new();
        collect(&mut out);
        let names: Vec<_> = out.iter().map(|f| f.name).collect();
        for n in [
            "process_cpu",
            "process_resident_memory",
            "process_open_fds",
            "process_max_fds",
            "process_start_time",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
    }
}
