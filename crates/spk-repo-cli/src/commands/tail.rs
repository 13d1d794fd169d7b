//! `spk messaging tail`: what is flowing on the topics, decoded.
//!
//! Manual assignment (no consumer group, nothing committed), both spellings
//! of every event, one line per message (or one JSON object per line with
//! `--format json`). Malformed messages are shown with their coordinates
//! and never stop the tail. Exits 0 on Ctrl-C or after `--count` messages,
//! with a summary line on stderr.

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, Context as _};
use clap::ValueEnum;
use serde::Serialize;
use spk_messaging_core::config::{Config, KafkaChannelConfig};
use spk_messaging_core::watch::{
    parse_since, Decoded, EventSel, PackageSel, TailFilter, TopicKind,
};
use spk_messaging_core::RepoTarget;
use spk_messaging_kafka::headers;
use spk_messaging_kafka::observe::{self, Record, StartAt, TailRequest};

use crate::exit::CmdResult;
use crate::output::Format;

/// Which topics to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Topics {
    /// The package updates topic.
    Package,
    /// The index status topic.
    Index,
    /// Both.
    #[default]
    All,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The channel to read (default: the channel named "kafka", or the only one).
    #[arg(long, value_name = "CHANNEL")]
    channel: Option<String>,
    /// Which of the channel's topics to follow.
    #[arg(long, value_enum, default_value_t)]
    topic: Topics,
    /// Only messages about this repository: a name, or an address (a path
    /// or file: URL), matched in any spelling.
    #[arg(long, short = 'r', value_name = "REPO")]
    repo: Option<String>,
    /// Only package updates of this package: NAME or NAME/VERSION.
    #[arg(long, short = 'p', value_name = "NAME[/VERSION]", value_parser = parse_package)]
    package: Option<PackageSel>,
    /// Only these events (repeatable): published, modified, removed,
    /// generate-index, started, in-progress, completed, heartbeat, or either
    /// spelling of the message format ("package published", Published).
    #[arg(long, short = 'e', value_name = "EVENT", value_parser = parse_event)]
    event: Vec<EventSel>,
    /// Start at messages this recent: a duration back from now (90s, 15m,
    /// 2h, 1d) or a time (seconds since the epoch, or RFC 3339). Default:
    /// only messages that arrive from now on.
    #[arg(
        long,
        value_name = "DURATION|TIMESTAMP",
        conflicts_with = "from_beginning"
    )]
    since: Option<String>,
    /// Start at the beginning of every partition.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after showing this many messages.
    #[arg(long, short = 'n', value_name = "N")]
    count: Option<u64>,
    /// Output: one line per message, or one JSON object per line.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn parse_package(s: &str) -> Result<PackageSel, String> {
    s.parse()
}

fn parse_event(s: &str) -> Result<EventSel, String> {
    s.parse()
}

/// The channel `--channel` names, or the default one.
pub fn pick_channel<'c>(
    cfg: &'c Config,
    name: Option<&str>,
) -> anyhow::Result<&'c KafkaChannelConfig> {
    let names = || {
        cfg.messaging
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match name {
        Some(n) => cfg.channel(n).ok_or_else(|| {
            anyhow!(
                "--channel {n}: no such channel; configured: {}",
                if cfg.messaging.is_empty() {
                    "none".into()
                } else {
                    names()
                }
            )
        }),
        None => {
            if let Some(c) = cfg.channel("kafka") {
                return Ok(c);
            }
            match cfg.messaging.as_slice() {
                [only] => Ok(only),
                [] => Err(anyhow!("no messaging channel is configured; add a [[messaging]] kafka channel")),
                _ => Err(anyhow!(
                    "several channels are configured ({}) and none is named \"kafka\"; choose one with --channel",
                    names()
                )),
            }
        }
    }
}

/// The `--repo` filter: a configured repository matches by its name and
/// its address; any other text by [`RepoTarget::from_user`].
fn repo_target(cfg: &Config, text: &str) -> RepoTarget {
    if cfg.repositories.contains_key(text) {
        if let Ok(cwd) = std::env::current_dir() {
            if let Ok(r) = cfg.resolve_repo_with(text, &cwd, &super::SpfsLookup::from_process()) {
                return RepoTarget::new(r.name, Some(r.address));
            }
        }
    }
    RepoTarget::from_user(text)
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let cfg = ctx.config()?;
    let ch = pick_channel(&cfg, args.channel.as_deref())?;
    let filter = TailFilter {
        repo: args.repo.as_deref().map(|r| repo_target(&cfg, r)),
        package: args.package.clone(),
        events: args.event.clone(),
    };
    let mut topics = Vec::new();
    let want = |t: Topics| args.topic == t || args.topic == Topics::All;
    for (t, kind, key, value) in [
        (
            Topics::Package,
            TopicKind::Package,
            "package_updates_topic_name",
            &ch.package_updates_topic_name,
        ),
        (
            Topics::Index,
            TopicKind::Index,
            "index_updates_topic_name",
            &ch.index_updates_topic_name,
        ),
    ] {
        if !want(t) || !filter.may_keep(kind) {
            continue;
        }
        match value {
            Some(name) => topics.push((name.clone(), kind)),
            None if args.topic == t => {
                return Err(anyhow!(
                    "--topic {}: channel {:?} has no {key}",
                    t.to_possible_value()
                        .map(|v| v.get_name().to_string())
                        .unwrap_or_default(),
                    ch.name
                )
                .into())
            }
            None => {}
        }
    }
    if topics.is_empty() {
        return Err(anyhow!(
            "nothing to follow: channel {:?} has no topic that the filters (--topic, --event, --package) allow",
            ch.name
        )
        .into());
    }
    let now_ms = chrono::Utc::now().timestamp_millis();
    let start = match (&args.since, args.from_beginning) {
        (Some(s), _) => StartAt::Time(parse_since(s, now_ms).map_err(|e| anyhow!("--since: {e}"))?),
        (None, true) => StartAt::Beginning,
        (None, false) => StartAt::End,
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("cannot install signal handlers")?;
    }
    let req = TailRequest { topics, start };
    let began = Instant::now();
    let (mut read, mut shown, mut malformed) = (0u64, 0u64, 0u64);
    let stdout = std::io::stdout();
    let out = std::cell::RefCell::new(std::io::BufWriter::with_capacity(64 * 1024, stdout.lock()));
    let mut write_failed = false;
    let result = observe::tail(
        ch,
        &req,
        &stop,
        |rec| {
            read += 1;
            if !filter.keeps(&rec.decoded) {
                return true;
            }
            if matches!(rec.decoded, Decoded::Malformed(_)) {
                malformed += 1;
            }
            shown += 1;
            let mut w = out.borrow_mut();
            let written = match args.format {
                Format::Json => serde_json::to_writer(&mut *w, &json_line(&rec))
                    .map_err(std::io::Error::from)
                    .and_then(|()| w.write_all(b"\n")),
                Format::Text => writeln!(w, "{}", text_line(&rec)),
            };
            if written.is_err() {
                write_failed = true; // e.g. `| head` closed the pipe
                return false;
            }
            args.count.is_none_or(|n| shown < n)
        },
        || {
            let _ = out.borrow_mut().flush();
        },
    );
    let _ = out.borrow_mut().flush();
    result.map_err(crate::exit::for_observe_error)?;
    if !write_failed {
        eprintln!(
            "tail: {shown} message(s) shown ({malformed} malformed), {read} read, in {:.1} s",
            began.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn time_text(ms: Option<i64>) -> String {
    ms.and_then(chrono::DateTime::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| "-".into())
}

fn header_text(rec: &Record) -> String {
    let h = |k: &str| rec.header(k).unwrap_or("-").to_string();
    if rec.header(headers::MESSAGE_ID).is_none() && rec.header(headers::SENDER_HOST).is_none() {
        return "(no spk headers)".into();
    }
    format!(
        "id={} from={}@{} tool={}",
        h(headers::MESSAGE_ID),
        h(headers::SENDER_USER),
        h(headers::SENDER_HOST),
        h(headers::TOOL_VERSION)
    )
}

/// `TIME TOPIC/PARTITION@OFFSET EVENT REPO_NAME REPO PACKAGE|start=S HEADERS`.
fn text_line(rec: &Record) -> String {
    let at = format!(
        "{} {}/{}@{}",
        time_text(rec.timestamp_ms),
        rec.topic,
        rec.partition,
        rec.offset
    );
    match &rec.decoded {
        Decoded::Package(m) => format!(
            "{at} {} {} {} {} {}",
            m.event,
            m.repo_name,
            m.repo,
            if m.package.is_empty() {
                "-"
            } else {
                &m.package
            },
            header_text(rec)
        ),
        Decoded::Index(m) => format!(
            "{at} {} {} {} start={} {}",
            m.event,
            m.name,
            m.repo,
            m.start,
            header_text(rec)
        ),
        Decoded::Malformed(why) => format!(
            "{at} MALFORMED {why}: {:?} {}",
            rec.excerpt.as_deref().unwrap_or_default(),
            header_text(rec)
        ),
    }
}

/// One JSON object: coordinates, the message's fields, every header.
/// Serialized straight from borrowed fields (no intermediate JSON value):
/// `tail --format json` must keep up with tens of thousands of messages a
/// second.
#[derive(Serialize)]
struct JsonLine<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    timestamp_ms: Option<i64>,
    time: String,
    key: Option<&'a str>,
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<Body<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_excerpt: Option<&'a str>,
    headers: HeaderMap<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Body<'a> {
    Package(&'a spk_messaging_core::PackageUpdateMessage),
    Index(&'a spk_messaging_core::IndexStatusMessage),
}

/// Headers as one JSON object, in the order sent.
struct HeaderMap<'a>(&'a [(String, String)]);

impl Serialize for HeaderMap<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

fn json_line(rec: &Record) -> JsonLine<'_> {
    let (kind, message, error) = match &rec.decoded {
        Decoded::Package(m) => ("package-update", Some(Body::Package(m)), None),
        Decoded::Index(m) => ("index-status", Some(Body::Index(m)), None),
        Decoded::Malformed(why) => ("malformed", None, Some(why.as_str())),
    };
    JsonLine {
        topic: &rec.topic,
        partition: rec.partition,
        offset: rec.offset,
        timestamp_ms: rec.timestamp_ms,
        time: time_text(rec.timestamp_ms),
        key: rec.key.as_deref(),
        kind,
        message,
        error,
        payload_excerpt: error.and(rec.excerpt.as_deref()),
        headers: HeaderMap(&rec.headers),
    }
}
