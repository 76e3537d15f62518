//! Writing tickler's state files: each replaced atomically, and never through a
//! symlink that someone planted where a file was to be made.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// Replaces `path` with `bytes` so that readers see the old file or the new one, never
/// a part, even across a crash or power loss. The temporary file is made anew
/// (`O_EXCL`: an existing file or symlink at its name is an error, not a target), and
/// the rename replaces a symlink at `path` rather than following it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(
        ".{name}.{}.{:08x}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    let result = (|| {
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Opens (creating if missing) a file that is only locked, never written, refusing a
/// symlink in its place.
pub fn open_lock_file(path: &Path) -> io::Result<File> {
    File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_planted_symlink_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        fs::write(&victim, "precious").unwrap();
        let target = dir.path().join("out.eml");
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        write_atomic(&target, b"message").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
        assert_eq!(fs::read_to_string(&target).unwrap(), "message");
        assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());

        let lock = dir.path().join(".lock");
        std::os::unix::fs::symlink(&victim, &lock).unwrap();
        assert!(open_lock_file(&lock).is_err());
    }
}
