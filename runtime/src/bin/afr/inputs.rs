//! The images named on a command line: files, folders (searched recursively
//! for image extensions) and glob patterns (`*`, `?`, and `**` for any depth),
//! matched here without a glob crate.

use std::path::{Component, Path, PathBuf};

const IMAGE_EXTENSIONS: [&str; 6] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff"];

pub fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|k| e.eq_ignore_ascii_case(k)))
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// Expands `inputs` into image files, in the order given (each folder and
/// pattern sorted), without duplicates. A name that matches nothing is an error.
pub fn collect(inputs: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    for input in inputs {
        let mut found = Vec::new();
        let path = Path::new(input);
        if is_pattern(input) {
            expand_pattern(path, &mut found)?;
        } else if path.is_dir() {
            walk(path, &mut found)?;
        } else if path.exists() {
            // An explicit file is taken whatever its extension: the decoder decides.
            found.push(path.to_path_buf());
        } else {
            anyhow::bail!("{input}: no such file or directory");
        }
        if found.is_empty() {
            anyhow::bail!("{input}: no images found (extensions: {})", IMAGE_EXTENSIONS.join(", "));
        }
        found.sort();
        for p in found {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    Ok(out)
}

fn hidden(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with('.'))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| anyhow::anyhow!("{}: cannot list: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| anyhow::anyhow!("{}: cannot list: {e}", dir.display()))?.path();
        if hidden(&path) {
            continue;
        }
        if path.is_dir() {
            walk(&path, out)?;
        } else if is_image(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn expand_pattern(pattern: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    // The literal prefix is where the search starts.
    let mut base = PathBuf::new();
    let mut rest: Vec<String> = Vec::new();
    for c in pattern.components() {
        let s = c.as_os_str().to_string_lossy().into_owned();
        if rest.is_empty() && !is_pattern(&s) {
            base.push(c);
        } else if !matches!(c, Component::CurDir) {
            rest.push(s);
        }
    }
    if base.as_os_str().is_empty() {
        base.push(".");
    }
    let implicit_dot = !pattern.starts_with(".") && base == Path::new(".");
    let mut found = Vec::new();
    walk_pattern(&base, &rest, &mut found);
    for p in found {
        // `*.png` lists as `a.png`, not `./a.png`.
        let p = if implicit_dot { p.strip_prefix(".").map(Path::to_path_buf).unwrap_or(p) } else { p };
        out.push(p);
    }
    Ok(())
}

fn walk_pattern(dir: &Path, parts: &[String], out: &mut Vec<PathBuf>) {
    let Some((first, rest)) = parts.split_first() else {
        if dir.is_file() && is_image(dir) {
            out.push(dir.to_path_buf());
        }
        return;
    };
    if first == "**" {
        // Zero directories, or one more and `**` again.
        walk_pattern(dir, rest, out);
        for sub in list(dir).into_iter().filter(|p| p.is_dir()) {
            walk_pattern(&sub, parts, out);
        }
        return;
    }
    for entry in list(dir) {
        let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if wildcard_match(first, &name) && (!hidden(&entry) || first.starts_with('.')) {
            walk_pattern(&entry, rest, out);
        }
    }
}

fn list(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

/// `*` matches any run of characters, `?` any one character.
pub fn wildcard_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::wildcard_match;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*.png", "a.png"));
        assert!(wildcard_match("*.png", ".png"));
        assert!(!wildcard_match("*.png", "a.jpg"));
        assert!(wildcard_match("img_??.p*g", "img_01.png"));
        assert!(!wildcard_match("img_??.png", "img_1.png"));
        assert!(wildcard_match("*a*b*", "xxaybz"));
        assert!(!wildcard_match("*a*b", "xxaybz"));
        assert!(wildcard_match("*", ""));
    }
}
