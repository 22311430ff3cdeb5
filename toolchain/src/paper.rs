//! The paper's published figures (`models/paper_results.json`, compiled in):
//! Tables 1 and 2 per dataset and method, and the MVTec AD ablations of
//! Tables 3-6, each with the table it comes from. `afr-toolchain benchmark`
//! puts them beside its own where the test set is one of the paper's and the
//! run's configuration is one the paper reports.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::afr::AfrConfig;

const DATA: &str = include_str!("../../models/paper_results.json");

/// Our method's name in the tables.
pub const METHOD: &str = "AFR-CLIP";

#[derive(Debug, Clone, Deserialize)]
pub struct PaperResults {
    pub source: String,
    /// The backbone of every figure, in a few words.
    pub backbone: String,
    pub setup: String,
    pub methods: Vec<String>,
    /// By key (`mvtec`, `visa`, ...).
    pub datasets: BTreeMap<String, PaperDataset>,
    pub ablations: Ablations,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PaperDataset {
    pub name: String,
    pub trained_on: String,
    /// Every category of the dataset; `None` where the paper's layout of it
    /// is not one of the readers' (matched only when named).
    pub categories: Option<Vec<String>>,
    pub image: Option<Level>,
    pub pixel: Option<Level>,
}

/// One level (image or pixel) of one dataset: (AUROC, max-F1) per method.
#[derive(Debug, Clone, Deserialize)]
pub struct Level {
    pub table: String,
    pub auroc_max_f1: BTreeMap<String, [f64; 2]>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ablations {
    /// The dataset key they were measured on.
    pub dataset: String,
    pub rows: Vec<AblationRow>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AblationRow {
    pub table: String,
    pub label: String,
    /// The switches that differ from the default configuration.
    pub afr: serde_json::Map<String, serde_json::Value>,
    pub image_auroc: f64,
    pub pixel_auroc: f64,
}

/// The paper's figures for one evaluation: what a benchmark shows beside its own means.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Published {
    /// The dataset's name in the paper.
    pub dataset: String,
    /// What the paper trained on for it.
    pub trained_on: String,
    /// Where the figures come from (`Table 1`, `Table 4, stages 1-2`, ...).
    pub image_table: Option<String>,
    pub pixel_table: Option<String>,
    /// Percent; `None` where the paper does not report the figure.
    pub image_auroc: Option<f64>,
    pub image_max_f1: Option<f64>,
    pub pixel_auroc: Option<f64>,
    pub pixel_max_f1: Option<f64>,
}

impl PaperResults {
    /// The figures shipped with this build.
    pub fn builtin() -> Self {
        serde_json::from_str(DATA).expect("models/paper_results.json is valid")
    }

    /// The dataset whose category set is exactly `categories` (the paper's
    /// means are over all of a dataset's categories).
    pub fn dataset_with(&self, categories: &[String]) -> Option<&str> {
        let mut wanted = categories.to_vec();
        wanted.sort();
        self.datasets.iter().find_map(|(key, d)| {
            let mut known = d.categories.clone()?;
            known.sort();
            (known == wanted).then_some(key.as_str())
        })
    }

    /// AFR-CLIP's published figures on dataset `key` for a model configured
    /// as `afr`: Tables 1-2 for the paper's configuration, the matching row
    /// of Tables 3-6 (image and pixel AUROC) for an ablation on its dataset,
    /// `None` for a configuration the paper does not report there.
    pub fn published(&self, key: &str, afr: &AfrConfig) -> Option<Published> {
        let d = self.datasets.get(key)?;
        let base = Published {
            dataset: d.name.clone(),
            trained_on: d.trained_on.clone(),
            image_table: None,
            pixel_table: None,
            image_auroc: None,
            image_max_f1: None,
            pixel_auroc: None,
            pixel_max_f1: None,
        };
        if *afr == AfrConfig::default() {
            let ours =
                |l: &Option<Level>| l.as_ref().and_then(|l| Some((l.table.clone(), *l.auroc_max_f1.get(METHOD)?)));
            let (image, pixel) = (ours(&d.image), ours(&d.pixel));
            return Some(Published {
                image_table: image.as_ref().map(|i| i.0.clone()),
                pixel_table: pixel.as_ref().map(|p| p.0.clone()),
                image_auroc: image.as_ref().map(|i| i.1[0]),
                image_max_f1: image.as_ref().map(|i| i.1[1]),
                pixel_auroc: pixel.as_ref().map(|p| p.1[0]),
                pixel_max_f1: pixel.as_ref().map(|p| p.1[1]),
                ..base
            });
        }
        if key != self.ablations.dataset {
            return None;
        }
        let row = self.ablations.rows.iter().find(|r| r.config().as_ref() == Some(afr))?;
        Some(Published {
            image_table: Some(row.table.clone()),
            pixel_table: Some(row.table.clone()),
            image_auroc: Some(row.image_auroc),
            pixel_auroc: Some(row.pixel_auroc),
            ..base
        })
    }
}

impl AblationRow {
    /// The full configuration of the row: the default with its switches applied.
    pub fn config(&self) -> Option<AfrConfig> {
        let mut v = serde_json::to_value(AfrConfig::default()).ok()?;
        let fields = v.as_object_mut()?;
        for (k, x) in &self.afr {
            fields.insert(k.clone(), x.clone());
        }
        serde_json::from_value(v).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::afr::SpMode;

    #[test]
    fn the_data_file_holds_every_table_and_its_rows_are_real_configurations() {
        let p = PaperResults::builtin();
        assert_eq!(p.methods.len(), 5);
        assert_eq!(p.datasets.len(), 11);
        for (key, d) in &p.datasets {
            for level in [&d.image, &d.pixel].into_iter().flatten() {
                assert_eq!(level.auroc_max_f1.len(), 5, "{key}");
                assert!(level.auroc_max_f1.values().flatten().all(|v| (0.0..=100.0).contains(v)), "{key}");
            }
        }
        // Every ablation row is a configuration this code can train, and no two are the same.
        let configs: Vec<AfrConfig> = p.ablations.rows.iter().map(|r| r.config().expect(&r.table)).collect();
        for (i, c) in configs.iter().enumerate() {
            assert_ne!(*c, AfrConfig::default(), "{}", p.ablations.rows[i].table);
            assert!(configs[..i].iter().all(|o| o != c), "{} repeats a row", p.ablations.rows[i].table);
            assert_eq!(c.check(), Ok(()));
        }
    }

    #[test]
    fn figures_are_found_by_category_set_and_configuration() {
        let p = PaperResults::builtin();
        let mut mvtec: Vec<String> = p.datasets["mvtec"].categories.clone().unwrap();
        mvtec.reverse();
        assert_eq!(p.dataset_with(&mvtec), Some("mvtec"));
        assert_eq!(p.dataset_with(&mvtec[1..]), None, "a subset's mean is not the paper's");
        assert_eq!(p.dataset_with(&["fabric".into(), "washer".into()]), None);

        let main = p.published("mvtec", &AfrConfig::default()).unwrap();
        assert_eq!((main.image_auroc, main.image_max_f1), (Some(93.4), Some(92.3)));
        assert_eq!((main.pixel_auroc, main.pixel_max_f1), (Some(92.3), Some(47.9)));
        assert_eq!(main.image_table.as_deref(), Some("Table 1"));
        let visa = p.published("visa", &AfrConfig::default()).unwrap();
        assert_eq!(
            (visa.image_auroc, visa.pixel_max_f1, visa.trained_on.as_str()),
            (Some(87.0), Some(38.1), "MVTec AD")
        );

        let stages = AfrConfig { sp_stages: 2, ..Default::default() };
        let t4 = p.published("mvtec", &stages).unwrap();
        assert_eq!((t4.image_auroc, t4.pixel_auroc, t4.image_max_f1), (Some(93.5), Some(92.2), None));
        assert_eq!(t4.image_table.as_deref(), Some("Table 4, stages 1-2"));
        let row1 = AfrConfig { cmfr: false, sp: SpMode::Off, mpfa_window: 1, ..Default::default() };
        assert_eq!(p.published("mvtec", &row1).unwrap().image_auroc, Some(89.1));
        // Ablations were measured on MVTec AD only; other configurations are not reported.
        assert_eq!(p.published("visa", &stages), None);
        assert_eq!(p.published("mvtec", &AfrConfig { mpfa_window: 7, ..Default::default() }), None);
    }
}
