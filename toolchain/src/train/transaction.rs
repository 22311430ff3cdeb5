//! Saving a run's state as one transaction. The files of the new state are
//! written under names no committed state uses (`checkpoint.N.safetensors`,
//! ...), synced, and only then does one atomic rename of `config.json`, which
//! names them, commit the state. The previous state's files are removed after
//! that. A kill -9, a power loss or a full disk at any point leaves the run at
//! the previous state or at the new one, never a mix.
//!
//! Crash testing: in a debug build, `AFR_CRASH_AT=S:K` aborts the process (as
//! a kill -9 would stop it) just before file-system step K of the S-th save
//! of this process, and `AFR_FAIL_AT=S:K` makes that step fail as a full disk
//! does. The catalogue of steps is whatever the save does; a test raises K
//! until the save no longer stops.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Saves begun, and file-system steps taken in the current one (crash testing).
static SAVES: AtomicUsize = AtomicUsize::new(0);
static STEPS: AtomicUsize = AtomicUsize::new(0);

/// A file-system step of a save: where the crash test may stop the process
/// or fail the step.
fn step() -> std::io::Result<()> {
    if !cfg!(debug_assertions) {
        return Ok(());
    }
    let here = (SAVES.load(Ordering::SeqCst), STEPS.fetch_add(1, Ordering::SeqCst) + 1);
    if injected("AFR_CRASH_AT") == Some(here) {
        std::process::abort();
    }
    if injected("AFR_FAIL_AT") == Some(here) {
        return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
    }
    Ok(())
}

fn injected(var: &str) -> Option<(usize, usize)> {
    let v = std::env::var(var).ok()?;
    let (s, k) = v.split_once(':')?;
    Some((s.parse().ok()?, k.parse().ok()?))
}

/// The files of one new state of a run directory, written but not yet committed.
pub struct Transaction {
    dir: PathBuf,
    written: Vec<String>,
}

impl Transaction {
    pub fn begin(dir: &Path) -> std::io::Result<Self> {
        // Each save counts its own steps from 1.
        SAVES.fetch_add(1, Ordering::SeqCst);
        STEPS.store(0, Ordering::SeqCst);
        std::fs::create_dir_all(dir)?;
        Ok(Self { dir: dir.to_path_buf(), written: Vec::new() })
    }

    /// Writes `name` (a name no committed state refers to) in full and syncs it.
    pub fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        write_synced(&self.dir.join(name), bytes)?;
        self.written.push(name.to_string());
        Ok(())
    }

    /// Makes the new state the run's: syncs the directory (so the files above
    /// are there whatever happens next), then replaces `commit_name` with
    /// `bytes` in one rename. Afterwards removes every file `stale` accepts
    /// that this state did not write.
    pub fn commit(self, commit_name: &str, bytes: &[u8], stale: impl Fn(&str) -> bool) -> std::io::Result<()> {
        sync_dir(&self.dir)?;
        write_synced(&self.dir.join(commit_name), bytes)?;
        sync_dir(&self.dir)?;
        let keep: Vec<&str> = self.written.iter().map(String::as_str).chain([commit_name]).collect();
        sweep(&self.dir, &keep, stale)
    }
}

/// Removes the files of `dir` that `stale` accepts, but those in `keep`: what
/// an earlier state or a stopped save left behind.
pub fn sweep(dir: &Path, keep: &[&str], stale: impl Fn(&str) -> bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if stale(&name) && !keep.contains(&name.as_str()) {
            step()?;
            // Already gone (another process tidying the same run) is not a failure.
            let _ = std::fs::remove_file(dir.join(&name));
        }
    }
    Ok(())
}

/// Writes `path` whole or not at all (the runtime's atomic write), with the
/// crash test's steps before the temporary and before the rename.
pub fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    afr_runtime::atomic::write_atomic_with(path, bytes, &mut step)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    step()?;
    std::fs::File::open(dir)?.sync_all()
}
