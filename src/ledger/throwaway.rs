//! A throwaway PostgreSQL server for the tests: Debian's `postgresql`
//! package's `initdb` into a temporary folder and `pg_ctl start` on a free
//! loopback port, as an unprivileged user (PostgreSQL refuses to run as
//! root: as root, the package's `postgres` user runs it). One server per
//! test process, started on first use, each test in a database of its own;
//! a watchdog stops the server and removes its folder when the process
//! ends, however it ends.
//!
//! Not part of the tool; public (and hidden from the docs) so that the
//! integration tests use the same one.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Location, PgTarget};

pub struct Server {
    port: u16,
    bin: PathBuf,
    data: PathBuf,
    /// The test CA of a server started with TLS.
    cert: Option<PathBuf>,
}

static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();

fn start_shared() -> Result<Server, String> {
    Server::start(false)
}
static NEXT: AtomicU32 = AtomicU32::new(0);

/// The process's server, started on the first call. Fails (never skips)
/// when PostgreSQL is not installed, saying what to install.
pub fn server() -> &'static Server {
    match SERVER.get_or_init(start_shared) {
        Ok(s) => s,
        Err(e) => panic!("cannot start a throwaway PostgreSQL: {e}"),
    }
}

/// A new, empty database on the process's server, as a ledger location.
pub fn ledger() -> Location {
    Location::Postgres(server().database())
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").exists() {
            return Ok(dir);
        }
    }
    // Debian puts the server's programs beside its version, off the PATH.
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "PostgreSQL is not installed (Debian: apt-get install postgresql)".to_owned())?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|b| b.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        (p.parent().and_then(|v| v.file_name()))
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    found
        .pop()
        .ok_or_else(|| "no initdb under /usr/lib/postgresql (apt-get install postgresql)".into())
}

/// As root, the commands run as the `postgres` user (`runuser`), who owns
/// the folder; otherwise as ourselves.
fn as_owner(program: &Path) -> Command {
    match is_root() {
        true => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        false => Command::new(program),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { geteuid() == 0 }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn run(mut c: Command, what: &str) -> Result<(), String> {
    let out = c
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

impl Server {
    /// A server of its own, for a test that restarts it.
    pub fn own() -> Server {
        Server::start(false).unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
    }

    /// A server of its own that speaks TLS, with a certificate for
    /// `localhost` and `127.0.0.1` signed by a test CA
    /// ([`Server::certificate`]), made by `openssl`.
    pub fn own_with_tls() -> Server {
        Server::start(true).unwrap_or_else(|e| panic!("cannot start a throwaway PostgreSQL: {e}"))
    }

    /// The test CA's PEM certificate, which a client of a TLS server
    /// trusts.
    pub fn certificate(&self) -> Option<&Path> {
        self.cert.as_deref()
    }

    /// Stops the server (closing every connection) and starts it again.
    pub fn restart(&self) {
        let mut c = as_owner(&self.bin.join("pg_ctl"));
        let log = self.data.with_file_name("log");
        c.arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(log)
            .args(["-w", "-m", "fast", "restart"]);
        if let Err(e) = run(c, "pg_ctl restart") {
            panic!("{e}");
        }
    }

    fn start(tls: bool) -> Result<Server, String> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "briefing-pg-{}-{}",
            std::process::id(),
            chrono::Utc::now().timestamp_millis()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        if is_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.arg("postgres:postgres").arg(&dir);
                    c
                },
                "chown",
            )?;
        }
        let data = dir.join("data");
        let mut init = as_owner(&bin.join("initdb"));
        init.arg("-D")
            .arg(&data)
            .args(["-U", "briefing", "-A", "trust", "-E", "UTF8"]);
        run(init, "initdb")?;
        let mut cert = None;
        let mut ssl = "";
        if tls {
            // A test CA and the server's certificate signed by it, for
            // `localhost` and `127.0.0.1`: written by the server's user, so
            // that the key is its own.
            let ext = dir.join("server.ext");
            std::fs::write(
                &ext,
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
            )
            .map_err(|e| format!("cannot write {}: {e}", ext.display()))?;
            let openssl = |args: &[&str], what: &str| {
                let mut c = as_owner(Path::new("openssl"));
                c.current_dir(&data).args(args);
                run(c, what)
            };
            let ext = ext.display().to_string();
            let key = ["-newkey", "rsa:2048", "-nodes"];
            openssl(
                &[
                    &[
                        "req",
                        "-x509",
                        "-days",
                        "2",
                        "-subj",
                        "/CN=briefing test CA",
                        "-keyout",
                        "ca.key",
                        "-out",
                        "ca.crt",
                    ][..],
                    &key,
                ]
                .concat(),
                "openssl req (CA)",
            )?;
            openssl(
                &[
                    &[
                        "req",
                        "-subj",
                        "/CN=localhost",
                        "-keyout",
                        "server.key",
                        "-out",
                        "server.csr",
                    ][..],
                    &key,
                ]
                .concat(),
                "openssl req (server)",
            )?;
            openssl(
                &[
                    "x509",
                    "-req",
                    "-in",
                    "server.csr",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    "server.crt",
                ],
                "openssl x509",
            )?;
            cert = Some(data.join("ca.crt"));
            ssl = " -c ssl=on";
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        // fsync off: a test server's durability is not what is tested, and
        // it makes each test's commits cheap.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200{ssl}",
            dir.display()
        );
        let mut start = as_owner(&bin.join("pg_ctl"));
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("log"))
            .args(["-w", "-o", &options, "start"]);
        run(start, "pg_ctl start")?;
        // The watchdog: when this process is gone, stop the server and
        // remove its folder.
        let pg_ctl = bin.join("pg_ctl");
        let stop = match is_root() {
            true => format!(
                "runuser -u postgres -- {} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
            false => format!(
                "{} -D {} -m immediate stop",
                pg_ctl.display(),
                data.display()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            dir = dir.display()
        );
        Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the watchdog: {e}"))?;
        Ok(Server {
            port,
            bin,
            data,
            cert,
        })
    }

    /// `postgres://briefing@127.0.0.1:PORT/DB`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://briefing@127.0.0.1:{}/{db}", self.port)
    }

    /// A new, empty database.
    pub fn database(&self) -> PgTarget {
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let mut c = Command::new(self.bin.join("createdb"));
        c.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "briefing",
            &name,
        ]);
        if let Err(e) = run(c, "createdb") {
            panic!("{e}");
        }
        PgTarget {
            url: self.url(&name),
            password_env: None,
        }
    }
}
