//! Helpers for the operations tests (`tests/ops_*.rs`), on top of `tests/common` and the
//! daemon runner in `tests/delivery_support`.
//!
//! What for: talking to a running `paperboy run` the way systemd and Prometheus do — a real
//! Unix datagram socket as `NOTIFY_SOCKET`, plain HTTP/1.1 GETs of `/healthz`, `/readyz` and
//! `/metrics`, and parsing the exposition with a Prometheus text-format parser we did not write.
//! Not for: anything the shared harness already does (smtp-sink, fixture server, config).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A systemd stand-in: a bound datagram socket that collects what paperboy notifies.
pub struct NotifySocket {
    pub socket: UnixDatagram,
    /// The value to put in `NOTIFY_SOCKET`.
    pub env_value: String,
    _dir: Option<tempfile::TempDir>,
}

impl NotifySocket {
    /// A socket at a file path.
    pub fn at_path() -> NotifySocket {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: PathBuf = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
        NotifySocket {
            socket,
            env_value: path.display().to_string(),
            _dir: Some(dir),
        }
    }

    /// A socket in the Linux abstract namespace (`@name`), as systemd also uses.
    pub fn abstract_name() -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "paperboy-ops-test-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        );
        let addr =
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).expect("name");
        let socket = UnixDatagram::bind_addr(&addr).expect("bind the abstract notify socket");
        NotifySocket {
            socket,
            env_value: format!("@{name}"),
            _dir: None,
        }
    }

    /// The next message, or `None` after `timeout`.
    pub fn recv(&self, timeout: Duration) -> Option<String> {
        self.socket
            .set_read_timeout(Some(timeout))
            .expect("set_read_timeout");
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Reads messages until one contains `needle`; returns every message read, in order.
    #[track_caller]
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(m) = self.recv(Duration::from_millis(200)) {
                let hit = m.contains(needle);
                seen.push(m);
                if hit {
                    return seen;
                }
            }
        }
        panic!("no notify message with {needle:?} within {timeout:?}; got {seen:?}");
    }
}

/// A plain HTTP/1.1 response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

/// `GET path` on 127.0.0.1:`port`, `Connection: close`.
pub fn http_get(port: u16, path: &str) -> std::io::Result<HttpResponse> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no header end in {text:?}")))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {head:?}")))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: body.to_string(),
    })
}

/// Waits until `GET /healthz` answers 200.
#[track_caller]
pub fn wait_until_serving(port: u16, timeout: Duration, log: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(r) = http_get(port, "/healthz")
            && r.status == 200
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "paperboy did not serve /healthz on port {port} within {timeout:?}\n{}",
        log()
    );
}

/// One scrape of `/metrics`, parsed.
pub struct Scrape {
    pub samples: Vec<prometheus_parse::Sample>,
    pub text: String,
}

impl Scrape {
    /// Parses an exposition. Every line must be understood by the parser: a comment (`# HELP`,
    /// `# TYPE`, `# UNIT`, `# EOF`) or a sample; the parser alone ignores what it cannot read.
    #[track_caller]
    pub fn parse(text: &str) -> Scrape {
        use prometheus_parse::LineInfo;
        for line in text.lines() {
            let info = LineInfo::parse(line);
            let comment = line.starts_with("# ");
            assert!(
                comment || matches!(info, LineInfo::Sample { .. } | LineInfo::Empty),
                "a line of /metrics is not in the text format: {line:?}\n{text}"
            );
        }
        assert!(
            text.trim_end().ends_with("# EOF"),
            "an OpenMetrics exposition ends with # EOF:\n{text}"
        );
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .unwrap_or_else(|e| panic!("Prometheus text parser refused /metrics: {e}\n{text}"));
        Scrape {
            samples: scrape.samples,
            text: text.to_string(),
        }
    }

    /// The value of the sample `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        use prometheus_parse::Value;
        self.samples
            .iter()
            .find(|s| {
                s.metric == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(k).is_some_and(|x| x == *v))
            })
            .and_then(|s| match &s.value {
                Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => Some(*v),
                Value::Histogram(_) | Value::Summary(_) => None,
            })
    }

    /// Like [`Scrape::value`], failing the test with the whole exposition when absent.
    #[track_caller]
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in /metrics:\n{}", self.text))
    }

    /// `_count` of a histogram.
    #[track_caller]
    pub fn histogram_count(&self, name: &str) -> u64 {
        use prometheus_parse::Value;
        self.samples
            .iter()
            .find_map(|s| match &s.value {
                Value::Histogram(buckets) if s.metric == name => {
                    Some(buckets.iter().map(|b| b.count).fold(0.0, f64::max) as u64)
                }
                _ => None,
            })
            .unwrap_or_else(|| panic!("no histogram {name} in /metrics:\n{}", self.text))
    }
}

/// `GET /metrics`, checked and parsed.
#[track_caller]
pub fn scrape(port: u16) -> Scrape {
    let r = http_get(port, "/metrics").expect("GET /metrics");
    assert_eq!(r.status, 200, "GET /metrics: {r:?}");
    let ct = r.headers.get("content-type").cloned().unwrap_or_default();
    assert!(
        ct.starts_with("application/openmetrics-text") || ct.starts_with("text/plain"),
        "content type of /metrics: {ct}"
    );
    Scrape::parse(&r.body)
}

/// Sends a signal with kill(1): the test needs no libc binding for it.
#[track_caller]
pub fn signal(pid: u32, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(ok.success(), "kill -{name} {pid} failed");
}
