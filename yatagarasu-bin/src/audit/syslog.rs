//! The audit log's syslog output: RFC 5424 messages over UDP (one datagram each) or TCP (one
//! message per line, RFC 6587 non-transparent framing), severity `info`.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

/// How syslog messages travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyslogProtocol {
    /// One datagram per record (default). Lost silently when nobody listens.
    #[default]
    Udp,
    /// One line per record over a connection that is re-established (at most once a second)
    /// after it breaks; records written while it is down are counted as failed.
    Tcp,
}

/// Where and how the audit log sends syslog messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogOutput {
    address: String,
    protocol: SyslogProtocol,
    facility: u8,
}

/// The syslog facilities by name, with their codes.
pub(crate) const FACILITIES: [(&str, u8); 20] = [
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

/// The code of a facility name (`local0`, `auth`, ...), if it is one.
pub(crate) fn facility_code(name: &str) -> Option<u8> {
    FACILITIES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, c)| *c)
}

impl SyslogOutput {
    /// Send to `address` (`host:port`) over `protocol`, facility `local0` until told otherwise.
    pub fn new(address: impl Into<String>, protocol: SyslogProtocol) -> Self {
        Self {
            address: address.into(),
            protocol,
            facility: 16,
        }
    }

    /// The facility by name (`kern`, `user`, `auth`, `daemon`, `local0` ... `local7`, ...);
    /// `None` for a name that is not one.
    pub fn facility(mut self, name: &str) -> Option<Self> {
        self.facility = facility_code(name)?;
        Some(self)
    }
}

/// Severity `informational`.
const SEVERITY_INFO: u8 = 6;
/// Longest UDP payload sent; a longer message is cut (RFC 5426 lets receivers truncate anyway).
const MAX_DATAGRAM: usize = 65_000;

/// A connected (or connectable) syslog destination.
#[derive(Debug)]
pub(crate) struct SyslogSink {
    options: SyslogOutput,
    /// `<PRI>1 ` ... up to the timestamp, and from the host name to the message.
    priority: String,
    header_tail: String,
    udp: Option<(UdpSocket, SocketAddr)>,
    tcp: Option<TcpStream>,
    /// No reconnect attempt before this.
    next_connect: Instant,
    message: Vec<u8>,
}

impl SyslogSink {
    /// Resolve the address (and bind a UDP socket); TCP connects on the first message.
    pub(crate) fn open(options: SyslogOutput) -> io::Result<Self> {
        let host = hostname();
        let mut this = Self {
            priority: format!("<{}>1 ", options.facility * 8 + SEVERITY_INFO),
            header_tail: format!(" {host} yatagarasu {} audit - ", std::process::id()),
            options,
            udp: None,
            tcp: None,
            next_connect: Instant::now(),
            message: Vec::with_capacity(1024),
        };
        let addr = this.resolve()?;
        if this.options.protocol == SyslogProtocol::Udp {
            let bind: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                ([0u16; 8], 0).into()
            };
            this.udp = Some((UdpSocket::bind(bind)?, addr));
        }
        Ok(this)
    }

    fn resolve(&self) -> io::Result<SocketAddr> {
        self.options
            .address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| {
                io::Error::other(format!("`{}` resolves to nothing", self.options.address))
            })
    }

    /// Send one record (`json` without its newline), stamped `at`.
    pub(crate) fn send(&mut self, json: &[u8], at: SystemTime) -> io::Result<()> {
        self.message.clear();
        self.message.extend_from_slice(self.priority.as_bytes());
        crate::utc::write_rfc3339(&mut self.message, at, crate::utc::Fraction::Millis);
        self.message.extend_from_slice(self.header_tail.as_bytes());
        self.message.extend_from_slice(json);
        if let Some((socket, addr)) = &self.udp {
            let n = self.message.len().min(MAX_DATAGRAM);
            socket.send_to(&self.message[..n], *addr)?;
            return Ok(());
        }
        self.message.push(b'\n');
        if self.tcp.is_none() {
            self.connect()?;
        }
        let stream = self
            .tcp
            .as_mut()
            .ok_or_else(|| io::Error::other("not connected"))?;
        if let Err(e) = stream.write_all(&self.message) {
            self.tcp = None;
            return Err(e);
        }
        Ok(())
    }

    fn connect(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if now < self.next_connect {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "syslog connection down; retrying shortly",
            ));
        }
        self.next_connect = now + Duration::from_secs(1);
        let stream = TcpStream::connect_timeout(&self.resolve()?, Duration::from_secs(1))?;
        stream.set_write_timeout(Some(Duration::from_secs(1)))?;
        stream.set_nodelay(true)?;
        self.tcp = Some(stream);
        Ok(())
    }
}

/// This machine's name for the syslog header (printable ASCII without spaces, else `-`).
fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let name = name.trim();
    if name.is_empty() || name.len() > 255 || !name.bytes().all(|b| b.is_ascii_graphic()) {
        "-".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_names_map_to_their_codes() {
        assert_eq!(facility_code("kern"), Some(0));
        assert_eq!(facility_code("LOCAL7"), Some(23));
        assert_eq!(facility_code("authpriv"), Some(10));
        assert_eq!(facility_code("local8"), None);
        assert!(
            SyslogOutput::new("127.0.0.1:514", SyslogProtocol::Udp)
                .facility("nope")
                .is_none()
        );
    }

    #[test]
    fn a_udp_message_is_one_rfc5424_datagram() {
        let listener = UdpSocket::bind("127.0.0.1:0").unwrap();
        listener
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let out = SyslogOutput::new(
            listener.local_addr().unwrap().to_string(),
            SyslogProtocol::Udp,
        )
        .facility("auth")
        .unwrap();
        let mut sink = SyslogSink::open(out).unwrap();
        let at = std::time::UNIX_EPOCH + Duration::from_secs(1_795_737_600);
        sink.send(br#"{"status":200}"#, at).unwrap();
        let mut buf = [0u8; 2048];
        let n = listener.recv(&mut buf).unwrap();
        let msg = std::str::from_utf8(&buf[..n]).unwrap();
        // auth (4) * 8 + info (6) = 38.
        let rest = msg
            .strip_prefix("<38>1 2026-11-27T00:00:00.000Z ")
            .unwrap_or_else(|| panic!("{msg}"));
        let fields: Vec<&str> = rest.splitn(6, ' ').collect();
        assert_eq!(
            fields[1..5],
            ["yatagarasu", &std::process::id().to_string(), "audit", "-"]
        );
        assert_eq!(fields[5], r#"{"status":200}"#);
    }
}
