//! Which channel and topic a message goes to: the rule lives in core
//! ([`spk_messaging_core::route`]), so that `repo index`, the Indexer and the
//! waiter all ask the same function; it is re-exported here for the callers
//! that send.

pub use spk_messaging_core::route::*;
