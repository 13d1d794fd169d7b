//! Exit codes, one place; documented in docs/exit-codes.md.

/// Success.
#[allow(dead_code)] // documented; returned as `Ok(())`
pub const OK: i32 = 0;
/// A failure: bad config, bad input, an I/O error, or check-config found errors.
pub const FAILURE: i32 = 1;
/// Command-line usage error (clap's own code).
#[allow(dead_code)] // documented; clap exits with it itself
pub const USAGE: i32 = 2;
/// The index write lock could not be obtained (as SPK).
pub const LOCK_BUSY: i32 = 3;
/// Messages were not delivered: broker unreachable or a send failed.
pub const NOT_DELIVERED: i32 = 4;
/// wait-index: no recent status message, the indexer is taken to be down.
pub const INDEXER_DOWN: i32 = 5;
/// wait-index: no new status message within the listener timeout.
pub const WAIT_TIMEOUT: i32 = 6;
/// A TLS connection to the brokers failed: untrusted or expired
/// certificate, hostname mismatch, TLS spoken to a plaintext port or
/// plaintext to a TLS port.
pub const TLS_FAILED: i32 = 7;
/// SASL authentication failed: wrong user or password, or a mechanism the
/// broker does not offer.
pub const AUTH_FAILED: i32 = 8;

/// status: the Indexer is alive but more than `--max-lag` package events
/// wait for a run, the oldest for longer than `--max-lag-age`.
pub const LAGGING: i32 = 10;

/// The exit code of messages not delivered: 7 or 8 when a TLS or SASL
/// failure is why, else 4.
pub fn for_connect_failure(f: Option<&spk_messaging_core::security::ConnectFailure>) -> i32 {
    match f {
        Some(f) if f.is_tls() => TLS_FAILED,
        Some(_) => AUTH_FAILED,
        None => NOT_DELIVERED,
    }
}

/// An error reading the topics (`tail`, `status`) as an exit: 7 or 8 for a
/// TLS or SASL failure, else 1.
pub fn for_observe_error(e: spk_messaging_kafka::observe::ObserveError) -> Exit {
    use spk_messaging_kafka::observe::ObserveError;
    let code = match &e {
        ObserveError::Unreachable {
            failure: Some(f), ..
        } => for_connect_failure(Some(f)),
        _ => FAILURE,
    };
    Exit::with(code, e.into())
}

/// A waiter's error as an exit (`wait-index`, `send-event --wait`): 7 or 8
/// for a TLS or SASL failure, met at start or while reading, else 1.
pub fn for_wait_error(e: spk_messaging_kafka::wait::WaitError) -> Exit {
    use spk_messaging_kafka::wait::WaitError;
    let code = match &e {
        WaitError::Unreachable {
            failure: Some(f), ..
        } => for_connect_failure(Some(f)),
        WaitError::Consumer { reason, .. } => {
            match spk_messaging_core::security::classify_client_error(reason) {
                Some(f) => for_connect_failure(Some(&f)),
                None => FAILURE,
            }
        }
        _ => FAILURE,
    };
    Exit::with(code, e.into())
}

/// An error that carries its own exit code.
#[derive(Debug)]
pub struct Exit {
    pub code: i32,
    pub error: Option<anyhow::Error>,
}

impl Exit {
    pub fn code(code: i32) -> Self {
        Exit { code, error: None }
    }
    pub fn with(code: i32, error: anyhow::Error) -> Self {
        Exit {
            code,
            error: Some(error),
        }
    }
}

impl From<anyhow::Error> for Exit {
    fn from(e: anyhow::Error) -> Self {
        Exit::with(FAILURE, e)
    }
}

pub type CmdResult = Result<(), Exit>;
