//! The intake's load generator, in the manner of `wrk`: every request is built and signed
//! before the clock starts, and sent over a raw keep-alive HTTP/1.1 connection with one
//! request in flight on it. The benchmark shares the node's 2 cores, so the load must cost
//! little: with reqwest (its pool, URL parsing, header maps) the senders took about 15% of
//! the process's CPU during the intake burst (perf, dwarf call graphs), a share the node's
//! intake then lacked.

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One request, ready to write.
pub struct Request(Vec<u8>);

impl Request {
    /// `POST {path}` to `host` with `headers` and a JSON `body`.
    pub fn post(host: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Self {
        let mut head = format!("POST {path} HTTP/1.1\r\nhost: {host}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        ));
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body.as_bytes());
        Request(bytes)
    }
}

/// A keep-alive connection to the node.
pub struct Connection {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Connection {
    pub async fn open(host: &str) -> io::Result<Self> {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(1024),
        })
    }

    /// Sends `request` and reads its whole response; returns the status code.
    pub async fn send(&mut self, request: &Request) -> io::Result<u16> {
        self.stream.write_all(&request.0).await?;
        self.buf.clear();
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut response = httparse::Response::new(&mut headers);
            let parsed = response.parse(&self.buf).map_err(io::Error::other)?;
            if let httparse::Status::Complete(head) = parsed {
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                    .ok_or_else(|| {
                        io::Error::other("a response without content-length (chunked?)")
                    })?;
                let code = response.code.unwrap_or(0);
                while self.buf.len() < head + length {
                    self.read_more().await?;
                }
                return Ok(code);
            }
            self.read_more().await?;
        }
    }

    async fn read_more(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the node closed the connection mid-response",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}
