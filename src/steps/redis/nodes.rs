//! Where and as whom: the nodes of a `cluster` or `sentinel` list (`host:port` or redis:// /
//! rediss:// URLs, several per entry), their connection details, passwords found in URLs, and
//! the rendered login (user, secret password registered with the redactor).

use redis::{ConnectionAddr, ConnectionInfo, RedisConnectionInfo};

use super::conn::Tls;
use crate::outcome::Reason;
use crate::steps::{render_config, StepContext, StepError};

/// The login for data nodes or sentinels, rendered.
#[derive(Clone, Default)]
pub(super) struct Login {
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A node from a list: `host:port` or a redis:// / rediss:// URL.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Node {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl Node {
    pub(super) fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Connection details for this node with `login`, `db` and `tls`.
    pub(super) fn info(&self, login: &Login, db: i64, tls: Option<&Tls>) -> ConnectionInfo {
        let addr = match tls {
            Some(t) => ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: t.insecure,
                tls_params: None,
            },
            None => ConnectionAddr::Tcp(self.host.clone(), self.port),
        };
        ConnectionInfo {
            addr,
            redis: RedisConnectionInfo {
                db,
                username: login.username.clone(),
                password: login.password.clone(),
                ..Default::default()
            },
        }
    }
}

/// Parses `host:port`, `[v6]:port` or a redis:// / rediss:// URL (default port 6379);
/// `default_tls` applies to host:port.
pub(super) fn parse_node(s: &str, default_tls: bool) -> Result<Node, String> {
    if s.contains("://") {
        let u = url::Url::parse(s).map_err(|e| format!("invalid node URL: {e}"))?;
        let host = u
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| "a node URL needs a host".to_string())?;
        return Ok(Node {
            host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
            port: u.port().unwrap_or(6379),
            tls: u.scheme() == "rediss",
        });
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("a node is host:port, got `{s}`"))?;
    let host = host.trim_matches(|c| c == '[' || c == ']');
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("`{s}`: the port must be a number from 1 to 65535"))?;
    if host.is_empty() {
        return Err(format!("`{s}`: the host is missing"));
    }
    Ok(Node {
        host: host.to_string(),
        port,
        tls: default_tls,
    })
}

/// Renders a node list (entries may hold several nodes) and parses every node; a password in
/// a URL goes to the login and the redactor.
pub(super) fn render_nodes(
    entries: &[String],
    default_tls: bool,
    login: &mut Login,
    ctx: &StepContext<'_>,
) -> Result<Vec<Node>, StepError> {
    let mut nodes = Vec::new();
    for entry in entries {
        let rendered = render_config(entry, ctx.resolver)?;
        for s in super::spec::split_nodes(&rendered) {
            if let Some(pw) = url_password(s) {
                ctx.redactor.add("redis-password", pw);
                login.password.get_or_insert_with(|| pw.to_string());
            }
            nodes.push(parse_node(s, default_tls).map_err(|m| StepError::new(Reason::Config, m))?);
        }
    }
    if nodes.is_empty() {
        return Err(StepError::new(Reason::Config, "the node list is empty"));
    }
    Ok(nodes)
}

/// The password part of a `redis://user:password@host` URL, if any (`None` when the URL
/// has no password or no user-info).
pub(super) fn url_password(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    // User-info ends at the last `@` before the path.
    let authority = rest.split('/').next().unwrap_or(rest);
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, pw) = userinfo.split_once(':')?;
    (!pw.is_empty()).then_some(pw)
}

/// The step's login for the data nodes, passwords registered with the redactor.
pub(super) fn render_login(
    username: Option<&String>,
    password: Option<&String>,
    ctx: &StepContext<'_>,
) -> Result<Login, StepError> {
    let mut login = Login::default();
    if let Some(u) = username {
        login.username = Some(render_config(u, ctx.resolver)?);
    }
    if let Some(p) = password {
        let pw = render_config(p, ctx.resolver)?;
        ctx.redactor.add("redis-password", &pw);
        login.password = Some(pw);
    }
    Ok(login)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_passwords_in_user_info_only() {
        assert_eq!(url_password("redis://default:pw@h:6379/0"), Some("pw"));
        assert_eq!(url_password("rediss://:p@ss@h"), Some("p@ss"));
        assert_eq!(url_password("redis://user@h"), None);
        assert_eq!(url_password("redis://h:6379"), None);
        assert_eq!(url_password("redis://h/0?x=a:b@c"), None);
    }

    #[test]
    fn nodes_are_host_port_or_urls() {
        let n = |host: &str, port, tls| Node {
            host: host.into(),
            port,
            tls,
        };
        assert_eq!(
            parse_node("10.0.0.1:7000", false),
            Ok(n("10.0.0.1", 7000, false))
        );
        assert_eq!(
            parse_node("redis-0.redis:6379", true),
            Ok(n("redis-0.redis", 6379, true))
        );
        assert_eq!(parse_node("[::1]:7000", false), Ok(n("::1", 7000, false)));
        assert_eq!(parse_node("rediss://h", false), Ok(n("h", 6379, true)));
        assert_eq!(
            parse_node("redis://u:p@h:7001/0", true),
            Ok(n("h", 7001, false))
        );
        assert_eq!(n("::1", 7000, false).addr(), "[::1]:7000");
        for bad in ["h", "h:0", "h:x", ":6379", "h:70000"] {
            assert!(parse_node(bad, false).is_err(), "{bad}");
        }
    }
}
