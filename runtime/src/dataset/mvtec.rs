//! MVTec AD and MPDD: `CAT/train/good`, `CAT/test/{good,DEFECT}`,
//! masks `CAT/ground_truth/DEFECT/NAME_mask.png`.

use std::path::Path;

use super::files::{anomalous_samples, normal_samples, subdirs};
use super::{DatasetError, Format, Listing, Split};

pub(crate) fn list(root: &Path, split: Split, format: Format) -> Result<Listing, DatasetError> {
    let mut listing = Listing { categories: Vec::new(), samples: Vec::new() };
    for (category, dir) in subdirs(root)? {
        if !dir.join("test").is_dir() && !dir.join("train").is_dir() {
            continue; // not a category (e.g. a stray folder next to them)
        }
        match split {
            Split::Train => {
                let good = dir.join("train").join("good");
                listing.samples.extend(normal_samples(&good, &category)?);
                listing.categories.push((category, good));
            }
            Split::Test => {
                let test = dir.join("test");
                for (defect, defect_dir) in subdirs(&test)? {
                    if defect == "good" {
                        listing.samples.extend(normal_samples(&defect_dir, &category)?);
                    } else {
                        let mask_dir = dir.join("ground_truth").join(&defect);
                        listing.samples.extend(anomalous_samples(
                            &defect_dir,
                            &mask_dir,
                            &category,
                            &defect,
                            |stem| vec![format!("{stem}_mask")],
                        )?);
                    }
                }
                listing.categories.push((category, test));
            }
        }
    }
    if listing.categories.is_empty() {
        return Err(DatasetError::NoCategories {
            root: root.to_path_buf(),
            format,
            expected: "CAT/test/good/*.png and CAT/test/DEFECT/*.png",
        });
    }
    Ok(listing)
}
