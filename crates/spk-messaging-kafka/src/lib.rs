//! Everything that touches Kafka: producers built from SPK's channel config,
//! routing of SPK's two messages to channels and topics, Kafka headers, the
//! index status reporter, live checks of a channel, and an in-memory broker
//! for development and tests. See `docs/kafka.md`.

mod client;
pub mod dev_broker;
pub mod headers;
pub mod indexer;
pub mod live;
pub mod metrics;
pub mod observe;
pub mod probe;
mod producer;
mod reporter;
pub mod route;
pub mod wait;

pub use client::{bootstrap_servers, client_config, ClientError};
pub use dev_broker::{DevBroker, DevBrokerError};
pub use headers::{MessageHeaders, MessageKind};
pub use live::{check_channel, ChannelCheck};
pub use producer::{
    ChannelProducer, Delivery, FlushError, PendingDelivery, ProducerRole, Producers, SendError,
    SendErrorKind,
};
pub use reporter::{status_reporter, status_reporter_with, KafkaStatusReporter, StatusSink};
pub use route::{
    route_index_status, route_package_events, IndexRoute, PackageRoute, PackageRoutes, RouteError,
};
