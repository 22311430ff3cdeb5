//! Dataset readers (MVTec AD, VisA, meta.json, BTAD, MPDD, plain folders).
//!
//! A reader only lists files: it checks that listed images and masks exist but decodes
//! nothing (that is [`crate::image_io`]'s job, when a sample is used). Samples come out sorted
//! by category, then image path, so every run sees the same order.
//!
//! Conventions shared by all formats:
//! - `defect` is `"good"` for normal images; otherwise the defect type when the layout has
//!   one (MVTec AD's directory name, meta.json's `specie_name`), else `"anomaly"`.
//! - An anomalous image may have no mask (`mask: None`): it trains the image loss only and
//!   is left out of pixel metrics.
//! - In directory layouts a defect's masks are all or nothing: if its mask directory exists,
//!   every image of the defect must have a mask there, else the error names the missing one
//!   (a partial copy of a dataset should not silently lose its masks).

mod btad;
mod files;
mod folder;
mod meta_json;
mod mvtec;
mod visa;

pub use files::is_image;

use std::collections::BTreeSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The on-disk layouts understood by [`Dataset::open`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// `CAT/{train,test}/...`, masks `CAT/ground_truth/DEFECT/NAME_mask.png`.
    Mvtec,
    /// `split_csv/1cls.csv` with columns object,split,label,image,mask.
    Visa,
    /// `meta.json` as AnomalyCLIP and AdaCLIP write it.
    MetaJson,
    /// `NN/{train,test}/{ok,ko}`, masks `NN/ground_truth/ko/NAME.*` (same stem).
    Btad,
    /// Same layout as MVTec AD.
    Mpdd,
    /// `ROOT/{good,bad,masks}` or `ROOT/CAT/{good,bad,masks}`.
    Folder,
}

impl Format {
    /// Every format, in the order the CLI lists them.
    pub const ALL: [Format; 6] =
        [Format::Mvtec, Format::Visa, Format::MetaJson, Format::Btad, Format::Mpdd, Format::Folder];

    /// Guesses the layout of `root` from marker files and directory names, for a CLI's
    /// `--format auto`. MPDD has MVTec AD's layout and is reported as [`Format::Mvtec`]
    /// (the two read the same). None when nothing matches.
    pub fn detect(root: &Path) -> Option<Format> {
        if root.join("meta.json").is_file() {
            return Some(Format::MetaJson);
        }
        if root.join("split_csv").join("1cls.csv").is_file() {
            return Some(Format::Visa);
        }
        if root.join("good").is_dir() || root.join("bad").is_dir() {
            return Some(Format::Folder);
        }
        let dirs = files::subdirs(root).ok()?;
        let any = |rel: &[&str]| dirs.iter().any(|(_, d)| d.join(rel.iter().collect::<PathBuf>()).is_dir());
        if any(&["test", "ok"]) || any(&["test", "ko"]) || any(&["train", "ok"]) {
            Some(Format::Btad)
        } else if any(&["test"]) || any(&["train", "good"]) {
            Some(Format::Mvtec)
        } else if any(&["good"]) || any(&["bad"]) {
            Some(Format::Folder)
        } else {
            None
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Mvtec => "mvtec",
            Format::Visa => "visa",
            Format::MetaJson => "meta-json",
            Format::Btad => "btad",
            Format::Mpdd => "mpdd",
            Format::Folder => "folder",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let key = s.trim().to_ascii_lowercase().replace('_', "-");
        let found = match key.as_str() {
            "mvtec" | "mvtec-ad" | "mvtecad" => Some(Format::Mvtec),
            "visa" => Some(Format::Visa),
            "meta-json" | "meta" | "metajson" | "meta.json" => Some(Format::MetaJson),
            "btad" => Some(Format::Btad),
            "mpdd" => Some(Format::Mpdd),
            "folder" => Some(Format::Folder),
            _ => None,
        };
        found.ok_or_else(|| DatasetError::UnknownFormat {
            name: s.to_string(),
            known: Format::ALL.iter().map(|f| f.name()).collect::<Vec<_>>().join(", "),
        })
    }
}

/// Which split of a dataset to read.
///
/// `Test` is the default: it is what evaluation reads, and also what training on an
/// auxiliary dataset reads, since only the test split holds anomalies and masks (as in
/// AnomalyCLIP, AdaCLIP and APRIL-GAN). `Train` holds normal images only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Split {
    #[default]
    Test,
    Train,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Test => "test",
            Split::Train => "train",
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Split {
    type Err = DatasetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "test" => Ok(Split::Test),
            "train" => Ok(Split::Train),
            _ => Err(DatasetError::UnknownSplit { name: s.to_string() }),
        }
    }
}

/// One image of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    pub image: PathBuf,
    /// Ground-truth mask; `None` for normal images and for anomalous ones without a mask.
    pub mask: Option<PathBuf>,
    pub category: String,
    pub anomalous: bool,
    /// `"good"` for normal images, else the defect type or `"anomaly"`.
    pub defect: String,
}

/// A listed dataset: the samples of one split, filtered to the requested categories.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub root: PathBuf,
    pub format: Format,
    pub split: Split,
    pub samples: Vec<Sample>,
}

impl Dataset {
    /// Lists the samples of `split` under `root`, laid out as `format`.
    ///
    /// `categories` restricts the listing; a name that is not in the dataset is an error that
    /// lists the known ones. A selected category without images in the split is an error too.
    pub fn open(
        root: &Path,
        format: Format,
        split: Split,
        categories: Option<&[String]>,
    ) -> Result<Dataset, DatasetError> {
        if !root.exists() {
            return Err(DatasetError::RootMissing { root: root.to_path_buf() });
        }
        let listing = match format {
            Format::Mvtec | Format::Mpdd => mvtec::list(root, split, format)?,
            Format::Visa => visa::list(root, split)?,
            Format::MetaJson => meta_json::list(root, split)?,
            Format::Btad => btad::list(root, split)?,
            Format::Folder => folder::list(root, split)?,
        };
        let mut samples = select(listing, categories)?;
        samples.sort_by(|a, b| (&a.category, &a.image).cmp(&(&b.category, &b.image)));
        Ok(Dataset { root: root.to_path_buf(), format, split, samples })
    }

    /// The categories present, sorted.
    pub fn categories(&self) -> Vec<String> {
        let set: BTreeSet<&str> = self.samples.iter().map(|s| s.category.as_str()).collect();
        set.into_iter().map(str::to_string).collect()
    }

    /// The samples of one category, in order.
    pub fn samples_of<'a>(&'a self, category: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.category == category)
    }
}

/// What a format reader found: every category it knows (with where it looked, for error
/// messages) and the samples of the split.
pub(crate) struct Listing {
    /// (category, the directory or file that should hold its images)
    pub categories: Vec<(String, PathBuf)>,
    pub samples: Vec<Sample>,
}

fn select(listing: Listing, wanted: Option<&[String]>) -> Result<Vec<Sample>, DatasetError> {
    let known: Vec<String> = listing.categories.iter().map(|(c, _)| c.clone()).collect();
    let chosen: Vec<&(String, PathBuf)> = match wanted {
        None => listing.categories.iter().collect(),
        Some(names) => {
            let unknown: Vec<String> = names.iter().filter(|n| !known.contains(n)).cloned().collect();
            if !unknown.is_empty() {
                return Err(DatasetError::UnknownCategories { unknown, known });
            }
            listing.categories.iter().filter(|(c, _)| names.contains(c)).collect()
        }
    };
    for (category, place) in &chosen {
        if !listing.samples.iter().any(|s| &s.category == category) {
            return Err(DatasetError::EmptyCategory { category: category.clone(), place: place.clone() });
        }
    }
    let keep: BTreeSet<&str> = chosen.iter().map(|(c, _)| c.as_str()).collect();
    Ok(listing.samples.into_iter().filter(|s| keep.contains(s.category.as_str())).collect())
}

/// Why a dataset could not be listed. Each variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("unknown dataset format {name:?} (known: {known})")]
    UnknownFormat { name: String, known: String },
    #[error("unknown split {name:?} (known: test, train)")]
    UnknownSplit { name: String },
    #[error("{root}: dataset root not found")]
    RootMissing { root: PathBuf },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{root}: no categories found for format {format} (expected {expected})")]
    NoCategories { root: PathBuf, format: Format, expected: &'static str },
    #[error("unknown categories {} (known: {})", unknown.join(", "), known.join(", "))]
    UnknownCategories { unknown: Vec<String>, known: Vec<String> },
    #[error("category {category} has no images in {place}")]
    EmptyCategory { category: String, place: PathBuf },
    #[error("{path}: image listed in {listed_in} does not exist")]
    MissingImage { path: PathBuf, listed_in: PathBuf },
    #[error("{path}: mask listed in {listed_in} does not exist")]
    MissingListedMask { path: PathBuf, listed_in: PathBuf },
    #[error("{image}: no mask for this image in {mask_dir} (expected {expected})")]
    MissingMask { image: PathBuf, mask_dir: PathBuf, expected: String },
    #[error("{path}:{line}: {problem}")]
    Csv { path: PathBuf, line: usize, problem: String },
    #[error("{path}: {problem}")]
    Json { path: PathBuf, problem: String },
}
