//! A raw HTTP/1.1 client over TCP for the edge tests: sends the request bytes exactly as
//! given (bad percent-encoding, oversized or malformed heads, trickled bodies) and reads one
//! response, which reqwest would not let a test do.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error shape of docs/api.md (`{"error": {"code": "snake_case", "message": "..."}}` as
    /// `application/json`): the code, or what is wrong with the answer.
    pub fn contract_error(&self) -> Result<String, String> {
        let what = || format!("{} {}", self.status, String::from_utf8_lossy(&self.body));
        let ct = self.header("content-type").unwrap_or("");
        if !ct.starts_with("application/json") {
            return Err(format!("content-type `{ct}`: {}", what()));
        }
        let json: Value = serde_json::from_slice(&self.body)
            .map_err(|e| format!("not JSON ({e}): {}", what()))?;
        let error = json
            .get("error")
            .and_then(Value::as_object)
            .ok_or_else(|| format!("no `error` object: {}", what()))?;
        let code = error.get("code").and_then(Value::as_str).unwrap_or("");
        let snake = !code.is_empty()
            && code.starts_with(|c: char| c.is_ascii_lowercase())
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !snake || !error.get("message").is_some_and(Value::is_string) {
            return Err(format!("not a snake_case code and a message: {}", what()));
        }
        if json.as_object().map_or(0, |o| o.len()) != 1 {
            return Err(format!("more than `error` at the top: {}", what()));
        }
        Ok(code.to_owned())
    }
}

/// Sends `request` on a new connection and reads the first response, waiting at most
/// `within`. A write the server cuts short (it may answer before reading everything) is
/// not an error: the answer is read all the same.
pub async fn exchange(
    addr: SocketAddr,
    request: &[u8],
    within: Duration,
) -> Result<RawResponse, String> {
    let attempt = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.write_all(request).await;
        read_response(&mut stream).await
    };
    tokio::time::timeout(within, attempt)
        .await
        .map_err(|_| format!("no complete answer within {within:?}"))?
}

/// Reads one response (head, then a `content-length` or chunked body, else until EOF).
pub async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> Result<RawResponse, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        if let Ok(httparse::Status::Complete(head_len)) = parsed.parse(&buf) {
            let status = parsed.code.unwrap_or(0);
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let response = RawResponse {
                status,
                headers,
                body: Vec::new(),
            };
            let body = &buf[head_len..];
            if let Some(len) = response.header("content-length") {
                let len: usize = len.trim().parse().map_err(|_| "bad content-length")?;
                if body.len() >= len {
                    return Ok(RawResponse {
                        body: body[..len].to_vec(),
                        ..response
                    });
                }
            } else if response
                .header("transfer-encoding")
                .is_some_and(|t| t.contains("chunked"))
            {
                if let Some(body) = dechunk(body) {
                    return Ok(RawResponse { body, ..response });
                }
            }
            let n = match stream.read(&mut chunk).await {
                Ok(n) => n,
                Err(e) if body.is_empty() => return Err(format!("read: {e}")),
                Err(_) => 0,
            };
            if n == 0 {
                // Closed: a body delimited by the connection's end (or cut short).
                return Ok(RawResponse {
                    body: buf[head_len..].to_vec(),
                    ..response
                });
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        }
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read before a complete head: {e}"))?;
        if n == 0 {
            return Err(format!(
                "closed before a complete head; got {:?}",
                String::from_utf8_lossy(&buf)
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A complete chunked body, decoded; `None` while more is needed.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        if raw.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}
