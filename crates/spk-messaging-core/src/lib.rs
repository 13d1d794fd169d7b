//! The heart of SPK's messaging tools, with no network in it: SPK's config,
//! package identifiers, the two message formats, and the traits a channel or
//! a status sink implements. Everything here is testable without a broker.

pub mod about;
pub mod address;
pub mod config;
pub mod diagnostic;
pub mod health;
pub mod ident;
pub mod indexer;
pub mod indexing;
pub mod message;
pub mod route;
pub mod security;
pub mod status;
pub mod wait;
pub mod watch;

pub use about::RepoTarget;
pub use address::RepoAddress;
pub use diagnostic::{Diagnostic, Severity};
pub use ident::{Build, IdentError, PkgIdent, PkgName, Version};
pub use message::{IndexEvent, IndexStatusMessage, PackageEvent, PackageUpdateMessage};
pub use status::{IndexStatusReporter, NullReporter, ReportError};
