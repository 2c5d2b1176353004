//! What every bench prints with: the machine, and figures as `median (min–max)`.

use std::process::Command;
use std::time::Duration;

use anyhow::{ensure, Context, Result};

pub fn nproc() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "?".into())
}

pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "CPU model unknown".into())
}

pub fn etcd_version() -> Result<String> {
    let out = Command::new("etcd")
        .arg("--version")
        .output()
        .context("running `etcd --version` (run ./scripts/setup first)")?;
    ensure!(out.status.success(), "`etcd --version` failed");
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string())
}

/// Median, min and max.
pub fn summary(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    let mid = v.len() / 2;
    let median = if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    (median, v[0], v[v.len() - 1])
}

pub fn median_of(values: impl Iterator<Item = f64>) -> f64 {
    summary(values).0
}

/// `median (min–max)`, or the single value when they are all the same.
pub fn cell(values: impl Iterator<Item = f64>, show: impl Fn(f64) -> String, unit: &str) -> String {
    let (median, min, max) = summary(values);
    if min == max {
        format!("{}{unit}", show(median))
    } else {
        format!("{}{unit} ({}–{})", show(median), show(min), show(max))
    }
}

pub fn durations(values: impl Iterator<Item = Duration>) -> String {
    cell(values.map(|d| d.as_secs_f64()), |s| format!("{s:.2}"), " s")
}

pub fn millis(values: impl Iterator<Item = u64>) -> String {
    cell(values.map(|v| v as f64), |v| format!("{v:.0}"), " ms")
}

pub fn counts(values: impl Iterator<Item = u64>) -> String {
    cell(values.map(|v| v as f64), |v| format!("{v}"), "")
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

/// Prints a table: a header line of `columns`, then one line per row, each cell the row's
/// figure over that column's samples.
pub fn table<S, F: Fn(&[S]) -> String>(
    label_width: usize,
    col: usize,
    columns: &[String],
    rows: impl IntoIterator<Item = (&'static str, F)>,
    samples: &[Vec<S>],
) {
    let mut header = format!("{:label_width$}", "");
    for c in columns {
        header.push_str(&format!("{c:col$}"));
    }
    println!("{}", header.trim_end());
    for (label, cell) in rows {
        let mut line = format!("{label:label_width$}");
        for s in samples {
            line.push_str(&format!("{:col$}", cell(s)));
        }
        println!("{}", line.trim_end());
    }
}
