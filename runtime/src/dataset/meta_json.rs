//! `meta.json` as AnomalyCLIP and AdaCLIP write it:
//! `{"train": {CLS: [...]}, "test": {CLS: [{"img_path", "mask_path", "cls_name",
//! "specie_name", "anomaly"}]}}`, paths relative to the root, `mask_path` empty for normal
//! images.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::{files, DatasetError, Listing, Sample, Split};

pub(crate) fn list(root: &Path, split: Split) -> Result<Listing, DatasetError> {
    let path = root.join("meta.json");
    let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io { path: path.clone(), source })?;
    let json_err = |problem: String| DatasetError::Json { path: path.clone(), problem };
    let meta: Value = serde_json::from_str(&text).map_err(|e| json_err(e.to_string()))?;
    let top = meta.as_object().ok_or_else(|| json_err("top level is not an object".into()))?;

    // Categories are those of either split, so a filter names the same set whatever the split.
    let mut categories: BTreeMap<String, PathBuf> = BTreeMap::new();
    for name in ["train", "test"] {
        if let Some(Value::Object(classes)) = top.get(name) {
            for class in classes.keys() {
                categories.insert(class.clone(), path.clone());
            }
        }
    }
    let classes = match top.get(split.name()) {
        Some(Value::Object(classes)) => classes,
        Some(_) => return Err(json_err(format!("\"{split}\" is not an object"))),
        None => return Err(json_err(format!("no \"{split}\" split"))),
    };

    let mut samples = Vec::new();
    for (class, entries) in classes {
        let entries = entries.as_array().ok_or_else(|| json_err(format!("{split}.{class} is not a list")))?;
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{split}.{class}[{i}]");
            let text_field = |key: &str| -> Result<Option<&str>, DatasetError> {
                match entry.get(key) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.as_str())),
                    Some(_) => Err(json_err(format!("{at}.{key} is not a string"))),
                }
            };
            let img = text_field("img_path")?
                .filter(|s| !s.is_empty())
                .ok_or_else(|| json_err(format!("{at} has no img_path")))?;
            let anomalous = match entry.get("anomaly") {
                Some(Value::Bool(b)) => *b,
                Some(Value::Number(n)) if n.as_f64() == Some(0.0) => false,
                Some(Value::Number(n)) if n.as_f64() == Some(1.0) => true,
                _ => return Err(json_err(format!("{at}.anomaly is not 0 or 1"))),
            };
            let image = files::inside_root(root, img).map_err(|p| json_err(format!("{at}.img_path: {p}")))?;
            if !image.is_file() {
                return Err(DatasetError::MissingImage { path: image, listed_in: path.clone() });
            }
            let mask = match text_field("mask_path")?.filter(|s| !s.is_empty()) {
                Some(m) if anomalous => {
                    let mask = files::inside_root(root, m).map_err(|p| json_err(format!("{at}.mask_path: {p}")))?;
                    if !mask.is_file() {
                        return Err(DatasetError::MissingListedMask { path: mask, listed_in: path.clone() });
                    }
                    Some(mask)
                }
                _ => None,
            };
            let specie = text_field("specie_name")?.unwrap_or("").trim();
            let defect = match (anomalous, specie) {
                (false, _) => "good",
                (true, "") | (true, "good") => "anomaly",
                (true, s) => s,
            };
            samples.push(Sample { image, mask, category: class.clone(), anomalous, defect: defect.to_string() });
        }
    }
    Ok(Listing { categories: categories.into_iter().collect(), samples })
}
