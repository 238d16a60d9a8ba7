//! A tiny hand-rolled HTTP/1.1 responder for tests, on 127.0.0.1:0, that can misbehave on
//! purpose: truncate a body, send more than it announced, stall, trickle, or never stop. One request
//! per connection (`Connection: close`), recorded for the test to inspect.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A request as received.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    /// Header names in lowercase.
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Request {
    /// The value of header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

/// What happens after the reply's body was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Then {
    /// Close the connection.
    Close,
    /// Keep the connection open and send nothing more.
    Stall,
    /// Keep sending bytes until the client goes away.
    Endless,
    /// Send `rest` in pieces of `piece` bytes, one every `every`, then close.
    Trickle {
        /// The bytes still to send.
        rest: Vec<u8>,
        /// Bytes per piece.
        piece: usize,
        /// The pause before each piece.
        every: std::time::Duration,
    },
}

/// The reply to send.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    then: Then,
}

impl Reply {
    /// An empty reply with `status`.
    pub(crate) fn status(status: u16) -> Self {
        Reply { status, headers: Vec::new(), body: Vec::new(), then: Then::Close }.body(Vec::new())
    }

    /// A JSON reply.
    pub(crate) fn json(status: u16, value: &impl serde::Serialize) -> Self {
        Reply::status(status).header("Content-Type", "application/json").body(serde_json::to_vec(value).unwrap())
    }

    /// Sets the body and a matching `Content-Length`.
    pub(crate) fn body(mut self, body: Vec<u8>) -> Self {
        self.headers.retain(|(n, _)| n != "Content-Length");
        self.headers.push(("Content-Length".into(), body.len().to_string()));
        self.body = body;
        self
    }

    /// Sets `Content-Length` to `announced` and the body to `body`, which may be shorter
    /// (a truncated transfer) or longer (more than announced).
    pub(crate) fn body_announcing(self, announced: usize, body: Vec<u8>) -> Self {
        let mut reply = self.body(body);
        reply.headers.retain(|(n, _)| n != "Content-Length");
        reply.headers.push(("Content-Length".into(), announced.to_string()));
        reply
    }

    /// Sets a body without `Content-Length`: it ends when the connection closes.
    pub(crate) fn body_until_close(self, body: Vec<u8>) -> Self {
        let mut reply = self.body(body);
        reply.headers.retain(|(n, _)| n != "Content-Length");
        reply
    }

    /// Adds a header.
    pub(crate) fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// What to do after the body.
    pub(crate) fn then(mut self, then: Then) -> Self {
        self.then = then;
        self
    }
}

/// A running fake server; stops accepting when dropped.
pub(crate) struct FakeServer {
    /// `http://127.0.0.1:<port>`.
    pub(crate) url: String,
    requests: Arc<Mutex<Vec<Request>>>,
    accept: JoinHandle<()>,
}

impl FakeServer {
    /// Starts a server answering every request with `handler`.
    pub(crate) async fn start(handler: impl Fn(&Request) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let handler = Arc::new(handler);
        let recorded = requests.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (handler, recorded) = (handler.clone(), recorded.clone());
                tokio::spawn(async move {
                    let _ = serve(stream, &*handler, &recorded).await;
                });
            }
        });
        FakeServer { url, requests, accept }
    }

    /// The requests received so far.
    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    /// The requests received so far for `path`.
    pub(crate) fn requests_to(&self, path: &str) -> Vec<Request> {
        self.requests().into_iter().filter(|r| r.path == path).collect()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(
    mut stream: TcpStream,
    handler: &(impl Fn(&Request) -> Reply + ?Sized),
    recorded: &Mutex<Vec<Request>>,
) -> std::io::Result<()> {
    let request = read_request(&mut stream).await?;
    let reply = handler(&request);
    recorded.lock().unwrap().push(request);
    let mut head = format!("HTTP/1.1 {} Fake\r\n", reply.status);
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(&reply.body).await?;
    stream.flush().await?;
    match reply.then {
        Then::Close => stream.shutdown().await,
        Then::Stall => std::future::pending().await,
        Then::Endless => loop {
            stream.write_all(&[b'x'; 16 << 10]).await?;
        },
        Then::Trickle { rest, piece, every } => {
            for bytes in rest.chunks(piece.max(1)) {
                tokio::time::sleep(every).await;
                stream.write_all(bytes).await?;
                stream.flush().await?;
            }
            stream.shutdown().await
        }
    }
}

async fn read_request(stream: &mut TcpStream) -> std::io::Result<Request> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await?;
        if n == 0 || buf.len() > 64 << 10 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or_default().split(' ');
    let method = first.next().unwrap_or_default().to_owned();
    let path = first.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok(Request { method, path, headers, body })
}

/// Serves `bytes` as a static file server would: the whole file, or from `N` on for
/// `Range: bytes=N-` (206 with `Content-Range`), or 416 past the end.
pub(crate) fn serve_file(request: &Request, bytes: &[u8]) -> Reply {
    let len = bytes.len();
    match request.header("range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')) {
        None => Reply::status(200).body(bytes.to_vec()),
        Some(start) => {
            let start: usize = start.parse().unwrap();
            if start >= len {
                return Reply::status(416).header("Content-Range", &format!("bytes */{len}"));
            }
            Reply::status(206)
                .header("Content-Range", &format!("bytes {start}-{}/{len}", len - 1))
                .body(bytes[start..].to_vec())
        }
    }
}
