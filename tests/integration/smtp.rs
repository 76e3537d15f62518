//! A tiny SMTP server for integration tests, built on the standard library only.
//!
//! It listens on 127.0.0.1, serves every connection in its own thread, records
//! each accepted message and can be told to fail RCPT TO or DATA, or to require
//! AUTH PLAIN / AUTH LOGIN.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// What the server should answer; lets a test inject failures.
#[derive(Clone, Debug, Default)]
pub struct Behaviour {
    /// If Some((code, text)), every RCPT TO is answered with this reply
    /// (e.g. `(450, "4.2.0 try later")` or `(550, "5.1.1 no such user")`).
    pub rcpt_reply: Option<(u16, String)>,
    /// If Some((code, text)), the end of DATA (the "." line) is answered with
    /// this reply instead of 250, and the message is not recorded.
    pub data_reply: Option<(u16, String)>,
    /// Require AUTH PLAIN or AUTH LOGIN with these (user, password) credentials
    /// before MAIL FROM (530 otherwise, 535 on bad credentials).
    pub auth: Option<(String, String)>,
    /// Offer PIPELINING (RFC 2920) after EHLO.
    pub pipelining: bool,
    /// Wait this long before the greeting (so that a client's messages queue up).
    pub greeting_delay: Option<Duration>,
    /// If Some(n), the end of DATA of the n-th message on each connection (from 1) is
    /// answered 554 and the message is not recorded.
    pub refuse_data_of: Option<usize>,
    /// If Some(n), a connection beyond n open at once is greeted with
    /// `421 4.7.0 Error: too many connections` and closed, as Postfix does.
    pub connection_limit: Option<usize>,
    /// If Some((n, per)), MAIL FROM is refused with `450 4.7.1 Error: too much mail`
    /// while n messages were accepted in the last `per`.
    pub message_rate: Option<(usize, Duration)>,
    /// Wait this long after a message's data before answering it (so that a client
    /// has a message under way).
    pub data_delay: Option<Duration>,
}

/// What the server counts besides the messages it accepts.
#[derive(Debug, Default)]
pub struct Counters {
    /// Connections open now.
    pub open: std::sync::atomic::AtomicUsize,
    /// Connections greeted with 421 for the connection limit.
    pub refused_connections: std::sync::atomic::AtomicUsize,
    /// MAIL FROM commands refused for the message rate.
    pub refused_mail: std::sync::atomic::AtomicUsize,
    /// When each message was accepted, for the message rate.
    pub accepted_at: Mutex<std::collections::VecDeque<std::time::Instant>>,
    /// Every message whose data was refused at its end, as received.
    pub refused_data: Mutex<Vec<String>>,
    /// Messages whose data has arrived, answered or not yet.
    pub data_received: std::sync::atomic::AtomicUsize,
    /// Connections the client ended with QUIT.
    pub quits: std::sync::atomic::AtomicUsize,
}

/// One message accepted by the server.
#[allow(dead_code)]
#[derive(Clone, Debug)]
pub struct Received {
    /// The reverse path, without the angle brackets.
    pub mail_from: String,
    /// The accepted recipients, without the angle brackets.
    pub rcpt_to: Vec<String>,
    /// The message as received: dot-unstuffed, CRLF line endings kept,
    /// without the final ".\r\n".
    pub data: String,
    /// Whether more commands had arrived with MAIL FROM (sent pipelined).
    pub pipelined: bool,
    /// Which connection carried the message (numbered from 1 in accept order).
    pub connection: usize,
    /// Whether its MAIL FROM came in one write with the previous message's data.
    pub behind_data: bool,
}

#[allow(dead_code)]
impl Received {
    /// Value of the first header called `name` (case-insensitive), or None.
    ///
    /// Headers end at the first empty line. Folded continuation lines (starting
    /// with a space or tab) are unfolded: each is trimmed and appended after a
    /// single space.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut found: Option<String> = None;
        for line in self.data.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                break;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(value) = found.as_mut() {
                    value.push(' ');
                    value.push_str(line.trim());
                }
                continue;
            }
            if found.is_some() {
                break;
            }
            if let Some((key, value)) = line.split_once(':')
                && key.trim().eq_ignore_ascii_case(name)
            {
                found = Some(value.trim().to_string());
            }
        }
        found
    }
}

/// A running test SMTP server; stops accepting connections when dropped.
pub struct SmtpServer {
    addr: SocketAddr,
    messages: Arc<Mutex<Vec<Received>>>,
    behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<AtomicBool>,
    pub counters: Arc<Counters>,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not break others).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[allow(dead_code)]
impl SmtpServer {
    /// Binds 127.0.0.1:0 and serves in a background thread, one thread per
    /// connection, with the default (always accepting) behaviour.
    pub fn start() -> SmtpServer {
        SmtpServer::start_with(Behaviour::default())
    }

    /// Like [`SmtpServer::start`], with the given behaviour.
    pub fn start_with(behaviour: Behaviour) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind test SMTP server");
        let addr = listener.local_addr().expect("test SMTP server address");
        let server = SmtpServer {
            addr,
            messages: Arc::default(),
            behaviour: Arc::new(Mutex::new(behaviour)),
            stop: Arc::default(),
            counters: Arc::default(),
        };
        let (messages, behaviour) = (server.messages.clone(), server.behaviour.clone());
        let counters = server.counters.clone();
        let stop = server.stop.clone();
        thread::spawn(move || {
            for (connection, stream) in (1..).zip(listener.incoming()) {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else {
                    thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let (messages, behaviour) = (messages.clone(), behaviour.clone());
                let counters = counters.clone();
                thread::spawn(move || {
                    let open = counters.open.fetch_add(1, Ordering::SeqCst) + 1;
                    let _ = serve(stream, connection, open, &messages, &behaviour, &counters);
                    counters.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        server
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's URL, e.g. "smtp://127.0.0.1:PORT".
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port())
    }

    /// Snapshot of every message accepted (250 after DATA) so far, in order.
    pub fn messages(&self) -> Vec<Received> {
        lock(&self.messages).clone()
    }

    /// Replaces the behaviour for new commands (e.g. a soft-failing server
    /// that recovers).
    pub fn set_behaviour(&self, behaviour: Behaviour) {
        *lock(&self.behaviour) = behaviour;
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake up the accept loop so that it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// Reads one line without its line ending; None on EOF.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Ok(Some(String::from_utf8_lossy(line).into_owned()))
}

/// Extracts the address of a MAIL FROM / RCPT TO argument, ignoring parameters.
fn path_arg(arg: &str) -> String {
    let arg = arg.trim();
    match (arg.find('<'), arg.find('>')) {
        (Some(start), Some(end)) if start < end => arg[start + 1..end].to_string(),
        _ => arg.split_whitespace().next().unwrap_or("").to_string(),
    }
}

/// Serves one connection until QUIT, EOF or an I/O error (including timeout).
fn serve(
    stream: TcpStream,
    connection: usize,
    open: usize,
    messages: &Mutex<Vec<Received>>,
    behaviour: &Mutex<Behaviour>,
    counters: &Counters,
) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    // Writes a reply; a text with several lines becomes a multi-line reply.
    let mut reply = |code: u16, text: &str| -> io::Result<()> {
        let lines: Vec<&str> = text.split('\n').collect();
        let mut buf = String::new();
        for (i, l) in lines.iter().enumerate() {
            let sep = if i + 1 < lines.len() { '-' } else { ' ' };
            buf.push_str(&format!("{code}{sep}{l}\r\n"));
        }
        out.write_all(buf.as_bytes())
    };
    if let Some(delay) = lock(behaviour).greeting_delay {
        thread::sleep(delay);
    }
    if let Some(limit) = lock(behaviour).connection_limit
        && open > limit
    {
        counters.refused_connections.fetch_add(1, Ordering::SeqCst);
        return reply(421, "4.7.0 Error: too many connections from 127.0.0.1");
    }
    reply(220, "localhost ESMTP test")?;
    let mut authed = false;
    let mut mail_from: Option<String> = None;
    let mut rcpts: Vec<String> = Vec::new();
    let mut pipelined = false;
    // Messages whose data ended on this connection, and whether more input had
    // arrived with the last one's end.
    let mut ended = 0;
    let mut more_after_data = false;
    let mut behind_data = false;
    while let Some(line) = read_line(&mut reader)? {
        let b = lock(behaviour).clone();
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let upper_arg = arg.to_ascii_uppercase();
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                (mail_from, rcpts) = (None, Vec::new());
                let auth = b.auth.as_ref().map_or("", |_| "AUTH PLAIN LOGIN\n");
                let pipelining = if b.pipelining { "PIPELINING\n" } else { "" };
                let ext = format!("localhost\n{pipelining}8BITMIME\nSMTPUTF8\n{auth}SIZE 10485760");
                reply(250, &ext)?;
            }
            "HELO" => {
                (mail_from, rcpts) = (None, Vec::new());
                reply(250, "localhost")?;
            }
            "MAIL" if upper_arg.starts_with("FROM:") => {
                if b.auth.is_some() && !authed {
                    reply(530, "5.7.0 Authentication required")?;
                } else if mail_from.is_some() {
                    reply(503, "5.5.1 Nested MAIL command")?;
                } else if b.message_rate.is_some_and(|(n, per)| {
                    let mut accepted = lock(&counters.accepted_at);
                    while accepted.front().is_some_and(|t| t.elapsed() > per) {
                        accepted.pop_front();
                    }
                    accepted.len() >= n
                }) {
                    counters.refused_mail.fetch_add(1, Ordering::SeqCst);
                    reply(450, "4.7.1 Error: too much mail from 127.0.0.1")?;
                } else {
                    mail_from = Some(path_arg(&arg[5..]));
                    pipelined = !reader.buffer().is_empty();
                    behind_data = more_after_data;
                    reply(250, "2.1.0 Ok")?;
                }
            }
            "RCPT" if upper_arg.starts_with("TO:") => {
                let (code, text) = b.rcpt_reply.unwrap_or((250, "2.1.5 Ok".into()));
                if mail_from.is_none() {
                    reply(503, "5.5.1 Need MAIL before RCPT")?;
                } else {
                    if code < 300 {
                        rcpts.push(path_arg(&arg[3..]));
                    }
                    reply(code, &text)?;
                }
            }
            "DATA" => {
                if mail_from.is_none() || rcpts.is_empty() {
                    reply(503, "5.5.1 Need MAIL and RCPT before DATA")?;
                    continue;
                }
                reply(354, "End data with <CR><LF>.<CR><LF>")?;
                let mut data = String::new();
                loop {
                    let l = read_line(&mut reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
                    if l == "." {
                        more_after_data = !reader.buffer().is_empty();
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                let mail_from = mail_from.take().unwrap_or_default();
                let rcpt_to = std::mem::take(&mut rcpts);
                ended += 1;
                counters.data_received.fetch_add(1, Ordering::SeqCst);
                // Re-read: the test may have changed the behaviour during DATA.
                let b = lock(behaviour).clone();
                if let Some(delay) = b.data_delay {
                    thread::sleep(delay);
                }
                if let Some((code, text)) = b.data_reply {
                    lock(&counters.refused_data).push(data);
                    reply(code, &text)?;
                } else if b.refuse_data_of == Some(ended) {
                    reply(554, "5.7.1 message refused")?;
                } else {
                    lock(&counters.accepted_at).push_back(std::time::Instant::now());
                    let message = Received {
                        mail_from,
                        rcpt_to,
                        data,
                        pipelined,
                        connection,
                        behind_data,
                    };
                    lock(messages).push(message);
                    reply(250, "2.0.0 Ok: queued")?;
                }
            }
            "RSET" => {
                (mail_from, rcpts) = (None, Vec::new());
                reply(250, "2.0.0 Ok")?;
            }
            "NOOP" => reply(250, "2.0.0 Ok")?,
            "QUIT" => {
                counters.quits.fetch_add(1, Ordering::SeqCst);
                return reply(221, "2.0.0 Bye");
            }
            "AUTH" => {
                let Some(expected) = &b.auth else {
                    reply(502, "5.5.1 AUTH not available")?;
                    continue;
                };
                if authed {
                    reply(503, "5.5.1 Already authenticated")?;
                    continue;
                }
                let mut args = arg.split_whitespace();
                let mechanism = args.next().unwrap_or("").to_ascii_uppercase();
                let initial = args.next().map(str::to_string);
                let creds = match mechanism.as_str() {
                    "PLAIN" => {
                        let Some(resp) = respond(initial, &mut reply, &mut reader, "")? else {
                            continue;
                        };
                        decode_base64(&resp).and_then(|d| {
                            let fields: Vec<&str> = d.split('\0').collect();
                            match fields[..] {
                                [_authzid, u, p] => Some((u.to_string(), p.to_string())),
                                _ => None,
                            }
                        })
                    }
                    "LOGIN" => {
                        let prompt = "VXNlcm5hbWU6";
                        let Some(u) = respond(initial, &mut reply, &mut reader, prompt)? else {
                            continue;
                        };
                        let prompt = "UGFzc3dvcmQ6";
                        let Some(p) = respond(None, &mut reply, &mut reader, prompt)? else {
                            continue;
                        };
                        decode_base64(&u).zip(decode_base64(&p))
                    }
                    _ => {
                        reply(504, "5.5.4 Unrecognized authentication type")?;
                        continue;
                    }
                };
                match creds {
                    None => reply(501, "5.5.2 Cannot decode response")?,
                    Some(c) if c == *expected => {
                        authed = true;
                        reply(235, "2.7.0 Authentication successful")?;
                    }
                    Some(_) => reply(535, "5.7.8 Authentication credentials invalid")?,
                }
            }
            _ => reply(502, "5.5.2 Command not recognized")?,
        }
    }
    Ok(())
}

/// Returns `initial` if given; otherwise sends a 334 challenge and reads the
/// response line. None (after a 501) if the client cancelled with "*".
fn respond(
    initial: Option<String>,
    reply: &mut impl FnMut(u16, &str) -> io::Result<()>,
    reader: &mut impl BufRead,
    prompt: &str,
) -> io::Result<Option<String>> {
    if initial.is_some() {
        return Ok(initial);
    }
    reply(334, prompt)?;
    let line = read_line(reader)?.ok_or(io::ErrorKind::UnexpectedEof)?;
    if line.trim() == "*" {
        reply(501, "5.7.0 Authentication cancelled")?;
        return Ok(None);
    }
    Ok(Some(line))
}

/// Decodes standard base64 (padding optional, whitespace ignored) into a
/// string (invalid UTF-8 replaced); None if the input is not base64.
fn decode_base64(input: &str) -> Option<String> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in input.bytes().filter(|c| !c.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}
