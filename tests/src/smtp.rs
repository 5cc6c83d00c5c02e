//! A real SMTP server of the test's own: aiosmtpd (Debian's python3-aiosmtpd) on a free loopback port,
//! delivering into a Maildir in a temporary folder, stopped by its pid on drop — so tests run in
//! parallel and a test can stop and start its server. The handler (`tests/smtp/mingus_test_smtp.py`)
//! refuses recipients named `reject-…@` with 550 and `tempfail-…@` with 451, in the SMTP conversation.
//!
//! [`SmtpServer::messages`] reads what was delivered and decodes what tests check: headers (RFC 2047
//! encoded words), and the text and HTML parts (quoted-printable or base64).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

/// Debian's python3, the one python3-aiosmtpd installs into (not a pyenv shim).
const PYTHON: &str = "/usr/bin/python3";

pub struct SmtpServer {
    pub port: u16,
    pub maildir: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    tls: Tls,
}

/// How the test server secures its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Plain,
    /// STARTTLS offered and required before MAIL.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

impl SmtpServer {
    pub fn start() -> Self {
        Self::start_with(Tls::Plain)
    }

    /// A server with TLS: a CA and a certificate for 127.0.0.1 made with the openssl CLI; trust
    /// [`SmtpServer::ca_file`] (`SMTP_TLS_CA_FILE`).
    pub fn start_with(tls: Tls) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "mingus-smtp-{port}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        ));
        let maildir = dir.join("maildir");
        // aiosmtpd creates a Maildir's subfolders only when the Maildir itself does not exist yet.
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let mut server = SmtpServer {
            port,
            maildir,
            dir,
            child: None,
            tls,
        };
        if tls != Tls::Plain {
            server.make_certificates();
        }
        server.restart();
        server
    }

    /// The CA certificate that signed the server's certificate (TLS servers only).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    fn make_certificates(&self) {
        let run = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("the openssl CLI is installed (deploy/local/services.sh installs it)");
            assert!(status.success(), "openssl {args:?} failed");
        };
        run(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=Mingus Test CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ]);
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(
            self.dir.join("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "server.ext",
            "-out",
            "server.pem",
        ]);
    }

    /// `smtp://127.0.0.1:<port>` (plain: a loopback test server).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let handlers = Path::new(env!("CARGO_MANIFEST_DIR")).join("smtp");
        let log = std::env::var_os("TEST_LOG").is_some();
        let child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(match self.tls {
                Tls::Plain => vec![],
                Tls::StartTls => vec!["--tlscert", "server.pem", "--tlskey", "server.key"],
                Tls::Implicit => vec!["--smtpscert", "server.pem", "--smtpskey", "server.key"],
            })
            .args(["-c", "mingus_test_smtp.Handler"])
            .arg(&self.maildir)
            .current_dir(&self.dir)
            .env("PYTHONPATH", handlers)
            .stdout(Stdio::null())
            .stderr(if log { Stdio::inherit() } else { Stdio::null() })
            .spawn()
            .expect("python3 with aiosmtpd is installed (deploy/local/services.sh installs it)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) {
                // Answering the greeting means the server is up, not merely the socket (an SMTPS
                // server greets only after the handshake: its accepting connections has to do).
                use std::io::Read;
                if self.tls == Tls::Implicit {
                    return;
                }
                let mut greeting = [0u8; 3];
                stream
                    .set_read_timeout(Some(Duration::from_secs(5)))
                    .unwrap();
                if (&stream).read_exact(&mut greeting).is_ok() && &greeting == b"220" {
                    return;
                }
            }
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("aiosmtpd exited at start-up: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "aiosmtpd did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Kills the server (SIGKILL): an SMTP outage.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every delivered message, oldest first (by file name: Maildir names start with the time).
    pub fn messages(&self) -> Vec<Mail> {
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .flatten()
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .collect();
        files.sort();
        files
            .iter()
            .filter_map(|path| std::fs::read(path).ok())
            .map(|bytes| Mail::parse(&String::from_utf8_lossy(&bytes)))
            .collect()
    }

    /// Messages delivered to `address` (aiosmtpd records the envelope recipient in `X-RcptTo`).
    pub fn messages_to(&self, address: &str) -> Vec<Mail> {
        self.messages()
            .into_iter()
            .filter(|m| {
                m.header("X-RcptTo")
                    .is_some_and(|to| to.split(',').any(|a| a.trim() == address))
            })
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One delivered message, decoded enough to check.
#[derive(Debug, Clone)]
pub struct Mail {
    pub raw: String,
    pub headers: Vec<(String, String)>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl Mail {
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let headers = parse_headers(head);
        let mut mail = Mail {
            raw: raw.clone(),
            headers,
            text: None,
            html: None,
        };
        let content_type = mail
            .header("Content-Type")
            .unwrap_or("text/plain")
            .to_owned();
        if let Some(boundary) = boundary(&content_type) {
            for part in body.split(&format!("--{boundary}")).skip(1) {
                if part.starts_with("--") {
                    break;
                }
                let part = part.trim_start_matches('\n');
                let (part_head, part_body) = part.split_once("\n\n").unwrap_or((part, ""));
                let part_headers = parse_headers(part_head);
                let get = |name: &str| {
                    part_headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.as_str())
                };
                let decoded = decode_body(part_body, get("Content-Transfer-Encoding"));
                match get("Content-Type").unwrap_or_default() {
                    t if t.starts_with("text/plain") => mail.text = Some(decoded),
                    t if t.starts_with("text/html") => mail.html = Some(decoded),
                    _ => {}
                }
            }
        } else {
            let encoding = mail.header("Content-Transfer-Encoding").map(str::to_owned);
            mail.text = Some(decode_body(body, encoding.as_deref()));
        }
        mail
    }

    /// The first header of that name (case-insensitive), unfolded and decoded.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .count()
    }

    /// Every `http(s)://` link in the text part.
    pub fn text_links(&self) -> Vec<String> {
        links(self.text.as_deref().unwrap_or_default())
    }

    /// Every `href` of the HTML part (HTML entities `&amp;` decoded).
    pub fn html_links(&self) -> Vec<String> {
        let html = self.html.as_deref().unwrap_or_default();
        html.split("href=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|href| href.replace("&amp;", "&"))
            .collect()
    }
}

fn links(text: &str) -> Vec<String> {
    text.split_whitespace()
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['.', ',', ')']).to_owned())
        .collect()
}

fn parse_headers(head: &str) -> Vec<(String, String)> {
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    for (_, value) in &mut headers {
        *value = decode_words(value);
    }
    headers
}

fn boundary(content_type: &str) -> Option<String> {
    let start = content_type.find("boundary=")? + "boundary=".len();
    let rest = &content_type[start..];
    let value = rest.trim_start_matches('"');
    let end = value.find(['"', ';']).unwrap_or(value.len());
    Some(value[..end].to_owned())
}

fn decode_body(body: &str, encoding: Option<&str>) -> String {
    match encoding.map(|e| e.to_ascii_lowercase()) {
        Some(e) if e == "quoted-printable" => quoted_printable(body, false),
        Some(e) if e == "base64" => {
            let compact: String = body.split_whitespace().collect();
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(compact)
                    .unwrap_or_default(),
            )
            .into_owned()
        }
        _ => body.to_owned(),
    }
}

/// Quoted-printable (RFC 2045), or the `Q` encoding of headers (`_` is a space) when `header`.
fn quoted_printable(text: &str, header: bool) -> String {
    let text = text.replace("=\n", "");
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'=' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                    }
                    None => {
                        out.push(b'=');
                        i += 1;
                    }
                }
            }
            b'_' if header => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); whitespace between words goes.
fn decode_words(value: &str) -> String {
    if !value.contains("=?") {
        return value.to_owned();
    }
    let mut out = String::new();
    let mut rest = value;
    let mut last_was_word = false;
    while let Some(start) = rest.find("=?") {
        let before = &rest[..start];
        if !(last_was_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        let word = &rest[start + 2..];
        let parts: Vec<&str> = word.splitn(3, '?').collect();
        let Some(end) = parts.get(2).and_then(|p| p.find("?=")) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let (encoding, payload) = (parts[1], &parts[2][..end]);
        let decoded = if encoding.eq_ignore_ascii_case("b") {
            String::from_utf8_lossy(
                &base64::engine::general_purpose::STANDARD
                    .decode(payload)
                    .unwrap_or_default(),
            )
            .into_owned()
        } else {
            quoted_printable(payload, true)
        };
        out.push_str(&decoded);
        let consumed = start + 2 + parts[0].len() + 1 + parts[1].len() + 1 + end + 2;
        rest = &rest[consumed..];
        last_was_word = true;
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_encoded_words_and_quoted_printable() {
        assert_eq!(
            decode_words("=?utf-8?b?WW91ciByZXBvcnQg4oCcUTPigJ0=?= is ready"),
            "Your report \u{201c}Q3\u{201d} is ready"
        );
        assert_eq!(
            decode_words("=?utf-8?q?caf=C3=A9_au?= lait"),
            "café au lait"
        );
        assert_eq!(
            quoted_printable("<a href=3D\"x\">long=\nline</a>", false),
            "<a href=\"x\">longline</a>"
        );
    }
}
