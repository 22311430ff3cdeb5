//! Directory listing shared by the readers of directory layouts.

use std::path::{Path, PathBuf};

use super::{DatasetError, Sample};

/// Extensions the decoders are built for (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|k| e.eq_ignore_ascii_case(k)))
}

fn entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let io = |source| DatasetError::Io { path: dir.to_path_buf(), source };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        // Hidden files (.DS_Store, ._foo.png from macOS archives) are never samples.
        let hidden = path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'));
        if !hidden {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Image files directly in `dir`, sorted. A missing directory lists as empty.
pub(crate) fn images(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(entries(dir)?.into_iter().filter(|p| p.is_file() && is_image(p)).collect())
}

/// Subdirectories of `dir` as (name, path), sorted. A missing directory lists as empty.
pub(crate) fn subdirs(dir: &Path) -> Result<Vec<(String, PathBuf)>, DatasetError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    Ok(entries(dir)?
        .into_iter()
        .filter(|p| p.is_dir())
        .filter_map(|p| Some((p.file_name()?.to_str()?.to_string(), p)))
        .collect())
}

/// `listed` (a path read from a dataset's index file) under `root`. The index is
/// untrusted: an absolute path or a `..` would read files outside the dataset.
pub(crate) fn inside_root(root: &Path, listed: &str) -> Result<PathBuf, String> {
    use std::path::Component;
    let rel = Path::new(listed);
    for component in rel.components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!("path {listed:?} contains `..`: listed paths must stay inside the dataset root"))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(format!("path {listed:?} is absolute: listed paths are relative to the dataset root"))
            }
        }
    }
    Ok(root.join(rel))
}

pub(crate) fn stem(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The images of a mask directory, looked up by file stem.
pub(crate) struct MaskDir {
    dir: PathBuf,
    masks: Vec<PathBuf>,
}

impl MaskDir {
    /// `None` when the directory does not exist (the defect has no masks at all).
    pub(crate) fn open(dir: &Path) -> Result<Option<MaskDir>, DatasetError> {
        if !dir.is_dir() {
            return Ok(None);
        }
        Ok(Some(MaskDir { dir: dir.to_path_buf(), masks: images(dir)? }))
    }

    /// The mask whose stem is one of `stems` (tried in order); PNG first when several
    /// extensions share a stem. Errors naming the image when none is there.
    pub(crate) fn find(&self, image: &Path, stems: &[String]) -> Result<PathBuf, DatasetError> {
        for wanted in stems {
            let mut hits: Vec<&PathBuf> = self.masks.iter().filter(|m| &stem(m) == wanted).collect();
            hits.sort_by_key(|m| {
                let png = m.extension().is_some_and(|e| e.eq_ignore_ascii_case("png"));
                (!png, (*m).clone())
            });
            if let Some(hit) = hits.first() {
                return Ok((*hit).clone());
            }
        }
        Err(DatasetError::MissingMask {
            image: image.to_path_buf(),
            mask_dir: self.dir.clone(),
            expected: stems.iter().map(|s| format!("{s}.png")).collect::<Vec<_>>().join(" or "),
        })
    }
}

/// Normal samples for every image in `dir`.
pub(crate) fn normal_samples(dir: &Path, category: &str) -> Result<Vec<Sample>, DatasetError> {
    Ok(images(dir)?
        .into_iter()
        .map(|image| Sample {
            image,
            mask: None,
            category: category.to_string(),
            anomalous: false,
            defect: "good".to_string(),
        })
        .collect())
}

/// Anomalous samples for every image in `dir`, masks looked up in `mask_dir` under the
/// stems `mask_stems(image stem)`.
pub(crate) fn anomalous_samples(
    dir: &Path,
    mask_dir: &Path,
    category: &str,
    defect: &str,
    mask_stems: impl Fn(&str) -> Vec<String>,
) -> Result<Vec<Sample>, DatasetError> {
    let masks = MaskDir::open(mask_dir)?;
    let mut out = Vec::new();
    for image in images(dir)? {
        let mask = match &masks {
            Some(m) => Some(m.find(&image, &mask_stems(&stem(&image)))?),
            None => None,
        };
        out.push(Sample { image, mask, category: category.to_string(), anomalous: true, defect: defect.to_string() });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_paths_stay_inside_the_root() {
        let root = Path::new("data");
        assert_eq!(inside_root(root, "a/./b.png").unwrap(), root.join("a/./b.png"));
        assert!(inside_root(root, "/etc/passwd").unwrap_err().contains("is absolute"));
        assert!(inside_root(root, "a/../../b.png").unwrap_err().contains("`..`"));
    }
}
