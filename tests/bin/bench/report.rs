//! Percentiles, the per-run line, and the median (min-max) over repeats as text and as a
//! markdown table row.

use std::time::Duration;

pub fn pct_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Named figures of one run, in print order.
#[derive(Default, Clone)]
pub struct Metrics(pub Vec<(&'static str, f64)>);

impl Metrics {
    pub fn push(&mut self, name: &'static str, v: f64) {
        self.0.push((name, v));
    }
}

fn fmt(name: &str, v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if name.ends_with("/s")
        || name.ends_with("MB")
        || name == "backlog"
        || (v.fract() == 0.0 && v.abs() < 1e9)
    {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

pub fn line(m: &Metrics) -> String {
    m.0.iter()
        .map(|(k, v)| format!("{k} {}", fmt(k, *v)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median_min_max(v: &mut [f64]) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let mid = if !v.len().is_multiple_of(2) {
        v[v.len() / 2]
    } else {
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    (mid, v[0], v[v.len() - 1])
}

/// One `name: median (min-max)` per figure, over the runs.
pub fn summary(runs: &[Metrics]) -> Vec<(&'static str, String)> {
    let Some(first) = runs.first() else {
        return Vec::new();
    };
    first
        .0
        .iter()
        .enumerate()
        .map(|(i, (name, _))| {
            let mut vals: Vec<f64> = runs
                .iter()
                .filter_map(|m| m.0.get(i).map(|x| x.1))
                .collect();
            let (mid, lo, hi) = median_min_max(&mut vals);
            let s = if runs.len() == 1 {
                fmt(name, mid)
            } else {
                format!("{} ({}-{})", fmt(name, mid), fmt(name, lo), fmt(name, hi))
            };
            (*name, s)
        })
        .collect()
}

pub fn print_summary(command: &str, runs: &[Metrics]) {
    let s = summary(runs);
    println!("median (min-max) of {} run(s):", runs.len());
    for (k, v) in &s {
        println!("  {k}: {v}");
    }
    println!(
        "| command | {} |",
        s.iter().map(|(k, _)| *k).collect::<Vec<_>>().join(" | ")
    );
    println!("|---|{}", "---|".repeat(s.len()));
    println!(
        "| `{command}` | {} |",
        s.iter()
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
}
