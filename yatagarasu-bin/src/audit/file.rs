//! The audit log's file output: appends lines, rotates by size or by UTC day, keeps a bounded
//! number of backups (`audit.log.1` the newest, `audit.log.N` the oldest).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::utc::utc_day;

/// When the file output starts a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Rotation {
    /// When the next line would take the file past its size limit (default).
    #[default]
    Size,
    /// At the first line of a new UTC day, and at the size limit as well.
    Daily,
}

/// Where and how the audit log writes its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutput {
    path: PathBuf,
    max_file_bytes: u64,
    max_backups: usize,
    rotation: Rotation,
}

impl FileOutput {
    /// Append to `path` (created mode 0640 if missing; its directory must exist), rotating at 100 MiB and
    /// keeping 10 backups until told otherwise.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            max_file_bytes: 100 * 1024 * 1024,
            max_backups: 10,
            rotation: Rotation::Size,
        }
    }

    /// Start a new file before one would grow past `bytes` (at least one line per file).
    pub fn max_file_bytes(mut self, bytes: u64) -> Self {
        self.max_file_bytes = bytes.max(1);
        self
    }

    /// Rotated files kept (`path.1` ... `path.N`); older ones are deleted. Zero keeps none.
    pub fn max_backups(mut self, n: usize) -> Self {
        self.max_backups = n;
        self
    }

    /// Rotate by size alone, or daily as well.
    pub fn rotation(mut self, rotation: Rotation) -> Self {
        self.rotation = rotation;
        self
    }

    /// The file written to.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The open file and what rotation needs to know about it.
#[derive(Debug)]
pub(crate) struct RotatingFile {
    options: FileOutput,
    /// `None` after a failed write or rotation: the next write reopens.
    file: Option<BufWriter<File>>,
    size: u64,
    /// The UTC day the current file was started (or last modified, when it existed at start).
    day: u64,
}

impl RotatingFile {
    /// Open (append) the file, creating it if missing.
    pub(crate) fn open(options: FileOutput) -> io::Result<Self> {
        let mut this = Self {
            options,
            file: None,
            size: 0,
            day: utc_day(SystemTime::now()),
        };
        this.reopen()?;
        Ok(this)
    }

    fn reopen(&mut self) -> io::Result<()> {
        let mut open = OpenOptions::new();
        open.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o640);
        let file = open.open(&self.options.path)?;
        let meta = file.metadata()?;
        self.size = meta.len();
        if let Ok(modified) = meta.modified()
            && self.size > 0
        {
            self.day = utc_day(modified);
        }
        self.file = Some(BufWriter::with_capacity(64 * 1024, file));
        Ok(())
    }

    /// Append `line`, rotating first when it is due at `now`.
    pub(crate) fn write(&mut self, line: &[u8], now: SystemTime) -> io::Result<()> {
        let today = utc_day(now);
        let full = self.size + line.len() as u64 > self.options.max_file_bytes;
        let new_day = self.options.rotation == Rotation::Daily && today != self.day;
        if self.size > 0 && (full || new_day) {
            self.rotate()?;
        }
        if self.file.is_none() {
            self.reopen()?;
        }
        if self.size == 0 {
            self.day = today;
        }
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("no file"))?;
        match file.write_all(line) {
            Ok(()) => {
                self.size += line.len() as u64;
                Ok(())
            }
            Err(e) => {
                // A full disk or a removed file: drop what is buffered and start over next time.
                self.file = None;
                Err(e)
            }
        }
    }

    /// Hand what is buffered to the file.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut().map(BufWriter::flush) {
            Some(Err(e)) => {
                self.file = None;
                Err(e)
            }
            _ => Ok(()),
        }
    }

    /// `path` becomes `path.1`, `path.1` becomes `path.2`, ...; the oldest beyond the limit goes.
    fn rotate(&mut self) -> io::Result<()> {
        let flushed = self.flush();
        self.file = None;
        flushed?;
        let path = &self.options.path;
        let numbered = |n: usize| {
            let mut p = path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.options.max_backups == 0 {
            remove_if_present(path)?;
        } else {
            for n in (1..self.options.max_backups).rev() {
                rename_if_present(&numbered(n), &numbered(n + 1))?;
            }
            rename_if_present(path, &numbered(1))?;
        }
        self.size = 0;
        self.reopen()
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const DAY: u64 = 86_400;

    fn day(n: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(20_000 * DAY + n * DAY + 3600)
    }

    fn read(p: &Path) -> String {
        std::fs::read_to_string(p).unwrap_or_default()
    }

    fn backup(p: &Path, n: usize) -> PathBuf {
        PathBuf::from(format!("{}.{n}", p.display()))
    }

    #[test]
    fn size_rotation_keeps_the_newest_backups_and_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f =
            RotatingFile::open(FileOutput::new(&path).max_file_bytes(20).max_backups(2)).unwrap();
        // Ten-byte lines: two per file.
        for i in 0..7 {
            f.write(format!("line {i:04}\n").as_bytes(), day(0))
                .unwrap();
        }
        f.flush().unwrap();
        assert_eq!(read(&path), "line 0006\n");
        assert_eq!(read(&backup(&path, 1)), "line 0004\nline 0005\n");
        assert_eq!(read(&backup(&path, 2)), "line 0002\nline 0003\n");
        assert!(!backup(&path, 3).exists(), "only two backups are kept");
    }

    #[test]
    fn a_line_longer_than_the_limit_gets_a_file_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(FileOutput::new(&path).max_file_bytes(4)).unwrap();
        f.write(b"0123456789\n", day(0)).unwrap();
        f.write(b"abcdefghij\n", day(0)).unwrap();
        f.flush().unwrap();
        assert_eq!(read(&path), "abcdefghij\n");
        assert_eq!(read(&backup(&path, 1)), "0123456789\n");
    }

    #[test]
    fn daily_rotation_starts_a_file_per_utc_day() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = RotatingFile::open(
            FileOutput::new(&path)
                .rotation(Rotation::Daily)
                .max_backups(5),
        )
        .unwrap();
        f.write(b"monday 1\n", day(0)).unwrap();
        f.write(b"monday 2\n", day(0)).unwrap();
        f.write(b"tuesday\n", day(1)).unwrap();
        f.write(b"thursday\n", day(3)).unwrap();
        f.flush().unwrap();
        assert_eq!(read(&path), "thursday\n");
        assert_eq!(read(&backup(&path, 1)), "tuesday\n");
        assert_eq!(read(&backup(&path, 2)), "monday 1\nmonday 2\n");
        // Size alone never rotates a daily file below its limit.
        let mut s = RotatingFile::open(FileOutput::new(dir.path().join("size.log"))).unwrap();
        s.write(b"a\n", day(0)).unwrap();
        s.write(b"b\n", day(1)).unwrap();
        s.flush().unwrap();
        assert_eq!(read(&dir.path().join("size.log")), "a\nb\n");
    }

    #[test]
    fn an_existing_file_is_appended_to_and_counts_toward_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        std::fs::write(&path, "old line\n").unwrap();
        let mut f = RotatingFile::open(FileOutput::new(&path).max_file_bytes(13)).unwrap();
        f.write(b"new\n", SystemTime::now()).unwrap();
        f.write(b"newer\n", SystemTime::now()).unwrap();
        f.flush().unwrap();
        assert_eq!(read(&backup(&path, 1)), "old line\nnew\n");
        assert_eq!(read(&path), "newer\n");
    }

    #[test]
    fn zero_backups_keeps_only_the_current_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f =
            RotatingFile::open(FileOutput::new(&path).max_file_bytes(3).max_backups(0)).unwrap();
        f.write(b"ab\n", day(0)).unwrap();
        f.write(b"cd\n", day(0)).unwrap();
        f.flush().unwrap();
        assert_eq!(read(&path), "cd\n");
        assert!(!backup(&path, 1).exists());
    }
}
