//! VisA: `split_csv/1cls.csv` with columns object,split,label,image,mask; paths relative to
//! the root, label `normal` or `anomaly`, mask empty for normal images.

use std::path::{Path, PathBuf};

use super::{files, DatasetError, Listing, Sample, Split};

const CSV: &str = "split_csv/1cls.csv";

pub(crate) fn list(root: &Path, split: Split) -> Result<Listing, DatasetError> {
    let path = root.join(CSV);
    let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io { path: path.clone(), source })?;
    let csv_err = |line: usize, problem: String| DatasetError::Csv { path: path.clone(), line, problem };

    let mut rows = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let (_, header) = rows.next().ok_or_else(|| csv_err(1, "file is empty".into()))?;
    let header = parse_line(header.trim_start_matches('\u{feff}')).map_err(|p| csv_err(1, p))?;
    let column = |name: &str| {
        header
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .ok_or_else(|| csv_err(1, format!("no column {name:?} in the header")))
    };
    let (c_object, c_split, c_label, c_image, c_mask) =
        (column("object")?, column("split")?, column("label")?, column("image")?, column("mask")?);

    let mut categories: Vec<String> = Vec::new();
    let mut samples = Vec::new();
    for (index, line) in rows {
        let number = index + 1;
        let fields = parse_line(line).map_err(|p| csv_err(number, p))?;
        let field = |c: usize| {
            fields
                .get(c)
                .map(|f| f.trim())
                .ok_or_else(|| csv_err(number, format!("expected {} fields, found {}", header.len(), fields.len())))
        };
        let object = field(c_object)?;
        if object.is_empty() {
            return Err(csv_err(number, "empty object name".into()));
        }
        if !categories.iter().any(|c| c == object) {
            categories.push(object.to_string());
        }
        let row_split = field(c_split)?;
        if !row_split.eq_ignore_ascii_case(split.name()) {
            continue;
        }
        let anomalous = match field(c_label)?.to_ascii_lowercase().as_str() {
            "normal" => false,
            "anomaly" => true,
            other => return Err(csv_err(number, format!("label {other:?} is neither normal nor anomaly"))),
        };
        let image = files::inside_root(root, field(c_image)?).map_err(|p| csv_err(number, format!("image: {p}")))?;
        if !image.is_file() {
            return Err(DatasetError::MissingImage { path: image, listed_in: path.clone() });
        }
        let mask_field = field(c_mask)?;
        let mask = if anomalous && !mask_field.is_empty() {
            let mask = files::inside_root(root, mask_field).map_err(|p| csv_err(number, format!("mask: {p}")))?;
            if !mask.is_file() {
                return Err(DatasetError::MissingListedMask { path: mask, listed_in: path.clone() });
            }
            Some(mask)
        } else {
            None
        };
        samples.push(Sample {
            image,
            mask,
            category: object.to_string(),
            anomalous,
            defect: if anomalous { "anomaly" } else { "good" }.to_string(),
        });
    }
    categories.sort();
    let categories = categories.into_iter().map(|c| (c, PathBuf::from(&path))).collect();
    Ok(Listing { categories, samples })
}

/// Splits one CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote inside quotes).
fn parse_line(line: &str) -> Result<Vec<String>, String> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields = Vec::new();
    let mut field = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(std::mem::take(&mut field)),
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    fields.push(field);
    Ok(fields)
}
