//! Writing a file so that it is replaced whole or not at all: a temporary
//! file in the same directory (so the rename stays on one file system),
//! synced, then renamed over the target. A killed process never leaves a
//! half-written report, checkpoint or image under the final name.

use std::io::Write;
use std::path::{Path, PathBuf};

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, bytes, &mut || Ok(()))
}

/// [`write_atomic`], calling `before_step` before creating the temporary and
/// before the rename: a crash test stops or fails the write there (the
/// toolchain's checkpoint transaction).
pub fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    before_step: &mut dyn FnMut() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let file_name =
        path.file_name().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    before_step()?;
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        before_step()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
