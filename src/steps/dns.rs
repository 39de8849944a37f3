//! The `dns` step: one query (A, AAAA, CNAME, MX, TXT, SRV, NS, SOA) to a chosen server or the
//! system resolver, over UDP or TCP, and what came back: the answers as text, the response code
//! and the lowest TTL. hickory-proto builds and parses the messages; the step does its own I/O,
//! so every failure maps to a reason (refused → `connect`, no answer → `timeout`, a name that
//! does not resolve → `dns` unless the step asserts on `rcode`).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{render_config, Kind, StepContext, StepError};
use crate::assert::OwnQuery;
use crate::observation::{Observation, UnlessAsserted};
use crate::outcome::Reason;
use crate::scenario::ranges::Problems;

/// Where the system resolver is configured.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The DNS port, when `server` gives none.
const DNS_PORT: u16 = 53;
/// The UDP payload the query offers (EDNS0): the size recommended to avoid fragmentation.
const UDP_PAYLOAD: u16 = 1232;

/// Record types a step may ask for.
const TYPES: &[(&str, RecordType)] = &[
    ("A", RecordType::A),
    ("AAAA", RecordType::AAAA),
    ("CNAME", RecordType::CNAME),
    ("MX", RecordType::MX),
    ("TXT", RecordType::TXT),
    ("SRV", RecordType::SRV),
    ("NS", RecordType::NS),
    ("SOA", RecordType::SOA),
];

/// A DNS query. `name` and `server` may use `${{ }}` templates.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsSpec {
    /// The name to look up, e.g. `shop.example.com` (always absolute: no search domains).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Record type: A (default), AAAA, CNAME, MX, TXT, SRV, NS or SOA.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub record_type: Option<String>,
    /// `host:port` of the server to ask (port 53 when left out); by default the first
    /// `nameserver` of /etc/resolv.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `udp` (default) or `tcp`. A UDP answer cut short (TC bit) is asked again over TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Ask the server to recurse (RD bit; default true). `false` asks an authoritative server
    /// for what it holds itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursion: Option<bool>,
}

/// How the query travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Udp,
    Tcp,
}

impl Protocol {
    fn parse(s: Option<&str>) -> Option<Protocol> {
        match s {
            None | Some("udp") => Some(Protocol::Udp),
            Some("tcp") => Some(Protocol::Tcp),
            Some(_) => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        }
    }
}

/// The record type named `s` (A, aaaa, ...).
fn record_type(s: Option<&str>) -> Option<(&'static str, RecordType)> {
    let s = s.unwrap_or("A");
    TYPES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(s))
        .copied()
}

/// `host:port`, `host`, `IPv4`, `IPv6` or `[IPv6]:port` as (host, port).
fn split_server(s: &str) -> Option<(String, u16)> {
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return (addr.port() != 0).then(|| (addr.ip().to_string(), addr.port()));
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip.to_string(), DNS_PORT));
    }
    let (host, port) = match s.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p != 0)?),
        None => (s, DNS_PORT),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    (!host.is_empty() && host.chars().all(plain)).then(|| (host.to_string(), port))
}

/// The first usable `nameserver` line of a resolv.conf text.
fn system_nameserver(resolv_conf: &str) -> Option<SocketAddr> {
    resolv_conf.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("nameserver"), Some(addr)) => addr
                .parse::<IpAddr>()
                .ok()
                .map(|ip| SocketAddr::new(ip, DNS_PORT)),
            _ => None,
        }
    })
}

impl DnsSpec {
    /// Load-time checks beyond types; returns (field path suffix, message) pairs.
    pub fn check(&self) -> Vec<(String, String)> {
        let mut errs: Vec<(String, String)> = Vec::new();
        let mut err = |p: &str, m: String| errs.push((p.to_string(), m));
        match self.name.as_deref() {
            None => err("", "dns step needs a `name` to look up".into()),
            Some(n) if n.contains("${{") => {}
            Some(n) => {
                if let Err(e) = parse_name(n) {
                    err("name", e);
                }
            }
        }
        if record_type(self.record_type.as_deref()).is_none() {
            let list: Vec<&str> = TYPES.iter().map(|(n, _)| *n).collect();
            err(
                "type",
                format!(
                    "unknown record type `{}`: expected one of {}",
                    self.record_type.as_deref().unwrap_or_default(),
                    list.join(", ")
                ),
            );
        }
        if let Some(s) = self.server.as_deref() {
            if !s.contains("${{") && split_server(s).is_none() {
                err(
                    "server",
                    format!("server must be host:port (or an IP address), got `{s}`"),
                );
            }
        }
        if Protocol::parse(self.protocol.as_deref()).is_none() {
            err(
                "protocol",
                format!(
                    "protocol must be udp or tcp, got `{}`",
                    self.protocol.as_deref().unwrap_or_default()
                ),
            );
        }
        errs
    }
}

/// A name as asked: absolute, IDNA-encoded; an empty or malformed name is an error text.
fn parse_name(s: &str) -> Result<Name, String> {
    if s.trim().is_empty() {
        return Err("name is empty".into());
    }
    let mut name = Name::from_utf8(s).map_err(|e| format!("`{s}` is not a DNS name: {e}"))?;
    name.set_fqdn(true);
    Ok(name)
}

/// The step's budget less a margin, so the step reports its own timeout (naming the server)
/// before the runner's coarser one.
fn own_budget(timeout: Duration) -> Duration {
    timeout.saturating_sub((timeout / 10).min(Duration::from_millis(100)))
}

/// One rendered query.
struct Question {
    name: Name,
    type_name: &'static str,
    record_type: RecordType,
    protocol: Protocol,
    recursion: bool,
}

impl Question {
    fn from_spec(spec: &DnsSpec, ctx: &StepContext<'_>) -> Result<Question, StepError> {
        let raw = spec
            .name
            .as_deref()
            .ok_or_else(|| StepError::new(Reason::Config, "dns step has no name"))?;
        let name = parse_name(&render_config(raw, ctx.resolver)?)
            .map_err(|e| StepError::new(Reason::Config, e))?;
        let (type_name, record_type) = record_type(spec.record_type.as_deref())
            .ok_or_else(|| StepError::new(Reason::Config, "unknown record type"))?;
        let protocol = Protocol::parse(spec.protocol.as_deref())
            .ok_or_else(|| StepError::new(Reason::Config, "protocol must be udp or tcp"))?;
        Ok(Question {
            name,
            type_name,
            record_type,
            protocol,
            recursion: spec.recursion.unwrap_or(true),
        })
    }

    /// `shop.example.com A`, for messages.
    fn describe(&self) -> String {
        format!("{} {}", host_text(&self.name), self.type_name)
    }

    /// The query message with a fresh id, as bytes.
    fn encode(&self, protocol: Protocol) -> Result<(u16, Vec<u8>), StepError> {
        let id = rand::random::<u16>();
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = self.recursion;
        m.add_query(Query::query(self.name.clone(), self.record_type));
        if protocol == Protocol::Udp {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD);
            m.set_edns(edns);
        }
        let bytes = m
            .to_vec()
            .map_err(|e| StepError::new(Reason::Config, format!("cannot encode the query: {e}")))?;
        Ok((id, bytes))
    }
}

/// The address of the rendered `server` (a name is looked up with the system resolver), or
/// the system resolver's first name server.
async fn server_addr(server: Option<&str>) -> Result<SocketAddr, StepError> {
    let Some(server) = server else {
        let text = tokio::fs::read_to_string(RESOLV_CONF).await.map_err(|e| {
            StepError::new(
                Reason::Config,
                format!(
                    "no `server` given and {RESOLV_CONF} cannot be read: {}",
                    e.kind()
                ),
            )
        })?;
        return system_nameserver(&text).ok_or_else(|| {
            StepError::new(
                Reason::Config,
                format!("no `server` given and {RESOLV_CONF} names no nameserver"),
            )
        });
    };
    let (host, port) = split_server(server).ok_or_else(|| {
        StepError::new(
            Reason::Config,
            format!("server must be host:port, got `{server}`"),
        )
    })?;
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let found = tokio::net::lookup_host((host.as_str(), port)).await;
    found
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            StepError::new(
                Reason::Dns,
                format!("cannot resolve the server name `{host}`"),
            )
        })
}

/// A transport error: refused or reset is `connect`, a time-out `timeout`.
fn io_error(what: &str, e: &std::io::Error) -> StepError {
    let reason = match e.kind() {
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Reason::Timeout,
        _ => Reason::Connect,
    };
    StepError::new(reason, format!("{what}: {e}"))
}

/// Sends the query over UDP and waits for the answer with its id (stray packets are skipped).
async fn exchange_udp(server: SocketAddr, id: u16, query: &[u8]) -> Result<Vec<u8>, StepError> {
    let local: SocketAddr = if server.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let what = format!("udp {server}");
    let sock = tokio::net::UdpSocket::bind(local)
        .await
        .map_err(|e| io_error(&what, &e))?;
    sock.connect(server)
        .await
        .map_err(|e| io_error(&what, &e))?;
    sock.send(query).await.map_err(|e| io_error(&what, &e))?;
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    loop {
        // A closed UDP port answers with ICMP port unreachable: the receive is refused.
        let n = sock.recv(&mut buf).await.map_err(|e| io_error(&what, &e))?;
        if n >= 2 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

/// Sends the query over TCP (two-byte length prefix) and reads one answer.
async fn exchange_tcp(server: SocketAddr, query: &[u8]) -> Result<Vec<u8>, StepError> {
    let what = format!("tcp {server}");
    let mut stream = tokio::net::TcpStream::connect(server)
        .await
        .map_err(|e| io_error(&what, &e))?;
    let len = u16::try_from(query.len())
        .map_err(|_| StepError::new(Reason::Config, "the query is too long"))?;
    let mut framed = len.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| io_error(&what, &e))?;
    let mut len = [0u8; 2];
    stream
        .read_exact(&mut len)
        .await
        .map_err(|e| io_error(&format!("{what}: reading the answer"), &e))?;
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream
        .read_exact(&mut buf)
        .await
        .map_err(|e| io_error(&format!("{what}: reading the answer"), &e))?;
    Ok(buf)
}

/// Asks `server` over `protocol`; a UDP answer cut short is asked again over TCP.
async fn ask(q: &Question, server: SocketAddr) -> Result<Message, StepError> {
    let mut protocol = q.protocol;
    loop {
        let (id, query) = q.encode(protocol)?;
        let bytes = match protocol {
            Protocol::Udp => exchange_udp(server, id, &query).await?,
            Protocol::Tcp => exchange_tcp(server, &query).await?,
        };
        let answer = Message::from_vec(&bytes).map_err(|e| {
            StepError::new(
                Reason::Dns,
                format!("{server} sent a malformed DNS message: {e}"),
            )
        })?;
        if answer.metadata.id != id || answer.metadata.message_type != MessageType::Response {
            return Err(StepError::new(
                Reason::Dns,
                format!("{server} answered with a message that is not the answer to this query"),
            ));
        }
        if protocol == Protocol::Udp && answer.metadata.truncation {
            protocol = Protocol::Tcp;
            continue;
        }
        return Ok(answer);
    }
}

/// A name as text, without the root's trailing dot (`mail.example.org`; the root stays `.`).
fn host_text(name: &Name) -> String {
    let s = name.to_utf8();
    match s.strip_suffix('.') {
        Some(head) if !head.is_empty() => head.to_string(),
        _ => s,
    }
}

/// One record's data as the `answers` list shows it.
fn rdata_text(data: &RData) -> Option<String> {
    Some(match data {
        RData::A(a) => a.0.to_string(),
        RData::AAAA(a) => a.0.to_string(),
        RData::CNAME(n) => host_text(&n.0),
        RData::NS(n) => host_text(&n.0),
        RData::MX(mx) => format!("{} {}", mx.preference, host_text(&mx.exchange)),
        RData::TXT(txt) => txt
            .txt_data
            .iter()
            .map(|s| String::from_utf8_lossy(s))
            .collect(),
        RData::SRV(srv) => format!(
            "{} {} {} {}",
            srv.priority,
            srv.weight,
            srv.port,
            host_text(&srv.target)
        ),
        RData::SOA(soa) => format!(
            "{} {} {} {} {} {} {}",
            host_text(&soa.mname),
            host_text(&soa.rname),
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum
        ),
        _ => return None,
    })
}

/// The response code's mnemonic, as `rcode` shows it.
fn rcode_text(code: ResponseCode) -> String {
    let name = match code {
        ResponseCode::NoError => "NOERROR",
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        ResponseCode::BADVERS => "BADVERS",
        other => return format!("RCODE{}", u16::from(other)),
    };
    name.to_string()
}

/// What the answer holds, as outputs; a missing name or an empty answer is a `dns` failure
/// unless the step asserts on `rcode`.
fn observe(q: &Question, server: SocketAddr, answer: &Message) -> Observation {
    let matching: Vec<&Record> = answer
        .answers
        .iter()
        .filter(|r| r.record_type() == q.record_type)
        .collect();
    let answers: Vec<serde_json::Value> = matching
        .iter()
        .filter_map(|r| rdata_text(&r.data))
        .map(serde_json::Value::String)
        .collect();
    let rcode = rcode_text(answer.metadata.response_code);
    let mut obs = Observation::default();
    if let Some(ttl) = matching.iter().map(|r| r.ttl).min() {
        obs.outputs.insert("ttl".into(), ttl.into());
    }
    let why = if answer.metadata.response_code != ResponseCode::NoError {
        Some(format!("{} from {server}", rcode))
    } else if answers.is_empty() {
        Some(format!(
            "no {} record (NOERROR, empty answer) from {server}",
            q.type_name
        ))
    } else {
        None
    };
    obs.unless_asserted = why.map(|why| UnlessAsserted {
        query: "rcode",
        reason: Reason::Dns,
        message: format!("{}: {why} (assert on `rcode` to expect this)", q.describe()),
    });
    obs.outputs
        .insert("answers".into(), serde_json::Value::Array(answers));
    obs.outputs.insert("rcode".into(), rcode.into());
    obs
}

/// Runs one query.
pub async fn execute(spec: &DnsSpec, ctx: &StepContext<'_>) -> Result<Observation, StepError> {
    let q = Question::from_spec(spec, ctx)?;
    let server = match &spec.server {
        Some(s) => Some(render_config(s, ctx.resolver)?),
        None => None,
    };
    let budget = own_budget(ctx.timeout);
    let work = async {
        let addr = server_addr(server.as_deref()).await?;
        let answer = ask(&q, addr).await?;
        Ok::<_, StepError>((addr, answer))
    };
    match tokio::time::timeout(budget, work).await {
        Ok(Ok((addr, answer))) => Ok(observe(&q, addr, &answer)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(StepError::new(
            Reason::Timeout,
            format!(
                "{}: no answer from {} over {} within {}",
                q.describe(),
                server.as_deref().unwrap_or("the system resolver"),
                q.protocol.as_str(),
                crate::units::format_duration(budget),
            ),
        )),
    }
}

impl Kind for DnsSpec {
    const KEY: &'static str = "dns";
    const ABOUT: &'static str = "A DNS query.";
    const QUERIES: &'static [&'static str] = &["duration", "answers", "rcode", "ttl"];
    const OWN_QUERIES: &'static [OwnQuery] = &[
        OwnQuery::output("answers", &["answers"]),
        OwnQuery::output("rcode", &["rcode"]),
        OwnQuery::seconds("ttl", &["ttl"]),
    ];
    /// `answers` (list of strings), `rcode` (`NOERROR`, `NXDOMAIN`, ...), `ttl` (lowest TTL of
    /// the answers, seconds).
    const OUTPUTS: &'static [&'static str] = &["answers", "rcode", "ttl"];
    const HAS_DEFAULTS: bool = true;

    fn validate(&self, problems: &mut Problems) {
        for (field, message) in self.check() {
            problems.error(&field, message);
        }
    }

    fn merged_over(&self, defaults: &DnsSpec) -> DnsSpec {
        DnsSpec {
            name: self.name.clone().or_else(|| defaults.name.clone()),
            record_type: self
                .record_type
                .clone()
                .or_else(|| defaults.record_type.clone()),
            server: self.server.clone().or_else(|| defaults.server.clone()),
            protocol: self.protocol.clone().or_else(|| defaults.protocol.clone()),
            recursion: self.recursion.or(defaults.recursion),
        }
    }

    fn execute(
        &self,
        ctx: &StepContext<'_>,
    ) -> impl std::future::Future<Output = Result<Observation, StepError>> + Send {
        execute(self, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(yaml: &str) -> String {
        let spec: DnsSpec = crate::scenario::yaml::from_str(yaml).unwrap();
        spec.check()
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn valid_specs_have_no_errors() {
        for yaml in [
            "{name: app.test}",
            "{name: app.test, type: MX, server: '127.0.0.1:5353', protocol: tcp}",
            "{name: app.test, type: aaaa, server: 'ns1.example.org', recursion: false}",
            "{name: '${{ vars.host }}', server: '${{ vars.dns }}'}",
            "{name: app.test, server: '[::1]:53'}",
            "{name: app.test, server: '::1'}",
        ] {
            assert_eq!(messages(yaml), "", "{yaml}");
        }
    }

    #[test]
    fn mistakes_are_reported_at_their_field() {
        let m = messages("{type: PTR, server: 'a b:53', protocol: quic}");
        assert!(m.contains(": dns step needs a `name`"), "{m}");
        assert!(
            m.contains("type: unknown record type `PTR`: expected one of A, AAAA"),
            "{m}"
        );
        assert!(m.contains("server: server must be host:port"), "{m}");
        assert!(
            m.contains("protocol: protocol must be udp or tcp, got `quic`"),
            "{m}"
        );
        let m = messages("{name: app.test, server: 'h:0'}");
        assert!(m.contains("server: "), "{m}");
        let m = messages("{name: 'a..b'}");
        assert!(m.contains("name: `a..b` is not a DNS name"), "{m}");
    }

    #[test]
    fn servers_split_into_host_and_port() {
        assert_eq!(
            split_server("10.0.0.1:5353"),
            Some(("10.0.0.1".into(), 5353))
        );
        assert_eq!(split_server("10.0.0.1"), Some(("10.0.0.1".into(), 53)));
        assert_eq!(split_server("[::1]:54"), Some(("::1".into(), 54)));
        assert_eq!(split_server("fd00::53"), Some(("fd00::53".into(), 53)));
        assert_eq!(
            split_server("ns.example.org:53"),
            Some(("ns.example.org".into(), 53))
        );
        assert_eq!(split_server("ns.example.org:x"), None);
        assert_eq!(split_server(":53"), None);
    }

    #[test]
    fn the_system_resolver_is_the_first_usable_nameserver() {
        let conf = "# generated\nsearch example.org\nnameserver fe80::1%eth0\nnameserver 10.96.0.10\nnameserver 1.1.1.1\n";
        assert_eq!(
            system_nameserver(conf),
            Some("10.96.0.10:53".parse().unwrap())
        );
        assert_eq!(system_nameserver("search x\n"), None);
    }

    #[test]
    fn the_query_carries_the_name_type_and_recursion_flag() {
        let spec: DnsSpec =
            crate::scenario::yaml::from_str("{name: app.test, type: mx, recursion: false}")
                .unwrap();
        let q = Question {
            name: parse_name(spec.name.as_deref().unwrap()).unwrap(),
            type_name: "MX",
            record_type: record_type(spec.record_type.as_deref()).unwrap().1,
            protocol: Protocol::Tcp,
            recursion: spec.recursion.unwrap_or(true),
        };
        let (id, bytes) = q.encode(Protocol::Tcp).unwrap();
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, id);
        assert!(!m.metadata.recursion_desired);
        assert_eq!(m.queries[0].query_type(), RecordType::MX);
        assert_eq!(m.queries[0].name().to_utf8(), "app.test.");
        assert!(m.edns.is_none(), "EDNS only over UDP");
        let (_, udp) = q.encode(Protocol::Udp).unwrap();
        let m = Message::from_vec(&udp).unwrap();
        assert_eq!(m.edns.map(|e| e.max_payload()), Some(UDP_PAYLOAD));
    }

    #[test]
    fn record_data_reads_as_documented() {
        let name = |s: &str| Name::from_utf8(s).unwrap();
        use hickory_proto::rr::rdata::{CNAME, MX, SOA, SRV, TXT};
        assert_eq!(
            rdata_text(&RData::MX(MX::new(10, name("mail.example.org.")))),
            Some("10 mail.example.org".into())
        );
        assert_eq!(
            rdata_text(&RData::CNAME(CNAME(name("app.test.")))),
            Some("app.test".into())
        );
        assert_eq!(
            rdata_text(&RData::TXT(TXT::new(vec!["v=spf1 ".into(), "-all".into()]))),
            Some("v=spf1 -all".into())
        );
        assert_eq!(
            rdata_text(&RData::SRV(SRV::new(1, 5, 8080, name("app.test.")))),
            Some("1 5 8080 app.test".into())
        );
        let soa = SOA::new(
            name("ns.test."),
            name("admin.test."),
            7,
            3600,
            600,
            86400,
            300,
        );
        assert_eq!(
            rdata_text(&RData::SOA(soa)),
            Some("ns.test admin.test 7 3600 600 86400 300".into())
        );
        assert_eq!(rcode_text(ResponseCode::NXDomain), "NXDOMAIN");
        assert_eq!(rcode_text(ResponseCode::Unknown(3841)), "RCODE3841");
    }
}
