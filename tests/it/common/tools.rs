//! The machine the tests run on: tools that may be missing, free ports, who listens where, the
//! environment passed to programs, and polling.

use std::fs;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// True when `PAPERBOY_REQUIRE_ALL=1`: a missing tool must fail the test instead of skipping it.
pub fn require_all() -> bool {
    std::env::var("PAPERBOY_REQUIRE_ALL").is_ok_and(|v| v.trim() == "1")
}

/// Reports a missing tool: panics under `PAPERBOY_REQUIRE_ALL=1`, else prints why the test is
/// skipped. The caller returns early after this.
pub fn missing_tool(test: &str, what: &str, how_to_install: &str) {
    if require_all() {
        panic!(
            "{test}: {what} is missing and PAPERBOY_REQUIRE_ALL=1 forbids skipping; \
             install it: {how_to_install}"
        );
    }
    eprintln!("SKIPPED {test}: {what} is missing; install it: {how_to_install}");
}

/// Finds an executable by name on PATH, then in the given extra directories.
pub fn find_executable(name: &str, extra_dirs: &[&str]) -> Option<PathBuf> {
    let path_dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(extra_dirs.iter().map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| {
            fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// True when this process runs as root (the owner of `/proc/self` is the effective uid).
pub fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Whether process `pid` holds the listening TCP socket on 127.0.0.1:`port` (Linux: the
/// socket's inode from `/proc/net/tcp`, found among the process's open files).
pub fn listens_on(pid: u32, port: u16) -> bool {
    const LISTEN: &str = "0A";
    let local = format!("0100007F:{port:04X}");
    let Ok(table) = fs::read_to_string("/proc/net/tcp") else {
        return false;
    };
    let inodes: Vec<String> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            (cols.get(1) == Some(&local.as_str()) && cols.get(3) == Some(&LISTEN))
                .then(|| cols.get(9).map(|inode| format!("socket:[{inode}]")))
                .flatten()
        })
        .collect();
    let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        fs::read_link(fd.path())
            .is_ok_and(|target| inodes.iter().any(|i| target.as_os_str() == i.as_str()))
    })
}

/// Leaves the developer's own `PAPERBOY*` variables out of a command the tests start: only
/// the ones a test sets reach the program.
pub fn without_developer_env(command: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key
            .to_string_lossy()
            .to_ascii_uppercase()
            .starts_with("PAPERBOY")
        {
            command.env_remove(&key);
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// True when something accepts TCP connections on 127.0.0.1:`port`.
pub fn port_accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Collapses every run of white space into one space and trims.
pub fn normalize_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Polls `done` every `every` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, every: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(every);
    }
    false
}

/// Runs `openssl` with `args` and returns what it printed; panics with its error output when
/// it fails. The caller checks first that openssl is there (`find_executable`).
pub fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
