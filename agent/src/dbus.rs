//! A small D-Bus client, for the two services the agent talks to (update_engine and logind,
//! `reboot::dbus`): it connects to the system bus, calls methods whose arguments and replies
//! are basic types, and receives the signals it subscribed to. Nothing else of D-Bus (no
//! services, properties, introspection or file descriptors) is here; a general D-Bus library
//! would add several hundred KiB to a binary that needs this much.
//!
//! The wire format is D-Bus 1.0's: messages in either byte order are read (little-endian ones
//! are written), a header of fields, then the body marshalled by its signature, each value
//! aligned to its size. Authentication is `EXTERNAL` (the kernel vouches for our uid). A task
//! reads messages off the socket, so a caller that stops waiting (a timeout) loses nothing.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

/// Where the system bus is when `DBUS_SYSTEM_BUS_ADDRESS` is not set.
pub const DEFAULT_SYSTEM_BUS: &str = "unix:path=/var/run/dbus/system_bus_socket";
/// How long a method call waits for its reply (libdbus's default).
const REPLY_TIMEOUT: Duration = Duration::from_secs(25);
/// Largest message taken from the bus: far above what update_engine and logind send.
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum DbusError {
    #[error("bus address {0:?} has no unix:path= or unix:abstract= address")]
    Address(String),
    #[error("connecting to the bus at {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the bus refused authentication: {0:?}")]
    Auth(String),
    #[error("talking to the bus")]
    Io(#[from] std::io::Error),
    #[error("the bus sent a malformed message: {0}")]
    Malformed(String),
    #[error("{name}: {message}")]
    Remote { name: String, message: String },
    #[error("no reply to {0} within {REPLY_TIMEOUT:?}")]
    Timeout(String),
    #[error("the bus closed the connection")]
    Closed,
}

/// A value in a message body: the basic types the agent sends and reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    U32(u32),
    I64(i64),
    F64(f64),
    Str(String),
}

impl Value {
    fn code(&self) -> char {
        match self {
            Value::Bool(_) => 'b',
            Value::U32(_) => 'u',
            Value::I64(_) => 'x',
            Value::F64(_) => 'd',
            Value::Str(_) => 's',
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MethodCall = 1,
    MethodReturn = 2,
    Error = 3,
    Signal = 4,
}

/// A message: its header fields and its body, decoded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub kind: Option<Kind>,
    pub serial: u32,
    pub reply_serial: Option<u32>,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub signature: String,
    pub body: Vec<Value>,
}

/// A method call to `member` of `interface` at `path` of `destination`, with `args`.
pub fn method_call(
    destination: &str,
    path: &str,
    interface: &str,
    member: &str,
    args: Vec<Value>,
) -> Message {
    Message {
        kind: Some(Kind::MethodCall),
        path: Some(path.into()),
        interface: Some(interface.into()),
        member: Some(member.into()),
        destination: Some(destination.into()),
        signature: args.iter().map(Value::code).collect(),
        body: args,
        ..Message::default()
    }
}

/// The system bus's address: `DBUS_SYSTEM_BUS_ADDRESS`, else the standard socket.
pub fn system_bus_address() -> String {
    std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
        .ok()
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| DEFAULT_SYSTEM_BUS.to_string())
}

/// A connection to a bus.
pub struct Bus {
    writer: OwnedWriteHalf,
    incoming: mpsc::Receiver<Result<Message, DbusError>>,
    reader: tokio::task::JoinHandle<()>,
    /// Signals that arrived while a call waited for its reply.
    signals: VecDeque<Message>,
    serial: u32,
}

impl Drop for Bus {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Bus {
    /// Connects to the first address of `address` (`;`-separated) that accepts, authenticates
    /// and says `Hello`.
    pub async fn connect(address: &str) -> Result<Bus, DbusError> {
        let mut last = DbusError::Address(address.to_string());
        for one in address.split(';').filter(|a| !a.is_empty()) {
            let Some(socket) = unix_socket(one) else {
                continue;
            };
            match socket.connect().await {
                Ok(stream) => return Bus::start(stream).await,
                Err(source) => {
                    last = DbusError::Connect {
                        address: one.to_string(),
                        source,
                    }
                }
            }
        }
        Err(last)
    }

    async fn start(stream: UnixStream) -> Result<Bus, DbusError> {
        let (read, mut writer) = stream.into_split();
        let mut read = BufReader::new(read);
        let uid = nix::unistd::getuid().as_raw().to_string();
        let auth = format!("\0AUTH EXTERNAL {}\r\n", hex::encode(uid));
        writer.write_all(auth.as_bytes()).await?;
        let mut line = Vec::new();
        (&mut read).take(512).read_until(b'\n', &mut line).await?;
        let line = String::from_utf8_lossy(&line).trim_end().to_string();
        if !line.starts_with("OK ") {
            return Err(DbusError::Auth(line));
        }
        writer.write_all(b"BEGIN\r\n").await?;
        let (tx, incoming) = mpsc::channel(64);
        let reader = tokio::spawn(async move {
            loop {
                let message = read_message(&mut read).await;
                let failed = message.is_err();
                if tx.send(message).await.is_err() || failed {
                    return;
                }
            }
        });
        let mut bus = Bus {
            writer,
            incoming,
            reader,
            signals: VecDeque::new(),
            serial: 0,
        };
        bus.call(method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        ))
        .await?;
        Ok(bus)
    }

    /// Sends `call` and waits for its reply; an error reply is [`DbusError::Remote`].
    pub async fn call(&mut self, mut call: Message) -> Result<Message, DbusError> {
        self.serial += 1;
        call.serial = self.serial;
        let what = format!(
            "{}.{}",
            call.interface.as_deref().unwrap_or(""),
            call.member.as_deref().unwrap_or("")
        );
        self.writer.write_all(&encode(&call)).await?;
        let reply = tokio::time::timeout(REPLY_TIMEOUT, async {
            loop {
                let message = self.incoming.recv().await.ok_or(DbusError::Closed)??;
                match message.kind {
                    Some(Kind::MethodReturn | Kind::Error)
                        if message.reply_serial == Some(call.serial) =>
                    {
                        return Ok::<_, DbusError>(message)
                    }
                    Some(Kind::Signal) => self.signals.push_back(message),
                    _ => {}
                }
            }
        });
        let reply = reply.await.map_err(|_| DbusError::Timeout(what))??;
        if reply.kind == Some(Kind::Error) {
            let message = match reply.body.first() {
                Some(Value::Str(s)) => s.clone(),
                _ => String::new(),
            };
            return Err(DbusError::Remote {
                name: reply.error_name.unwrap_or_default(),
                message,
            });
        }
        Ok(reply)
    }

    /// Asks the bus to send this connection the signals `rule` matches
    /// (`type='signal',interface='…'`).
    pub async fn add_match(&mut self, rule: &str) -> Result<(), DbusError> {
        self.call(method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            vec![Value::Str(rule.into())],
        ))
        .await
        .map(drop)
    }

    /// The next signal sent to this connection (the bus's own, like `NameAcquired`, included).
    /// Cancel-safe: a signal is never lost to a caller that stopped waiting.
    pub async fn next_signal(&mut self) -> Result<Message, DbusError> {
        if let Some(signal) = self.signals.pop_front() {
            return Ok(signal);
        }
        loop {
            let message = self.incoming.recv().await.ok_or(DbusError::Closed)??;
            if message.kind == Some(Kind::Signal) {
                return Ok(message);
            }
        }
    }
}

/// The socket of one address: `unix:path=…` or `unix:abstract=…` (values %-escaped).
enum UnixSocket {
    Path(String),
    Abstract(Vec<u8>),
}

impl UnixSocket {
    async fn connect(&self) -> std::io::Result<UnixStream> {
        match self {
            UnixSocket::Path(path) => UnixStream::connect(path).await,
            UnixSocket::Abstract(name) => {
                use std::os::linux::net::SocketAddrExt;
                let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
                let stream = std::os::unix::net::UnixStream::connect_addr(&addr)?;
                stream.set_nonblocking(true)?;
                UnixStream::from_std(stream)
            }
        }
    }
}

fn unix_socket(address: &str) -> Option<UnixSocket> {
    let params = address.strip_prefix("unix:")?;
    params.split(',').find_map(|kv| {
        let (key, value) = kv.split_once('=')?;
        let value = unescape(value)?;
        match key {
            "path" => Some(UnixSocket::Path(String::from_utf8(value).ok()?)),
            "abstract" => Some(UnixSocket::Abstract(value)),
            _ => None,
        }
    })
}

/// An address value's `%xx` escapes decoded.
fn unescape(value: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(value.len());
    let mut bytes = value.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                out.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => out.push(b),
        }
    }
    Some(out)
}

// Header field codes.
const PATH: u8 = 1;
const INTERFACE: u8 = 2;
const MEMBER: u8 = 3;
const ERROR_NAME: u8 = 4;
const REPLY_SERIAL: u8 = 5;
const DESTINATION: u8 = 6;
const SENDER: u8 = 7;
const SIGNATURE: u8 = 8;

/// A message in the wire format, little-endian.
fn encode(message: &Message) -> Vec<u8> {
    let mut body = Writer::default();
    for value in &message.body {
        body.value(value);
    }
    let mut head = Writer::default();
    head.bytes(&[b'l', message.kind.map_or(0, |k| k as u8), 0, 1]);
    head.u32(body.buf.len() as u32);
    head.u32(message.serial);
    let mut fields = Writer {
        // Offsets count from the message's start: the fields array starts at 16.
        buf: vec![0; 16],
    };
    let strings = [
        (PATH, 'o', &message.path),
        (INTERFACE, 's', &message.interface),
        (MEMBER, 's', &message.member),
        (ERROR_NAME, 's', &message.error_name),
        (DESTINATION, 's', &message.destination),
        (SENDER, 's', &message.sender),
    ];
    for (code, kind, value) in strings {
        if let Some(value) = value {
            fields.field(code, kind, |w| w.string(value));
        }
    }
    if let Some(serial) = message.reply_serial {
        fields.field(REPLY_SERIAL, 'u', |w| w.u32(serial));
    }
    if !message.signature.is_empty() {
        fields.field(SIGNATURE, 'g', |w| w.signature(&message.signature));
    }
    let fields = &fields.buf[16..];
    head.u32(fields.len() as u32);
    head.bytes(fields);
    head.pad(8);
    head.bytes(&body.buf);
    head.buf
}

#[derive(Default)]
struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }
    fn bytes(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }
    fn u32(&mut self, v: u32) {
        self.pad(4);
        self.bytes(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.pad(8);
        self.bytes(&v.to_le_bytes());
    }
    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.bytes(s.as_bytes());
        self.buf.push(0);
    }
    fn signature(&mut self, s: &str) {
        self.buf.push(s.len() as u8);
        self.bytes(s.as_bytes());
        self.buf.push(0);
    }
    fn field(&mut self, code: u8, kind: char, value: impl FnOnce(&mut Self)) {
        self.pad(8);
        self.buf.push(code);
        self.signature(&kind.to_string());
        value(self);
    }
    fn value(&mut self, value: &Value) {
        match value {
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::U32(v) => self.u32(*v),
            Value::I64(v) => self.u64(*v as u64),
            Value::F64(v) => self.u64(v.to_bits()),
            Value::Str(s) => self.string(s),
        }
    }
}

/// Reads one message off the bus.
async fn read_message<R: AsyncReadExt + Unpin>(read: &mut R) -> Result<Message, DbusError> {
    let mut fixed = [0u8; 16];
    match read.read_exact(&mut fixed).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(DbusError::Closed),
        Err(e) => return Err(e.into()),
    }
    let mut r = Reader::new(&fixed)?;
    r.take::<4>()?;
    let body_len = r.u32()? as usize;
    r.u32()?; // the serial
    let fields_len = r.u32()? as usize;
    let head_len = (16 + fields_len).next_multiple_of(8);
    let total = head_len.saturating_add(body_len);
    if total > MAX_MESSAGE {
        return Err(bad(format!("a message of {total} bytes")));
    }
    let mut buf = vec![0u8; total];
    buf[..16].copy_from_slice(&fixed);
    read.read_exact(&mut buf[16..]).await?;
    decode(&buf)
}

/// A whole message from its bytes.
fn decode(buf: &[u8]) -> Result<Message, DbusError> {
    let mut r = Reader::new(buf)?;
    let [_, kind, _, _] = r.take::<4>()?;
    let body_len = r.u32()? as usize;
    let mut message = Message {
        kind: match kind {
            1 => Some(Kind::MethodCall),
            2 => Some(Kind::MethodReturn),
            3 => Some(Kind::Error),
            4 => Some(Kind::Signal),
            _ => None,
        },
        serial: r.u32()?,
        ..Message::default()
    };
    let fields_end = (r.u32()? as usize)
        .checked_add(r.at)
        .filter(|&end| end <= buf.len())
        .ok_or_else(|| bad("the header fields run past the message".into()))?;
    while r.at < fields_end {
        r.align(8)?;
        let [code] = r.take::<1>()?;
        let kind = r.signature()?;
        let value = match kind.as_str() {
            "s" | "o" => r.string()?,
            "g" => r.signature()?,
            "u" => {
                let v = r.u32()?;
                if code == REPLY_SERIAL {
                    message.reply_serial = Some(v);
                }
                continue;
            }
            "y" => {
                r.take::<1>()?;
                continue;
            }
            other => return Err(bad(format!("a header field of type {other:?}"))),
        };
        match code {
            PATH => message.path = Some(value),
            INTERFACE => message.interface = Some(value),
            MEMBER => message.member = Some(value),
            ERROR_NAME => message.error_name = Some(value),
            DESTINATION => message.destination = Some(value),
            SENDER => message.sender = Some(value),
            SIGNATURE => message.signature = value,
            _ => {}
        }
    }
    r.align(8)?;
    let body_end = r.at + body_len;
    if body_end != buf.len() {
        return Err(bad("the body's length is not the message's".into()));
    }
    for code in message.signature.clone().chars() {
        let value = match code {
            'b' => match r.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                other => return Err(bad(format!("a boolean of {other}"))),
            },
            'u' => Value::U32(r.u32()?),
            'x' => Value::I64(r.u64()? as i64),
            'd' => Value::F64(f64::from_bits(r.u64()?)),
            's' | 'o' => Value::Str(r.string()?),
            // Not used by the calls here: the rest of the body is left undecoded.
            _ => break,
        };
        message.body.push(value);
    }
    Ok(message)
}

fn bad(why: String) -> DbusError {
    DbusError::Malformed(why)
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
    little: bool,
}

impl<'a> Reader<'a> {
    /// A reader of the message in `buf`, in the byte order its first byte names.
    fn new(buf: &'a [u8]) -> Result<Reader<'a>, DbusError> {
        let little = match buf.first() {
            Some(b'l') => true,
            Some(b'B') => false,
            Some(other) => return Err(bad(format!("byte order {other:#04x}"))),
            None => return Err(bad("it is empty".into())),
        };
        Ok(Reader { buf, at: 0, little })
    }
    fn take<const N: usize>(&mut self) -> Result<[u8; N], DbusError> {
        let bytes = self
            .buf
            .get(self.at..self.at + N)
            .ok_or_else(|| bad("it ends early".into()))?;
        self.at += N;
        Ok(bytes.try_into().expect("N bytes"))
    }
    fn align(&mut self, align: usize) -> Result<(), DbusError> {
        let to = self.at.next_multiple_of(align);
        if to > self.buf.len() {
            return Err(bad("it ends early".into()));
        }
        self.at = to;
        Ok(())
    }
    /// The next `N`-byte number, aligned to `N`, as little-endian bytes.
    fn number<const N: usize>(&mut self) -> Result<[u8; N], DbusError> {
        self.align(N)?;
        let mut b = self.take::<N>()?;
        if !self.little {
            b.reverse();
        }
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32, DbusError> {
        Ok(u32::from_le_bytes(self.number()?))
    }
    fn u64(&mut self) -> Result<u64, DbusError> {
        Ok(u64::from_le_bytes(self.number()?))
    }
    fn text(&mut self, len: usize) -> Result<String, DbusError> {
        let bytes = self
            .buf
            .get(self.at..self.at + len + 1)
            .ok_or_else(|| bad("a string runs past the message".into()))?;
        self.at += len + 1;
        let (text, nul) = bytes.split_at(len);
        if nul != [0] {
            return Err(bad("a string without its NUL".into()));
        }
        String::from_utf8(text.to_vec()).map_err(|_| bad("a string that is not UTF-8".into()))
    }
    fn string(&mut self) -> Result<String, DbusError> {
        let len = self.u32()? as usize;
        self.text(len)
    }
    fn signature(&mut self) -> Result<String, DbusError> {
        let [len] = self.take::<1>()?;
        self.text(len as usize)
    }
}

/// A fake bus for tests. Each connection it accepts is authenticated and answered `Hello`; then,
/// for each method call the client sends, `replies` gives the reply's body (an empty one when
/// it gives none), and after the `calls`-th call the bus sends `signals` and closes the
/// connection.
#[cfg(test)]
pub(crate) async fn fake_bus(
    calls: usize,
    replies: fn(&Message) -> Option<Vec<Value>>,
    signals: Vec<Message>,
) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bus");
    let listener = tokio::net::UnixListener::bind(&path).unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (read, mut write) = stream.into_split();
            let mut read = BufReader::new(read);
            let mut line = Vec::new();
            read.read_until(b'\n', &mut line).await.unwrap();
            let uid = hex::encode(nix::unistd::getuid().as_raw().to_string());
            assert_eq!(line, format!("\0AUTH EXTERNAL {uid}\r\n").as_bytes());
            write.write_all(b"OK 0123456789abcdef\r\n").await.unwrap();
            line.clear();
            read.read_until(b'\n', &mut line).await.unwrap();
            assert_eq!(line, b"BEGIN\r\n");
            for n in 0..=calls {
                let call = read_message(&mut read).await.unwrap();
                let body = match n {
                    0 => vec![Value::Str(":1.1".into())],
                    _ => replies(&call).unwrap_or_default(),
                };
                let reply = Message {
                    kind: Some(Kind::MethodReturn),
                    serial: n as u32 + 1,
                    reply_serial: Some(call.serial),
                    signature: body.iter().map(Value::code).collect(),
                    body,
                    ..Message::default()
                };
                write.write_all(&encode(&reply)).await.unwrap();
            }
            for signal in &signals {
                write.write_all(&encode(signal)).await.unwrap();
            }
        }
    });
    (dir, format!("unix:path={}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Authentication, `Hello`, a signal, and the end of the connection, as the client sees them.
    #[tokio::test]
    async fn signals_then_the_end_of_the_connection() {
        let (_dir, address) = fake_bus(0, |_| None, vec![status_signal()]).await;
        let mut bus = Bus::connect(&address).await.unwrap();
        assert_eq!(bus.next_signal().await.unwrap(), status_signal());
        let end = bus.next_signal().await.unwrap_err();
        assert!(matches!(end, DbusError::Closed), "{end:?}");
    }

    fn status_signal() -> Message {
        Message {
            kind: Some(Kind::Signal),
            serial: 7,
            path: Some("/com/coreos/update1".into()),
            interface: Some("com.coreos.update1.Manager".into()),
            member: Some("StatusUpdate".into()),
            sender: Some(":1.4".into()),
            signature: "xdssx".into(),
            body: vec![
                Value::I64(1_764_000_000),
                Value::F64(0.5),
                Value::Str("UPDATE_STATUS_UPDATED_NEED_REBOOT".into()),
                Value::Str("4230.2.1".into()),
                Value::I64(-1),
            ],
            ..Message::default()
        }
    }

    #[test]
    fn a_message_reads_back_as_written() {
        let signal = status_signal();
        let bytes = encode(&signal);
        assert_eq!(bytes.len() % 8, 0);
        assert_eq!(decode(&bytes).unwrap(), signal);
        let call = method_call(
            "org.freedesktop.login1",
            "/org/freedesktop/login1",
            "org.freedesktop.login1.Manager",
            "Reboot",
            vec![Value::Bool(false)],
        );
        assert_eq!(call.signature, "b");
        assert_eq!(decode(&encode(&call)).unwrap(), call);
    }

    /// The same signal as a big-endian sender marshals it, byte by byte.
    #[test]
    fn a_big_endian_message_is_read() {
        let mut b = vec![b'B', 4, 0, 1];
        let body_len = 8 + 8 + 4 + 1 + 3 + 4 + 1; // x, d, s "A", pad to 4, s ""
        b.extend((body_len as u32).to_be_bytes());
        b.extend(9u32.to_be_bytes());
        let mut fields = vec![MEMBER, 1, b's', 0, 0, 0, 0, 1, b'M', 0];
        fields.extend([0; 6]); // to 8
        fields.extend([SIGNATURE, 1, b'g', 0, 4, b'x', b'd', b's', b's', 0]);
        b.extend((fields.len() as u32).to_be_bytes());
        b.extend(&fields);
        while b.len() % 8 != 0 {
            b.push(0);
        }
        b.extend(5i64.to_be_bytes());
        b.extend(2.5f64.to_be_bytes());
        b.extend(1u32.to_be_bytes());
        b.extend([b'A', 0, 0, 0]);
        b.extend(0u32.to_be_bytes());
        b.push(0);
        let m = decode(&b).unwrap();
        assert_eq!(m.kind, Some(Kind::Signal));
        assert_eq!(m.serial, 9);
        assert_eq!(m.member.as_deref(), Some("M"));
        assert_eq!(
            m.body,
            [
                Value::I64(5),
                Value::F64(2.5),
                Value::Str("A".into()),
                Value::Str(String::new())
            ]
        );
    }

    #[test]
    fn malformed_messages_are_errors_not_panics() {
        let good = encode(&status_signal());
        for cut in [0, 5, 16, 40, good.len() - 1] {
            assert!(decode(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut order = good.clone();
        order[0] = b'x';
        let err = decode(&order).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the bus sent a malformed message: byte order 0x78"
        );
        let mut long = good.clone();
        long[12] = 0xff; // the fields' length runs past the end
        assert!(decode(&long).is_err());
        let mut no_nul = good.clone();
        let version = good.windows(8).position(|w| w == b"4230.2.1").unwrap();
        no_nul[version + 8] = b'x';
        let err = decode(&no_nul).unwrap_err();
        assert!(err.to_string().contains("without its NUL"), "{err}");
    }

    #[test]
    fn bus_addresses() {
        let path = |a: &str| match unix_socket(a) {
            Some(UnixSocket::Path(p)) => Some(p),
            _ => None,
        };
        assert_eq!(
            path(DEFAULT_SYSTEM_BUS).as_deref(),
            Some("/var/run/dbus/system_bus_socket")
        );
        assert_eq!(
            path("unix:path=/tmp/a%20b,guid=0123").as_deref(),
            Some("/tmp/a b")
        );
        assert!(matches!(
            unix_socket("unix:abstract=/tmp/dbus-x"),
            Some(UnixSocket::Abstract(name)) if name == b"/tmp/dbus-x"
        ));
        assert!(unix_socket("tcp:host=localhost,port=1").is_none());
        assert!(unix_socket("unix:path=/x%4").is_none());
    }

    #[tokio::test]
    async fn no_bus_at_the_address_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let address = format!("unix:path={}/none", dir.path().display());
        let err = Bus::connect(&address).await.err().unwrap();
        assert!(matches!(err, DbusError::Connect { .. }), "{err:?}");
        let err = Bus::connect("tcp:host=x").await.err().unwrap();
        assert_eq!(
            err.to_string(),
            "bus address \"tcp:host=x\" has no unix:path= or unix:abstract= address"
        );
    }
}
