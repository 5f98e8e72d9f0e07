//! Line plots (accuracy per round, the λ sweep) as SVG and PNG with plotters.
//!
//! plotters' `ab_glyph` text backend lays text out with a TrueType file registered at run time
//! (looked up in `EXSPIN_FONT` and the usual system places), for SVG too, since it measures the
//! text. That avoids fontconfig and any C library; without a font no plot is drawn and the report
//! says why and how to fix it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;

pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

pub struct Chart<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: &'a [Series],
}

const FONT_PLACES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
];

/// Registers a font once per process; `Err` says why PNGs cannot be drawn.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates: Vec<PathBuf> = std::env::var_os("EXSPIN_FONT")
            .map(PathBuf::from)
            .into_iter()
            .chain(FONT_PLACES.iter().map(PathBuf::from))
            .collect();
        let path = candidates.iter().find(|p| p.is_file()).ok_or_else(|| {
            "no TrueType font found, so no plots were drawn (the tables hold the same numbers); \
             set EXSPIN_FONT to a .ttf file or install fonts-dejavu-core"
                .to_string()
        })?;
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        // plotters picks families by name in places we do not style ("serif" and "monospace"
        // too), so one font answers for all of them.
        for family in ["sans-serif", "serif", "monospace"] {
            plotters::style::register_font(family, FontStyle::Normal, bytes)
                .map_err(|_| format!("{}: not a usable TrueType font", path.display()))?;
        }
        Ok(())
    })
    .clone()
}

fn draw<DB: DrawingBackend>(area: DrawingArea<DB, Shift>, chart: &Chart<'_>) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE).map_err(|e| anyhow::anyhow!("{e}"))?;
    let xs = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = chart
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = bounds(xs, 1.0);
    let (y0, y1) = bounds(ys, 5.0);
    let mut c = ChartBuilder::on(&area)
        .caption(chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    c.configure_mesh()
        .x_desc(chart.x_label)
        .y_desc(chart.y_label)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    for (i, s) in chart.series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        c.draw_series(LineSeries::new(
            s.points.iter().copied(),
            color.stroke_width(2),
        ))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .label(s.name.clone())
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        c.draw_series(s.points.iter().map(|p| Circle::new(*p, 3, color.filled())))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    c.configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    area.present().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(())
}

/// A range that holds every value with some air, and is never empty.
fn bounds(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    (lo - pad * 0.5, hi + pad * 0.5)
}

/// Writes `{stem}.svg` and `{stem}.png` when a font is available. Returns the files written and,
/// when none could be, why.
pub fn line_chart(
    dir: &Path,
    stem: &str,
    chart: &Chart<'_>,
) -> anyhow::Result<(Vec<String>, Option<String>)> {
    if let Err(why) = font() {
        return Ok((Vec::new(), Some(why)));
    }
    let size = (800, 500);
    let (svg, png) = (format!("{stem}.svg"), format!("{stem}.png"));
    draw(
        SVGBackend::new(&dir.join(&svg), size).into_drawing_area(),
        chart,
    )?;
    draw(
        BitMapBackend::new(&dir.join(&png), size).into_drawing_area(),
        chart,
    )?;
    Ok((vec![svg, png], None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_and_png_with_the_series_names_when_a_font_exists() {
        let dir = tempfile::tempdir().unwrap();
        let series = [
            Series {
                name: "ExSPIN".into(),
                points: vec![(0.0, 20.0), (1.0, 30.0), (2.0, 35.0)],
            },
            Series {
                name: "SPIN".into(),
                points: vec![(0.0, 20.0), (1.0, 25.0)],
            },
        ];
        let chart = Chart {
            title: "dev EX per round",
            x_label: "round",
            y_label: "EX (%)",
            series: &series,
        };
        let (files, note) = line_chart(dir.path(), "accuracy", &chart).unwrap();
        match note {
            None => {
                assert_eq!(files, vec!["accuracy.svg", "accuracy.png"]);
                let svg = std::fs::read_to_string(dir.path().join("accuracy.svg")).unwrap();
                assert!(svg.contains("ExSPIN") && svg.contains("SPIN") && svg.contains("<svg"));
                let png = std::fs::read(dir.path().join("accuracy.png")).unwrap();
                assert_eq!(&png[1..4], b"PNG");
            }
            Some(why) => {
                assert!(files.is_empty());
                assert!(why.contains("EXSPIN_FONT"));
            }
        }
    }

    #[test]
    fn empty_series_still_draw() {
        let dir = tempfile::tempdir().unwrap();
        let chart = Chart {
            title: "nothing yet",
            x_label: "x",
            y_label: "y",
            series: &[],
        };
        let (files, _) = line_chart(dir.path(), "empty", &chart).unwrap();
        for f in files {
            assert!(dir.path().join(f).is_file());
        }
    }
}
