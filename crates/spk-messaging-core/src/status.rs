//! How index generation reports its status without knowing where it goes.
//!
//! `spk-repo` generates indexes and calls an [`IndexStatusReporter`]; the
//! Kafka crate implements it, tests implement it with a recorder, and a
//! repository with no channel uses [`NullReporter`]. Keeping this trait here,
//! in the crate with no network, is what lets the index code stay ignorant of
//! Kafka.

use std::fmt;

use crate::message::IndexStatusMessage;
use crate::security::ConnectFailure;

/// A status message that could not be delivered.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{event} message for {repo} (start {start}) was not delivered: {reason}")]
pub struct ReportError {
    pub event: String,
    pub repo: String,
    pub start: i64,
    pub reason: String,
    /// The TLS or SASL problem behind it, when that is what failed.
    pub connect: Option<Box<ConnectFailure>>,
}

impl ReportError {
    pub fn new(msg: &IndexStatusMessage, reason: impl fmt::Display) -> Self {
        ReportError {
            event: msg.event.to_string(),
            repo: msg.name.clone(),
            start: msg.start,
            reason: reason.to_string(),
            connect: None,
        }
    }

    /// This error, caused by `connect`.
    pub fn with_connect(mut self, connect: Option<ConnectFailure>) -> Self {
        self.connect = connect.map(Box::new);
        self
    }
}

/// Receives index status messages. Implementations must be callable from
/// several threads: generation reports "in-progress" from a timer thread.
pub trait IndexStatusReporter: Send + Sync {
    /// Sends one message and waits until it is delivered or has failed.
    fn report(&self, msg: &IndexStatusMessage) -> Result<(), ReportError>;

    /// Sends "index completed" of a run that was a full generation
    /// (`full`) or an update. SPK's message has no field for it; a reporter
    /// that can carry it alongside (ours: a Kafka header) does, so that
    /// `spk messaging status` can say which the last run was.
    fn report_completed(&self, msg: &IndexStatusMessage, full: bool) -> Result<(), ReportError> {
        let _ = full;
        self.report(msg)
    }

    /// A short description of where messages go, for logs and summaries.
    fn describe(&self) -> String;

    /// Whether messages actually go anywhere.
    fn is_active(&self) -> bool {
        true
    }
}

/// Sends nothing: for repositories with no usable channel.
#[derive(Debug, Default, Clone)]
pub struct NullReporter;

impl IndexStatusReporter for NullReporter {
    fn report(&self, _msg: &IndexStatusMessage) -> Result<(), ReportError> {
        Ok(())
    }
    fn describe(&self) -> String {
        "nowhere (no channel)".into()
    }
    fn is_active(&self) -> bool {
        false
    }
}
