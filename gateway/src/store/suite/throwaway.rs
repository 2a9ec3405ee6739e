//! A private PostgreSQL server for tests that stop and restart their database (the shared server
//! must never be stopped): `initdb` + `pg_ctl` in a temp directory, listening on a free port of
//! 127.0.0.1. As root, the server runs as the `postgres` user (initdb refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

/// A private PostgreSQL server; stopped (and its directory removed) when dropped.
pub struct Throwaway {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Throwaway {
    /// Initialises and starts a server; the error says why there is none (binaries missing,
    /// running as root without a `postgres` user, ...). Blocking: call it off the async workers.
    pub fn create() -> Result<Self, String> {
        let bin =
            find_bin().ok_or("initdb not found (set GATEWAY_TEST_PG_BIN or install postgresql)")?;
        let as_postgres = is_root();
        if as_postgres
            && Command::new("id")
                .arg("postgres")
                .output()
                .map(|o| !o.status.success())
                .unwrap_or(true)
        {
            return Err("running as root and there is no `postgres` user to run initdb as".into());
        }
        let dir = std::env::temp_dir().join(format!(
            "gw-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // From here on, dropping `me` cleans up.
        let me = Throwaway {
            bin,
            dir,
            port,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&me.dir)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                return Err("could not chown the temp dir to postgres".into());
            }
        }
        let data = me.data();
        me.run(
            "initdb",
            &[
                "-D",
                &data,
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
        )?;
        me.start()?;
        Ok(me)
    }

    /// [`Throwaway::create`] for tests: `None` after printing why there is none, unless
    /// `GATEWAY_TEST_REQUIRE_POSTGRES=1`, which makes it panic instead. Blocking.
    pub fn create_or_skip() -> Option<Self> {
        match Self::create() {
            Ok(s) => Some(s),
            Err(why) if !super::pg_required() => {
                eprintln!("skipped: no throwaway PostgreSQL: {why}");
                None
            }
            Err(why) => {
                panic!("GATEWAY_TEST_REQUIRE_POSTGRES=1 but no throwaway PostgreSQL: {why}")
            }
        }
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// The port it listens on (the same after a restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(), String> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .output()
            .map_err(|e| format!("{tool}: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{tool} {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// Starts the server (again) on its port and waits until it accepts connections. Blocking.
    pub fn start(&self) -> Result<(), String> {
        let (data, log) = (
            self.data(),
            self.dir.join("server.log").display().to_string(),
        );
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-w", "-t", "30", "-o", &opts, "start",
            ],
        )
    }

    /// Stops the server; `immediate` looks like a crash to clients. Blocking.
    pub fn stop(&self, mode: &str) -> Result<(), String> {
        self.run("pg_ctl", &["-D", &self.data(), "-w", "-m", mode, "stop"])
    }
}

impl Drop for Throwaway {
    fn drop(&mut self) {
        let _ = self.stop("immediate");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The directory holding initdb and pg_ctl.
fn find_bin() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("GATEWAY_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists())
        .collect();
    versions.sort();
    if let Some(newest) = versions.pop() {
        return Some(newest);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .find(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .map(|p| resolve(&p))
}

fn resolve(dir: &Path) -> PathBuf {
    // /usr/local/bin/initdb may be a symlink into the real bin dir, next to pg_ctl's postgres.
    std::fs::canonicalize(dir.join("initdb"))
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| dir.into())
}
