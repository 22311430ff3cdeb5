//! A plain folder: `ROOT/{good,bad,masks}` (one category, named after ROOT) or
//! `ROOT/CAT/{good,bad,masks}`. Masks share the image's stem (`NAME.png` or `NAME_mask.png`).
//!
//! There is no split on disk: `Split::Test` lists good and bad images, `Split::Train` the
//! good ones only.

use std::path::Path;

use super::files::{anomalous_samples, normal_samples, subdirs};
use super::{DatasetError, Format, Listing, Split};

fn is_category(dir: &Path) -> bool {
    dir.join("good").is_dir() || dir.join("bad").is_dir()
}

pub(crate) fn list(root: &Path, split: Split) -> Result<Listing, DatasetError> {
    let mut dirs = Vec::new();
    if is_category(root) {
        // `.` or `..` have no file name of their own: ask the file system for it.
        let named =
            std::fs::canonicalize(root).map_err(|source| DatasetError::Io { path: root.to_path_buf(), source })?;
        let name = named.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "object".to_string());
        dirs.push((name, root.to_path_buf()));
    } else {
        dirs.extend(subdirs(root)?.into_iter().filter(|(_, d)| is_category(d)));
    }
    if dirs.is_empty() {
        return Err(DatasetError::NoCategories {
            root: root.to_path_buf(),
            format: Format::Folder,
            expected: "good/ and bad/ in ROOT or in ROOT/CAT",
        });
    }
    let mut listing = Listing { categories: Vec::new(), samples: Vec::new() };
    for (category, dir) in dirs {
        listing.samples.extend(normal_samples(&dir.join("good"), &category)?);
        if split == Split::Test {
            listing.samples.extend(anomalous_samples(
                &dir.join("bad"),
                &dir.join("masks"),
                &category,
                "anomaly",
                |stem| vec![stem.to_string(), format!("{stem}_mask")],
            )?);
        }
        listing.categories.push((category, dir));
    }
    Ok(listing)
}
