//! Index status over Kafka: [`IndexStatusReporter`] on a channel producer.

use std::sync::{Arc, Mutex};

use spk_messaging_core::config::{Config, ResolvedRepo};
use spk_messaging_core::{IndexStatusMessage, IndexStatusReporter, NullReporter, ReportError};

use crate::client::ClientError;
use crate::headers::{MessageHeaders, MessageKind};
use crate::producer::{
    ChannelProducer, Delivery, ProducerRole, Producers, SendError, SendErrorKind,
};
use crate::route::{route_index_status, IndexRoute};

/// Sends index status messages for one repository to its channel's
/// `index_updates_topic_name`, keyed by repository name, and waits for each
/// delivery.
///
/// Once a message has timed out (the brokers are unreachable), later
/// messages of the same reporter fail at once instead of each waiting
/// `message_timeout_ms` again, so an index run against a dead broker ends
/// within about one `message_timeout_ms`. Every undelivered message is still
/// returned as an error.
#[derive(Debug)]
pub struct KafkaStatusReporter {
    producer: Arc<ChannelProducer>,
    topic: String,
    key: String,
    unreachable: Mutex<Option<SendError>>,
}

impl KafkaStatusReporter {
    /// A reporter sending to `topic` through `producer`, keyed by `repo_name`.
    pub fn new(producer: Arc<ChannelProducer>, topic: &str, repo_name: &str) -> Self {
        KafkaStatusReporter {
            producer,
            topic: topic.to_string(),
            key: repo_name.to_string(),
            unreachable: Mutex::new(None),
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn producer(&self) -> &ChannelProducer {
        &self.producer
    }

    /// Sends one message and returns where it landed.
    pub fn send(&self, msg: &IndexStatusMessage) -> Result<Delivery, SendError> {
        self.send_with(msg, MessageHeaders::new(MessageKind::IndexStatus))
    }

    /// [`Self::send`] with the given headers (e.g. an Indexer's heartbeat
    /// naming the holder of a busy lock, [`crate::headers::LOCK_HOLDER`]).
    pub fn send_with(
        &self,
        msg: &IndexStatusMessage,
        headers: MessageHeaders,
    ) -> Result<Delivery, SendError> {
        if let Some(earlier) = self
            .unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        {
            return Err(SendError {
                kind: SendErrorKind::Skipped,
                reason: format!(
                    "not sent: an earlier status message was not delivered ({})",
                    earlier.reason
                ),
                ..earlier
            });
        }
        let result = self
            .producer
            .send(&self.topic, &self.key, msg.to_json().as_bytes(), &headers);
        match &result {
            Ok(d) => {
                tracing::debug!(event = %msg.event, start = msg.start, "index status delivered to {d}")
            }
            Err(e) => {
                tracing::warn!("{e}");
                if matches!(e.kind, SendErrorKind::TimedOut | SendErrorKind::QueueFull)
                    || e.failure.is_some()
                {
                    *self.unreachable.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.clone());
                }
            }
        }
        result
    }
}

/// A status message not delivered, with the TLS or SASL failure behind it.
fn report_error(msg: &IndexStatusMessage, e: SendError) -> ReportError {
    let connect = e.failure.as_deref().cloned();
    ReportError::new(msg, e).with_connect(connect)
}

impl IndexStatusReporter for KafkaStatusReporter {
    fn report(&self, msg: &IndexStatusMessage) -> Result<(), ReportError> {
        self.send(msg).map(|_| ()).map_err(|e| report_error(msg, e))
    }

    fn report_completed(&self, msg: &IndexStatusMessage, full: bool) -> Result<(), ReportError> {
        let kind = if full { "full" } else { "update" };
        let headers =
            MessageHeaders::new(MessageKind::IndexStatus).with(crate::headers::RUN_KIND, kind);
        self.send_with(msg, headers)
            .map(|_| ())
            .map_err(|e| report_error(msg, e))
    }

    fn describe(&self) -> String {
        format!(
            "kafka channel {:?} topic {:?} (brokers {})",
            self.producer.channel(),
            self.topic,
            self.producer.brokers()
        )
    }
}

/// What index generation for a repository reports to.
#[derive(Debug)]
pub enum StatusSink {
    Kafka(KafkaStatusReporter),
    /// No status messages will be sent; `note` says why.
    None {
        note: String,
        warning: bool,
    },
}

impl StatusSink {
    /// The reporter to hand to index generation, and the note to print when
    /// nothing will be sent.
    pub fn into_reporter(self) -> (Box<dyn IndexStatusReporter>, Option<String>) {
        match self {
            StatusSink::Kafka(r) => (Box::new(r), None),
            StatusSink::None { note, .. } => (Box::new(NullReporter), Some(note)),
        }
    }
}

/// The index status sink for `repo`, using the process-wide producer of its
/// channel. Errs only when the channel's config cannot make a producer (a
/// `${VAR}` unset, a property librdkafka rejects).
pub fn status_reporter(cfg: &Config, repo: &ResolvedRepo) -> Result<StatusSink, ClientError> {
    status_reporter_with(Producers::global(), cfg, repo)
}

/// [`status_reporter`] with a given producer cache.
pub fn status_reporter_with(
    producers: &Producers,
    cfg: &Config,
    repo: &ResolvedRepo,
) -> Result<StatusSink, ClientError> {
    match route_index_status(cfg, repo) {
        IndexRoute::Skip { reason, warning } => Ok(StatusSink::None {
            note: format!("no status messages will be sent: {reason}"),
            warning,
        }),
        IndexRoute::Send { channel, topic } => {
            let ch = cfg.channel(&channel).ok_or_else(|| ClientError::Create {
                channel: channel.clone(),
                reason: "channel vanished from the config".into(),
            })?;
            // A run sends a handful of messages and the process exits.
            let producer = producers.get_for(ch, ProducerRole::OneShot)?;
            Ok(StatusSink::Kafka(KafkaStatusReporter::new(
                producer, &topic, &repo.name,
            )))
        }
    }
}
