//! One producer per channel: builds it from the channel's config, sends,
//! and waits for every delivery report.
//!
//! Sends are synchronous from the caller's point of view but need not be
//! one-by-one: [`ChannelProducer::enqueue`] hands a message to librdkafka and
//! returns a [`PendingDelivery`]; enqueue a whole batch, then
//! [`PendingDelivery::wait`] on each. [`ChannelProducer::send`] does both for
//! one message. librdkafka's own thread does the network work; delivery
//! reports arrive on a oneshot channel, so no async runtime is needed.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

use futures::future::{select, Either};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use spk_messaging_core::config::KafkaChannelConfig;
use spk_messaging_core::security::ConnectFailure;

use crate::client::{
    bootstrap_servers, client_config, ChannelContext, ClientError, ErrorLog, PROBE_AFTER,
};
use crate::headers::MessageHeaders;

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl fmt::Display for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} partition {} offset {}",
            self.topic, self.partition, self.offset
        )
    }
}

/// Why a message was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendErrorKind {
    /// The producer queue stayed full for `producer_queue_timeout_ms`.
    QueueFull,
    /// No delivery within `message_timeout_ms`: the brokers are unreachable
    /// or not accepting the message (the reason says which, when known).
    TimedOut,
    /// The cluster or the client rejected the message.
    Rejected,
    /// Not tried because an earlier message to the same brokers was not
    /// delivered (see [`crate::KafkaStatusReporter`]).
    Skipped,
}

/// A message that was not delivered. Names the channel, its brokers and the
/// topic; never a property value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("message to topic {topic:?} on channel {channel:?} (brokers {brokers}) was not delivered: {reason}")]
pub struct SendError {
    pub channel: String,
    pub brokers: String,
    pub topic: String,
    pub kind: SendErrorKind,
    pub reason: String,
    /// The TLS or SASL problem behind it, when that is what failed.
    pub failure: Option<Box<ConnectFailure>>,
}

/// Messages still in the producer when a flush gave up.
#[derive(Debug, Clone, thiserror::Error)]
#[error("channel {channel:?} (brokers {brokers}): {in_flight} message(s) still undelivered after {waited_ms} ms: {reason}")]
pub struct FlushError {
    pub channel: String,
    pub brokers: String,
    pub in_flight: i32,
    pub waited_ms: u64,
    pub reason: String,
}

/// librdkafka's linger: small, for latency; a batch enqueued at once still
/// goes out in large requests.
const LINGER_MS: &str = "5";

/// What a producer is for, which decides its librdkafka defaults (a
/// channel's `properties` override both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProducerRole {
    /// A process that sends a few messages and exits (`send-event` of
    /// events named on the command line, `repo index`'s status): no
    /// idempotence, whose start-up (a producer id from the cluster) costs
    /// a round trip before the first message may leave, and no linger.
    /// Each message carries a unique `spk-message-id` header, so a
    /// consumer can drop the duplicate a retry may make.
    OneShot,
    /// A producer that lives long or sends many (the Indexer,
    /// `send-event --from-file`): idempotent, so retries never duplicate or
    /// reorder, with a short linger to batch.
    LongLived,
}

/// Why a client that failed to reach its brokers failed, worked out once
/// (a TLS probe takes up to [`crate::probe::PROBE_TIMEOUT`]).
#[derive(Debug)]
pub(crate) struct Diagnosis {
    ch: KafkaChannelConfig,
    errors: Arc<ErrorLog>,
    /// Worked out once per failing spell: forgotten when a message is
    /// delivered, so a later failure is diagnosed afresh.
    found: Mutex<Option<Option<ConnectFailure>>>,
    /// A message was delivered: the connection works.
    delivered: AtomicBool,
    watching: Once,
}

impl Diagnosis {
    pub(crate) fn new(ch: &KafkaChannelConfig, errors: Arc<ErrorLog>) -> Self {
        Diagnosis {
            ch: ch.clone(),
            errors,
            found: Mutex::new(None),
            delivered: AtomicBool::new(false),
            watching: Once::new(),
        }
    }

    /// Starts, once, a thread that probes the connection if nothing has
    /// been delivered [`PROBE_AFTER`] from now, and turns a failure it finds
    /// into a fatal error (waking every waiting send).
    fn watch(self: &Arc<Self>) {
        let me = self.clone();
        self.watching.call_once(move || {
            let spawned = std::thread::Builder::new()
                .name("spk-kafka-probe".into())
                .spawn(move || {
                    std::thread::sleep(PROBE_AFTER);
                    if me.delivered.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(f) = me.failure() {
                        me.errors.set_fatal(f.message());
                    }
                });
            if let Err(e) = spawned {
                tracing::debug!("no connection probe: {e}");
            }
        });
    }

    pub(crate) fn failure(&self) -> Option<ConnectFailure> {
        let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = &*found {
            return f.clone();
        }
        let said = self
            .errors
            .fatal()
            .or_else(|| self.errors.last())
            .unwrap_or_default();
        let f = crate::probe::diagnose(&self.ch, &said);
        *found = Some(f.clone());
        f
    }

    /// A message was delivered: the connection works.
    fn delivered(&self) {
        self.delivered.store(true, Ordering::Relaxed);
        *self.found.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// The librdkafka configuration of a producer for `ch` in `role`: the
/// role's defaults (docs/kafka.md, "Producers"), then the channel's
/// `properties`, which override them.
pub(crate) fn producer_config(
    ch: &KafkaChannelConfig,
    role: ProducerRole,
) -> Result<rdkafka::ClientConfig, ClientError> {
    // Without idempotence, one request in flight keeps a retried message
    // from overtaking the next ("started" before "completed").
    let (idempotent, linger, in_flight) = match role {
        ProducerRole::OneShot => ("false", "0", "1"),
        ProducerRole::LongLived => ("true", LINGER_MS, "5"),
    };
    let defaults = [
        ("message.timeout.ms", ch.message_timeout_ms.to_string()),
        ("queue.buffering.max.ms", linger.to_string()),
        ("enable.idempotence", idempotent.to_string()),
        (
            "max.in.flight.requests.per.connection",
            in_flight.to_string(),
        ),
        ("acks", "all".to_string()),
    ];
    let mut cc = client_config(ch, &defaults)?;
    // Idempotence requires acks=all; a site that chose weaker acks gets a
    // plain producer rather than a configuration error.
    let acks = cc.get("acks").unwrap_or("all").to_ascii_lowercase();
    let strong = acks == "all" || acks == "-1";
    if !strong && !ch.properties.contains_key("enable.idempotence") {
        tracing::info!(channel = %ch.name, acks = %acks, "acks is not all: idempotence turned off");
        cc.set("enable.idempotence", "false");
    }
    Ok(cc)
}

/// A producer for one channel.
pub struct ChannelProducer {
    channel: String,
    brokers: String,
    producer: FutureProducer<ChannelContext>,
    errors: Arc<ErrorLog>,
    diagnosis: Arc<Diagnosis>,
    queue_timeout: Duration,
    message_timeout: Duration,
}

impl fmt::Debug for ChannelProducer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChannelProducer")
            .field("channel", &self.channel)
            .field("brokers", &self.brokers)
            .finish_non_exhaustive()
    }
}

impl ChannelProducer {
    /// A long-lived producer for `ch` (see [`ProducerRole::LongLived`]).
    pub fn new(ch: &KafkaChannelConfig) -> Result<Self, ClientError> {
        Self::with_role(ch, ProducerRole::LongLived)
    }

    /// A producer for `ch`: its brokers, `message_timeout_ms`, an `acks=all`
    /// producer, idempotent for a long-lived role, unless its `properties`
    /// say otherwise, then every property (with `${VAR}` expanded; TLS and
    /// SASL settings go here).
    pub fn with_role(ch: &KafkaChannelConfig, role: ProducerRole) -> Result<Self, ClientError> {
        let cc = producer_config(ch, role)?;
        let ctx = ChannelContext::new(&ch.name);
        let errors = ctx.errors.clone();
        let diagnosis = Arc::new(Diagnosis::new(ch, errors.clone()));
        let producer: FutureProducer<ChannelContext> = cc
            .create_with_context(ctx)
            .map_err(|e| crate::client::creation_error(ch, &e))?;
        tracing::debug!(channel = %ch.name, brokers = %bootstrap_servers(ch), "producer created");
        Ok(ChannelProducer {
            channel: ch.name.clone(),
            brokers: bootstrap_servers(ch),
            producer,
            errors,
            diagnosis,
            queue_timeout: Duration::from_millis(ch.producer_queue_timeout_ms),
            message_timeout: Duration::from_millis(ch.message_timeout_ms),
        })
    }

    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// The configured brokers, comma-separated.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// The channel's `message_timeout_ms`.
    pub fn message_timeout(&self) -> Duration {
        self.message_timeout
    }

    fn error(&self, topic: &str, kind: SendErrorKind, reason: String) -> SendError {
        SendError {
            channel: self.channel.clone(),
            brokers: self.brokers.clone(),
            topic: topic.to_string(),
            kind,
            reason,
            failure: None,
        }
    }

    /// The TLS or SASL problem that keeps this producer from its brokers,
    /// if that is what failed (probes once; see [`crate::probe`]).
    pub fn connect_failure(&self) -> Option<ConnectFailure> {
        self.diagnosis.failure()
    }

    fn with_last_error(&self, mut reason: String) -> String {
        if let Some(last) = self.errors.last() {
            reason.push_str("; last client errors: ");
            reason.push_str(&last);
        }
        reason
    }

    /// Hands one message to librdkafka. When its queue is full, waits up to
    /// `producer_queue_timeout_ms` for room.
    pub fn enqueue(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &MessageHeaders,
    ) -> Result<PendingDelivery, SendError> {
        let deadline = Instant::now() + self.queue_timeout;
        let mut record = FutureRecord::to(topic)
            .key(key)
            .payload(payload)
            .headers(headers.to_kafka());
        loop {
            match self.producer.send_result(record) {
                Ok(future) => {
                    return Ok(PendingDelivery {
                        future,
                        topic: topic.to_string(),
                        channel: self.channel.clone(),
                        brokers: self.brokers.clone(),
                        errors: self.errors.clone(),
                        diagnosis: self.diagnosis.clone(),
                        message_timeout: self.message_timeout,
                    })
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r))
                    if Instant::now() < deadline =>
                {
                    record = r;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    let reason = self.with_last_error(format!(
                        "the producer queue stayed full for producer_queue_timeout_ms ({} ms)",
                        self.queue_timeout.as_millis()
                    ));
                    return Err(self.error(topic, SendErrorKind::QueueFull, reason));
                }
                Err((e, _)) => {
                    return Err(self.error(topic, SendErrorKind::Rejected, e.to_string()));
                }
            }
        }
    }

    /// Sends one message and waits for its delivery report (at most about
    /// `producer_queue_timeout_ms` + `message_timeout_ms`).
    pub fn send(
        &self,
        topic: &str,
        key: &str,
        payload: &[u8],
        headers: &MessageHeaders,
    ) -> Result<Delivery, SendError> {
        self.enqueue(topic, key, payload, headers)?.wait()
    }

    /// Waits until every queued message is delivered or has failed.
    pub fn flush(&self, timeout: Duration) -> Result<(), FlushError> {
        self.producer.flush(timeout).map_err(|e| FlushError {
            channel: self.channel.clone(),
            brokers: self.brokers.clone(),
            in_flight: self.producer.in_flight_count(),
            waited_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
            reason: self.with_last_error(e.to_string()),
        })
    }

    /// Flushes, waiting up to `message_timeout_ms`. Call before exiting: a
    /// dropped producer discards what it still holds.
    pub fn close(&self) -> Result<(), FlushError> {
        self.flush(self.message_timeout)
    }

    /// Messages handed to librdkafka and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

/// A message handed to librdkafka; [`wait`](Self::wait) for its fate.
#[must_use = "a pending delivery must be waited on to know whether it was delivered"]
pub struct PendingDelivery {
    future: DeliveryFuture,
    topic: String,
    channel: String,
    brokers: String,
    errors: Arc<ErrorLog>,
    diagnosis: Arc<Diagnosis>,
    message_timeout: Duration,
}

impl fmt::Debug for PendingDelivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingDelivery")
            .field("topic", &self.topic)
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl PendingDelivery {
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Blocks until the delivery report arrives (librdkafka reports every
    /// message within `message_timeout_ms` of enqueueing it), or until the
    /// client meets a TLS or SASL failure that retrying cannot cure.
    pub fn wait(self) -> Result<Delivery, SendError> {
        let PendingDelivery {
            future,
            topic,
            channel,
            brokers,
            errors,
            diagnosis,
            message_timeout,
        } = self;
        // A message that did not go out because of the connection says why
        // the connection failed, when that can be found (`connection`); a
        // message the cluster refused (a topic, a size) is not probed for.
        let err = |kind, reason: String, connection: bool| {
            let failure = if connection {
                diagnosis.failure()
            } else {
                None
            };
            let reason = match &failure {
                Some(f) if reason == f.message() => f.to_string(),
                Some(f) => format!("{f}; client said: {reason}"),
                None => reason,
            };
            SendError {
                channel: channel.clone(),
                brokers: brokers.clone(),
                topic: topic.clone(),
                kind,
                reason,
                failure: failure.map(Box::new),
            }
        };
        let last = || {
            errors
                .last()
                .map(|l| format!("; last client errors: {l}"))
                .unwrap_or_default()
        };
        let fatal = errors.fatal_signal();
        diagnosis.watch();
        let report = match futures::executor::block_on(select(future, fatal)) {
            Either::Left((report, _)) => report,
            Either::Right((_, _)) => {
                let said = errors.fatal().unwrap_or_default();
                return Err(err(SendErrorKind::Rejected, said, true));
            }
        };
        match report {
            Ok(Ok(d)) => {
                // The brokers took it: whatever failed before is cured (a
                // certificate renewed while a long-lived producer waited).
                errors.clear_fatal();
                diagnosis.delivered();
                Ok(Delivery {
                topic,
                partition: d.partition,
                offset: d.offset,
            })
            }
            Ok(Err((KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut), _))) => {
                Err(err(
                    SendErrorKind::TimedOut,
                    format!(
                        "no delivery within message_timeout_ms ({} ms): brokers unreachable or not accepting messages{}",
                        message_timeout.as_millis(),
                        last()
                    ),
                    true,
                ))
            }
            Ok(Err((e, _))) => Err(err(
                SendErrorKind::Rejected,
                format!("{e}{}", last()),
                false,
            )),
            Err(_canceled) => Err(err(
                SendErrorKind::Rejected,
                "the producer was shut down before the delivery report arrived".into(),
                false,
            )),
        }
    }
}

/// One producer per channel name. Use [`Producers::global`] for the
/// process-wide cache; tests make their own.
#[derive(Debug, Default)]
pub struct Producers {
    map: Mutex<HashMap<(String, ProducerRole), Arc<ChannelProducer>>>,
}

impl Producers {
    pub fn new() -> Self {
        Self::default()
    }

    /// The process-wide cache: one producer per channel per process.
    pub fn global() -> &'static Producers {
        static GLOBAL: OnceLock<Producers> = OnceLock::new();
        GLOBAL.get_or_init(Producers::new)
    }

    /// The long-lived producer for `ch`, created on first use.
    pub fn get(&self, ch: &KafkaChannelConfig) -> Result<Arc<ChannelProducer>, ClientError> {
        self.get_for(ch, ProducerRole::LongLived)
    }

    /// The producer for `ch` in `role`, created on first use. Keyed by
    /// channel name and role: the config seen first is the one used.
    pub fn get_for(
        &self,
        ch: &KafkaChannelConfig,
        role: ProducerRole,
    ) -> Result<Arc<ChannelProducer>, ClientError> {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let key = (ch.name.clone(), role);
        if let Some(p) = map.get(&key) {
            return Ok(p.clone());
        }
        let p = Arc::new(ChannelProducer::with_role(ch, role)?);
        map.insert(key, p.clone());
        Ok(p)
    }

    /// Flushes every producer; returns the failures.
    pub fn close_all(&self) -> Vec<FlushError> {
        let producers: Vec<Arc<ChannelProducer>> = self
            .map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        producers.iter().filter_map(|p| p.close().err()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(props: &[(&str, &str)]) -> KafkaChannelConfig {
        KafkaChannelConfig {
            brokers: vec!["127.0.0.1:1".into()],
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        }
    }

    fn get(cc: &rdkafka::ClientConfig, key: &str) -> String {
        cc.get(key).unwrap_or("<unset>").to_string()
    }

    #[test]
    fn roles_set_their_defaults() {
        let one = producer_config(&channel(&[]), ProducerRole::OneShot).unwrap();
        assert_eq!(get(&one, "enable.idempotence"), "false");
        assert_eq!(get(&one, "max.in.flight.requests.per.connection"), "1");
        assert_eq!(get(&one, "queue.buffering.max.ms"), "0");
        assert_eq!(get(&one, "acks"), "all");
        let long = producer_config(&channel(&[]), ProducerRole::LongLived).unwrap();
        assert_eq!(get(&long, "enable.idempotence"), "true");
        assert_eq!(get(&long, "acks"), "all");
    }

    #[test]
    fn properties_override_the_role() {
        let cc = producer_config(
            &channel(&[("enable.idempotence", "true"), ("linger.ms", "20")]),
            ProducerRole::OneShot,
        )
        .unwrap();
        assert_eq!(get(&cc, "enable.idempotence"), "true");
        assert_eq!(get(&cc, "linger.ms"), "20");
        // Weaker acks turn idempotence off unless it is set explicitly.
        let cc = producer_config(&channel(&[("acks", "1")]), ProducerRole::LongLived).unwrap();
        assert_eq!(get(&cc, "enable.idempotence"), "false");
    }
}
