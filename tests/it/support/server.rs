//! A `briefing` server (`preview`, and the public `serve`) as a process: it
//! runs in a newsroom folder on a free loopback port, its log goes to a file,
//! it is killed on drop. Requests are written by hand, byte for byte, so a
//! test can send what a browser would normalise away.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("no free port on loopback")
        .port()
}

pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub url: String,
    pub port: u16,
    log: PathBuf,
}

impl Server {
    /// Runs `briefing ARGS --port PORT` in `dir` (its log in
    /// `dir/<command>.log`, debug level) and waits for the URL it prints.
    pub fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let log = dir.join(format!("{}.log", args.first().copied().unwrap_or("server")));
        let mut child = Command::new(env!("CARGO_BIN_EXE_briefing"))
            .args(args)
            .arg(format!("--port={port}"))
            .current_dir(dir)
            .env_remove("BRIEFING_CONFIG")
            .env("BRIEFING_LOG", "briefing=debug")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start briefing");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // Keep reading to the end so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(i) = line.find("http://") {
                        let url = line[i..].split_whitespace().next().unwrap().to_string();
                        break url.trim_end_matches('/').to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "briefing {args:?} printed no URL within 30 s; its log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        assert!(
            url.starts_with("http://127.0.0.1:"),
            "serves on loopback: {url}"
        );
        Server {
            child,
            url,
            port,
            log,
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One HTTP/1.1 request with exactly this method, path, `Host` and
    /// body: the status and the whole response.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        // Generous: a loaded CI machine fsyncs slowly; this bounds a hang.
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let mut req = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            req.push_str(&format!("Host: 127.0.0.1:{}\r\n", self.port));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        s.write_all(req.as_bytes()).unwrap();
        s.write_all(body).unwrap();
        let mut out = Vec::new();
        let read = s.read_to_end(&mut out);
        let out = String::from_utf8_lossy(&out).into_owned();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| {
                let log = self.log();
                let tail: Vec<&str> = (log.lines().rev())
                    .filter(|l| !l.contains(" INFO ") && !l.starts_with("DEBUG unsubscribed") && !l.starts_with("DEBUG request"))
                    .take(20)
                    .collect();
                panic!(
                    "not an HTTP response to {method} {path}: {out:?} ({read:?}); the server's log ends:\n{}",
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            });
        (status, out)
    }

    /// [`Server::request`] as a real client does it under load: a
    /// connection reset before any byte of an answer is tried again (up to
    /// five times). A flood of simultaneous connects to one loopback port
    /// makes the kernel answer some with SYN cookies and reset them
    /// (`Possible SYN flooding` in dmesg) before the server ever sees them.
    /// A request that reached the server and lost its answer is retried
    /// too, which is what makes it a test of repeats.
    pub fn request_retrying_resets(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        for _ in 0..5 {
            if let Some(answer) = self.try_request(method, path, headers, body) {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.request(method, path, headers, body)
    }

    /// One request; `None` when the connection was reset before any answer.
    fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Option<(u16, String)> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(90))).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            self.port
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
        s.write_all(req.as_bytes()).ok()?;
        s.write_all(body).ok()?;
        let mut out = Vec::new();
        match s.read_to_end(&mut out) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && out.is_empty() => None,
            _ => {
                let out = String::from_utf8_lossy(&out).into_owned();
                let status = out.split_whitespace().nth(1)?.parse().ok()?;
                Some((status, out))
            }
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> (u16, String) {
        self.request("GET", path, &[], b"")
    }

    /// Resident memory of the server, in KB.
    pub fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
