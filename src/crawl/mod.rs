//! `fake-metadata snapshot`: crawls an instance metadata service into a config file that
//! `serve` replays ([`crate::config::Replay`]). This file is the I/O: an HTTP/1.1 client
//! (hyper's own `client::conn`, one connection per request as EC2 closes each one anyway,
//! so no pool is needed and no client crate is added), the IMDSv2 token, the fetches run
//! a few at a time under a deadline, a progress line on a terminal, and the atomic write.
//! What to fetch and what it means is [`plan`]; the file is [`render`].
//!
//! The token and the credentials never reach any output: the token is only sent, and no
//! credential leaf is ever requested ([`plan`]'s rules).

pub mod contract;
pub mod plan;
pub mod render;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::task::JoinSet;

use plan::{Fetch, Kind, Limits, Outcome, Walk};

/// The endpoint EC2 instances reach their metadata service at.
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";

/// How to crawl and where to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: String,
    /// The file to write; `None` writes to stdout.
    pub output: Option<PathBuf>,
    pub user_data: bool,
    /// Replace an existing file.
    pub force: bool,
    pub limits: Limits,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// One request, connect to last byte.
    pub request_timeout: Duration,
    /// The whole crawl.
    pub deadline: Duration,
    /// When the crawl started, for the file's `taken`.
    pub now: std::time::SystemTime,
}

impl Options {
    pub fn new(endpoint: String, now: std::time::SystemTime) -> Options {
        Options {
            endpoint,
            output: None,
            user_data: true,
            force: false,
            limits: Limits::default(),
            concurrency: 8,
            request_timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(120),
            now,
        }
    }
}

/// Why no snapshot, or only a partial one, was written.
#[derive(Debug, thiserror::Error)]
pub enum CrawlError {
    #[error("--endpoint `{url}`: {why}")]
    Endpoint { url: String, why: String },
    #[error("{} exists; pass --force to replace it", path.display())]
    Exists { path: PathBuf },
    #[error("cannot reach {endpoint}: {why}")]
    Unreachable { endpoint: String, why: String },
    #[error("{endpoint} is not an instance metadata service: GET /latest/meta-data/ {why}")]
    NotImds { endpoint: String, why: String },
    #[error(
        "{endpoint} requires an IMDSv2 token (GET answered 401) but its token path refused one: \
         PUT /latest/api/token {put}"
    )]
    TokenRefused { endpoint: String, put: String },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the crawl did not finish: a partial snapshot ({fetched} paths) was written to {where_}, \
         marked `partial`; {problems}"
    )]
    Partial {
        where_: String,
        fetched: usize,
        problems: String,
    },
}

/// What a finished crawl wrote.
#[derive(Debug)]
pub struct Summary {
    pub listings: usize,
    pub leaves: usize,
    pub not_copied: usize,
    pub elapsed: Duration,
}

/// Where requests go: the address to connect to and the `Host` header.
#[derive(Debug, Clone)]
struct Endpoint {
    url: String,
    host: String,
    port: u16,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, CrawlError> {
        let bad = |why: &str| CrawlError::Endpoint {
            url: url.into(),
            why: why.into(),
        };
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad(
                "only http:// is served by an instance metadata service",
            ));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give the endpoint alone, without a path"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        Ok(Endpoint {
            url: url.trim_end_matches('/').to_string(),
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            port: uri.port_u16().unwrap_or(80),
        })
    }

    fn host_header(&self) -> String {
        let h = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            h
        } else {
            format!("{h}:{}", self.port)
        }
    }
}

/// A reply: status and body (at most `max` bytes).
type Reply = (StatusCode, Bytes);

/// One request on its own connection, within `timeout`. The error says what happened in
/// words a user can act on, never with the token.
async fn request(
    ep: &Endpoint,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    max: usize,
    timeout: Duration,
) -> Result<Reply, String> {
    let once = async {
        let addr: Vec<SocketAddr> = tokio::net::lookup_host((ep.host.as_str(), ep.port))
            .await
            .map_err(|e| format!("cannot resolve {}: {e}", ep.host))?
            .collect();
        let first = addr
            .first()
            .ok_or_else(|| format!("{} has no address", ep.host))?;
        let tcp = tokio::net::TcpStream::connect(first)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
        let driver = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(http::header::HOST, ep.host_header())
            .header(http::header::USER_AGENT, "fake-metadata-snapshot");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let result = async {
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| format!("no reply: {e}"))?;
            let status = resp.status();
            let announced = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
            if announced.is_some_and(|n| n > max) {
                return Err(format!(
                    "the reply is {} bytes, over the {max}-byte limit",
                    announced.unwrap_or_default()
                ));
            }
            let body = Limited::new(resp.into_body(), max)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        format!("the reply is over the {max}-byte limit")
                    } else {
                        format!("the reply was cut short: {e}")
                    }
                })?
                .to_bytes();
            Ok((status, body))
        }
        .await;
        driver.abort();
        result
    };
    match tokio::time::timeout(timeout, once).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "no complete reply within {}s",
            timeout.as_secs_f32()
        )),
    }
}

/// How the crawl authenticates: a token (IMDSv2), or none where the service allows it.
struct Session {
    ep: Endpoint,
    token: Option<String>,
    tokens_required: bool,
    timeout: Duration,
    limits: Limits,
}

impl Session {
    async fn get(&self, path: &str, token: bool) -> Result<Reply, String> {
        self.get_at_most(path, token, self.limits.max_body).await
    }

    async fn get_at_most(&self, path: &str, token: bool, max: usize) -> Result<Reply, String> {
        let t;
        let headers: &[(&str, &str)] = match (&self.token, token) {
            (Some(tok), true) => {
                t = [("x-aws-ec2-metadata-token", tok.as_str())];
                &t
            }
            _ => &[],
        };
        request(&self.ep, Method::GET, path, headers, max, self.timeout).await
    }

    /// Gets a token; without one, checks that the service answers without (IMDSv1) and that
    /// it is an instance metadata service at all, from its `meta-data/` listing.
    async fn open(ep: Endpoint, o: &Options) -> Result<(Session, Bytes), CrawlError> {
        let timeout = o.request_timeout;
        let put = request(
            &ep,
            Method::PUT,
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
            4096,
            timeout,
        )
        .await;
        let token = match &put {
            Ok((s, b)) if *s == StatusCode::OK => std::str::from_utf8(b)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|c| c.is_ascii_graphic()))
                .map(str::to_string),
            _ => None,
        };
        if let Err(why) = &put
            && why.starts_with("cannot")
        {
            return Err(CrawlError::Unreachable {
                endpoint: ep.url.clone(),
                why: why.clone(),
            });
        }
        let mut s = Session {
            ep,
            token,
            tokens_required: false,
            timeout,
            limits: o.limits,
        };
        let listing = s.get("/latest/meta-data/", true).await;
        let not_imds = |why: String| CrawlError::NotImds {
            endpoint: s.ep.url.clone(),
            why,
        };
        let body = match listing {
            Ok((st, b)) if st == StatusCode::OK => b,
            Ok((st, _)) if st == StatusCode::UNAUTHORIZED && s.token.is_none() => {
                return Err(CrawlError::TokenRefused {
                    endpoint: s.ep.url.clone(),
                    put: match put {
                        Ok((st, _)) => format!("answered {st}"),
                        Err(e) => e,
                    },
                });
            }
            Ok((st, _)) => return Err(not_imds(format!("answered {st}"))),
            Err(e) => return Err(not_imds(e)),
        };
        let looks_right = std::str::from_utf8(&body).is_ok_and(|t| {
            t.split('\n').any(|l| l == "instance-id")
                && t.split('\n').all(|l| plan::entry(l).is_ok())
        });
        if !looks_right {
            return Err(not_imds("is not a listing with `instance-id` in it".into()));
        }
        if s.token.is_some() {
            // Whether IMDSv1 is refused, so the replay refuses it too.
            s.tokens_required = matches!(
                s.get("/latest/meta-data/", false).await,
                Ok((st, _)) if st == StatusCode::UNAUTHORIZED
            );
        }
        Ok((s, body))
    }

    async fn fetch(&self, f: &Fetch) -> Outcome {
        let max = self.limits.max_body_of(&f.path);
        match self.get_at_most(&f.uri_path(), true, max).await {
            Ok((st, body)) if st == StatusCode::OK => Outcome::Body(body),
            Ok((st, _)) => Outcome::Status(st.as_u16()),
            Err(e) => Outcome::Failed(e),
        }
    }
}

/// A progress line on stderr, only when it is a terminal, at most ten times a second.
struct Progress {
    on: bool,
    last: Option<Instant>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            on: std::io::stderr().is_terminal(),
            last: None,
        }
    }

    fn show(&mut self, done: usize, in_flight: usize) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(100))
        {
            return;
        }
        self.last = Some(Instant::now());
        let mut e = std::io::stderr().lock();
        let _ = write!(e, "\r\x1b[Kcrawled {done} paths, {in_flight} in flight");
        let _ = e.flush();
    }

    fn clear(&self) {
        if self.on && self.last.is_some() {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Crawls and writes. A crawl cut short still writes what it got, marked partial, and
/// returns [`CrawlError::Partial`].
pub async fn run(o: Options) -> Result<Summary, CrawlError> {
    let started = Instant::now();
    let ep = Endpoint::parse(&o.endpoint)?;
    if let Some(p) = &o.output
        && !o.force
        && p.symlink_metadata().is_ok()
    {
        return Err(CrawlError::Exists { path: p.clone() });
    }
    let (session, first) = Session::open(ep, &o).await?;
    let session = std::sync::Arc::new(session);
    let mut walk = Walk::new(o.limits, o.user_data);
    // The probe was the first fetch.
    if let Some(f) = walk.next_fetch() {
        debug_assert_eq!(f.kind, Kind::Listing);
        walk.record(f, Outcome::Body(first));
    }
    let deadline = tokio::time::Instant::now() + o.deadline;
    let mut running = JoinSet::new();
    let mut progress = Progress::new();
    loop {
        while running.len() < o.concurrency.max(1) {
            let Some(f) = walk.next_fetch() else { break };
            let s = session.clone();
            running.spawn(async move {
                let out = s.fetch(&f).await;
                (f, out)
            });
        }
        if running.is_empty() {
            break;
        }
        tokio::select! {
            joined = running.join_next() => match joined {
                Some(Ok((f, out))) => walk.record(f, out),
                Some(Err(e)) => walk.stop(&format!("a fetch failed: {e}")),
                None => {}
            },
            _ = tokio::time::sleep_until(deadline) => {
                let n = running.len();
                running.abort_all();
                walk.stop(&format!(
                    "the crawl took longer than {}s ({n} fetches in flight abandoned)",
                    o.deadline.as_secs()
                ));
                break;
            }
        }
        progress.show(walk.crawled.fetched, running.len());
    }
    progress.clear();
    debug_assert!(walk.is_done());
    let crawled = walk.crawled;
    let header = render::Header {
        source: session.ep.url.clone(),
        taken: crate::scenario::rfc3339(o.now),
        tokens_required: session.tokens_required,
    };
    let text = render::render(&crawled, &header);
    let where_ = match &o.output {
        Some(p) => {
            write_atomically(p, text.as_bytes(), o.force)?;
            p.display().to_string()
        }
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|source| CrawlError::Write {
                    path: "standard output".into(),
                    source,
                })?;
            "standard output".into()
        }
    };
    if !crawled.problems.is_empty() {
        let n = crawled.problems.len();
        let mut problems = crawled.problems[..n.min(3)].join("; ");
        if n > 3 {
            problems.push_str(&format!("; and {} more (see the file)", n - 3));
        }
        return Err(CrawlError::Partial {
            where_,
            fetched: crawled.fetched,
            problems,
        });
    }
    Ok(Summary {
        listings: crawled.listings.len(),
        leaves: crawled.leaves.len(),
        not_copied: crawled.not_copied.values().map(|s| s.len()).sum(),
        elapsed: started.elapsed(),
    })
}

/// Checks that standard output can take the file. A closed descriptor 1 (`>&-`) is one that
/// Rust's start-up filled with `/dev/null` opened read-write (a shell's `>/dev/null` opens it
/// write-only), so every write would vanish; one open only for reading fails every write
/// with `EBADF`, which Rust's standard output takes for success.
pub fn check_stdout() -> Result<(), CrawlError> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    use nix::sys::stat::{SFlag, fstat, major, minor};
    let err = |why: &str| CrawlError::Write {
        path: "standard output".into(),
        source: std::io::Error::other(why.to_string()),
    };
    let out = std::io::stdout();
    let flags = fcntl(&out, FcntlArg::F_GETFL).map_err(|_| err("it is closed"))?;
    let mode = OFlag::from_bits_truncate(flags) & OFlag::O_ACCMODE;
    if mode == OFlag::O_RDONLY {
        return Err(err("it is open for reading only"));
    }
    let st = fstat(&out).map_err(|_| err("it is closed"))?;
    let null = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFCHR
        && (major(st.st_rdev), minor(st.st_rdev)) == (1, 3);
    if null && mode == OFlag::O_RDWR {
        return Err(err("it is closed"));
    }
    Ok(())
}

/// Writes `bytes` to `path` whole or not at all: a temporary file beside it, synced, then
/// linked into place (which fails if `path` appeared meanwhile) or, with `force`, renamed
/// over it.
pub fn write_atomically(path: &Path, bytes: &[u8], force: bool) -> Result<(), CrawlError> {
    let err = |source| CrawlError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a file name",
        ))
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        // 0600 from its creation (the user data can hold secrets): never readable by others,
        // not even between a create and a chmod.
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if force {
            std::fs::rename(&tmp, path)
        } else {
            std::fs::hard_link(&tmp, path)?;
            std::fs::remove_file(&tmp)
        }
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists if !force => CrawlError::Exists {
            path: path.to_path_buf(),
        },
        _ => err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_checked() {
        let e = Endpoint::parse("http://169.254.169.254").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("169.254.169.254", 80));
        assert_eq!(e.host_header(), "169.254.169.254");
        let e = Endpoint::parse("http://[fd00:ec2::254]/").unwrap();
        assert_eq!(e.host, "fd00:ec2::254");
        assert_eq!(e.host_header(), "[fd00:ec2::254]");
        let e = Endpoint::parse("http://127.0.0.1:1338").unwrap();
        assert_eq!(e.host_header(), "127.0.0.1:1338");
        for bad in [
            "https://x",
            "169.254.169.254",
            "http://x/latest/meta-data",
            "ftp://x",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_existing_file_is_kept_unless_forced() {
        let dir = std::env::temp_dir().join(format!("fm-crawl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("snap.toml");
        let _ = std::fs::remove_file(&p);
        write_atomically(&p, b"one", false).unwrap();
        assert!(matches!(
            write_atomically(&p, b"two", false),
            Err(CrawlError::Exists { .. })
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        write_atomically(&p, b"three", true).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "no temporary file left behind");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
