//! `--plot FILE.svg`: the table's ratios `mailboxd / baseline` as a chart,
//! one row per figure of the table, one bar per baseline at the median
//! ratio (drawn from 1x, on a log scale), a whisker from the lowest to the
//! highest ratio of one round ([`report::ratio_spread`]). The numbers are
//! the table's; since a ratio above 1x is good for throughput and bad for
//! latency, each row shades the side of 1x where mailboxd is ahead, so the
//! chart reads the same way on every row.
//!
//! Drawn with `plotters` and its SVG backend; text is left to the viewer's
//! sans-serif font (no font crate).

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::report::{self, Better, Record, ROWS};
use crate::spec::System;
use crate::stats::Spread;

/// One colour per baseline, in `System::BASELINES` order.
const COLOURS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

/// Width of the chart, pixels.
const WIDTH: u32 = 1000;
/// Height of one row (a figure, every baseline), pixels.
const ROW_HEIGHT: u32 = 64;

/// The chart of the ratios of `records`, as SVG text, `title` on top.
pub fn ratio_chart(records: &[Record], title: &str) -> Result<String> {
    let baselines = &System::BASELINES;
    // The table's rows, for the workloads that ran; the top row first.
    let rows: Vec<(String, Better, Vec<Option<Spread>>)> = ROWS
        .iter()
        .filter(|(workload, _, _)| records.iter().any(|r| r.workload == *workload))
        .map(|&(workload, name, better)| {
            let label = format!("{workload} {name} ({} is better)", better.text());
            let ratios = baselines
                .iter()
                .map(|&system| {
                    report::ratio_spread(records, workload, System::Mailboxd, system, name)
                })
                .collect();
            (label, better, ratios)
        })
        .collect();
    let spreads = || {
        rows.iter()
            .flat_map(|(_, _, ratios)| ratios.iter().flatten())
    };
    let low = spreads().map(|s| s.min).fold(1.0, f64::min) / 1.5;
    let high = spreads().map(|s| s.max).fold(1.0, f64::max) * 1.5;
    let count = rows.len().max(1);
    // One empty row on top, for the legend.
    let height = 120 + ROW_HEIGHT * (count as u32 + 1);
    // The bars of a row fill 80% of it, so rows stand apart.
    let pitch = 0.8 / baselines.len() as f64;
    let y_of = |row: usize, bar: usize| {
        let bars = baselines.len() as f64;
        (count - 1 - row) as f64 + (bars - 1.0 - bar as f64 - (bars - 1.0) / 2.0) * pitch
    };
    let half_bar = pitch * 0.4;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_error)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 14))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(260)
            .build_cartesian_2d((low..high).log_scale(), -0.5f64..count as f64 + 0.5)
            .map_err(plot_error)?;
        chart
            .configure_mesh()
            .y_labels(0)
            .disable_y_mesh()
            .x_desc(
                "mailboxd / baseline (log scale): median of the rounds, whiskers min-max; \
                 shaded: the side where mailboxd is ahead",
            )
            .x_label_formatter(&|value| format!("{}x", tick(*value)))
            .draw()
            .map_err(plot_error)?;
        // Each row's better side, and a line between rows.
        let ahead = RGBColor(46, 160, 67).mix(0.08);
        chart
            .draw_series(rows.iter().enumerate().map(|(row, (_, better, _))| {
                let y = (count - 1 - row) as f64;
                let (from, to) = match better {
                    Better::Higher => (1.0, high),
                    Better::Lower => (low, 1.0),
                };
                Rectangle::new([(from, y - 0.5), (to, y + 0.5)], ahead.filled())
            }))
            .map_err(plot_error)?;
        chart
            .draw_series((1..count).map(|gap| {
                let y = gap as f64 - 0.5;
                PathElement::new(vec![(low, y), (high, y)], BLACK.mix(0.25).stroke_width(1))
            }))
            .map_err(plot_error)?;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(1.0, -0.5), (1.0, count as f64 - 0.5)],
                BLACK.stroke_width(1),
            )))
            .map_err(plot_error)?;
        for (bar, (&system, colour)) in baselines.iter().zip(COLOURS).enumerate() {
            if rows.iter().all(|(_, _, ratios)| ratios[bar].is_none()) {
                continue;
            }
            let bars = rows.iter().enumerate().filter_map(|(row, (_, _, ratios))| {
                let spread = ratios[bar]?;
                let y = y_of(row, bar);
                Some(Rectangle::new(
                    [(1.0, y - half_bar), (spread.median, y + half_bar)],
                    colour.filled(),
                ))
            });
            chart
                .draw_series(bars)
                .map_err(plot_error)?
                .label(system.id())
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            for (row, (_, _, ratios)) in rows.iter().enumerate() {
                let Some(spread) = ratios[bar] else { continue };
                let y = y_of(row, bar);
                let tip = half_bar * 0.8;
                let whisker = [
                    vec![(spread.min, y), (spread.max, y)],
                    vec![(spread.min, y - tip), (spread.min, y + tip)],
                    vec![(spread.max, y - tip), (spread.max, y + tip)],
                ];
                chart
                    .draw_series(
                        whisker
                            .into_iter()
                            .map(|points| PathElement::new(points, BLACK.stroke_width(1))),
                    )
                    .map_err(plot_error)?;
                // Beside the whisker's end away from 1x.
                let (end, side, shift) = if spread.median < 1.0 {
                    (spread.min, HPos::Right, -4)
                } else {
                    (spread.max, HPos::Left, 4)
                };
                let (x, y) = chart.backend_coord(&(end, y));
                let style = TextStyle::from(("sans-serif", 10).into_font())
                    .pos(Pos::new(side, VPos::Center));
                root.draw(&Text::new(
                    format!("{:.2}x", spread.median),
                    (x + shift, y),
                    style,
                ))
                .map_err(plot_error)?;
            }
        }
        let label_style = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        let none_style =
            TextStyle::from(("sans-serif", 10).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        for (row, (label, _, ratios)) in rows.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(low, (count - 1 - row) as f64));
            root.draw(&Text::new(label.as_str(), (x - 8, y), label_style.clone()))
                .map_err(plot_error)?;
            if ratios.iter().all(Option::is_none) {
                let (x, y) = chart.backend_coord(&(1.0, (count - 1 - row) as f64));
                let text = "no baseline measured this figure";
                root.draw(&Text::new(text, (x + 6, y), none_style.clone()))
                    .map_err(plot_error)?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .draw()
            .map_err(plot_error)?;
        root.present().map_err(plot_error)?;
    }
    Ok(svg)
}

/// An axis value with at most two significant digits and no trailing
/// zeros (`0.01`, `0.35`, `1`, `1.2`, `15`), so small and large ratios
/// both read.
fn tick(value: f64) -> String {
    if !value.is_finite() || value <= 0.0 {
        return format!("{value}");
    }
    let magnitude = value.log10().floor() as i32;
    let decimals = (1 - magnitude).clamp(0, 6) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

fn plot_error(error: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("drawing the chart: {error}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Workload;

    #[test]
    fn the_chart_is_svg_and_names_each_workload() {
        let mut records = Vec::new();
        for round in 1..=3u32 {
            for (index, system) in System::ALL.into_iter().enumerate() {
                for (workload, name) in [
                    (Workload::Stream, "msgs_per_s"),
                    (Workload::Rtt, "p50_us"),
                    (Workload::Workq, "msgs_per_s"),
                ] {
                    let mut record = Record::new(workload, system);
                    record.round = Some(round);
                    record.figure(name, 1000.0 * (index + 1) as f64 + f64::from(round));
                    records.push(record);
                }
            }
        }
        let svg = ratio_chart(&records, "test chart").unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
        assert!(svg.trim_end().ends_with("</svg>"));
        for text in [
            "test chart",
            "stream msgs_per_s",
            "rtt p50_us",
            "workq msgs_per_s",
            "posix-mq",
            "redis",
            "is better",
        ] {
            assert!(svg.contains(text), "no {text:?} in the chart");
        }
        assert!(!svg.contains("fanout"), "only workloads that ran");
    }

    #[test]
    fn axis_values_keep_two_significant_digits_and_no_trailing_zeros() {
        assert_eq!(tick(0.0012), "0.0012");
        assert_eq!(tick(0.01), "0.01");
        assert_eq!(tick(0.35), "0.35");
        assert_eq!(tick(1.0), "1");
        assert_eq!(tick(1.2), "1.2");
        assert_eq!(tick(14.63), "15");
        assert_eq!(tick(100.0), "100");
    }

    #[test]
    fn every_baseline_has_a_colour_of_its_own() {
        // zip() would silently leave a baseline without a colour undrawn.
        assert!(COLOURS.len() >= System::BASELINES.len());
    }

    #[test]
    fn a_chart_without_baselines_still_draws() {
        let mut record = Record::new(Workload::Large, System::Mailboxd);
        record.figure("gib_per_s", 3.0);
        let svg = ratio_chart(&[record], "alone").unwrap();
        assert!(svg.contains("large gib_per_s"));
        assert!(svg.contains("no baseline measured"));
    }
}
