//! Line charts of a scenario's results, drawn with `plotters` as PNG
//! ([`draw`]) or SVG ([`draw_svg`]).
//!
//! Text needs a TrueType font, registered from bytes: [`load_font`] looks
//! for DejaVu Sans (or Liberation Sans) where Linux distributions install
//! it, or takes a path (plotters measures text with it, for SVG too; an
//! SVG names the family and the viewer draws it). Without a font the runner
//! skips plotting and says so; the tables do not need one.

use std::error::Error;
use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

/// Where [`load_font`] looks when given no path.
pub const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
];

/// Registers the font used by every chart, from `path` or the first of
/// [`FONT_PATHS`] that exists and parses; the path used, or `None`.
pub fn load_font(path: Option<&Path>) -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match path {
        Some(p) => vec![p.to_path_buf()],
        None => FONT_PATHS.iter().map(PathBuf::from).collect(),
    };
    for candidate in candidates {
        let Ok(bytes) = std::fs::read(&candidate) else {
            continue;
        };
        // The font table needs `'static` bytes; one font per process, kept
        // for its life.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
            return Some(candidate);
        }
    }
    None
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Its legend.
    pub name: String,
    /// Its points, in x order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (a reference line).
    pub dashed: bool,
}

impl Series {
    /// A solid line.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Series {
            name: name.into(),
            points,
            dashed: false,
        }
    }

    /// Makes it dashed.
    pub fn dashed(mut self) -> Self {
        self.dashed = true;
        self
    }
}

/// One chart: axes, a title and lines.
#[derive(Debug, Clone)]
pub struct Chart {
    /// Its title.
    pub title: String,
    /// The x axis' label.
    pub x_label: String,
    /// The y axis' label.
    pub y_label: String,
    /// A logarithmic y axis (values must be positive).
    pub log_y: bool,
    /// Its lines.
    pub series: Vec<Series>,
    /// Where the legend goes.
    pub legend: Legend,
}

/// Where a chart's legend goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Legend {
    /// The upper left corner (the default).
    #[default]
    UpperLeft,
    /// The middle of the right edge.
    MiddleRight,
    /// The lower right corner.
    LowerRight,
}

impl Chart {
    /// An empty chart.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Chart {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y: false,
            series: Vec::new(),
            legend: Legend::UpperLeft,
        }
    }

    /// Puts the legend at `legend`.
    pub fn legend(mut self, legend: Legend) -> Self {
        self.legend = legend;
        self
    }

    /// Makes the y axis logarithmic.
    pub fn log_y(mut self) -> Self {
        self.log_y = true;
        self
    }

    fn bounds(&self) -> (Range<f64>, Range<f64>) {
        let pts = || self.series.iter().flat_map(|s| s.points.iter());
        let (mut x0, mut x1) = (f64::INFINITY, f64::NEG_INFINITY);
        let (mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY);
        for &(x, y) in pts() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if self.log_y {
            y0 = (y0.max(1e-3)) / 1.5;
            y1 = (y1.max(y0 * 10.0)) * 1.5;
        } else {
            y0 = y0.min(0.0);
            y1 = if y1 > y0 { y1 * 1.1 } else { y0 + 1.0 };
        }
        (x0..x1, y0..y1)
    }
}

const COLORS: [RGBColor; 8] = [
    RGBColor(220, 50, 47),
    RGBColor(38, 139, 210),
    RGBColor(133, 153, 0),
    RGBColor(211, 54, 130),
    RGBColor(181, 137, 0),
    RGBColor(42, 161, 152),
    RGBColor(108, 113, 196),
    RGBColor(88, 88, 88),
];

/// Draws `charts` stacked vertically into one PNG at `path` (a font must
/// have been loaded with [`load_font`]).
pub fn draw(path: &Path, charts: &[Chart]) -> Result<(), Box<dyn Error>> {
    draw_on(
        BitMapBackend::new(path, size(charts)).into_drawing_area(),
        charts,
    )
}

/// Draws `charts` stacked vertically into one SVG at `path` (a font must
/// have been loaded with [`load_font`]: plotters measures text with it).
pub fn draw_svg(path: &Path, charts: &[Chart]) -> Result<(), Box<dyn Error>> {
    draw_on(
        SVGBackend::new(path, size(charts)).into_drawing_area(),
        charts,
    )
}

fn size(charts: &[Chart]) -> (u32, u32) {
    (1000, 420 * charts.len().max(1) as u32)
}

fn draw_on<DB>(root: DrawingArea<DB, Shift>, charts: &[Chart]) -> Result<(), Box<dyn Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let areas = root.split_evenly((charts.len().max(1), 1));
    for (area, chart) in areas.iter().zip(charts) {
        let (x, y) = chart.bounds();
        if chart.log_y {
            draw_one(area, chart, x, y.log_scale())?;
        } else {
            draw_one(area, chart, x, y)?;
        }
    }
    root.present()?;
    Ok(())
}

fn draw_one<DB, Y>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    x: Range<f64>,
    y: Y,
) -> Result<(), Box<dyn Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    ctx.configure_mesh()
        .x_desc(chart.x_label.as_str())
        .y_desc(chart.y_label.as_str())
        .label_style(("sans-serif", 14))
        .light_line_style(TRANSPARENT)
        // A log axis asks for few labels, or its key points crowd each decade.
        .y_labels(if chart.log_y { 4 } else { 10 })
        .x_label_formatter(&|v| number(*v))
        .y_label_formatter(&|v| number(*v))
        .draw()?;
    for (i, series) in chart.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = color.stroke_width(2);
        let points = series.points.clone();
        let drawn = if series.dashed {
            ctx.draw_series(DashedLineSeries::new(points, 8, 6, style))?
        } else {
            ctx.draw_series(LineSeries::new(points, style))?
        };
        drawn.label(series.name.as_str()).legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
        });
        // Sparse lines (a few measured points) get a marker on each point,
        // so that a single point still shows.
        if !series.dashed && series.points.len() <= 12 {
            ctx.draw_series(
                series
                    .points
                    .iter()
                    .map(|&p| Circle::new(p, 4, color.filled())),
            )?;
        }
    }
    ctx.configure_series_labels()
        .position(match chart.legend {
            Legend::UpperLeft => SeriesLabelPosition::UpperLeft,
            Legend::MiddleRight => SeriesLabelPosition::MiddleRight,
            Legend::LowerRight => SeriesLabelPosition::LowerRight,
        })
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    Ok(())
}

/// An axis label: no needless decimals.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 10.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}
