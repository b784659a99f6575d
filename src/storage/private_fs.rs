//! Private files and directories: every directory the vault creates is `0700` and every file
//! `0600` on Unix, whatever the process umask.
//!
//! The modes are set explicitly (`chmod`, `fchmod`) after creation, so a permissive umask does
//! not widen them and a restrictive one does not narrow them. Files that pdvault does not create
//! itself are sled's: the store directory is made `0700` before sled opens it, and every file
//! and directory under it is set to `0600`/`0700` after sled has opened (sled 0.34 writes its
//! `conf`, `db` and snapshot files at open) and again after each flush for the `blobs/`
//! directory (large values). The guarantee does not rest on those later fixes: a `0700`
//! directory already keeps every other user out of everything inside it, whatever the modes of
//! the files in it, so a file sled creates between two fixes is never readable by anyone but the
//! owner. Symbolic links are never followed or changed.
//!
//! On other platforms the functions create and copy files and directories with the platform's
//! defaults.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

/// The mode of every directory the vault creates.
#[cfg(unix)]
const DIR_MODE: u32 = 0o700;
/// The mode of every file the vault creates.
#[cfg(unix)]
const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each `0700`, and makes `dir` itself `0700` if it
/// existed.
pub(crate) fn create_dir_all(dir: &Path) -> io::Result<()> {
    let missing = missing_dirs(dir);
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    for p in &missing {
        restrict_dir(p)?;
    }
    restrict_dir(dir)
}

/// The directories of `dir`'s path that do not exist, `dir` first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(p) = at {
        if p.as_os_str().is_empty() || fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p.to_path_buf());
        at = p.parent();
    }
    missing
}

/// The topmost directory of `dir`'s path that does not exist (what creating `dir` would create
/// first), if any.
pub(crate) fn topmost_missing(dir: &Path) -> Option<PathBuf> {
    missing_dirs(dir).pop()
}

/// Makes the existing directory `dir` `0700`.
pub(crate) fn restrict_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    set_mode(dir, DIR_MODE)?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Opens `path` with `options` (which must allow writing or creating), creating it `0600`, and
/// makes it `0600` if it existed with another mode.
pub(crate) fn open_file(path: &Path, options: &mut OpenOptions) -> io::Result<File> {
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(options, FILE_MODE);
    let f = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if f.metadata()?.permissions().mode() & 0o7777 != FILE_MODE {
            f.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(f)
}

/// Creates a new file only its owner can read and write (`0600` on Unix), refusing to follow a
/// symbolic link or to overwrite anything unless `replace`: then an existing file at `path` is
/// removed first and a new one created in its place (never written through).
///
/// Meant for files that carry personal data out of the vault, such as an export:
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("alice.json");
/// let f = pdvault::create_private_file(&path, false)?;
/// # drop(f);
/// assert!(pdvault::create_private_file(&path, false).is_err()); // already there
/// # Ok(())
/// # }
/// ```
pub fn create_private_file(path: &Path, replace: bool) -> io::Result<File> {
    if replace {
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    open_file(path, OpenOptions::new().write(true).create_new(true))
}

/// Copies the file `from` to the new file `to`, created `0600` (the source's mode is not
/// copied).
pub(crate) fn copy_file(from: &Path, to: &Path) -> io::Result<()> {
    let mut src = File::open(from)?;
    let mut dst = create_private_file(to, false)?;
    io::copy(&mut src, &mut dst)?;
    Ok(())
}

/// Makes every directory in the tree at `dir` (itself included) `0700` and every file `0600`;
/// symbolic links are left alone.
pub(crate) fn restrict_tree(dir: &Path) -> io::Result<()> {
    restrict_dir(dir)?;
    #[cfg(unix)]
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict_tree(&entry.path())?;
        } else if kind.is_file() {
            set_mode(&entry.path(), FILE_MODE)?;
        }
    }
    Ok(())
}

/// Sets the mode of `path` (not a symbolic link) when it differs. A file that vanished in the
/// meantime (sled removing an old snapshot or blob) is fine.
#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if meta.file_type().is_symlink() || meta.permissions().mode() & 0o7777 == mode {
        return Ok(());
    }
    match fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Makes the files of `dir` that are not in `known` `0600`, and leaves `known` holding the
/// names `dir` holds now: one directory listing, and a `chmod` only for new files. A missing
/// `dir` holds nothing.
pub(crate) fn restrict_new_files(
    dir: &Path,
    known: &mut std::collections::HashSet<std::ffi::OsString>,
) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            known.clear();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut now = std::collections::HashSet::with_capacity(known.len());
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if !known.contains(&name) {
            #[cfg(unix)]
            if entry.file_type()?.is_file() {
                set_mode(&entry.path(), FILE_MODE)?;
            }
        }
        now.insert(name);
    }
    *known = now;
    Ok(())
}
