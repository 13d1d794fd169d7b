//! Secured connections: what went wrong when a TLS or SASL connection to the
//! brokers fails, and which settings of a channel put its traffic or its
//! secrets at risk.
//!
//! librdkafka reports a failed connection as text, and the same text covers
//! several causes ("certificate verify failed" is said for an unknown CA, an
//! expired certificate and a hostname mismatch alike). The rules here turn
//! that text, or the X.509 verification code a TLS probe obtained, into one
//! [`ConnectFailure`] that says what is wrong and what to change. They are
//! pure: the Kafka crate does the probing and the CLI picks the exit code.

use crate::config::KafkaChannelConfig;

/// Why a connection to the brokers could not be set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectFailure {
    /// The brokers' certificate chain does not lead to a trusted CA.
    UntrustedCertificate { detail: String },
    /// The brokers' certificate (or one in its chain) has expired.
    ExpiredCertificate,
    /// The brokers' certificate is not valid yet (clock skew?).
    CertificateNotYetValid,
    /// The certificate does not name the host the client connected to.
    HostnameMismatch { host: String },
    /// TLS failed for another reason (protocol version, cipher, a bad
    /// client certificate...).
    TlsHandshake { detail: String },
    /// The client speaks TLS but the port does not (a plaintext listener).
    TlsToPlaintextPort,
    /// The client speaks plaintext but the port expects TLS.
    PlaintextToTlsPort,
    /// SASL authentication was refused: wrong user name or password.
    AuthenticationFailed { detail: String },
    /// The broker does not offer the configured SASL mechanism.
    MechanismNotOffered { mechanism: String, offered: String },
}

impl ConnectFailure {
    /// True for TLS problems (exit code 7), false for SASL ones (8).
    pub fn is_tls(&self) -> bool {
        !matches!(
            self,
            ConnectFailure::AuthenticationFailed { .. }
                | ConnectFailure::MechanismNotOffered { .. }
        )
    }

    /// What went wrong, in a sentence.
    pub fn message(&self) -> String {
        match self {
            ConnectFailure::UntrustedCertificate { detail } => {
                format!("the brokers' TLS certificate is not trusted ({detail})")
            }
            ConnectFailure::ExpiredCertificate => {
                "the brokers' TLS certificate has expired".into()
            }
            ConnectFailure::CertificateNotYetValid => {
                "the brokers' TLS certificate is not valid yet".into()
            }
            ConnectFailure::HostnameMismatch { host } => {
                format!("the brokers' TLS certificate does not name the host {host:?}")
            }
            ConnectFailure::TlsHandshake { detail } => format!("the TLS handshake failed: {detail}"),
            ConnectFailure::TlsToPlaintextPort => {
                "the client speaks TLS but the broker's port does not answer TLS (a plaintext listener?)".into()
            }
            ConnectFailure::PlaintextToTlsPort => {
                "the client speaks plaintext but the broker's port expects TLS".into()
            }
            ConnectFailure::AuthenticationFailed { detail } => {
                format!("SASL authentication failed ({detail})")
            }
            ConnectFailure::MechanismNotOffered { mechanism, offered } => format!(
                "the broker does not offer SASL mechanism {mechanism:?} (it offers: {offered})"
            ),
        }
    }

    /// What to change.
    pub fn hint(&self) -> &'static str {
        match self {
            ConnectFailure::UntrustedCertificate { .. } => {
                "set properties.\"ssl.ca.location\" to the PEM file of the CA that signed the brokers' certificates"
            }
            ConnectFailure::ExpiredCertificate => {
                "the brokers' administrator must renew their certificate; check this host's clock too"
            }
            ConnectFailure::CertificateNotYetValid => {
                "check this host's clock, or wait until the certificate's start date"
            }
            ConnectFailure::HostnameMismatch { .. } => {
                "list the brokers under a name their certificate holds (its subjectAltName), or have the certificate reissued with this name"
            }
            ConnectFailure::TlsHandshake { .. } => {
                "check security.protocol, the ssl.* properties and the brokers' TLS settings"
            }
            ConnectFailure::TlsToPlaintextPort => {
                "use the brokers' TLS port, or set security.protocol to PLAINTEXT (SASL_PLAINTEXT) if this port is meant to be plaintext"
            }
            ConnectFailure::PlaintextToTlsPort => {
                "set properties.\"security.protocol\" to SSL (or SASL_SSL with SASL)"
            }
            ConnectFailure::AuthenticationFailed { .. } => {
                "check sasl.username and sasl.password (the ${VAR} they name), and that the user exists for this mechanism"
            }
            ConnectFailure::MechanismNotOffered { .. } => {
                "set properties.\"sasl.mechanism\" to one the broker offers"
            }
        }
    }
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (hint: {})", self.message(), self.hint())
    }
}

/// The failure a librdkafka error text names, when the text alone says
/// which. "certificate verify failed" alone does not (see
/// [`is_certificate_failure`]); the caller probes for the reason.
pub fn classify_client_error(text: &str) -> Option<ConnectFailure> {
    let lower = text.to_ascii_lowercase();
    if lower.contains("unsupported sasl mechanism") || lower.contains("mechanism handshake failed")
    {
        // "SASL SCRAM-SHA-512 mechanism handshake failed: Broker: Unsupported
        // SASL mechanism: broker's supported mechanisms: PLAIN", or, from a
        // broker that hangs up instead of answering (Tansu 0.6), "SASL PLAIN
        // mechanism handshake failed: Local: Broker transport failure:
        // broker's supported mechanisms: (n/a)".
        let mechanism = text
            .split("SASL ")
            .nth(1)
            .and_then(|r| r.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        let offered = text
            .split("supported mechanisms:")
            .nth(1)
            .map(first_clause)
            .filter(|o| !o.is_empty() && o != "(n/a)")
            .unwrap_or_else(|| "not said: the broker closed the connection".into());
        return Some(ConnectFailure::MechanismNotOffered { mechanism, offered });
    }
    if lower.contains("sasl authentication error")
        || lower.contains("authentication failed")
        || lower.contains("invalid-proof")
        || lower.contains("invalid username or password")
    {
        let detail = text
            .split_once("SASL authentication error: ")
            .map(|(_, r)| first_clause(r))
            .unwrap_or_else(|| first_clause(text));
        return Some(ConnectFailure::AuthenticationFailed { detail });
    }
    if lower.contains("certificate has expired") {
        return Some(ConnectFailure::ExpiredCertificate);
    }
    if lower.contains("hostname mismatch") {
        return Some(ConnectFailure::HostnameMismatch {
            host: String::new(),
        });
    }
    if lower.contains("connecting to a ssl listener")
        || lower.contains("connecting to an ssl listener")
    {
        return Some(ConnectFailure::PlaintextToTlsPort);
    }
    if lower.contains("wrong version number") || lower.contains("connecting to a plaintext") {
        return Some(ConnectFailure::TlsToPlaintextPort);
    }
    None
}

/// True when `text` is librdkafka's report of a certificate it could not
/// verify, whose cause a probe must find.
pub fn is_certificate_failure(text: &str) -> bool {
    text.to_ascii_lowercase()
        .contains("certificate verify failed")
}

/// True when `text` reports a failed TLS handshake of any kind.
pub fn is_tls_failure(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("ssl handshake failed") || is_certificate_failure(text)
}

/// The failure an X.509 verification result code names (OpenSSL's
/// `X509_V_ERR_*`), for a certificate presented by `host`.
pub fn classify_verify_code(code: i32, text: &str, host: &str) -> ConnectFailure {
    match code {
        // CERT_NOT_YET_VALID, CRL_NOT_YET_VALID
        9 | 11 => ConnectFailure::CertificateNotYetValid,
        // CERT_HAS_EXPIRED, CRL_HAS_EXPIRED
        10 | 12 => ConnectFailure::ExpiredCertificate,
        // HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH
        62 | 64 => ConnectFailure::HostnameMismatch {
            host: host.to_string(),
        },
        // UNABLE_TO_GET_ISSUER_CERT(_LOCALLY), DEPTH_ZERO_SELF_SIGNED_CERT,
        // SELF_SIGNED_CERT_IN_CHAIN, UNABLE_TO_VERIFY_LEAF_SIGNATURE,
        // CERT_UNTRUSTED
        2 | 18 | 19 | 20 | 21 | 27 => ConnectFailure::UntrustedCertificate {
            detail: text.to_string(),
        },
        _ => ConnectFailure::TlsHandshake {
            detail: text.to_string(),
        },
    }
}

fn first_clause(s: &str) -> String {
    let s = s.trim();
    let end = s.find(" (after ").unwrap_or(s.len());
    s[..end].trim().to_string()
}

/// One risky setting of a channel: the property, why it is risky, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RiskySetting {
    pub property: String,
    pub message: String,
    pub hint: String,
}

/// The channel's property `key` as written (librdkafka's names are
/// matched without regard to case), `${VAR}` not expanded.
pub fn property<'a>(ch: &'a KafkaChannelConfig, key: &str) -> Option<&'a str> {
    ch.properties
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v.as_str())
}

/// Settings of `ch` that expose credentials or traffic, or turn off checks:
/// SASL over plaintext (worst with PLAIN, whose password crosses the wire as
/// is), certificate or hostname verification turned off, and secrets
/// written in the config file instead of `${VAR}`.
pub fn risky_settings(ch: &KafkaChannelConfig) -> Vec<RiskySetting> {
    let mut out = Vec::new();
    let protocol = property(ch, "security.protocol")
        .unwrap_or("PLAINTEXT")
        .to_ascii_uppercase();
    let mechanism = property(ch, "sasl.mechanism")
        .or_else(|| property(ch, "sasl.mechanisms"))
        .unwrap_or("GSSAPI")
        .to_ascii_uppercase();
    if protocol == "SASL_PLAINTEXT" {
        let message = if mechanism == "PLAIN" {
            "SASL PLAIN over a plaintext connection sends the password unencrypted".to_string()
        } else {
            format!("SASL over a plaintext connection: messages (and the {mechanism} exchange) cross the network unencrypted")
        };
        out.push(RiskySetting {
            property: "security.protocol".into(),
            message,
            hint: "use SASL_SSL".into(),
        });
    }
    if property(ch, "enable.ssl.certificate.verification")
        .is_some_and(|v| v.eq_ignore_ascii_case("false") || v == "0")
    {
        out.push(RiskySetting {
            property: "enable.ssl.certificate.verification".into(),
            message: "the brokers' certificates are not verified: anyone on the path can pose as the brokers".into(),
            hint: "remove it and set ssl.ca.location to the CA of the brokers' certificates".into(),
        });
    }
    if property(ch, "ssl.endpoint.identification.algorithm")
        .is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        out.push(RiskySetting {
            property: "ssl.endpoint.identification.algorithm".into(),
            message: "the brokers' certificates are not checked against their host names".into(),
            hint: "remove it (the default, https, checks them)".into(),
        });
    }
    for (k, v) in &ch.properties {
        if crate::config::is_secret_property(k) && !v.contains("${") && !v.is_empty() {
            out.push(RiskySetting {
                property: k.clone(),
                message: "a secret is written in the config file".into(),
                hint: format!("write \"${{VAR}}\" and export VAR where spk runs (e.g. {k}: \"${{KAFKA_PASSWORD}}\")"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // Texts as librdkafka 2.12 wrote them here, against Tansu and stunnel.
    const UNTRUSTED: &str = "ssl://127.0.0.1:19095/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed (install ca-certificates package) (after 3ms in state SSL_HANDSHAKE)";
    const BAD_PROOF: &str = "sasl_plaintext://127.0.0.1:19092/bootstrap: SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof (after 51ms in state AUTH_REQ)";
    const NO_MECH: &str = "sasl_plaintext://127.0.0.1:19094/bootstrap: SASL SCRAM-SHA-512 mechanism handshake failed: Broker: Unsupported SASL mechanism: broker's supported mechanisms: PLAIN (after 0ms in state AUTH_HANDSHAKE)";
    const HUNG_UP: &str = "sasl_ssl://127.0.0.1:32907/bootstrap: SASL PLAIN mechanism handshake failed: Local: Broker transport failure: broker's supported mechanisms: (n/a) (after 0ms in state DOWN)";
    const TO_SSL: &str = "127.0.0.1:9093/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request) (after 0ms in state APIVERSION_QUERY)";

    #[test]
    fn sasl_failures_are_named() {
        assert_eq!(
            classify_client_error(BAD_PROOF),
            Some(ConnectFailure::AuthenticationFailed {
                detail: "SASL SCRAM authentication failed: broker responded with invalid-proof"
                    .into()
            })
        );
        assert_eq!(
            classify_client_error(NO_MECH),
            Some(ConnectFailure::MechanismNotOffered {
                mechanism: "SCRAM-SHA-512".into(),
                offered: "PLAIN".into()
            })
        );
        assert_eq!(
            classify_client_error(HUNG_UP),
            Some(ConnectFailure::MechanismNotOffered {
                mechanism: "PLAIN".into(),
                offered: "not said: the broker closed the connection".into()
            })
        );
        assert!(!classify_client_error(BAD_PROOF).unwrap().is_tls());
        assert!(!classify_client_error(NO_MECH).unwrap().is_tls());
    }

    #[test]
    fn certificate_failures_need_a_probe() {
        assert_eq!(classify_client_error(UNTRUSTED), None);
        assert!(is_certificate_failure(UNTRUSTED));
        assert!(is_tls_failure(UNTRUSTED));
        assert!(!is_tls_failure(BAD_PROOF));
        assert!(!is_certificate_failure("1/1 brokers are down"));
    }

    #[test]
    fn protocol_mismatches_are_named() {
        assert_eq!(
            classify_client_error(TO_SSL),
            Some(ConnectFailure::PlaintextToTlsPort)
        );
        assert_eq!(
            classify_client_error(
                "SSL handshake failed: error:0A00010B:SSL routines::wrong version number"
            ),
            Some(ConnectFailure::TlsToPlaintextPort)
        );
        assert_eq!(classify_client_error("1/1 brokers are down"), None);
        assert_eq!(classify_client_error("Connection refused"), None);
    }

    #[test]
    fn verify_codes_map_to_causes() {
        assert_eq!(
            classify_verify_code(10, "certificate has expired", "h"),
            ConnectFailure::ExpiredCertificate
        );
        assert_eq!(
            classify_verify_code(62, "hostname mismatch", "broker1"),
            ConnectFailure::HostnameMismatch {
                host: "broker1".into()
            }
        );
        assert!(matches!(
            classify_verify_code(20, "unable to get local issuer certificate", "h"),
            ConnectFailure::UntrustedCertificate { .. }
        ));
        assert!(matches!(
            classify_verify_code(19, "self-signed certificate in certificate chain", "h"),
            ConnectFailure::UntrustedCertificate { .. }
        ));
        assert!(matches!(
            classify_verify_code(50, "x", "h"),
            ConnectFailure::TlsHandshake { .. }
        ));
        for c in [9, 10, 20, 62, 50] {
            assert!(classify_verify_code(c, "", "h").is_tls());
        }
    }

    fn channel(props: &[(&str, &str)]) -> KafkaChannelConfig {
        KafkaChannelConfig {
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn risky(props: &[(&str, &str)]) -> Vec<String> {
        risky_settings(&channel(props))
            .into_iter()
            .map(|r| r.property)
            .collect()
    }

    #[test]
    fn risky_settings_are_found() {
        assert_eq!(risky(&[]), Vec::<String>::new());
        assert_eq!(
            risky(&[
                ("security.protocol", "SASL_SSL"),
                ("sasl.mechanism", "SCRAM-SHA-512"),
                ("sasl.password", "${PW}"),
                ("ssl.ca.location", "/etc/ca.pem"),
            ]),
            Vec::<String>::new()
        );
        assert_eq!(
            risky(&[
                ("security.protocol", "sasl_plaintext"),
                ("sasl.mechanism", "PLAIN")
            ]),
            ["security.protocol"]
        );
        let plain = risky_settings(&channel(&[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
        ]));
        assert!(
            plain[0].message.contains("password unencrypted"),
            "{plain:?}"
        );
        assert_eq!(
            risky(&[("enable.ssl.certificate.verification", "false")]),
            ["enable.ssl.certificate.verification"]
        );
        assert_eq!(
            risky(&[("ssl.endpoint.identification.algorithm", "none")]),
            ["ssl.endpoint.identification.algorithm"]
        );
        assert_eq!(
            risky(&[("sasl.password", "hunter2"), ("ssl.key.password", "${K}")]),
            ["sasl.password"]
        );
    }

    #[test]
    fn a_risky_secret_is_never_quoted() {
        for r in risky_settings(&channel(&[("sasl.password", "hunter2")])) {
            assert!(!r.message.contains("hunter2") && !r.hint.contains("hunter2"));
        }
    }
}
