//! Three small hand-written SVG plots (no plotting dependency): a CDF, a
//! two-panel timeline, and grouped bars.

use std::collections::BTreeMap;
use std::fmt::Write as _;

const W: f64 = 640.0;
const H: f64 = 360.0;
const L: f64 = 60.0;
const R: f64 = 20.0;
const T: f64 = 40.0;
const B: f64 = 50.0;
const COLORS: &[&str] = &[
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#7f7f7f",
];

fn head(title: &str, h: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n",
        W / 2.0,
        esc(title)
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A "nice" upper bound for an axis.
fn nice(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= max {
            return m * p;
        }
    }
    10.0 * p
}

/// The x and y axis lines of a plot area.
fn frame(out: &mut String, x0: f64, x1: f64, y0: f64, y1: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{x0}\" y1=\"{y1}\" x2=\"{x1}\" y2=\"{y1}\" stroke=\"black\"/>\n\
         <line x1=\"{x0}\" y1=\"{y0}\" x2=\"{x0}\" y2=\"{y1}\" stroke=\"black\"/>"
    );
}

/// Axes with 5 ticks each; returns the SVG text.
fn axes(out: &mut String, y0: f64, y1: f64, xmax: f64, ymax: f64, xlabel: &str, ylabel: &str) {
    let (x0, x1) = (L, W - R);
    frame(out, x0, x1, y0, y1);
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let x = x0 + f * (x1 - x0);
        let y = y1 - f * (y1 - y0);
        let _ = writeln!(
            out,
            "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <line x1=\"{x0}\" y1=\"{y:.1}\" x2=\"{x1}\" y2=\"{y:.1}\" stroke=\"#eee\"/>",
            y1 + 16.0,
            fmt(f * xmax),
            x0 - 6.0,
            y + 4.0,
            fmt(f * ymax)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>\
         <text transform=\"translate(16 {:.1}) rotate(-90)\" text-anchor=\"middle\">{}</text>",
        (x0 + x1) / 2.0,
        y1 + 34.0,
        esc(xlabel),
        (y0 + y1) / 2.0,
        esc(ylabel)
    );
}

fn fmt(v: f64) -> String {
    if v >= 100.0 || v == v.round() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn polyline(out: &mut String, pts: &[(f64, f64)], color: &str) {
    let p: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        out,
        "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" points=\"{}\"/>",
        p.join(" ")
    );
}

/// The empirical CDF of `sorted` (ascending); the x axis stops at p99 × 1.5
/// so one outlier does not flatten the curve.
pub fn cdf(title: &str, unit: &str, sorted: &[f64]) -> String {
    let mut out = head(title, H);
    let p99 = sorted
        .get(((sorted.len() as f64 * 0.99) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or(1.0);
    let xmax = nice(p99 * 1.5);
    axes(&mut out, T, H - B, xmax, 100.0, unit, "% of lookups ≤ x");
    if sorted.is_empty() {
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no lookups</text>",
            W / 2.0,
            H / 2.0
        );
    } else {
        let n = sorted.len() as f64;
        let step = (sorted.len() / 400).max(1);
        let mut pts = vec![(L, H - B)];
        for (i, v) in sorted.iter().enumerate().step_by(step) {
            let x = L + (v.min(xmax) / xmax) * (W - R - L);
            let y = (H - B) - ((i + 1) as f64 / n) * (H - B - T);
            pts.push((x, y));
        }
        pts.push((
            L + (sorted[sorted.len() - 1].min(xmax) / xmax) * (W - R - L),
            T,
        ));
        polyline(&mut out, &pts, COLORS[0]);
    }
    out.push_str("</svg>\n");
    out
}

/// Accuracy (%) per second above, live nodes below.
pub fn timeline(acc: &[(f64, f64)], live: &[(f64, f64)], nodes: f64) -> String {
    let h2 = H * 2.0 - 40.0;
    let mut out = head("Accuracy and live nodes over time", h2);
    let xmax = nice(acc.iter().chain(live).map(|p| p.0).fold(1.0, f64::max));
    let panel = |out: &mut String,
                 y0: f64,
                 y1: f64,
                 pts: &[(f64, f64)],
                 ymax: f64,
                 ylabel: &str,
                 color: &str| {
        axes(out, y0, y1, xmax, ymax, "seconds into the workload", ylabel);
        let mapped: Vec<(f64, f64)> = pts
            .iter()
            .map(|(x, y)| {
                (
                    L + x / xmax * (W - R - L),
                    y1 - (y / ymax).min(1.0) * (y1 - y0),
                )
            })
            .collect();
        if !mapped.is_empty() {
            polyline(out, &mapped, color);
        }
    };
    panel(&mut out, T, H - B, acc, 100.0, "accuracy %", COLORS[0]);
    panel(
        &mut out,
        H,
        h2 - B,
        live,
        nice(nodes),
        "live nodes",
        COLORS[2],
    );
    out.push_str("</svg>\n");
    out
}

/// Grouped bars: for each expected code, one bar per actual code.
pub fn bars(data: &BTreeMap<u16, BTreeMap<u16, usize>>) -> String {
    let mut out = head("Outcomes by expected answer", H);
    let actuals: Vec<u16> = {
        let mut v: Vec<u16> = data.values().flat_map(|m| m.keys().copied()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let ymax = nice(
        data.values()
            .flat_map(|m| m.values())
            .copied()
            .max()
            .unwrap_or(1) as f64,
    );
    let groups = data.len().max(1) as f64;
    let (x0, x1, y0, y1) = (L, W - R, T + 20.0, H - B);
    frame(&mut out, x0, x1, y0, y1);
    for i in 0..=5 {
        let f = f64::from(i) / 5.0;
        let y = y1 - f * (y1 - y0);
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            x0 - 6.0,
            y + 4.0,
            fmt(f * ymax)
        );
    }
    let gw = (x1 - x0) / groups;
    let bw = (gw * 0.8) / actuals.len().max(1) as f64;
    for (g, (exp, row)) in data.iter().enumerate() {
        let gx = x0 + g as f64 * gw + gw * 0.1;
        for (k, a) in actuals.iter().enumerate() {
            let n = row.get(a).copied().unwrap_or(0) as f64;
            let h = n / ymax * (y1 - y0);
            let color = COLORS[k % COLORS.len()];
            let x = gx + k as f64 * bw;
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>expected {exp}, got {a}: {n}</title></rect>",
                y1 - h,
                bw * 0.9
            );
            if n > 0.0 {
                let _ = writeln!(
                    out,
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\">{n}</text>",
                    x + bw * 0.45,
                    y1 - h - 3.0
                );
            }
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">expected {exp}</text>",
            gx + gw * 0.4,
            y1 + 16.0
        );
    }
    for (k, a) in actuals.iter().enumerate() {
        let x = x0 + 10.0 + k as f64 * 90.0;
        let _ = writeln!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"{}\">got {}</text>",
            T - 4.0,
            COLORS[k % COLORS.len()],
            x + 16.0,
            T + 6.0,
            if *a == 0 {
                "none".to_string()
            } else {
                a.to_string()
            }
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plots_are_well_formed() {
        let s = cdf("t", "ms", &[1.0, 2.0, 3.0]);
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        assert!(s.contains("<polyline"));
        let t = timeline(&[(0.0, 100.0), (1.0, 50.0)], &[(0.0, 3.0)], 3.0);
        assert_eq!(t.matches("<polyline").count(), 2);
        let mut m = BTreeMap::new();
        m.insert(200, BTreeMap::from([(200, 5), (408, 1)]));
        m.insert(404, BTreeMap::from([(404, 2)]));
        let b = bars(&m);
        assert_eq!(b.matches("<rect x=").count(), 2 * 3 + 3, "bars plus legend");
        assert!(b.contains("expected 200, got 408: 1"));
        assert_eq!(nice(7.0), 10.0);
        assert_eq!(nice(0.3), 0.5);
    }
}
