//! BTAD: `NN/train/ok`, `NN/test/{ok,ko}`, masks `NN/ground_truth/ko/NAME.*`.
//!
//! The masks share the image's stem but not always its extension (category 01 has `.bmp`
//! images and `.png` masks), so they are matched by stem.

use std::path::Path;

use super::files::{anomalous_samples, normal_samples, subdirs};
use super::{DatasetError, Format, Listing, Split};

pub(crate) fn list(root: &Path, split: Split) -> Result<Listing, DatasetError> {
    let mut listing = Listing { categories: Vec::new(), samples: Vec::new() };
    for (category, dir) in subdirs(root)? {
        if !dir.join("test").is_dir() && !dir.join("train").is_dir() {
            continue;
        }
        match split {
            Split::Train => {
                let ok = dir.join("train").join("ok");
                listing.samples.extend(normal_samples(&ok, &category)?);
                listing.categories.push((category, ok));
            }
            Split::Test => {
                let test = dir.join("test");
                listing.samples.extend(normal_samples(&test.join("ok"), &category)?);
                listing.samples.extend(anomalous_samples(
                    &test.join("ko"),
                    &dir.join("ground_truth").join("ko"),
                    &category,
                    "anomaly",
                    |stem| vec![stem.to_string()],
                )?);
                listing.categories.push((category, test));
            }
        }
    }
    if listing.categories.is_empty() {
        return Err(DatasetError::NoCategories {
            root: root.to_path_buf(),
            format: Format::Btad,
            expected: "NN/test/ok and NN/test/ko",
        });
    }
    Ok(listing)
}
