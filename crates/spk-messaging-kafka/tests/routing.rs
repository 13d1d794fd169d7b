//! Routing: index status only to the repository's update_message_channel
//! and only if that channel lists the repository; package events to every
//! channel listing it, or the one named; channels without the topic send
//! nothing and say why. The end-to-end cases send through a mock cluster
//! and count what arrived where.

mod common;

use common::*;
use spk_messaging_core::{IndexEvent, IndexStatusMessage};
use spk_messaging_kafka::{
    route_index_status, route_package_events, status_reporter_with, IndexRoute, PackageRoute,
    Producers, RouteError, StatusSink,
};

const B: &str = "127.0.0.1:9";

#[test]
fn index_status_goes_only_to_the_update_message_channel() {
    let cfg = config(vec![
        channel("kafka", B, &["origin"]),
        channel("other", B, &["origin"]),
    ]);
    assert_eq!(
        route_index_status(&cfg, &repo("origin", "other")),
        IndexRoute::Send {
            channel: "other".into(),
            topic: IDX_TOPIC.into()
        }
    );
    assert_eq!(
        route_index_status(&cfg, &repo("origin", "kafka")),
        IndexRoute::Send {
            channel: "kafka".into(),
            topic: IDX_TOPIC.into()
        }
    );
}

#[test]
fn index_status_skips_with_reasons() {
    let mut no_topic = channel("quiet", B, &["origin"]);
    no_topic.index_updates_topic_name = None;
    let cfg = config(vec![channel("kafka", B, &["other-repo"]), no_topic]);

    // The channel does not list the repository: a warning.
    match route_index_status(&cfg, &repo("origin", "kafka")) {
        IndexRoute::Skip { reason, warning } => {
            assert!(warning);
            assert!(
                reason.contains("repo_names") && reason.contains("\"origin\""),
                "{reason}"
            );
        }
        r => panic!("{r:?}"),
    }
    // The channel has no index topic.
    match route_index_status(&cfg, &repo("origin", "quiet")) {
        IndexRoute::Skip { reason, warning } => {
            assert!(!warning);
            assert!(reason.contains("index_updates_topic_name"), "{reason}");
        }
        r => panic!("{r:?}"),
    }
    // The default update_message_channel "kafka" with no messaging at all.
    match route_index_status(&config(vec![]), &repo("origin", "kafka")) {
        IndexRoute::Skip { reason, warning } => {
            assert!(!warning);
            assert!(
                reason.contains("not configured") && reason.contains("no channels"),
                "{reason}"
            );
        }
        r => panic!("{r:?}"),
    }
    // The sink says the same, as the note to print.
    let sink = status_reporter_with(&Producers::new(), &config(vec![]), &repo("origin", "kafka"))
        .expect("sink");
    match sink {
        StatusSink::None { note, .. } => {
            assert!(
                note.starts_with("no status messages will be sent: "),
                "{note}"
            )
        }
        StatusSink::Kafka(_) => panic!("expected no reporter"),
    }
}

#[test]
fn package_events_go_to_every_channel_listing_the_repo() {
    let mut no_topic = channel("quiet", B, &["origin"]);
    no_topic.package_updates_topic_name = None;
    let mut c2 = channel("second", B, &["origin", "other"]);
    c2.package_updates_topic_name = Some("second-topic".into());
    let cfg = config(vec![
        channel("kafka", B, &["origin"]),
        channel("elsewhere", B, &["other"]),
        no_topic,
        c2,
    ]);
    let r = route_package_events(&cfg, &repo("origin", "kafka"), None).expect("routes");
    assert_eq!(
        r.routes,
        vec![
            PackageRoute {
                channel: "kafka".into(),
                topic: PKG_TOPIC.into()
            },
            PackageRoute {
                channel: "second".into(),
                topic: "second-topic".into()
            },
        ]
    );
    assert_eq!(r.skipped.len(), 1);
    assert!(
        r.skipped[0].contains("\"quiet\"") && r.skipped[0].contains("package_updates_topic_name")
    );

    // --channel picks one.
    let r = route_package_events(&cfg, &repo("origin", "kafka"), Some("second")).expect("routes");
    assert_eq!(r.routes.len(), 1);
    assert_eq!(r.routes[0].topic, "second-topic");

    // --channel that does not list the repository, does not exist, has no topic.
    assert!(matches!(
        route_package_events(&cfg, &repo("origin", "kafka"), Some("elsewhere")),
        Err(RouteError::RepoNotAllowed { .. })
    ));
    let e = route_package_events(&cfg, &repo("origin", "kafka"), Some("nope"))
        .expect_err("unknown channel");
    assert!(matches!(e, RouteError::UnknownChannel { .. }));
    assert!(e.to_string().contains("\"kafka\""), "{e}");
    assert!(matches!(
        route_package_events(&cfg, &repo("origin", "kafka"), Some("quiet")),
        Err(RouteError::NoTopic { .. })
    ));
    // A repository no channel lists.
    assert!(matches!(
        route_package_events(&cfg, &repo("lonely", "kafka"), None),
        Err(RouteError::NoChannel { .. })
    ));
    // Only channels without the topic: nothing to send, and why.
    let mut q = channel("q", B, &["origin"]);
    q.package_updates_topic_name = None;
    let e = route_package_events(&config(vec![q]), &repo("origin", "kafka"), None)
        .expect_err("no topic anywhere");
    assert!(matches!(e, RouteError::NoTopicAnywhere { .. }));
    assert!(e.to_string().contains("\"q\""), "{e}");
}

#[test]
fn status_reporter_sends_nothing_when_repo_not_listed() {
    let b = broker();
    let cfg = config(vec![channel(
        "kafka",
        &b.bootstrap_servers(),
        &["someone-else"],
    )]);
    let sink =
        status_reporter_with(&Producers::new(), &cfg, &repo("origin", "kafka")).expect("sink");
    let (reporter, note) = sink.into_reporter();
    assert!(!reporter.is_active());
    assert!(note.expect("a note").contains("repo_names"));
    reporter
        .report(&IndexStatusMessage {
            event: IndexEvent::Started,
            repo: "file:/srv/spk/origin".into(),
            name: "origin".into(),
            start: 1,
        })
        .expect("null reporter");
    assert_eq!(count(&b.bootstrap_servers(), IDX_TOPIC), 0);
}

#[test]
fn index_status_reaches_only_its_channel_on_the_wire() {
    // Two clusters, one channel each, both listing the repository.
    let b1 = broker();
    let b2 = broker();
    let cfg = config(vec![
        channel("first", &b1.bootstrap_servers(), &["origin"]),
        channel("second", &b2.bootstrap_servers(), &["origin"]),
    ]);
    let repo = repo("origin", "second");
    let producers = Producers::new();
    let (reporter, note) = status_reporter_with(&producers, &cfg, &repo)
        .expect("sink")
        .into_reporter();
    assert!(note.is_none());
    reporter
        .report(&IndexStatusMessage {
            event: IndexEvent::Completed,
            repo: repo.address.to_url(),
            name: repo.name.clone(),
            start: 5,
        })
        .expect("delivered");
    assert_eq!(count(&b2.bootstrap_servers(), IDX_TOPIC), 1);
    assert_eq!(count(&b1.bootstrap_servers(), IDX_TOPIC), 0);
}
