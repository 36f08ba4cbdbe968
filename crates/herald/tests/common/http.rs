//! A small HTTP/1.1 client for the broker's HTTP server (console API,
//! /metrics, health), over a plain TcpStream: one request per connection.

use std::io::{Read, Write};
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// Sends one request; `headers` as (name, value).
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut s = std::net::TcpStream::connect(addr).expect("connect to the HTTP server");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).expect("request");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    if chunked {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body: String::from_utf8(body).expect("UTF-8 body"),
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..eol]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .expect("chunk size");
        raw = &raw[eol + 2..];
        if size == 0 {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
    out
}

pub fn get(addr: &str, path: &str) -> Response {
    request(addr, "GET", path, &[], None)
}

/// A console session: its cookie and CSRF token (GET /api/session, or a login).
pub struct Session {
    pub addr: String,
    pub cookie: String,
    pub csrf: String,
}

impl Session {
    /// The anonymous session of a broker without SASL listeners.
    pub fn anonymous(addr: &str) -> Session {
        let r = get(addr, "/api/session");
        assert_eq!(r.status, 200, "{}", r.body);
        Self::from_response(addr, &r)
    }

    pub fn login(addr: &str, user: &str, password: &str) -> Result<Session, Response> {
        let body = serde_json::json!({"username": user, "password": password}).to_string();
        let r = request(addr, "POST", "/api/login", &[], Some(&body));
        if r.status != 200 {
            return Err(r);
        }
        Ok(Self::from_response(addr, &r))
    }

    fn from_response(addr: &str, r: &Response) -> Session {
        let cookie = r
            .header("set-cookie")
            .and_then(|c| c.split(';').next())
            .expect("a session cookie")
            .to_string();
        let csrf = r.json()["csrf"].as_str().expect("a CSRF token").to_string();
        Session {
            addr: addr.to_string(),
            cookie,
            csrf,
        }
    }

    pub fn get(&self, path: &str) -> Response {
        request(&self.addr, "GET", path, &[("Cookie", &self.cookie)], None)
    }

    /// A mutating call, with the cookie and the CSRF header.
    pub fn send(&self, method: &str, path: &str, body: Option<&serde_json::Value>) -> Response {
        let text = body.map(|b| b.to_string());
        request(
            &self.addr,
            method,
            path,
            &[("Cookie", &self.cookie), ("X-Herald-CSRF", &self.csrf)],
            text.as_deref(),
        )
    }
}
