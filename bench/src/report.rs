//! The table: printed as the benchmark goes, then written to BENCHMARKS.md
//! and, for the plot, to target/bench/results.json.

use std::fmt::Write as _;

use harness::stats::Summary;
use serde_json::{json, Value};

/// One figure: p50 and p99 over `n` samples (p99 `None` for a single value).
#[derive(Clone, Copy, Debug)]
pub struct Fig {
    /// Median (or the single value).
    pub p50: f64,
    /// 99th percentile; for rates, the slow tail (N / p99 of the time).
    pub p99: Option<f64>,
    /// Samples.
    pub n: usize,
}

impl Fig {
    /// p50/p99 of `s`.
    pub fn of(s: &Summary) -> Fig {
        Fig {
            p50: s.p50,
            p99: Some(s.p99),
            n: s.n,
        }
    }

    /// One value (a count, a rate over a window).
    pub fn one(v: f64) -> Fig {
        Fig {
            p50: v,
            p99: None,
            n: 1,
        }
    }

    /// Registrations per second from the seconds `n` took in each round:
    /// p50 from the median time, p99 from the 99th-percentile (slow) time.
    pub fn rate(count: usize, secs: &[f64]) -> Fig {
        let s = Summary::of(secs);
        Fig {
            p50: count as f64 / s.p50,
            p99: Some(count as f64 / s.p99),
            n: s.n,
        }
    }
}

/// One line of the table.
#[derive(Clone, Debug)]
pub struct Row {
    /// Row of the issue it answers, e.g. `1` or `8`.
    pub section: u8,
    /// What was measured.
    pub what: String,
    /// Unit of the figures.
    pub unit: &'static str,
    /// The figure.
    pub fig: Fig,
    /// The baseline's name and figure (measured in the same run).
    pub baseline: Option<(String, Fig)>,
    /// Ratios, as printed (e.g. `1.31x floor, 0.42x seed`).
    pub ratio: String,
    /// The first ratio as a number (p50 / baseline p50), for the plot.
    pub ratio_value: Option<f64>,
    /// The goal, when the issues set one.
    pub goal: String,
    /// Whether the goal is met.
    pub met: Option<bool>,
    /// Plot panel this row belongs to (`""`: none).
    pub panel: &'static str,
}

impl Row {
    /// A row without baseline, goal or panel.
    pub fn new(section: u8, what: impl Into<String>, unit: &'static str, fig: Fig) -> Row {
        Row {
            section,
            what: what.into(),
            unit,
            fig,
            baseline: None,
            ratio: String::new(),
            ratio_value: None,
            goal: String::new(),
            met: None,
            panel: "",
        }
    }

    /// Sets the baseline and the ratio of the p50s.
    pub fn against(mut self, name: impl Into<String>, base: Fig) -> Row {
        let name = name.into();
        let r = self.fig.p50 / base.p50;
        if r.is_finite() {
            self.ratio = format!("{} {}", times(r), short(&name));
            self.ratio_value = Some(r);
        }
        self.baseline = Some((name, base));
        self
    }

    /// Adds a second ratio (p50 over `other`'s p50) to the ratio column.
    pub fn also(mut self, name: &str, other: Fig) -> Row {
        let r = self.fig.p50 / other.p50;
        if !r.is_finite() {
            return self;
        }
        if !self.ratio.is_empty() {
            self.ratio.push_str(", ");
        }
        let _ = write!(self.ratio, "{} {name}", times(r));
        self
    }

    /// Sets the goal and whether it is met.
    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.met = Some(met);
        self
    }

    /// Puts the row on a plot panel.
    pub fn panel(mut self, panel: &'static str) -> Row {
        self.panel = panel;
        self
    }
}

/// A ratio: two decimals, or two significant digits below 0.1 (`0.001x`).
pub fn times(r: f64) -> String {
    if r.abs() >= 0.1 || r == 0.0 {
        format!("{r:.2}x")
    } else {
        let digits = (-r.abs().log10()).ceil() as usize + 1;
        format!("{r:.digits$}x")
    }
}

fn short(baseline: &str) -> &str {
    baseline.split(" (").next().unwrap_or(baseline)
}

/// A count with thousands separators: `100,000`.
pub fn count(n: usize) -> String {
    num(n as f64)
}

/// `1 registration`, `1,000 registrations`.
pub fn registrations(n: usize) -> String {
    if n == 1 {
        "1 registration".into()
    } else {
        format!("{} registrations", count(n))
    }
}

/// A number as the table shows it.
pub fn num(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else if v.abs() >= 1_000.0 || (v.fract() == 0.0 && v.abs() < 1e15) {
        let s = format!("{:.0}", v);
        // thousands separators
        let neg = s.starts_with('-');
        let digits: Vec<char> = s.trim_start_matches('-').chars().collect();
        let mut out = String::new();
        for (i, c) in digits.iter().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(*c);
        }
        if neg {
            format!("-{out}")
        } else {
            out
        }
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(num).unwrap_or_else(|| "-".into())
}

/// The section titles, by issue row.
pub fn section_title(section: u8) -> &'static str {
    match section {
        1 => "1. Register latency, warm",
        2 => "2. Deregister latency; closing a client with 10,000 registrations",
        3 => "3. Bulk registration from one process",
        4 => "4. Propagation: register returns -> a watcher sees it (in another process, then in this one)",
        5 => "5. Crash detection: provider SIGKILLed -> watcher sees it removed",
        6 => "6. Recovery: etcd restarted on a wiped data dir -> all registrations back",
        7 => "7. Footprint",
        8 => "8. Peers doing the same job, same etcd, same run",
        _ => "other",
    }
}

/// The cells of a row after its name: p50, p99, unit, n, baseline name,
/// baseline p50, baseline p99, ratio, goal, verdict (`missed`: how a miss reads).
fn cells(row: &Row, short_names: bool, missed: &str) -> [String; 10] {
    let (bname, b50, b99) = match &row.baseline {
        Some((name, f)) => {
            let name = if short_names { short(name) } else { name };
            (name.to_string(), num(f.p50), opt(f.p99))
        }
        None => (String::new(), String::new(), String::new()),
    };
    let verdict = match row.met {
        Some(true) => "met",
        Some(false) => missed,
        None => "",
    };
    [
        num(row.fig.p50),
        opt(row.fig.p99),
        row.unit.to_string(),
        row.fig.n.to_string(),
        bname,
        b50,
        b99,
        row.ratio.clone(),
        row.goal.clone(),
        verdict.to_string(),
    ]
}

/// Prints one row as a line of the console table.
pub fn print_row(row: &Row) {
    let [p50, p99, unit, n, bname, b50, b99, ratio, goal, verdict] = cells(row, true, "MISSED");
    println!(
        "  {:<46} {p50:>10} {p99:>10} {unit:<6} {n:>5} | {bname:<22} {b50:>10} {b99:>10} | {ratio:<28} {goal:<26} {verdict}",
        row.what
    );
}

/// The markdown table of `rows`, one table per section.
pub fn markdown_tables(rows: &[Row]) -> String {
    let mut out = String::new();
    let mut sections: Vec<u8> = rows.iter().map(|r| r.section).collect();
    sections.sort_unstable();
    sections.dedup();
    for section in sections {
        let _ = writeln!(out, "### {}\n", section_title(section));
        out.push_str("| measure | p50 | p99 | unit | n | baseline (same run) | baseline p50 | baseline p99 | ratio (p50) | goal | |\n");
        out.push_str("|---|--:|--:|---|--:|---|--:|--:|---|---|---|\n");
        for row in rows.iter().filter(|r| r.section == section) {
            let _ = writeln!(
                out,
                "| {} | {} |",
                row.what.trim(),
                cells(row, false, "**MISSED**").join(" | ")
            );
        }
        out.push('\n');
    }
    out
}

/// The rows as JSON, for the plot script.
pub fn json_rows(rows: &[Row]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "section": r.section,
                    "what": r.what,
                    "unit": r.unit,
                    "p50": r.fig.p50,
                    "p99": r.fig.p99,
                    "n": r.fig.n,
                    "baseline": r.baseline.as_ref().map(|(name, f)| json!({"what": name, "p50": f.p50, "p99": f.p99})),
                    "ratio": r.ratio_value,
                    "goal": r.goal,
                    "met": r.met,
                    "panel": r.panel,
                })
            })
            .collect(),
    )
}

/// Everything the run learned, for the document.
pub struct Run {
    /// Every row, in the order printed.
    pub rows: Vec<Row>,
    /// What went wrong or needs saying, for the document.
    pub notes: Vec<String>,
    /// The peers measured: name, version and how they register.
    pub peers: Vec<String>,
}

impl Run {
    /// Prints `row` and keeps it.
    pub fn add(&mut self, row: Row) {
        print_row(&row);
        self.rows.push(row);
    }

    /// Prints the title of `section`.
    pub fn section(&self, section: u8) {
        println!("\n== {}", section_title(section));
    }

    /// Prints `note` and keeps it for the document.
    pub fn note(&mut self, note: String) {
        println!("  note: {note}");
        self.notes.push(note);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_section_gets_one_table_in_order() {
        let row = |s: u8| Row::new(s, format!("row of {s}"), "µs", Fig::one(1.0));
        let md = markdown_tables(&[row(1), row(2), row(3), row(2)]);
        assert_eq!(md.matches("### 2.").count(), 1);
        assert_eq!(md.matches("row of 2").count(), 2);
        let (one, two, three) = (
            md.find("### 1.").unwrap(),
            md.find("### 2.").unwrap(),
            md.find("### 3.").unwrap(),
        );
        assert!(one < two && two < three);
    }

    #[test]
    fn ratios_keep_two_significant_digits() {
        assert_eq!(times(1.234), "1.23x");
        assert_eq!(times(0.0123), "0.012x");
        assert_eq!(times(0.001), "0.0010x");
        assert_eq!(count(100_000), "100,000");
        assert_eq!(num(0.5), "0.50");
        let r = Row::new(1, "x", "µs", Fig::one(3.0)).against("zero", Fig::one(0.0));
        assert!(r.ratio.is_empty() && r.ratio_value.is_none());
    }
}
