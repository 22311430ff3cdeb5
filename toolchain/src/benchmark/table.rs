//! The benchmark's tables in the paper's layout (Tables 1 and 2): one row
//! per category and the mean, one column per evaluated model, each cell
//! `(AUROC, max-F1)` in percent (pixel level adds AUPRO), and the paper's
//! own figure beside the mean where it reports one.

use std::fmt::Write as _;

use afr_runtime::metrics::Metrics;

use super::Column;
use crate::paper::Published;

/// Image level: `(AUROC, max-F1)`.
pub fn image_level(columns: &[Column], paper: Option<&Published>) -> String {
    let published = paper.filter(|p| p.image_auroc.is_some()).map(|p| {
        let table = p.image_table.as_deref().unwrap_or("");
        (format!("AFR-CLIP, paper ({table})"), cell(&[p.image_auroc, p.image_max_f1]))
    });
    table(columns, published, |m| cell(&[percent(m.image_auroc), percent(m.image_max_f1)]))
}

/// Pixel level: `(AUROC, max-F1, AUPRO)` (the paper reports no AUPRO).
pub fn pixel_level(columns: &[Column], paper: Option<&Published>) -> String {
    let published = paper.filter(|p| p.pixel_auroc.is_some()).map(|p| {
        let table = p.pixel_table.as_deref().unwrap_or("");
        (format!("AFR-CLIP, paper ({table})"), cell(&[p.pixel_auroc, p.pixel_max_f1, None]))
    });
    table(columns, published, |m| cell(&[percent(m.pixel_auroc), percent(m.pixel_max_f1), percent(m.aupro)]))
}

fn percent(v: Option<f64>) -> Option<f64> {
    v.map(|v| 100.0 * v)
}

/// `(93.4, 92.3)`, `-` for a missing value.
fn cell(values: &[Option<f64>]) -> String {
    let parts: Vec<String> = values.iter().map(|v| v.map_or("-".to_string(), |v| format!("{v:.1}"))).collect();
    format!("({})", parts.join(", "))
}

/// Rows: the categories of the first evaluated column, then `mean`; the
/// published figure (header, cell) goes beside the mean only.
fn table(columns: &[Column], published: Option<(String, String)>, show: impl Fn(&Metrics) -> String) -> String {
    let mut s = String::from("| category |");
    for c in columns {
        let _ = write!(s, " {} |", c.label);
    }
    if let Some((header, _)) = &published {
        let _ = write!(s, " {header} |");
    }
    let width = columns.len() + usize::from(published.is_some());
    s.push_str("\n|---|");
    s.push_str(&"---:|".repeat(width));
    s.push('\n');
    let categories: Vec<&String> = columns
        .iter()
        .find_map(|c| c.result.report.as_ref())
        .map(|r| r.categories.keys().collect())
        .unwrap_or_default();
    for name in categories {
        let _ = write!(s, "| {} |", name.replace('|', "\\|"));
        for c in columns {
            let value = c.result.report.as_ref().and_then(|r| r.categories.get(name)).map(|r| show(&r.metrics));
            let _ = write!(s, " {} |", value.as_deref().unwrap_or("not produced"));
        }
        if published.is_some() {
            s.push_str(" |");
        }
        s.push('\n');
    }
    s.push_str("| **mean** |");
    for c in columns {
        let value = c.result.report.as_ref().map(|r| show(&r.mean));
        let _ = write!(s, " {} |", value.as_deref().unwrap_or("not produced"));
    }
    if let Some((_, cell)) = &published {
        let _ = write!(s, " {cell} |");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::PathBuf;

    use afr_quantize::Precision;
    use afr_runtime::report::{CategoryReport, Report};

    use super::*;
    use crate::precisions::PrecisionResult;

    fn column(label: &str, auroc: Option<f64>) -> Column {
        let m = Metrics { image_auroc: auroc, image_max_f1: Some(0.5), pixel_auroc: Some(0.25), ..Default::default() };
        let cats = BTreeMap::from([("bolt".to_string(), CategoryReport::own("bolt", m))]);
        let result = PrecisionResult {
            precision: Precision::Fp32,
            model: PathBuf::from("m.onnx"),
            bytes: 1,
            report: auroc.map(|_| Report::new("m", "d", cats)),
            quantization: None,
            error: None,
        };
        Column { label: label.into(), result }
    }

    #[test]
    fn the_paper_layout_with_its_figure_beside_the_mean() {
        let paper = Published {
            dataset: "MVTec AD".into(),
            trained_on: "VisA".into(),
            image_table: Some("Table 1".into()),
            pixel_table: Some("Table 2".into()),
            image_auroc: Some(93.4),
            image_max_f1: Some(92.3),
            pixel_auroc: Some(92.3),
            pixel_max_f1: Some(47.9),
        };
        let columns = [column("fp32", Some(0.875)), column("int8", None)];
        let image = image_level(&columns, Some(&paper));
        let lines: Vec<&str> = image.lines().collect();
        assert_eq!(lines[0], "| category | fp32 | int8 | AFR-CLIP, paper (Table 1) |");
        assert_eq!(lines[1], "|---|---:|---:|---:|");
        assert_eq!(lines[2], "| bolt | (87.5, 50.0) | not produced | |");
        assert_eq!(lines[3], "| **mean** | (87.5, 50.0) | not produced | (93.4, 92.3) |");
        let pixel = pixel_level(&columns[..1], None);
        assert_eq!(pixel.lines().nth(2), Some("| bolt | (25.0, -, -) |"));
        assert_eq!(pixel.lines().next(), Some("| category | fp32 |"));
    }
}
