//! The preview server over HTTP, without a browser: fixed routes only, no
//! file served from a path, no other site's name accepted.

use crate::support::Newsroom;
use crate::support::server::Server;

const AT: &str = "2026-11-30T08:00";

#[test]
fn path_traversal_and_unknown_paths_get_404() {
    let room = Newsroom::fixture("preview");
    let preview = Server::start(room.path(), &["preview", "--at", AT], &[]);
    let host = format!("127.0.0.1:{}", preview.port);
    assert_eq!(preview.url, format!("http://{host}"));
    let get = |path: &str, host: &str| preview.request("GET", path, &[("Host", host)], b"");
    // The harness itself works: a real part is served.
    let (status, body) = get("/newsletter/daily/email.txt", &host);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("Harbour summit"), "{body}");

    let config = room.path().join("config.yaml");
    let absolute = config.to_string_lossy().to_string();
    for path in [
        "/../config.yaml",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/newsletter/..%2f..%2fconfig.yaml/email.html",
        "/newsletter/..%2f..%2fconfig.yaml/email.txt",
        "/newsletter/%2e%2e/email.txt",
        "/newsletter/../config.yaml",
        "//etc/passwd",
        "/etc/passwd",
        absolute.as_str(),
        "/config.yaml",
        "/content/city/tram-line.md",
        "/assets/../config.yaml",
        "/assets/%2e%2e%2fconfig.yaml",
        "/newsletter/nope",
    ] {
        let (status, body) = get(path, &host);
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("newsletters:"), "{path} leaked config.yaml");
        assert!(!body.contains("root:x:0"), "{path} leaked /etc/passwd");
    }
    // Another site's name for this address (DNS rebinding) is refused.
    let (status, _) = get("/", "attacker.example:80");
    assert_eq!(status, 403);
    assert!(
        preview.log().contains("loaded 5 items"),
        "{}",
        preview.log()
    );
}
