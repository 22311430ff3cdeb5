//! What a quantization run did: sizes, the choice made for each layer and
//! the measured drift, as JSON (`--report`, `--json`) and as Markdown (stdout).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::PathBuf;

use crate::drift::Drift;
use crate::{LayerChoice, Precision};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub input: PathBuf,
    pub output: PathBuf,
    pub precision: Precision,
    /// File sizes.
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub layers: Vec<LayerChoice>,
    pub drift: Option<Drift>,
}

impl Report {
    /// Output size over input size.
    pub fn size_ratio(&self) -> f64 {
        if self.bytes_before == 0 {
            return 0.0;
        }
        self.bytes_after as f64 / self.bytes_before as f64
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# {} quantization\n", self.precision);
        let _ = writeln!(s, "| | file | size |");
        let _ = writeln!(s, "|---|---|---:|");
        let _ = writeln!(s, "| input | `{}` | {} |", self.input.display(), mib(self.bytes_before));
        let _ = writeln!(s, "| output | `{}` | {} |", self.output.display(), mib(self.bytes_after));
        let _ =
            writeln!(s, "\nSize ratio: {:.3} ({:.1}% of the input).\n", self.size_ratio(), 100.0 * self.size_ratio());
        match &self.drift {
            Some(d) => {
                let _ = writeln!(s, "## Drift against the fp32 model\n");
                let _ =
                    writeln!(s, "{} images ({}), category rows: {}.\n", d.images, d.source, d.categories.join(", "));
                let _ = writeln!(s, "| | max abs | mean abs |");
                let _ = writeln!(s, "|---|---:|---:|");
                let _ = writeln!(s, "| anomaly map (patch grid) | {:.3e} | {:.3e} |", d.max_abs_map, d.mean_abs_map);
                let _ = writeln!(s, "| image score | {:.3e} | |", d.max_abs_score);
            }
            None => {
                let _ = writeln!(s, "Drift not measured.");
            }
        }
        let _ = writeln!(s, "\n## Layers\n");
        let mut summary: BTreeMap<&str, (usize, usize, usize)> = BTreeMap::new();
        for l in &self.layers {
            let e = summary.entry(l.choice.as_str()).or_default();
            e.0 += 1;
            e.1 += l.weight_bytes_before;
            e.2 += l.weight_bytes_after;
        }
        let _ = writeln!(s, "| choice | layers | weights before | weights after |");
        let _ = writeln!(s, "|---|---:|---:|---:|");
        for (choice, (n, before, after)) in &summary {
            let _ = writeln!(s, "| {choice} | {n} | {} | {} |", mib(*before as u64), mib(*after as u64));
        }
        let _ = writeln!(s, "\n| node | op | choice | reason | weights before | weights after |");
        let _ = writeln!(s, "|---|---|---|---|---:|---:|");
        for l in &self.layers {
            let _ = writeln!(
                s,
                "| `{}` | {} | {} | {} | {} | {} |",
                l.node,
                l.op,
                l.choice,
                l.reason.replace('|', "\\|"),
                kib(l.weight_bytes_before),
                kib(l.weight_bytes_after)
            );
        }
        s
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            input: "m.onnx".into(),
            output: "m.fp16.onnx".into(),
            precision: Precision::Fp16,
            bytes_before: 4 << 20,
            bytes_after: 2 << 20,
            layers: vec![
                LayerChoice {
                    node: "vision/block1/fc/MatMul".into(),
                    op: "MatMul".into(),
                    choice: "fp16 storage".into(),
                    reason: "f16 weight".into(),
                    weight_bytes_before: 2048,
                    weight_bytes_after: 1024,
                },
                LayerChoice {
                    node: "stage1/adapter/MatMul".into(),
                    op: "MatMul".into(),
                    choice: "fp32 (kept)".into(),
                    reason: "a|b".into(),
                    weight_bytes_before: 1024,
                    weight_bytes_after: 1024,
                },
            ],
            drift: Some(Drift {
                images: 3,
                source: "calib/".into(),
                categories: vec!["bolt".into(), "object".into()],
                max_abs_map: 1.5e-4,
                mean_abs_map: 2.0e-5,
                max_abs_score: 3.0e-5,
            }),
        }
    }

    #[test]
    fn markdown_shows_sizes_layers_and_drift() {
        let md = report().to_markdown();
        assert!(md.contains("Size ratio: 0.500"), "{md}");
        assert!(md.contains("| input | `m.onnx` | 4.00 MiB |"), "{md}");
        assert!(
            md.contains("| `vision/block1/fc/MatMul` | MatMul | fp16 storage | f16 weight | 2.0 KiB | 1.0 KiB |"),
            "{md}"
        );
        assert!(md.contains("a\\|b"), "pipes in reasons are escaped: {md}");
        assert!(md.contains("| anomaly map (patch grid) | 1.500e-4 | 2.000e-5 |"), "{md}");
        assert!(md.contains("3 images (calib/), category rows: bolt, object."), "{md}");
        let mut r = report();
        r.drift = None;
        assert!(r.to_markdown().contains("Drift not measured"));
    }

    #[test]
    fn json_has_every_field() {
        let v: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(v["precision"], "fp16");
        assert_eq!(v["bytes_after"], 2 << 20);
        assert_eq!(v["layers"][1]["choice"], "fp32 (kept)");
        assert_eq!(v["drift"]["images"], 3);
        assert_eq!(v["drift"]["categories"][1], "object");
        assert!((v["drift"]["max_abs_map"].as_f64().unwrap() - 1.5e-4).abs() < 1e-9);
    }
}
