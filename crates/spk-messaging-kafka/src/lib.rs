//! Everything that touches Kafka.
