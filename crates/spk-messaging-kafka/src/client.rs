//! Building librdkafka clients from a channel's config, and the context that
//! turns librdkafka's logs and errors into tracing events.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use rdkafka::client::{Client, ClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use spk_messaging_core::config::{expand_env, is_secret_property, ExpandError, KafkaChannelConfig};
use spk_messaging_core::security::{self, ConnectFailure};

/// A channel's config cannot become a Kafka client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("channel {channel:?} has no brokers; set messaging[].kafka.brokers")]
    NoBrokers { channel: String },
    #[error("channel {channel:?}: property {key:?}: {source}")]
    Property {
        channel: String,
        key: String,
        #[source]
        source: ExpandError,
    },
    /// librdkafka refused the configuration. The text is librdkafka's and
    /// names the property, never a secret value.
    #[error("channel {channel:?}: cannot create a Kafka client: {reason}")]
    Create { channel: String, reason: String },
}

/// The bootstrap list as librdkafka takes it.
pub fn bootstrap_servers(ch: &KafkaChannelConfig) -> String {
    ch.brokers.join(",")
}

/// `bootstrap.servers` and the channel's `properties` (with `${VAR}`
/// expanded), nothing role-specific: the base for producers, consumers and
/// checks alike. `defaults` are set first, so properties override them.
pub fn client_config(
    ch: &KafkaChannelConfig,
    defaults: &[(&str, String)],
) -> Result<ClientConfig, ClientError> {
    if ch.brokers.is_empty() {
        return Err(ClientError::NoBrokers {
            channel: ch.name.clone(),
        });
    }
    // OpenSSL (shared by librdkafka and the probe) is initialised here,
    // before the first client, the way rust-openssl does it: without its
    // clean-up at exit, which could run under librdkafka's threads (still
    // inside OpenSSL while a command exits) and crash the process. Commands
    // that make no client (`repo ls`) do not pay for it.
    openssl::init();
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap_servers(ch));
    cc.set("client.id", format!("spk-{}", ch.name));
    cc.set_log_level(RDKafkaLogLevel::Info);
    for (k, v) in defaults {
        cc.set(*k, v.as_str());
    }
    // OpenSSL is vendored, so its own default CA path is not the system's:
    // have librdkafka look in the usual places for the system's CA bundle,
    // unless the channel names its CA.
    if !ch
        .properties
        .keys()
        .any(|k| k == "ssl.ca.location" || k == "ssl.ca.pem")
    {
        cc.set("ssl.ca.location", "probe");
    }
    for (k, v) in &ch.properties {
        let value = expand_env(v).map_err(|source| ClientError::Property {
            channel: ch.name.clone(),
            key: k.clone(),
            source,
        })?;
        if is_secret_property(k) {
            tracing::debug!(channel = %ch.name, property = %k, "setting secret property (value not shown)");
        } else {
            tracing::debug!(channel = %ch.name, property = %k, value = %value, "setting property");
        }
        cc.set(k.as_str(), value);
    }
    Ok(cc)
}

/// Why librdkafka refused to create a client for `ch`, redacted, with
/// what to do when the cause is how this `spk` was built.
pub(crate) fn creation_error(ch: &KafkaChannelConfig, e: &KafkaError) -> ClientError {
    let mut reason = redact(ch, &e.to_string());
    if reason.contains("No provider for SASL mechanism GSSAPI") {
        reason.push_str(
            " (this spk is built without Kerberos: build it with `--features gssapi`, see docs/kafka.md)",
        );
    }
    ClientError::Create {
        channel: ch.name.clone(),
        reason,
    }
}

/// `text` with the value of every secret property of `ch` replaced by
/// `<redacted>`: librdkafka's configuration errors quote values.
pub(crate) fn redact(ch: &KafkaChannelConfig, text: &str) -> String {
    let mut out = text.to_string();
    for (k, v) in &ch.properties {
        if !is_secret_property(k) {
            continue;
        }
        for secret in [expand_env(v).unwrap_or_default(), v.clone()] {
            if !secret.is_empty() {
                out = out.replace(&secret, "<redacted>");
            }
        }
    }
    out
}

/// What the client has said went wrong: the last few distinct reasons,
/// oldest first ("Connection refused" is more telling than the "1/1 brokers
/// are down" that follows it). A reason that retrying cannot cure (a
/// certificate that does not verify, a refused password: see
/// [`is_fatal`]) is also kept as the *fatal* one, and wakes whoever waits
/// on [`ErrorLog::fatal_signal`], so that a send fails at once instead of
/// at its timeout.
#[derive(Debug, Default)]
pub(crate) struct ErrorLog {
    last: Mutex<Vec<String>>,
    fatal: Mutex<Fatal>,
}

#[derive(Debug, Default)]
struct Fatal {
    reason: Option<String>,
    /// When `reason` was last said: a fatal reason is *fresh* for
    /// [`FATAL_FRESH`], and only a fresh one ends waits. librdkafka says a
    /// lasting failure again at each reconnect, which keeps it fresh; a
    /// one-off (a TLS listener going down mid-handshake) goes stale, so a
    /// long-lived producer is not left failing every send.
    at: Option<Instant>,
    waiters: Vec<oneshot::Sender<()>>,
}

impl Fatal {
    fn fresh(&self) -> Option<&String> {
        match (&self.reason, self.at) {
            (Some(r), Some(at)) if at.elapsed() < FATAL_FRESH => Some(r),
            _ => None,
        }
    }
}

/// How long a fatal reason ends the waits that start after it.
const FATAL_FRESH: Duration = Duration::from_secs(2);

const KEPT_ERRORS: usize = 3;

/// A client error that retrying will not cure: a certificate that does not
/// verify, a SASL exchange the broker refused, TLS and plaintext mixed up.
/// (A TLS handshake cut short is not one of them: a broker restarting does
/// that.)
pub(crate) fn is_fatal(reason: &str) -> bool {
    security::is_certificate_failure(reason) || security::classify_client_error(reason).is_some()
}

impl ErrorLog {
    pub(crate) fn record(&self, what: String) {
        if is_fatal(&what) {
            self.set_fatal(what.clone());
        }
        let mut v = self.last.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|w| *w != what);
        v.push(what);
        if v.len() > KEPT_ERRORS {
            v.remove(0);
        }
    }
    pub(crate) fn last(&self) -> Option<String> {
        let v = self.last.lock().unwrap_or_else(|e| e.into_inner());
        (!v.is_empty()).then(|| v.join("; "))
    }
    /// The fatal reason said in the last [`FATAL_FRESH`], if any.
    pub(crate) fn fatal(&self) -> Option<String> {
        self.fatal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .fresh()
            .cloned()
    }
    /// Records `reason` as fatal (said by the client, or found by a probe)
    /// and wakes the waiters.
    pub(crate) fn set_fatal(&self, reason: String) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        f.reason = Some(reason);
        f.at = Some(Instant::now());
        for w in f.waiters.drain(..) {
            let _ = w.send(());
        }
    }
    /// Forgets the fatal reason: the brokers took a message since.
    pub(crate) fn clear_fatal(&self) {
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        f.reason = None;
        f.at = None;
    }
    /// Resolves when a fatal reason is recorded, or at once if a fresh one
    /// was.
    pub(crate) fn fatal_signal(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        let mut f = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if f.fresh().is_some() {
            let _ = tx.send(());
        } else {
            // Waits that ended dropped their receivers: forget them, so a
            // long-lived producer's list stays as short as its pending
            // sends.
            f.waiters.retain(|w| !w.is_canceled());
            f.waiters.push(tx);
        }
        rx
    }
}

/// Forwards librdkafka's logs to tracing and remembers its last error, so
/// that a failed send can say *why* (e.g. "connection refused").
#[derive(Debug, Clone)]
pub(crate) struct ChannelContext {
    pub(crate) channel: String,
    pub(crate) errors: Arc<ErrorLog>,
}

impl ChannelContext {
    pub(crate) fn new(channel: &str) -> Self {
        ChannelContext {
            channel: channel.to_string(),
            errors: Arc::new(ErrorLog::default()),
        }
    }
}

impl ClientContext for ChannelContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        let ch = &self.channel;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical => {
                tracing::error!(channel = %ch, "librdkafka {fac}: {msg}")
            }
            // Configuration warnings matter to operators; connection
            // chatter is summarised in our own errors instead.
            _ if fac == "CONFWARN" => tracing::warn!(channel = %ch, "librdkafka {fac}: {msg}"),
            RDKafkaLogLevel::Error | RDKafkaLogLevel::Warning | RDKafkaLogLevel::Notice => {
                tracing::info!(channel = %ch, "librdkafka {fac}: {msg}");
                // A failed connection is often only logged ("FAIL"), and its
                // text is the one that says why (e.g. "connecting to a SSL
                // listener?").
                if fac == "FAIL" {
                    self.errors.record(msg.to_string());
                }
            }
            RDKafkaLogLevel::Info | RDKafkaLogLevel::Debug => {
                tracing::debug!(channel = %ch, "librdkafka {fac}: {msg}")
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::info!(channel = %self.channel, "kafka client error: {error}: {reason}");
        self.errors.record(reason.to_string());
    }
}

/// A consumer for `ch` with `defaults` (see [`client_config`]). A creation
/// error is redacted like the producer's: librdkafka may quote a property's
/// value, and secrets are never shown.
pub(crate) fn consumer(
    ch: &KafkaChannelConfig,
    defaults: &[(&str, String)],
) -> Result<BaseConsumer<ChannelContext>, ClientError> {
    client_config(ch, defaults)?
        .create_with_context(ChannelContext::new(&ch.name))
        .map_err(|e| creation_error(ch, &e))
}

/// Consumers (the indexer's and the waiter's) share the channel context;
/// neither joins a group, but should one ever rebalance, it is worth a line
/// in the log.
impl ConsumerContext for ChannelContext {
    fn post_rebalance(&self, _base: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                tracing::info!(channel = %self.channel, "assigned {} partition(s)", tpl.count())
            }
            Rebalance::Revoke(tpl) => {
                tracing::info!(channel = %self.channel, "revoked {} partition(s)", tpl.count())
            }
            Rebalance::Error(e) => {
                tracing::warn!(channel = %self.channel, "rebalance error: {e}")
            }
        }
    }
}

/// Metadata that did not come: the client's words, and the TLS or SASL
/// problem behind them when there is one.
#[derive(Debug, Clone)]
pub(crate) struct NoMetadata {
    pub(crate) reason: String,
    pub(crate) failure: Option<ConnectFailure>,
}

impl NoMetadata {
    /// The reason, led by the failure and its hint when one was found.
    pub(crate) fn text(&self) -> String {
        match &self.failure {
            Some(f) => format!("{f}; client said: {}", self.reason),
            None => self.reason.clone(),
        }
    }
}

/// How often a metadata request is retried while waiting, so that a TLS or
/// SASL failure ends the wait at once rather than at the timeout.
const METADATA_STEP: Duration = Duration::from_millis(500);

/// How long a send or a metadata request may go without an answer before
/// the connection is probed (see [`crate::probe`]) for a TLS or SASL
/// problem librdkafka does not report, such as TLS spoken to a plaintext
/// port.
pub(crate) const PROBE_AFTER: Duration = Duration::from_secs(1);

/// Asks `client` (built from `ch`, reporting into `errors`) for metadata
/// (of `topic`, or of all topics), for up to `timeout`, in steps: a failure
/// retrying cannot cure (a certificate, a password: see [`is_fatal`]) ends
/// the wait at once, and after [`PROBE_AFTER`] without an answer the
/// connection is probed for what librdkafka does not report (TLS to a
/// plaintext port and the reverse). `serve` serves the client's queue
/// (error events arrive there).
pub(crate) fn metadata_or_failure<C: ClientContext>(
    client: &Client<C>,
    ch: &KafkaChannelConfig,
    errors: &ErrorLog,
    topic: Option<&str>,
    timeout: Duration,
    serve: &dyn Fn(),
) -> Result<Metadata, NoMetadata> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut probed: Option<Option<ConnectFailure>> = None;
    loop {
        if probed.is_none() && started.elapsed() >= PROBE_AFTER {
            let said = errors.last().unwrap_or_default();
            let found = crate::probe::diagnose(ch, &said);
            if let Some(f) = &found {
                errors.set_fatal(f.message());
            }
            probed = Some(found);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let r = client.fetch_metadata(topic, left.min(METADATA_STEP));
        serve();
        match r {
            Ok(md) => return Ok(md),
            Err(_) if errors.fatal().is_none() && left > METADATA_STEP => continue,
            Err(e) => {
                let said = errors.fatal().or_else(|| errors.last());
                let reason = match said {
                    Some(last) => format!("{e}; {last}"),
                    None => e.to_string(),
                };
                let failure = match probed {
                    Some(found) => found,
                    None => crate::probe::diagnose(ch, &reason),
                };
                return Err(NoMetadata {
                    reason: redact(ch, &reason),
                    failure,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ended_waits_are_forgotten() {
        let log = ErrorLog::default();
        for _ in 0..1000 {
            drop(log.fatal_signal());
        }
        let _live = log.fatal_signal();
        let waiting = log.fatal.lock().unwrap().waiters.len();
        assert_eq!(waiting, 1, "one live wait, the ended ones forgotten");
    }

    #[test]
    fn a_fatal_reason_wakes_waiters_and_only_fatal_ones_count() {
        let log = ErrorLog::default();
        let rx = log.fatal_signal();
        log.record("1/1 brokers are down".into());
        assert!(log.fatal().is_none());
        log.record("SASL authentication error: SASL SCRAM authentication failed: broker responded with invalid-proof".into());
        assert!(log.fatal().is_some());
        assert_eq!(futures::executor::block_on(rx), Ok(()));
        // A later wait is woken at once.
        assert_eq!(futures::executor::block_on(log.fatal_signal()), Ok(()));
        log.clear_fatal();
        assert!(log.fatal().is_none());
    }

    /// Without the `gssapi` feature, asking for Kerberos says how to get it.
    #[cfg(not(feature = "gssapi"))]
    #[test]
    fn kerberos_without_the_feature_says_how_to_build_it() {
        let ch = KafkaChannelConfig {
            brokers: vec!["127.0.0.1:1".into()],
            properties: [
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "GSSAPI"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            ..Default::default()
        };
        let Err(err) = consumer(&ch, &[("group.id", "t".into())]) else {
            panic!("a GSSAPI client was created without Kerberos support");
        };
        assert!(err.to_string().contains("--features gssapi"), "{err}");
    }

    #[test]
    fn a_stale_fatal_reason_ends_no_wait_and_a_cut_handshake_is_not_fatal() {
        let log = ErrorLog::default();
        assert!(!is_fatal("ssl://b:9093/bootstrap: SSL handshake failed: Disconnected (after 2ms in state SSL_HANDSHAKE)"));
        log.set_fatal("certificate verify failed".into());
        log.fatal.lock().unwrap().at = Some(Instant::now() - FATAL_FRESH);
        assert!(log.fatal().is_none(), "stale");
        let rx = log.fatal_signal();
        let mut rx = std::pin::pin!(rx);
        assert!(
            futures::FutureExt::now_or_never(rx.as_mut()).is_none(),
            "a stale reason does not end a new wait"
        );
        log.record(
            "SSL handshake failed: error:0A000086:SSL routines::certificate verify failed".into(),
        );
        assert_eq!(futures::executor::block_on(rx), Ok(()), "said again: fresh");
    }
}
