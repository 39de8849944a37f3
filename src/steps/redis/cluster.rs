//! Redis Cluster: the crate's async cluster client built from the step's nodes (slot map
//! discovery, MOVED/ASK following, a few quick retries inside the command timeout), and which
//! primary owns a key's slot, for the `node` and `slot` outputs.

use std::time::Duration;

use redis::cluster::{ClusterClient, ClusterClientBuilder, TlsMode};
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::Value;

use super::conn::{self, Login, Target};
use super::{errors, RedisSpec};
use crate::outcome::Reason;
use crate::steps::{StepContext, StepError};

/// Redirects and reconnects a command may go through before it fails.
const RETRIES: u32 = 4;
/// Bounds of the wait between retries (ms): short, the command timeout bounds them all.
const MIN_RETRY_WAIT_MS: u64 = 10;
const MAX_RETRY_WAIT_MS: u64 = 200;

/// The cluster client of a `cluster:` spec and its display (`cluster a:1,b:2`).
pub(super) fn client(
    spec: &RedisSpec,
    entries: &[String],
    connect_timeout: Duration,
    command_timeout: Duration,
    ctx: &StepContext<'_>,
) -> Result<(ClusterClient, String), StepError> {
    let mut login: Login = conn::render_login(spec.username.as_ref(), spec.password.as_ref(), ctx)?;
    let nodes = conn::render_nodes(entries, spec.tls.is_some(), &mut login, ctx)?;
    let tls_on = nodes.iter().any(|n| n.tls);
    let tls = if tls_on {
        Some(conn::read_tls(spec.tls.as_ref(), ctx)?)
    } else {
        None
    };
    let addrs: Vec<String> = nodes.iter().map(|n| n.addr()).collect();
    let display = format!("cluster {}", addrs.join(","));
    let infos = nodes
        .iter()
        .map(|n| n.info(&Login::default(), 0, tls.as_ref()));
    let mut b = ClusterClientBuilder::new(infos)
        .connection_timeout(connect_timeout)
        .response_timeout(command_timeout)
        .retries(RETRIES)
        .min_retry_wait(MIN_RETRY_WAIT_MS)
        .max_retry_wait(MAX_RETRY_WAIT_MS);
    if let Some(u) = login.username {
        b = b.username(u);
    }
    if let Some(p) = login.password {
        b = b.password(p);
    }
    if let Some(t) = tls {
        if let Some(certs) = t.certs {
            b = b.certs(certs);
        }
        b = b.tls(if t.insecure {
            TlsMode::Insecure
        } else {
            TlsMode::Secure
        });
    }
    let client = b
        .build()
        .map_err(|e| StepError::new(Reason::Config, format!("{display}: {e}")))?;
    Ok((client, display))
}

/// Connects to the seed nodes, reads the slot map and connects to every node in it.
pub(super) async fn connect(
    client: &ClusterClient,
    target: &Target,
) -> Result<redis::cluster_async::ClusterConnection, StepError> {
    // Seeds, then CLUSTER SLOTS, then the other nodes: two connects and one reply at most.
    let limit = target.connect_timeout * 2 + target.command_timeout;
    match tokio::time::timeout(limit, client.get_async_connection()).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(errors::step_error(&e, "connect", &target.display)),
        Err(_) => Err(conn::no_answer("connect to", &target.display, limit)),
    }
}

/// A command that still got MOVED after the client's retries: when the node it names cannot
/// be reached (a dead or unreachable primary), that is a `connect` failure naming the node;
/// otherwise the slot keeps moving, a `cache` failure.
pub(super) async fn explain_moved(
    e: &redis::RedisError,
    what: &str,
    target: &Target,
) -> Option<StepError> {
    let (addr, slot) = e.redirect_node()?;
    let addr = addr.to_string();
    let reach = tokio::net::TcpStream::connect(addr.as_str());
    let cause = match tokio::time::timeout(target.connect_timeout, reach).await {
        Ok(Ok(_)) => return None,
        Ok(Err(io)) => io.to_string(),
        Err(_) => format!(
            "no answer within {}",
            crate::units::format_duration(target.connect_timeout)
        ),
    };
    Some(StepError::new(
        Reason::Connect,
        format!(
            "{what} on {}: slot {slot} is served by {addr}, which cannot be reached: {cause}",
            target.display
        ),
    ))
}

/// The hash slot of `key` (CRC16/XMODEM of the key or of its `{hash tag}`, mod 16384).
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|b| *b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            let close = rest.iter().position(|b| *b == b'}')?;
            (close > 0).then(|| &rest[..close])
        })
        .unwrap_or(key);
    crc16_xmodem(tagged) % 16384
}

fn crc16_xmodem(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for byte in data {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The `host:port` of the primary that owns `slot`, as the node serving that slot tells
/// (CLUSTER SLOTS, the command the client itself reads the slot map with).
pub(super) async fn slot_owner(
    con: &redis::cluster_async::ClusterConnection,
    slot: u16,
    display: &str,
) -> Result<String, StepError> {
    let mut con = con.clone();
    let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(Route::new(
        slot,
        SlotAddr::Master,
    )));
    let reply = con
        .route_command(redis::cmd("CLUSTER").arg("SLOTS"), route)
        .await
        .map_err(|e| errors::step_error(&e, "CLUSTER SLOTS", display))?;
    owner_in(&reply, slot).ok_or_else(|| {
        StepError::new(
            Reason::Cache,
            format!("CLUSTER SLOTS on {display}: no primary owns slot {slot}"),
        )
    })
}

/// Finds `slot` in a CLUSTER SLOTS reply: `[[start, end, [host, port, id, ...], replicas...]]`.
fn owner_in(reply: &Value, slot: u16) -> Option<String> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    ranges.iter().find_map(|range| {
        let Value::Array(r) = range else { return None };
        let (Some(Value::Int(start)), Some(Value::Int(end)), Some(Value::Array(primary))) =
            (r.first(), r.get(1), r.get(2))
        else {
            return None;
        };
        if !(*start..=*end).contains(&i64::from(slot)) {
            return None;
        }
        let host = match primary.first()? {
            Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
            Value::SimpleString(s) => s.clone(),
            _ => return None,
        };
        let Value::Int(port) = primary.get(1)? else {
            return None;
        };
        let port = u16::try_from(*port).ok()?;
        Some(
            conn::Node {
                host,
                port,
                tls: false,
            }
            .addr(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_match_redis() {
        // Values from CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"bar"), 5061);
        assert_eq!(key_slot(b"123456789"), 12739);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"foo{}{bar}"), crc16_xmodem(b"foo{}{bar}") % 16384);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
        assert_eq!(key_slot(b"foo{bar}{zap}"), key_slot(b"bar"));
    }

    #[test]
    fn the_owner_comes_from_the_range_holding_the_slot() {
        let node = |h: &str, p: i64| {
            Value::Array(vec![
                Value::BulkString(h.as_bytes().to_vec()),
                Value::Int(p),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(0),
                Value::Int(5460),
                node("10.0.0.1", 7000),
            ]),
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("10.0.0.2", 7001),
                node("10.0.0.3", 7002),
            ]),
        ]);
        assert_eq!(owner_in(&reply, 0).as_deref(), Some("10.0.0.1:7000"));
        assert_eq!(owner_in(&reply, 5461).as_deref(), Some("10.0.0.2:7001"));
        assert_eq!(owner_in(&Value::Array(vec![]), 1), None);
    }
}
