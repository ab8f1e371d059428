//! An SVG chart of one benchmark run: requests per time bucket (successful ones and failed
//! ones in another colour), their latency (median and worst per bucket, log scale), and each
//! deploy's phases as a coloured strip between the two and bands behind the latency, so a
//! failure can be read against the phase it happened in. Plain SVG written by hand: no
//! plotting dependency.

use std::fmt::Write as _;

use crate::records::{Mark, Record};

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 16.0;
const LEGEND_TOP: f64 = 36.0;
const LEGEND_LINE: f64 = 16.0;
const REQUESTS_TOP: f64 = 76.0;
const REQUESTS_HEIGHT: f64 = 160.0;
const STRIP_TOP: f64 = 242.0;
const STRIP_HEIGHT: f64 = 14.0;
const LATENCY_TOP: f64 = 266.0;
const LATENCY_HEIGHT: f64 = 140.0;
const HEIGHT: f64 = 440.0;
/// Latency axis: 0.1 ms to 10 s, one tick per decade.
const LATENCY_DECADES: [f64; 6] = [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0];

/// Colours of the phase bands, by phase name; any other label is grey.
const PHASE_COLOURS: [(&str, &str); 10] = [
    ("validate", "#7f7f7f"),
    ("deploy standby", "#9467bd"),
    ("health-check standby", "#e7ba52"),
    ("switch", "#17becf"),
    ("monitor", "#2ca02c"),
    ("rollback", "#d62728"),
    ("retire", "#ff7f0e"),
    ("reconcile", "#8c564b"),
    ("docker rm + run", "#8c564b"),
    ("compose up", "#8c564b"),
];

/// What one time bucket saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bucket {
    /// Requests due in the bucket that succeeded.
    pub ok: u32,
    /// Requests due in the bucket that failed.
    pub failed: u32,
    /// Their latencies, sorted.
    pub latencies: Vec<f64>,
}

/// Groups records into buckets of `bucket_ms` counted from `origin_ms`, `count` of them.
pub fn buckets(records: &[Record], origin_ms: u128, bucket_ms: u128, count: usize) -> Vec<Bucket> {
    let mut out = vec![Bucket::default(); count];
    for r in records {
        let Some(index) = r
            .due_ms
            .checked_sub(origin_ms)
            .map(|d| (d / bucket_ms) as usize)
        else {
            continue;
        };
        let Some(b) = out.get_mut(index) else {
            continue;
        };
        if r.outcome.ok() {
            b.ok += 1;
        } else {
            b.failed += 1;
        }
        b.latencies.push(r.latency_ms);
    }
    for b in &mut out {
        b.latencies.sort_by(f64::total_cmp);
    }
    out
}

/// Escapes text for an SVG text node or attribute.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn phase_colour(label: &str) -> &'static str {
    PHASE_COLOURS
        .iter()
        .find(|(name, _)| *name == label)
        .map_or("#bbbbbb", |(_, colour)| colour)
}

/// A step for axis ticks that gives at most about 12 ticks over `span`.
fn tick_step(span: f64, steps: &[f64]) -> f64 {
    steps
        .iter()
        .copied()
        .find(|s| span / s <= 12.0)
        .unwrap_or(*steps.last().expect("steps"))
}

/// Renders the chart.
pub fn render(records: &[Record], marks: &[Mark], title: &str, bucket_ms: u128) -> String {
    let origin = records
        .iter()
        .map(|r| r.due_ms)
        .chain(marks.iter().map(|m| m.start_ms))
        .min()
        .unwrap_or(0);
    let end = records
        .iter()
        .map(|r| r.due_ms + r.latency_ms as u128)
        .chain(marks.iter().map(|m| m.end_ms))
        .max()
        .unwrap_or(origin)
        .max(origin + bucket_ms);
    let count = (end - origin).div_ceil(bucket_ms) as usize;
    let data = buckets(records, origin, bucket_ms, count);
    let plot_width = WIDTH - LEFT - RIGHT;
    let x_of_ms =
        |ms: u128| LEFT + (ms.saturating_sub(origin)) as f64 / (end - origin) as f64 * plot_width;
    let bucket_width = plot_width / count as f64;
    let peak = data
        .iter()
        .map(|b| b.ok + b.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let requests_max = f64::from(peak).max(5.0);
    let y_of_requests = |n: f64| REQUESTS_TOP + REQUESTS_HEIGHT * (1.0 - n / requests_max);
    let (lo, hi) = (LATENCY_DECADES[0].log10(), LATENCY_DECADES[5].log10());
    let y_of_latency = |ms: f64| {
        let v = ms.clamp(LATENCY_DECADES[0], LATENCY_DECADES[5]).log10();
        LATENCY_TOP + LATENCY_HEIGHT * (1.0 - (v - lo) / (hi - lo))
    };

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        svg,
        r#"<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
    );
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );

    // Phases: a strip between the panels, and faint bands behind the latency; at least a
    // pixel and a half wide, so a fast switch still shows.
    let mut labels: Vec<&str> = Vec::new();
    for m in marks {
        let x = x_of_ms(m.start_ms);
        let w = (x_of_ms(m.end_ms) - x).max(1.5);
        let colour = phase_colour(&m.label);
        let _ = writeln!(
            svg,
            r#"<rect class="phase" x="{x:.1}" y="{STRIP_TOP}" width="{w:.1}" height="{STRIP_HEIGHT}" fill="{colour}"><title>{}</title></rect><rect x="{x:.1}" y="{LATENCY_TOP}" width="{w:.1}" height="{LATENCY_HEIGHT}" fill="{colour}" fill-opacity="0.2"/>"#,
            escape(&m.label)
        );
        if !labels.contains(&m.label.as_str()) {
            labels.push(&m.label);
        }
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="end">phases</text>"#,
        LEFT - 4.0,
        STRIP_TOP + 11.0
    );

    // Requests per bucket: successful ones as an area, failed ones stacked on top in red.
    let mut area = format!("M{LEFT:.1},{:.1}", y_of_requests(0.0));
    for (i, b) in data.iter().enumerate() {
        let (x0, x1) = (
            LEFT + i as f64 * bucket_width,
            LEFT + (i + 1) as f64 * bucket_width,
        );
        let y = y_of_requests(f64::from(b.ok));
        let _ = write!(area, " L{x0:.1},{y:.1} L{x1:.1},{y:.1}");
    }
    let _ = write!(area, " L{:.1},{:.1} Z", WIDTH - RIGHT, y_of_requests(0.0));
    let _ = writeln!(
        svg,
        r##"<path d="{area}" fill="#4c78a8" fill-opacity="0.85"/>"##
    );
    for (i, b) in data.iter().enumerate().filter(|(_, b)| b.failed > 0) {
        let x = LEFT + i as f64 * bucket_width;
        let top = y_of_requests(f64::from(b.ok + b.failed));
        let bottom = y_of_requests(f64::from(b.ok));
        let _ = writeln!(
            svg,
            r##"<rect class="failed" x="{x:.1}" y="{top:.1}" width="{:.1}" height="{:.1}" fill="#e41a1c"><title>{} failed</title></rect>"##,
            bucket_width.max(1.5),
            (bottom - top).max(1.0),
            b.failed
        );
    }

    // Latency per bucket: the median and the worst, log scale.
    for (pick, colour, name) in [(0.5, "#1f3b73", "median"), (1.0, "#f28e2b", "worst")] {
        let mut path = String::new();
        let mut pen_down = false;
        for (i, b) in data.iter().enumerate() {
            if b.latencies.is_empty() {
                pen_down = false;
                continue;
            }
            let rank =
                ((b.latencies.len() as f64 * pick).ceil() as usize).clamp(1, b.latencies.len());
            let x = LEFT + (i as f64 + 0.5) * bucket_width;
            let y = y_of_latency(b.latencies[rank - 1]);
            let _ = write!(path, "{}{x:.1},{y:.1} ", if pen_down { "L" } else { "M" });
            pen_down = true;
        }
        let _ = writeln!(
            svg,
            r#"<path class="latency-{name}" d="{}" fill="none" stroke="{colour}" stroke-width="1.2"/>"#,
            path.trim_end()
        );
    }

    // Axes, grid and labels.
    let axis = "#444444";
    for (top, height) in [
        (REQUESTS_TOP, REQUESTS_HEIGHT),
        (LATENCY_TOP, LATENCY_HEIGHT),
    ] {
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{top}" width="{plot_width}" height="{height}" fill="none" stroke="{axis}"/>"#
        );
    }
    let request_step = tick_step(
        requests_max,
        &[1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0],
    );
    let mut n = 0.0;
    while n <= requests_max {
        let y = y_of_requests(n);
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{n}</text>"#,
            LEFT - 4.0,
            y + 4.0
        );
        n += request_step;
    }
    for ms in LATENCY_DECADES {
        let y = y_of_latency(ms);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#dddddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            if ms < 1000.0 {
                format!("{ms} ms")
            } else {
                format!("{} s", ms / 1000.0)
            }
        );
    }
    let seconds = (end - origin) as f64 / 1000.0;
    let step = tick_step(
        seconds,
        &[0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0],
    );
    let mut t = 0.0;
    while t <= seconds {
        let x = LEFT + t / seconds * plot_width;
        let _ = writeln!(
            svg,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{t}s</text>"#,
            LATENCY_TOP + LATENCY_HEIGHT + 14.0
        );
        t += step;
    }
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">requests per {bucket_ms} ms</text>"#,
        REQUESTS_TOP + REQUESTS_HEIGHT / 2.0,
        REQUESTS_TOP + REQUESTS_HEIGHT / 2.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">latency</text>"#,
        LATENCY_TOP + LATENCY_HEIGHT / 2.0,
        LATENCY_TOP + LATENCY_HEIGHT / 2.0
    );

    // Legend: the series, then each phase that appears.
    let total_failed: u32 = data.iter().map(|b| b.failed).sum();
    let total: u32 = data.iter().map(|b| b.ok + b.failed).sum();
    let mut entries: Vec<(String, &str)> = vec![
        (format!("ok ({})", total - total_failed), "#4c78a8"),
        (format!("failed ({total_failed})"), "#e41a1c"),
        ("median latency".into(), "#1f3b73"),
        ("worst latency".into(), "#f28e2b"),
    ];
    entries.extend(labels.iter().map(|l| (l.to_string(), phase_colour(l))));
    let (mut x, mut y) = (LEFT, LEGEND_TOP);
    for (text, colour) in entries {
        let width = 24.0 + 6.2 * text.len() as f64;
        if x + width > WIDTH - RIGHT {
            (x, y) = (LEFT, y + LEGEND_LINE);
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{colour}"/><text x="{:.1}" y="{y:.1}">{}</text>"#,
            y - 9.0,
            x + 13.0,
            escape(&text)
        );
        x += width;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{Outcome, Seen};

    fn record(due_ms: u128, status: u16) -> Record {
        Record {
            due_ms,
            latency_ms: 2.0,
            outcome: Outcome::Status(status),
            slot: Seen::Unnamed,
        }
    }

    #[test]
    fn buckets_count_ok_and_failed_requests() {
        let records = [
            record(1000, 200),
            record(1050, 502),
            record(1150, 200),
            record(5000, 200),
        ];
        let b = buckets(&records, 1000, 100, 3);
        assert_eq!((b[0].ok, b[0].failed), (1, 1));
        assert_eq!((b[1].ok, b[1].failed), (1, 0));
        assert_eq!(
            (b[2].ok, b[2].failed),
            (0, 0),
            "records past the last bucket are left out"
        );
    }

    #[test]
    fn the_chart_draws_failures_and_phases() {
        let records: Vec<Record> = (0..100)
            .map(|i| record(1000 + i * 10, if i == 50 { 502 } else { 200 }))
            .collect();
        let marks = [
            Mark {
                start_ms: 1200,
                end_ms: 1300,
                label: "switch".into(),
            },
            Mark {
                start_ms: 1300,
                end_ms: 1800,
                label: "<monitor>".into(),
            },
        ];
        let svg = render(&records, &marks, "a & b", 100);
        assert!(
            svg.starts_with("<svg") && svg.ends_with("</svg>\n"),
            "{svg}"
        );
        assert_eq!(svg.matches(r#"class="failed""#).count(), 1, "{svg}");
        assert_eq!(svg.matches(r#"class="phase""#).count(), 2, "{svg}");
        assert!(
            svg.contains("a &amp; b") && svg.contains("&lt;monitor&gt;"),
            "{svg}"
        );
        assert!(
            svg.contains("failed (1)") && svg.contains("ok (99)"),
            "{svg}"
        );
    }
}
