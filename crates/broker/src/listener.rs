//! Kafka's listeners: `NAME://HOST:PORT` entries, each with a security
//! protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). A listener's name is
//! its protocol unless `listener.security.protocol.map` names it otherwise
//! (`INTERNAL:SSL`). Metadata gives each client the brokers' endpoints of the
//! listener it connected to, as Kafka does.

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn parse(name: &str) -> Option<SecurityProtocol> {
        Some(match name.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
    pub fn tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }
    pub fn sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// One listener: where it binds, what it speaks, what clients are told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenerConfig {
    /// Upper case, as Kafka keeps listener names.
    pub name: String,
    pub protocol: SecurityProtocol,
    pub bind: SocketAddr,
    /// Host and port in Metadata; None: the bound address (port 0 resolved).
    pub advertised: Option<(String, u16)>,
}

/// Where a broker is reachable on one listener (Metadata's broker entry).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub listener: String,
    pub host: String,
    pub port: i32,
}

/// Largest number of listeners of one broker.
pub const LISTENERS_MAX: usize = 16;

fn split_entry(entry: &str) -> Result<(String, String, u16), String> {
    let (name, rest) = entry
        .split_once("://")
        .ok_or_else(|| format!("listener {entry:?} is not NAME://HOST:PORT"))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("listener {entry:?} has no port"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("listener {entry:?}: bad port {port:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(format!("listener {entry:?} has no name"));
    }
    Ok((name.to_ascii_uppercase(), host.to_string(), port))
}

/// Parses `listener.security.protocol.map` (`INTERNAL:SSL,EXTERNAL:SASL_SSL`).
pub fn parse_protocol_map(map: &str) -> Result<Vec<(String, SecurityProtocol)>, String> {
    map.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|e| {
            let (name, proto) = e
                .split_once(':')
                .ok_or_else(|| format!("protocol map entry {e:?} is not NAME:PROTOCOL"))?;
            let p = SecurityProtocol::parse(proto)
                .ok_or_else(|| format!("unknown security protocol {proto:?}"))?;
            Ok((name.trim().to_ascii_uppercase(), p))
        })
        .collect()
}

/// Parses `--listeners` (and `--advertised-listeners`, matched by name).
/// An empty host binds every interface (`PLAINTEXT://:9092`), as in Kafka.
pub fn parse_listeners(
    listeners: &str,
    advertised: Option<&str>,
    protocol_map: &[(String, SecurityProtocol)],
) -> Result<Vec<ListenerConfig>, String> {
    let mut out: Vec<ListenerConfig> = Vec::new();
    for entry in listeners
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
    {
        let (name, host, port) = split_entry(entry)?;
        let protocol = protocol_map
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .or_else(|| SecurityProtocol::parse(&name))
            .ok_or_else(|| {
                format!(
                    "listener {name}: not a security protocol and not in --listener-security-protocol-map"
                )
            })?;
        let host = if host.is_empty() { "0.0.0.0" } else { &host };
        let bind = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("listener {entry:?}: {e}"))?
            .next()
            .ok_or_else(|| format!("listener {entry:?}: no address"))?;
        if out.iter().any(|l| l.name == name) {
            return Err(format!("listener {name} appears twice"));
        }
        out.push(ListenerConfig {
            name,
            protocol,
            bind,
            advertised: None,
        });
    }
    if out.is_empty() {
        return Err("no listener given".into());
    }
    if out.len() > LISTENERS_MAX {
        return Err(format!("at most {LISTENERS_MAX} listeners"));
    }
    if let Some(adv) = advertised {
        for entry in adv.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, host, port) = split_entry(entry)?;
            let l = out
                .iter_mut()
                .find(|l| l.name == name)
                .ok_or_else(|| format!("advertised listener {name} is not a listener"))?;
            if host.is_empty() {
                return Err(format!("advertised listener {name} needs a host"));
            }
            l.advertised = Some((host, port));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_listener_syntax() {
        let map = parse_protocol_map("INTERNAL:SSL").unwrap();
        let l = parse_listeners(
            "PLAINTEXT://127.0.0.1:9092,SASL_SSL://:9093,internal://127.0.0.1:0",
            Some("SASL_SSL://kafka.example.com:443"),
            &map,
        )
        .unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[0].protocol, SecurityProtocol::Plaintext);
        assert_eq!(l[1].protocol, SecurityProtocol::SaslSsl);
        assert_eq!(l[1].bind.to_string(), "0.0.0.0:9093");
        assert_eq!(l[1].advertised, Some(("kafka.example.com".into(), 443)));
        assert_eq!(l[2].name, "INTERNAL");
        assert_eq!(l[2].protocol, SecurityProtocol::Ssl);
    }

    #[test]
    fn refuses_bad_listeners() {
        assert!(parse_listeners("FOO://127.0.0.1:1", None, &[]).is_err());
        assert!(parse_listeners("PLAINTEXT://127.0.0.1", None, &[]).is_err());
        assert!(
            parse_listeners("PLAINTEXT://127.0.0.1:1,PLAINTEXT://127.0.0.1:2", None, &[]).is_err()
        );
        assert!(parse_listeners("PLAINTEXT://127.0.0.1:1", Some("SSL://h:1"), &[]).is_err());
        assert!(parse_listeners("", None, &[]).is_err());
    }
}
