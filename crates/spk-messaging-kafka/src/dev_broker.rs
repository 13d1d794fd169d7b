//! A throwaway in-memory Kafka cluster: librdkafka's mock cluster. It speaks
//! the Kafka protocol on localhost, so every client (ours, SPK's, a test's)
//! talks to it as to a real broker. It listens on ports the kernel picks.

use std::fmt;

use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;

/// The mock cluster could not be started or changed.
#[derive(Debug, thiserror::Error)]
#[error("dev broker: {0}")]
pub struct DevBrokerError(String);

/// A running mock cluster; it stops when dropped.
pub struct DevBroker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    brokers: i32,
}

impl fmt::Debug for DevBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevBroker")
            .field("bootstrap", &self.bootstrap_servers())
            .field("brokers", &self.brokers)
            .finish()
    }
}

impl DevBroker {
    /// Starts a cluster of `brokers` brokers (ids 1..=brokers).
    pub fn start(brokers: i32) -> Result<Self, DevBrokerError> {
        let cluster = MockCluster::new(brokers)
            .map_err(|e| DevBrokerError(format!("cannot start the mock cluster: {e}")))?;
        Ok(DevBroker { cluster, brokers })
    }

    /// `host:port,...` of every broker.
    pub fn bootstrap_servers(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    pub fn broker_count(&self) -> i32 {
        self.brokers
    }

    /// Creates a topic (replication factor 1).
    pub fn create_topic(&self, topic: &str, partitions: i32) -> Result<(), DevBrokerError> {
        self.cluster
            .create_topic(topic, partitions, 1)
            .map_err(|e| DevBrokerError(format!("cannot create topic {topic:?}: {e}")))
    }

    /// The librdkafka mock cluster itself, for fault injection in tests
    /// (`broker_down`, `request_errors`, ...).
    pub fn cluster(&self) -> &MockCluster<'static, DefaultProducerContext> {
        &self.cluster
    }
}
