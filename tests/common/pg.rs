//! A throwaway PostgreSQL 15 cluster for the live tests, on 127.0.0.1 with trust auth.
//! PostgreSQL refuses root, so it runs as `nobody`; immediate shutdown on drop.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, wait_for_port, Proc};

pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const NOBODY: u32 = 65534;

/// Runs a command as `nobody`; setpriv execs, so the pid is the program's own.
pub fn as_nobody(program: &str) -> Command {
    let mut c = Command::new("setpriv");
    c.args([
        "--reuid=nobody",
        "--regid=nogroup",
        "--clear-groups",
        "--",
        program,
    ]);
    c
}

pub struct Postgres {
    pub postmaster: Proc,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Postgres {
    /// A new cluster started with `settings` (each `name=value`, as `-c`) on top of
    /// ssl, fsync, synchronous_commit and autovacuum off, holding database `fx` with table
    /// `kv (k int PRIMARY KEY, v text)` of `rows` rows.
    pub fn start(settings: &[&str], rows: u32) -> Postgres {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = dir.path().join("pg");
        std::fs::create_dir(&pg).expect("pg dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        std::os::unix::fs::chown(&pg, Some(NOBODY), Some(NOBODY)).expect("chown");
        let data = pg.join("data");
        let out = as_nobody(&format!("{PG_BIN}/initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .arg("--locale=C.UTF-8")
            .current_dir(&pg)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = std::fs::File::create(pg.join("postgres.log")).expect("log");
        let mut cmd = as_nobody(&format!("{PG_BIN}/postgres"));
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&pg)
            .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "ssl=off", "-c", "fsync=off"])
            .args(["-c", "synchronous_commit=off", "-c", "autovacuum=off"]);
        for s in settings {
            cmd.args(["-c", s]);
        }
        let child = cmd
            .current_dir(&pg)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres");
        let p = Postgres {
            postmaster: Proc {
                child,
                name: "postgres".into(),
            },
            port,
            _dir: dir,
        };
        wait_for_port(port);
        p.sql("postgres", "CREATE DATABASE fx");
        p.sql("fx", "CREATE TABLE kv (k int PRIMARY KEY, v text)");
        p.sql(
            "fx",
            &format!("INSERT INTO kv SELECT g, 'v' || g FROM generate_series(1, {rows}) g"),
        );
        p
    }

    /// psql on database `db`: no psqlrc, quiet, tuples only, unaligned, stops on error.
    pub fn psql(&self, db: &str) -> Command {
        let mut c = Command::new("psql");
        c.args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-U", "postgres", "-d", db]);
        c
    }

    /// Runs `sql` on `db` and returns what it printed; panics with psql's error.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        let out = self.psql(db).args(["-c", sql]).output().expect("psql");
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Immediate shutdown: the postmaster stops its backends, then exits.
        self.postmaster.signal(libc::SIGQUIT);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.postmaster.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
