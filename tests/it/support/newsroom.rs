//! A chainable builder over fixture newsrooms: copy a fixture into a temp
//! folder, change files, run the `briefing` binary on it, assert on the run.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

pub struct Newsroom {
    dir: tempfile::TempDir,
}

use super::fs::{copy_dir, fixtures};

impl Newsroom {
    /// A copy of `tests/fixtures/<name>` (or of the repository's own sample
    /// newsroom with `"."`).
    pub fn fixture(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        if name == "." {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            for part in ["config.yaml", "content", "templates", "subscribers"] {
                let p = root.join(part);
                if p.is_dir() {
                    copy_dir(&p, &dir.path().join(part));
                } else if p.is_file() {
                    std::fs::copy(&p, dir.path().join(part)).unwrap();
                }
            }
        } else {
            copy_dir(&fixtures().join(name), dir.path());
        }
        Newsroom { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(self, rel: &str, text: &str) -> Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
        self
    }

    pub fn remove(self, rel: &str) -> Self {
        let p = self.dir.path().join(rel);
        if p.is_dir() {
            std::fs::remove_dir_all(p).unwrap();
        } else {
            std::fs::remove_file(p).unwrap();
        }
        self
    }

    /// Rewrites one file with a string replacement (which must match).
    pub fn edit(self, rel: &str, from: &str, to: &str) -> Self {
        let p = self.dir.path().join(rel);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        std::fs::write(p, text.replacen(from, to, 1)).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(rel))
            .unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(rel)).unwrap()
    }

    /// `briefing ARGS` to run in the newsroom's folder, with none of the
    /// caller's briefing variables; spawn it to run it in the background.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_briefing"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_remove("BRIEFING_CONFIG")
            .env_remove("BRIEFING_LOG")
            .env_remove("BRIEFING_UNSUBSCRIBE_SECRET");
        cmd
    }

    /// Runs `briefing ARGS` in the newsroom's folder.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs `briefing ARGS` with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let out = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("run briefing");
        Run::from(out)
    }

    /// Runs `briefing ARGS` with `input` on its stdin, as a mail server's
    /// pipe runs `briefing inbound`.
    pub fn run_stdin(&self, args: &[&str], env: &[(&str, &str)], input: &[u8]) -> Run {
        use std::io::Write as _;
        let mut child = (self.command(args).envs(env.iter().copied()))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run briefing");
        // A command that fails early may not read it all: that is its answer.
        let _ = child.stdin.take().unwrap().write_all(input);
        Run::from(child.wait_with_output().expect("wait for briefing"))
    }
}

/// Polls `done` every 20 ms until it holds; panics with `what` after
/// `timeout`. For waiting on another process, never as an assertion.
pub fn wait_until(timeout: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn code(&self, expected: i32) -> &Self {
        assert_eq!(
            self.code, expected,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
    pub fn success(&self) -> &Self {
        self.code(0)
    }
    pub fn stdout_has(&self, s: &str) -> &Self {
        assert!(
            self.stdout.contains(s),
            "stdout lacks {s:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    pub fn stdout_lacks(&self, s: &str) -> &Self {
        assert!(
            !self.stdout.contains(s),
            "stdout has {s:?}\n--- stdout\n{}",
            self.stdout
        );
        self
    }
    pub fn stderr_has(&self, s: &str) -> &Self {
        assert!(
            self.stderr.contains(s),
            "stderr lacks {s:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }
    pub fn stderr_lacks(&self, s: &str) -> &Self {
        assert!(
            !self.stderr.contains(s),
            "stderr has {s:?}\n--- stderr\n{}",
            self.stderr
        );
        self
    }
}
