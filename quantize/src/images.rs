//! The calibration set: image files found under a folder (a dataset's
//! `train/good`, or a whole dataset root), masks left out, spread evenly
//! over the list when there are more than asked for.

use std::path::{Path, PathBuf};

use afr_runtime::dataset::is_image;

use crate::QuantizeError;

/// Folder names that hold masks, not images to calibrate on.
const MASK_DIRS: [&str; 3] = ["ground_truth", "masks", "mask"];

/// Up to `limit` images under `dir` (recursively, sorted by path, hidden
/// files and mask folders skipped), picked at even steps over the list.
pub fn calibration_images(dir: &Path, limit: usize) -> Result<Vec<PathBuf>, QuantizeError> {
    let mut all = Vec::new();
    walk(dir, &mut all)?;
    all.sort();
    if all.is_empty() {
        return Err(QuantizeError::Input {
            path: dir.to_path_buf(),
            problem: "no images (png, jpg, bmp, tif) found".into(),
        });
    }
    if all.len() <= limit {
        return Ok(all);
    }
    Ok((0..limit).map(|i| all[i * all.len() / limit].clone()).collect())
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), QuantizeError> {
    let io = |e: std::io::Error| QuantizeError::Input { path: dir.to_path_buf(), problem: e.to_string() };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if !MASK_DIRS.contains(&name) {
                walk(&path, out)?;
            }
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_images_skips_masks_and_spreads_the_pick() {
        let dir = std::env::temp_dir().join(format!("afr-calib-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for sub in ["a/train/good", "a/ground_truth/crack", "b"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        for i in 0..6 {
            std::fs::write(dir.join(format!("a/train/good/{i}.png")), b"").unwrap();
        }
        std::fs::write(dir.join("a/ground_truth/crack/0_mask.png"), b"").unwrap();
        std::fs::write(dir.join("b/.hidden.png"), b"").unwrap();
        std::fs::write(dir.join("b/notes.txt"), b"").unwrap();
        let all = calibration_images(&dir, 100).unwrap();
        assert_eq!(all.len(), 6);
        let three = calibration_images(&dir, 3).unwrap();
        let names: Vec<_> = three.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, ["0.png", "2.png", "4.png"]);
        let e = calibration_images(&dir.join("b"), 3).unwrap_err().to_string();
        assert!(e.contains("no images") && e.contains("/b"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
