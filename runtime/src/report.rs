//! The evaluation report: JSON (DESIGN.md section 3) and a Markdown table.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// Failure to write or read a report; names the file.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: cannot write the report: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("{path}: cannot read the report: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not a valid report: {source}")]
    Parse { path: PathBuf, source: serde_json::Error },
}

/// Per-category metrics, their macro mean, and what was evaluated. Serialises
/// to `{"categories": {NAME: {METRIC: x|null, "scored_as": ROW}}, "mean": {...},
/// "model": ..., "dataset": ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub categories: BTreeMap<String, CategoryReport>,
    pub mean: Metrics,
    pub model: String,
    pub dataset: String,
}

/// One category's metrics and the row of the model's text table that scored it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryReport {
    #[serde(flatten)]
    pub metrics: Metrics,
    /// The category's own name when the model has a stateless prompt for
    /// it, else the generic row (`object`) that stood in for it.
    pub scored_as: String,
}

impl CategoryReport {
    /// Scored with its own row.
    pub fn own(name: &str, metrics: Metrics) -> Self {
        Self { metrics, scored_as: name.to_string() }
    }
}

const HEADERS: [&str; 7] =
    ["image AUROC", "image max-F1", "image AP", "pixel AUROC", "pixel max-F1", "pixel AP", "AUPRO"];

impl Report {
    /// A report whose `mean` is the macro average of the categories' defined values.
    pub fn new(
        model: impl Into<String>,
        dataset: impl Into<String>,
        categories: BTreeMap<String, CategoryReport>,
    ) -> Self {
        let mean = Metrics::macro_mean(categories.values().map(|c| &c.metrics));
        Report { categories, mean, model: model.into(), dataset: dataset.into() }
    }

    pub fn to_json(&self) -> String {
        // Only strings, finite floats and nulls: serialisation cannot fail.
        serde_json::to_string_pretty(self).expect("a report always serialises")
    }

    /// The table in percent with one decimal, `-` where undefined, one row
    /// per category then `mean`, ready to paste into GitHub.
    pub fn to_markdown(&self) -> String {
        let mut s = String::from("| category |");
        for h in HEADERS {
            let _ = write!(s, " {h} |");
        }
        s.push_str("\n|---|");
        s.push_str(&"---:|".repeat(HEADERS.len()));
        s.push('\n');
        let rows = self.categories.iter().map(|(n, c)| (n.as_str(), &c.metrics));
        for (name, m) in rows.chain(std::iter::once(("mean", &self.mean))) {
            // A `|` in a name would split the cell.
            let _ = write!(s, "| {} |", name.replace('|', "\\|"));
            for v in m.values() {
                match v {
                    Some(x) => {
                        let _ = write!(s, " {:.1} |", x * 100.0);
                    }
                    None => s.push_str(" - |"),
                }
            }
            s.push('\n');
        }
        s
    }

    /// Writes the JSON to `path` through a temporary file in the same
    /// directory and a rename, so an existing report is replaced whole or not
    /// at all.
    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        write_atomically(path, self.to_json().as_bytes())
    }

    pub fn read_json(path: &Path) -> Result<Self, ReportError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ReportError::Read { path: path.to_path_buf(), source })?;
        serde_json::from_str(&text).map_err(|source| ReportError::Parse { path: path.to_path_buf(), source })
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    crate::atomic::write_atomic(path, bytes).map_err(|source| ReportError::Write { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Report {
        let mut c = BTreeMap::new();
        c.insert(
            "bottle".to_string(),
            CategoryReport::own(
                "bottle",
                Metrics { image_auroc: Some(0.9), pixel_auroc: Some(0.8), aupro: None, ..Default::default() },
            ),
        );
        c.insert(
            "cable".to_string(),
            CategoryReport {
                metrics: Metrics { image_auroc: Some(0.7), pixel_auroc: None, aupro: None, ..Default::default() },
                scored_as: "object".into(),
            },
        );
        Report::new("afr-clip-vitl14", "mvtec", c)
    }

    #[test]
    fn mean_averages_defined_values_only() {
        let r = sample();
        assert!((r.mean.image_auroc.unwrap() - 0.8).abs() < 1e-12);
        assert_eq!(r.mean.pixel_auroc, Some(0.8));
        assert_eq!(r.mean.aupro, None);
    }

    #[test]
    fn json_has_the_agreed_shape() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        assert_eq!(keys.len(), 4);
        for k in ["categories", "mean", "model", "dataset"] {
            assert!(keys.contains(&k), "{k}");
        }
        let bottle = v["categories"]["bottle"].as_object().unwrap();
        assert_eq!(bottle.len(), 8);
        for name in Metrics::NAMES {
            assert!(bottle.contains_key(name), "{name}");
        }
        assert_eq!(bottle["scored_as"], "bottle");
        assert_eq!(v["categories"]["cable"]["scored_as"], "object");
        assert_eq!(bottle["image_auroc"], serde_json::json!(0.9));
        assert!(bottle["aupro"].is_null());
        assert_eq!(v["model"], "afr-clip-vitl14");
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back, sample());
    }

    #[test]
    fn markdown_table() {
        let md = sample().to_markdown();
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            "| category | image AUROC | image max-F1 | image AP | pixel AUROC | pixel max-F1 | pixel AP | AUPRO |"
        );
        assert_eq!(lines[1], "|---|---:|---:|---:|---:|---:|---:|---:|");
        assert_eq!(lines[2], "| bottle | 90.0 | - | - | 80.0 | - | - | - |");
        assert_eq!(lines[3], "| cable | 70.0 | - | - | - | - | - | - |");
        assert_eq!(lines[4], "| mean | 80.0 | - | - | 80.0 | - | - | - |");
    }

    #[test]
    fn atomic_write_replaces_whole_and_names_the_file() {
        let dir = std::env::temp_dir().join(format!("afr-report-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("report.json");
        std::fs::write(&path, "old").unwrap();
        let r = sample();
        r.write_json(&path).unwrap();
        assert_eq!(Report::read_json(&path).unwrap(), r);
        let leftovers: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 1, "{leftovers:?}");
        // A directory that does not exist: error names the path, nothing written.
        let bad = dir.join("missing").join("r.json");
        let err = r.write_json(&bad).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
