//! `spk repo send-event`: send package update messages by hand or in
//! batches from CI.
//!
//! Everything is validated before anything is sent: every identifier (or
//! every line of `--from-file`), that the repository may send on the
//! channel(s), and that a producer can be built for each channel. Then all
//! messages are handed to the producers at once and every delivery report
//! is awaited, so a large batch goes out at the producer's pace rather than
//! one round trip per message.
//!
//! Output: one line (or JSON entry) per delivered message when there are at
//! most [`EACH_LIMIT`] messages or `--each` is given; otherwise a summary per
//! channel, topic and partition with the range of offsets written.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use spk_messaging_core::config::{Config, ResolvedRepo};
use spk_messaging_core::{PackageEvent, PackageUpdateMessage, PkgIdent, RepoAddress};
use spk_messaging_kafka::headers::{MessageHeaders, MessageKind};
use spk_messaging_kafka::{
    route_package_events, Delivery, PackageRoute, PendingDelivery, ProducerRole, Producers,
    SendError, SendErrorKind,
};

use crate::exit::{self, CmdResult, Exit};
use crate::output::{print_json, Format};

/// Up to this many messages, each delivery is printed without `--each`.
pub const EACH_LIMIT: usize = 20;
/// At most this many bad lines or undelivered messages are listed.
const LIST_LIMIT: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum EventArg {
    /// "package published"
    Published,
    /// "package modified" (deprecated or undeprecated)
    Modified,
    /// "package removed"
    Removed,
    /// "generate index": rebuild the whole index; takes no --package
    GenerateIndex,
}

impl From<EventArg> for PackageEvent {
    fn from(e: EventArg) -> Self {
        match e {
            EventArg::Published => PackageEvent::Published,
            EventArg::Modified => PackageEvent::Modified,
            EventArg::Removed => PackageEvent::Removed,
            EventArg::GenerateIndex => PackageEvent::GenerateIndex,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Repository: a configured name, or a path or file: URL.
    #[arg(long, short = 'r')]
    repo: String,
    /// The event to send.
    #[arg(
        long,
        value_enum,
        required_unless_present = "from_file",
        conflicts_with = "from_file"
    )]
    event: Option<EventArg>,
    /// A package build, NAME/VERSION/BUILD; repeat for several.
    #[arg(
        long = "package",
        short = 'p',
        value_name = "NAME/VERSION/BUILD",
        conflicts_with = "from_file"
    )]
    packages: Vec<String>,
    /// Send only on this channel (default: every channel whose repo_names
    /// holds the repository).
    #[arg(long)]
    channel: Option<String>,
    /// Package update messages, one JSON object a line (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    from_file: Option<PathBuf>,
    /// Print topic, key, headers and payload of each message; send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print every delivery even when there are more than 20 messages.
    #[arg(long)]
    each: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// After sending, wait until the repository's index has caught up: an
    /// "index completed" for a run started at or after these sends (exit 5
    /// when no indexer is alive, 6 on timeout; see `messaging wait-index`).
    #[arg(long, conflicts_with = "dry_run")]
    wait: bool,
    /// With --wait: give up after this long without a new status message
    /// (default: the channel's index_update_listener_timeout_ms).
    #[arg(long, value_name = "MS", requires = "wait")]
    timeout_ms: Option<u64>,
    /// With --wait: give up after this long in all (default 30 minutes).
    #[arg(long, value_name = "MS", requires = "wait")]
    max_wait_ms: Option<u64>,
}

/// One message to send on one route.
struct Outgoing<'a> {
    msg: &'a PackageUpdateMessage,
    key: &'a str,
    route: &'a PackageRoute,
}

fn fail(e: anyhow::Error) -> Exit {
    Exit::with(exit::FAILURE, e)
}

pub fn run(ctx: &super::Context, args: Args) -> CmdResult {
    let (cfg, repo) = ctx.repo(&args.repo)?;
    // Relative `repo` fields of --from-file lines are relative to here.
    let cwd = std::env::current_dir()
        .map_err(|e| fail(anyhow!("cannot read the current directory: {e}")))?;
    let routes = route_package_events(&cfg, &repo, args.channel.as_deref())
        .map_err(|e| fail(anyhow!("{e}")))?;
    for s in &routes.skipped {
        eprintln!("note: {s}");
    }

    let messages = match &args.from_file {
        Some(path) => read_file(path, &repo, &cwd)?,
        None => from_args(&args, &repo)?,
    };
    if messages.is_empty() {
        return Err(fail(anyhow!("no messages to send")));
    }
    let keys: Vec<String> = messages.iter().map(|m| key_of(m, &repo)).collect();
    let outgoing: Vec<Outgoing<'_>> = messages
        .iter()
        .zip(&keys)
        .flat_map(|(msg, key)| {
            routes
                .routes
                .iter()
                .map(move |route| Outgoing { msg, key, route })
        })
        .collect();

    if args.dry_run {
        dry_run(&outgoing, &routes.skipped, args.format);
        return Ok(());
    }
    // Just before our own sends: the run that covers them starts after.
    let since = super::wait_index::Since::Moment(chrono::Utc::now().timestamp_millis());
    send(&cfg, &outgoing, &routes.skipped, &args)?;
    if args.wait {
        let bounds = super::wait_index::Bounds {
            timeout_ms: args.timeout_ms,
            max_wait_ms: args.max_wait_ms,
        };
        return super::wait_index::wait(&cfg, &repo, since, bounds, args.format);
    }
    Ok(())
}

/// Package events are keyed by package name so one package's events stay in
/// order on one partition; `generate index` concerns the whole repository
/// and is keyed by its name.
fn key_of(m: &PackageUpdateMessage, repo: &ResolvedRepo) -> String {
    if m.event == PackageEvent::GenerateIndex {
        return repo.name.clone();
    }
    m.package.split('/').next().unwrap_or_default().to_string()
}

fn from_args(args: &Args, repo: &ResolvedRepo) -> Result<Vec<PackageUpdateMessage>, Exit> {
    let event: PackageEvent = args
        .event
        .ok_or_else(|| fail(anyhow!("--event or --from-file is required")))?
        .into();
    let make = |package: String| PackageUpdateMessage {
        event,
        repo: repo.address.to_url(),
        repo_name: repo.name.clone(),
        package,
    };
    if event == PackageEvent::GenerateIndex {
        if !args.packages.is_empty() {
            return Err(fail(anyhow!(
                "--event generate-index rebuilds the whole index and takes no --package"
            )));
        }
        return Ok(vec![make(String::new())]);
    }
    if args.packages.is_empty() {
        return Err(fail(anyhow!(
            "--event {} needs at least one --package NAME/VERSION/BUILD",
            event
        )));
    }
    let mut bad = Vec::new();
    let mut out = Vec::new();
    for p in &args.packages {
        match PkgIdent::parse_full(p) {
            Ok(id) => out.push(make(id.to_string())),
            Err(e) => bad.push(format!("--package {p}: {e}")),
        }
    }
    if !bad.is_empty() {
        return Err(fail(anyhow!(
            "{} invalid package identifier(s); nothing was sent:\n  {}",
            bad.len(),
            bad.join("\n  ")
        )));
    }
    Ok(out)
}

/// Reads and validates every line; any bad line means nothing is sent.
fn read_file(
    path: &Path,
    repo: &ResolvedRepo,
    cwd: &Path,
) -> Result<Vec<PackageUpdateMessage>, Exit> {
    let name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(std::io::stdin().lock()))
    } else {
        let f = std::fs::File::open(path).map_err(|e| fail(anyhow!("cannot read {name}: {e}")))?;
        Box::new(BufReader::new(f))
    };
    let mut out = Vec::new();
    let mut bad: Vec<String> = Vec::new();
    let mut bad_count = 0usize;
    for (i, line) in reader.lines().enumerate() {
        let n = i + 1;
        let line = line.map_err(|e| fail(anyhow!("cannot read {name} line {n}: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        match check_line(&line, repo, cwd) {
            Ok(m) => out.push(m),
            Err(e) => {
                bad_count += 1;
                if bad.len() < LIST_LIMIT {
                    bad.push(format!("line {n}: {e}"));
                }
            }
        }
    }
    if bad_count > 0 {
        let more = if bad_count > bad.len() {
            format!("\n  ... and {} more", bad_count - bad.len())
        } else {
            String::new()
        };
        return Err(fail(anyhow!(
            "{name}: {bad_count} bad line(s); nothing was sent:\n  {}{more}",
            bad.join("\n  ")
        )));
    }
    Ok(out)
}

fn check_line(line: &str, repo: &ResolvedRepo, cwd: &Path) -> Result<PackageUpdateMessage, String> {
    let mut m = PackageUpdateMessage::from_bytes(line.as_bytes()).map_err(|e| e.to_string())?;
    if m.repo_name != repo.name {
        return Err(format!(
            "repo_name {:?} is not the repository being sent for ({:?})",
            m.repo_name, repo.name
        ));
    }
    let addr = RepoAddress::parse(&m.repo, cwd).map_err(|e| e.to_string())?;
    if addr != repo.address {
        return Err(format!(
            "repo {:?} is not the address of repository {:?} ({})",
            m.repo,
            repo.name,
            repo.address.to_url()
        ));
    }
    // Canonical address, documented event string (from_bytes accepts SPK's
    // variant names, to_json writes the documented ones).
    m.repo = repo.address.to_url();
    if m.event == PackageEvent::GenerateIndex {
        m.package = String::new();
    } else {
        let id = PkgIdent::parse_full(&m.package).map_err(|e| format!("package: {e}"))?;
        m.package = id.to_string();
    }
    Ok(m)
}

fn dry_run(outgoing: &[Outgoing<'_>], skipped: &[String], format: Format) {
    let entries: Vec<(&Outgoing<'_>, MessageHeaders)> = outgoing
        .iter()
        .map(|o| (o, MessageHeaders::new(MessageKind::PackageUpdate)))
        .collect();
    match format {
        Format::Json => {
            let messages: Vec<serde_json::Value> = entries
                .iter()
                .map(|(o, h)| {
                    let headers: serde_json::Map<String, serde_json::Value> = h
                        .pairs()
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.clone().into()))
                        .collect();
                    serde_json::json!({
                        "channel": o.route.channel,
                        "topic": o.route.topic,
                        "key": o.key,
                        "headers": headers,
                        "payload": o.msg.to_json(),
                    })
                })
                .collect();
            print_json(&serde_json::json!({
                "dry_run": true,
                "messages": messages,
                "skipped_channels": skipped,
            }));
        }
        Format::Text => {
            for (o, h) in &entries {
                println!("channel: {}", o.route.channel);
                println!("topic:   {}", o.route.topic);
                println!("key:     {}", o.key);
                println!("headers:");
                for (k, v) in h.pairs() {
                    println!("  {k}: {v}");
                }
                println!("payload: {}", o.msg.to_json());
                println!();
            }
            println!("dry run: {} message(s), nothing sent", entries.len());
        }
    }
}

/// The fate of one outgoing message.
enum Fate {
    Delivered(Delivery),
    Failed(SendError),
}

fn send(cfg: &Config, outgoing: &[Outgoing<'_>], skipped: &[String], args: &Args) -> CmdResult {
    // Build every producer before sending anything: a bad property or an
    // unset ${VAR} stops the command with nothing sent.
    let mut producers = BTreeMap::new();
    for o in outgoing {
        if producers.contains_key(&o.route.channel) {
            continue;
        }
        let ch = cfg
            .channel(&o.route.channel)
            .ok_or_else(|| fail(anyhow!("channel {:?} is not configured", o.route.channel)))?;
        // Events named on the command line: a one-shot process. A file of
        // events may be large: an idempotent producer, whose retries never
        // duplicate or reorder (docs/kafka.md, "Producers").
        let role = if args.from_file.is_some() {
            ProducerRole::LongLived
        } else {
            ProducerRole::OneShot
        };
        let p = Producers::global()
            .get_for(ch, role)
            .map_err(|e| fail(anyhow!("{e}")))?;
        producers.insert(o.route.channel.clone(), p);
    }

    // Enqueue everything, then await every delivery report.
    let mut pending: Vec<Result<PendingDelivery, SendError>> = Vec::with_capacity(outgoing.len());
    let mut queue_stuck: BTreeMap<String, SendError> = BTreeMap::new();
    for o in outgoing {
        let p = &producers[&o.route.channel];
        if let Some(e) = queue_stuck.get(&o.route.channel) {
            // The queue stayed full for producer_queue_timeout_ms once; do not
            // wait that long again for every remaining message.
            pending.push(Err(SendError {
                kind: SendErrorKind::Skipped,
                reason: format!("not sent: {}", e.reason),
                ..e.clone()
            }));
            continue;
        }
        let headers = MessageHeaders::new(MessageKind::PackageUpdate);
        let r = p.enqueue(&o.route.topic, o.key, o.msg.to_json().as_bytes(), &headers);
        if let Err(e) = &r {
            if e.kind == SendErrorKind::QueueFull {
                queue_stuck.insert(o.route.channel.clone(), e.clone());
            }
        }
        pending.push(r);
    }
    let fates: Vec<Fate> = pending
        .into_iter()
        .map(|r| match r.and_then(PendingDelivery::wait) {
            Ok(d) => Fate::Delivered(d),
            Err(e) => Fate::Failed(e),
        })
        .collect();

    let failed = fates
        .iter()
        .filter(|f| matches!(f, Fate::Failed(_)))
        .count();
    let show_each = args.each || outgoing.len() <= EACH_LIMIT;
    print_result(outgoing, &fates, skipped, show_each, args.format);
    if failed == 0 {
        return Ok(());
    }
    let mut lines = Vec::new();
    let mut brokers: Vec<String> = Vec::new();
    for (o, f) in outgoing.iter().zip(&fates) {
        if let Fate::Failed(e) = f {
            let b = format!("channel {:?} (brokers {})", e.channel, e.brokers);
            if !brokers.contains(&b) {
                brokers.push(b);
            }
            if lines.len() < LIST_LIMIT {
                lines.push(format!("{}: {}", describe(o), e.reason));
            }
        }
    }
    let more = if failed > lines.len() {
        format!("\n  ... and {} more", failed - lines.len())
    } else {
        String::new()
    };
    let connect = fates.iter().find_map(|f| match f {
        Fate::Failed(e) => e.failure.clone(),
        Fate::Delivered(_) => None,
    });
    Err(Exit::with(
        exit::for_connect_failure(connect.as_deref()),
        anyhow!(
            "{failed} of {} message(s) were not delivered to {}:\n  {}{more}",
            outgoing.len(),
            brokers.join(", "),
            lines.join("\n  ")
        ),
    ))
}

fn describe(o: &Outgoing<'_>) -> String {
    let what = if o.msg.package.is_empty() {
        o.msg.event.to_string()
    } else {
        format!("{} {}", o.msg.event, o.msg.package)
    };
    format!(
        "{what} -> channel {} topic {}",
        o.route.channel, o.route.topic
    )
}

/// Offsets written per channel, topic and partition.
#[derive(Debug)]
struct Range {
    first: i64,
    last: i64,
    count: usize,
}

fn print_result(
    outgoing: &[Outgoing<'_>],
    fates: &[Fate],
    skipped: &[String],
    show_each: bool,
    format: Format,
) {
    let mut ranges: BTreeMap<(String, String, i32), Range> = BTreeMap::new();
    for (o, f) in outgoing.iter().zip(fates) {
        if let Fate::Delivered(d) = f {
            ranges
                .entry((o.route.channel.clone(), d.topic.clone(), d.partition))
                .and_modify(|r| {
                    r.first = r.first.min(d.offset);
                    r.last = r.last.max(d.offset);
                    r.count += 1;
                })
                .or_insert(Range {
                    first: d.offset,
                    last: d.offset,
                    count: 1,
                });
        }
    }
    let delivered: usize = ranges.values().map(|r| r.count).sum();
    match format {
        Format::Json => {
            let partitions: Vec<serde_json::Value> = ranges
                .iter()
                .map(|((c, t, p), r)| {
                    serde_json::json!({"channel": c, "topic": t, "partition": p,
                        "first_offset": r.first, "last_offset": r.last, "count": r.count})
                })
                .collect();
            let mut v = serde_json::json!({
                "sent": outgoing.len(),
                "delivered": delivered,
                "failed": outgoing.len() - delivered,
                "partitions": partitions,
                "skipped_channels": skipped,
            });
            if show_each {
                let each: Vec<serde_json::Value> = outgoing
                    .iter()
                    .zip(fates)
                    .map(|(o, f)| {
                        let mut e = serde_json::json!({
                            "event": o.msg.event.as_str(),
                            "package": o.msg.package,
                            "channel": o.route.channel,
                            "topic": o.route.topic,
                            "key": o.key,
                        });
                        match f {
                            Fate::Delivered(d) => {
                                e["partition"] = d.partition.into();
                                e["offset"] = d.offset.into();
                            }
                            Fate::Failed(err) => e["error"] = err.reason.clone().into(),
                        }
                        e
                    })
                    .collect();
                v["messages"] = each.into();
            }
            print_json(&v);
        }
        Format::Text => {
            if show_each {
                for (o, f) in outgoing.iter().zip(fates) {
                    if let Fate::Delivered(d) = f {
                        println!(
                            "delivered {}: partition {} offset {}",
                            describe(o),
                            d.partition,
                            d.offset
                        );
                    }
                }
            } else {
                for ((c, t, p), r) in &ranges {
                    println!(
                        "channel {c} topic {t} partition {p}: {} message(s), offsets {}..{}",
                        r.count, r.first, r.last
                    );
                }
            }
            println!("{delivered} of {} message(s) delivered", outgoing.len());
        }
    }
}
