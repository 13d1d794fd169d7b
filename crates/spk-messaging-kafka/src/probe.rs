//! Finding out why a connection failed, when librdkafka's text does not say.
//!
//! librdkafka reports "certificate verify failed" for an unknown CA, an
//! expired certificate and a hostname mismatch alike, says nothing at all
//! when TLS is spoken to a plaintext port that keeps waiting, and only
//! "brokers are down" when plaintext reaches a TLS port. So on a failed
//! connection we shake hands with a broker ourselves, with OpenSSL (the
//! same library librdkafka uses here) and the channel's own TLS settings,
//! and read the verification result. Only failure paths probe, once per
//! client, and each probe is bounded by [`PROBE_TIMEOUT`].

use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use openssl::ssl::{HandshakeError, SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509VerifyResult;
use spk_messaging_core::config::{expand_env, KafkaChannelConfig};
use spk_messaging_core::security::{
    self, classify_client_error, classify_verify_code, ConnectFailure,
};

/// How long a probe may take per broker.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Where CA bundles usually live (librdkafka's `probe` list, abridged): a
/// vendored OpenSSL does not know the system's.
const CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/ssl/cert.pem",
];

/// What one handshake with a broker showed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Probe {
    /// The TLS handshake (with the checks asked for) succeeded.
    TlsOk,
    /// A TLS server answered, and the handshake failed for this reason.
    TlsFailed(ConnectFailure),
    /// The port accepted the connection but did not answer TLS.
    NotTls,
    /// No connection at all.
    Unreachable,
}

/// The channel's property `key`, `${VAR}` expanded.
fn prop(ch: &KafkaChannelConfig, key: &str) -> Option<String> {
    security::property(ch, key).and_then(|v| expand_env(v).ok())
}

fn uses_tls(ch: &KafkaChannelConfig) -> bool {
    prop(ch, "security.protocol")
        .is_some_and(|p| p.eq_ignore_ascii_case("SSL") || p.eq_ignore_ascii_case("SASL_SSL"))
}

fn split_host_port(broker: &str) -> Option<(&str, u16)> {
    let b = broker.split("://").last().unwrap_or(broker);
    let (host, port) = b.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host, port.parse().ok()?))
}

/// A connector with the channel's TLS settings; `verify` false turns every
/// check off (used to learn whether a port speaks TLS at all).
fn connector(
    ch: &KafkaChannelConfig,
    verify: bool,
) -> Result<SslConnector, openssl::error::ErrorStack> {
    let mut b = SslConnector::builder(SslMethod::tls_client())?;
    let verification_off = prop(ch, "enable.ssl.certificate.verification")
        .is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0");
    if !verify || verification_off {
        b.set_verify(SslVerifyMode::NONE);
    }
    match prop(ch, "ssl.ca.location") {
        Some(loc) if loc != "probe" && Path::new(&loc).is_dir() => {
            let lookup = b
                .cert_store_mut()
                .add_lookup(openssl::x509::store::X509Lookup::hash_dir())?;
            lookup.add_dir(&loc, SslFiletype::PEM)?;
        }
        Some(loc) if loc != "probe" => {
            // An unreadable file is a verification failure to report, not
            // a reason to give up probing.
            let _ = b.set_ca_file(&loc);
        }
        _ => {
            if let Some(bundle) = CA_BUNDLES.iter().find(|p| Path::new(p).is_file()) {
                let _ = b.set_ca_file(bundle);
            }
        }
    }
    if let (Some(cert), Some(key)) = (
        prop(ch, "ssl.certificate.location"),
        prop(ch, "ssl.key.location"),
    ) {
        let _ = b.set_certificate_chain_file(cert);
        let _ = b.set_private_key_file(key, SslFiletype::PEM);
    }
    Ok(b.build())
}

fn probe(ch: &KafkaChannelConfig, broker: &str, verify: bool) -> Probe {
    let Some((host, port)) = split_host_port(broker) else {
        return Probe::Unreachable;
    };
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return Probe::Unreachable;
    };
    let Some(stream) = addrs
        .into_iter()
        .find_map(|a| TcpStream::connect_timeout(&a, PROBE_TIMEOUT).ok())
    else {
        return Probe::Unreachable;
    };
    let _ = stream.set_read_timeout(Some(PROBE_TIMEOUT));
    let _ = stream.set_write_timeout(Some(PROBE_TIMEOUT));
    let Ok(conn) = connector(ch, verify) else {
        return Probe::Unreachable;
    };
    let hostname_check = prop(ch, "ssl.endpoint.identification.algorithm")
        .is_none_or(|a| !a.eq_ignore_ascii_case("none"));
    let config = match conn.configure() {
        Ok(c) => c.verify_hostname(verify && hostname_check),
        Err(_) => return Probe::Unreachable,
    };
    match config.connect(host, stream) {
        Ok(_) => Probe::TlsOk,
        Err(HandshakeError::Failure(mid)) => {
            let v = mid.ssl().verify_result();
            if v != X509VerifyResult::OK {
                return Probe::TlsFailed(classify_verify_code(v.as_raw(), v.error_string(), host));
            }
            let text = mid.error().to_string();
            let lower = text.to_ascii_lowercase();
            if lower.contains("wrong version number")
                || lower.contains("packet length too long")
                || lower.contains("http request")
                || lower.contains("unexpected eof")
                || mid.error().ssl_error().is_none()
            {
                Probe::NotTls
            } else {
                Probe::TlsFailed(ConnectFailure::TlsHandshake { detail: text })
            }
        }
        // A read that timed out: the port keeps waiting for more than a
        // TLS client says.
        Err(HandshakeError::WouldBlock(_)) => Probe::NotTls,
        Err(HandshakeError::SetupFailure(_)) => Probe::Unreachable,
    }
}

/// Why `ch`'s brokers could not be used, given what the client said
/// (`errors`, possibly empty): from the text when it says, else from a
/// handshake with the first reachable broker. `None` when neither shows a
/// TLS or SASL problem (the brokers are down, the cause is elsewhere).
pub fn diagnose(ch: &KafkaChannelConfig, errors: &str) -> Option<ConnectFailure> {
    if let Some(f) = classify_client_error(errors) {
        return Some(f);
    }
    let tls = uses_tls(ch);
    for broker in ch.brokers.iter().take(3) {
        match (tls, probe(ch, broker, tls)) {
            (_, Probe::Unreachable) => continue,
            (true, Probe::TlsOk) | (false, Probe::NotTls) => return None,
            (true, Probe::TlsFailed(f)) => return Some(f),
            (true, Probe::NotTls) => return Some(ConnectFailure::TlsToPlaintextPort),
            (false, Probe::TlsOk | Probe::TlsFailed(_)) => {
                return Some(ConnectFailure::PlaintextToTlsPort)
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_addresses_split() {
        assert_eq!(split_host_port("localhost:9093"), Some(("localhost", 9093)));
        assert_eq!(split_host_port("SSL://b1:9093"), Some(("b1", 9093)));
        assert_eq!(split_host_port("[::1]:9093"), Some(("::1", 9093)));
        assert_eq!(split_host_port("nohost"), None);
    }

    #[test]
    fn an_unreachable_broker_is_no_diagnosis() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let ch = KafkaChannelConfig {
            brokers: vec![format!("127.0.0.1:{port}")],
            ..Default::default()
        };
        assert_eq!(diagnose(&ch, "Connection refused"), None);
    }

    #[test]
    fn a_silent_port_is_not_tls() {
        // A listener that accepts and never answers, like a Kafka
        // plaintext port reading a TLS hello as a frame length.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let keep = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            std::thread::sleep(PROBE_TIMEOUT + Duration::from_millis(500));
            drop(s);
        });
        let mut ch = KafkaChannelConfig {
            brokers: vec![addr.to_string()],
            ..Default::default()
        };
        ch.properties
            .insert("security.protocol".into(), "SSL".into());
        assert_eq!(diagnose(&ch, ""), Some(ConnectFailure::TlsToPlaintextPort));
        keep.join().unwrap();
    }

    #[test]
    fn the_text_wins_when_it_says() {
        let ch = KafkaChannelConfig::default();
        assert!(matches!(
            diagnose(&ch, "SASL authentication error: Authentication failed"),
            Some(ConnectFailure::AuthenticationFailed { .. })
        ));
    }
}
