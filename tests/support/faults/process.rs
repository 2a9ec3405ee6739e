//! Process and disk faults: SIGSTOP / SIGCONT, and a small tmpfs that fills up.

use std::path::{Path, PathBuf};

/// Pauses a process (SIGSTOP).
pub fn sigstop(pid: u32) {
    signal(pid, "STOP");
}

/// Resumes a paused process (SIGCONT).
pub fn sigcont(pid: u32) {
    signal(pid, "CONT");
}

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// A size-limited tmpfs that a test can fill up and free again.
pub struct TinyDisk {
    pub dir: PathBuf,
    _holder: tempfile::TempDir,
}

impl TinyDisk {
    /// Mounts a tmpfs of `mib` MiB, or says why not (not root, no mount) and returns `None`.
    pub fn mount_or_skip(mib: u32) -> Option<TinyDisk> {
        let uid = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        if uid != "0" {
            println!("skipped: filling a disk needs root to mount a tmpfs (uid {uid})");
            return None;
        }
        let holder = tempfile::tempdir().expect("tempdir");
        let dir = holder.path().to_path_buf();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&dir)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(TinyDisk {
                dir,
                _holder: holder,
            }),
            Ok(o) => {
                println!(
                    "skipped: mounting a tmpfs failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                println!("skipped: no mount command: {e}");
                None
            }
        }
    }

    fn filler(&self) -> PathBuf {
        self.dir.join("filler")
    }

    /// Writes a file until the disk is full; returns its size.
    pub fn fill(&self) -> u64 {
        use std::io::Write;
        let mut f = std::fs::File::create(self.filler()).expect("filler");
        let block = vec![0u8; 64 * 1024];
        let mut n = 0u64;
        loop {
            match f.write(&block) {
                Ok(0) | Err(_) => break,
                Ok(k) => n += k as u64,
            }
        }
        let _ = f.sync_all();
        n
    }

    /// Deletes the filler.
    pub fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for TinyDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.dir)
            .status();
    }
}
