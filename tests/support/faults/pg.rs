//! Just enough of the PostgreSQL frontend protocol (client to server) to find COMMITs and the
//! statements their transaction ran, for the COMMIT-cut toxic.

use std::collections::HashMap;

/// Follows the frontend (client-to-server) side of the PostgreSQL wire protocol far enough to
/// find COMMITs and whether their transaction ran a statement containing a needle.
#[derive(Default)]
pub struct PgScan {
    buf: Vec<u8>,
    typed: bool,
    /// Every prepared statement's text by name (the needle is armed later than most Parses:
    /// statements are prepared once per connection and cached).
    statements: HashMap<Vec<u8>, Vec<u8>>,
    /// The current transaction ran a statement containing the needle.
    marked_tx: bool,
}

fn cstr(b: &[u8]) -> (&[u8], &[u8]) {
    match b.iter().position(|&c| c == 0) {
        Some(i) => (&b[..i], &b[i + 1..]),
        None => (b, &[]),
    }
}

fn contains(hay: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    !n.is_empty() && hay.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

impl PgScan {
    /// Feeds a chunk; returns, for every COMMIT completed in it, the chunk offset just past it
    /// and whether its transaction was marked.
    pub fn feed(&mut self, chunk: &[u8], needle: Option<&str>) -> Vec<(usize, bool)> {
        let before = self.buf.len();
        self.buf.extend_from_slice(chunk);
        let mut out = Vec::new();
        let mut pos = 0;
        loop {
            let rest = &self.buf[pos..];
            let (len, body_at) = if self.typed {
                if rest.len() < 5 {
                    break;
                }
                (
                    1 + u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize,
                    5,
                )
            } else {
                if rest.len() < 4 {
                    break;
                }
                (
                    u32::from_be_bytes(rest[0..4].try_into().unwrap()) as usize,
                    4,
                )
            };
            if len < body_at || rest.len() < len {
                break;
            }
            let msg = rest[..len].to_vec();
            pos += len;
            if !self.typed {
                let code = msg
                    .get(4..8)
                    .map(|c| u32::from_be_bytes(c.try_into().unwrap()));
                // SSLRequest / GSSENCRequest come before the (untyped) startup message.
                if !matches!(code, Some(80877103 | 80877104)) {
                    self.typed = true;
                }
                continue;
            }
            let body = &msg[body_at..];
            match msg[0] {
                b'Q' => {
                    let (q, _) = cstr(body);
                    if needle.is_some_and(|n| contains(q, n)) {
                        self.marked_tx = true;
                    }
                    let text = String::from_utf8_lossy(q).trim().to_ascii_uppercase();
                    if text.starts_with("COMMIT") || text.starts_with("END") {
                        out.push((pos - before, self.marked_tx));
                        self.marked_tx = false;
                    } else if text.starts_with("ROLLBACK") {
                        self.marked_tx = false;
                    }
                }
                b'P' => {
                    let (name, rest) = cstr(body);
                    let (q, _) = cstr(rest);
                    if needle.is_some_and(|n| contains(q, n)) {
                        self.marked_tx = true;
                    }
                    self.statements.insert(name.to_vec(), q.to_vec());
                }
                b'B' => {
                    let (_portal, rest) = cstr(body);
                    let (stmt, _) = cstr(rest);
                    if let (Some(n), Some(q)) = (needle, self.statements.get(stmt))
                        && contains(q, n)
                    {
                        self.marked_tx = true;
                    }
                }
                _ => {}
            }
        }
        self.buf.drain(..pos);
        out
    }
}
