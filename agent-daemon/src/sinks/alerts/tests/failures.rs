//! Receivers that are down, failing, slow or refusing: retries, drops, and no receiver
//! holding up another or the hub.
use std::time::{Duration, Instant};

use tokio::net::TcpListener;

use super::{
    server::{HANG, Server},
    *,
};

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn a_receiver_that_was_down_gets_the_alert_once_it_is_up() {
    // A port nothing listens on, until the server starts there.
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let running = start(vec![webhook("late", &format!("http://{addr}"), 8, None)]);
    running.events.send(verdict("killed")).await.unwrap();
    let hook = &running.stats[0];
    within(SOON, "a retry", || hook.retries() >= 1).await;

    let mut server = Server::on(TcpListener::bind(addr).await.unwrap(), |_| 200);
    assert_eq!(server.next().await.json()["alert"], "PaddockKill");
    within(SOON, "delivered", || hook.delivered() == 1).await;
    assert!(hook.retries() > 0);
    assert_eq!(hook.failed(), 0);
}

#[tokio::test]
async fn a_failing_receiver_does_not_delay_a_healthy_one() {
    let broken = Server::start(|_| 500).await;
    let mut healthy = Server::start(|_| 200).await;
    let running = start(vec![
        webhook("broken", &broken.url(), 2, None),
        webhook("healthy", &healthy.url(), 2, None),
    ]);
    let began = Instant::now();
    for _ in 0..5 {
        running.events.send(verdict("flagged")).await.unwrap();
    }
    for _ in 0..5 {
        healthy.next().await;
    }
    let (bad, good) = (&running.stats[0], &running.stats[1]);
    within(Duration::from_secs(1), "healthy delivered all", || good.delivered() == 5).await;
    // Each broken alert takes three attempts and about 300 ms of backoff; the healthy
    // receiver was done long before the broken one could be.
    assert!(began.elapsed() < Duration::from_secs(1), "{:?}", began.elapsed());
    assert!(bad.failed() < 5, "the broken receiver should still be retrying");

    within(Duration::from_secs(10), "broken gave up", || bad.failed() == 5).await;
    assert_eq!((bad.delivered(), bad.retries()), (0, 10));
    assert_eq!(broken.hits(), 15);
    assert_eq!((good.failed(), good.retries()), (0, 0));
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_without_waiting() {
    let mut server = Server::start(|_| 200).await;
    let ReceiverConfig::Webhook(hook) = webhook("small", &server.url(), 8, None) else {
        unreachable!()
    };
    let hook = crate::sinks::alerts::config::WebhookReceiver { queue: 2, ..hook };
    let router = AlertRouter::new(&config(vec![ReceiverConfig::Webhook(hook)])).unwrap();
    // Nothing sends until `run`: the queue of 2 fills and the rest are dropped at once.
    let began = Instant::now();
    for _ in 0..10 {
        assert!(router.submit(&verdict("flagged")));
    }
    assert!(began.elapsed() < Duration::from_millis(100));
    let stats = router.stats();
    assert_eq!(stats[0].failed(), 8);

    let _running = run(router);
    server.next().await;
    server.next().await;
    within(SOON, "the queued two delivered", || stats[0].delivered() == 2).await;
    assert_eq!(stats[0].failed(), 8);
}

#[tokio::test]
async fn a_bad_request_is_not_retried() {
    let server = Server::start(|_| 400).await;
    let running = start(vec![alertmanager("am", &server.url())]);
    running.events.send(verdict("killed")).await.unwrap();
    let am = &running.stats[0];
    within(SOON, "counted failed", || am.failed() == 1).await;
    assert_eq!((am.delivered(), am.retries(), server.hits()), (0, 0, 1));
}

#[tokio::test]
async fn too_many_requests_and_timeouts_are_retried() {
    let mut throttled = Server::start(|n| if n == 0 { 429 } else { 200 }).await;
    let mut slow = Server::start(|n| if n == 0 { HANG } else { 200 }).await;
    let ReceiverConfig::Webhook(hook) = webhook("slow", &slow.url(), 8, None) else {
        unreachable!()
    };
    let hook = crate::sinks::alerts::config::WebhookReceiver { timeout_ms: 200, ..hook };
    let running =
        start(vec![webhook("throttled", &throttled.url(), 8, None), ReceiverConfig::Webhook(hook)]);
    running.events.send(verdict("flagged")).await.unwrap();
    throttled.next().await;
    slow.next().await;
    for stats in &running.stats {
        within(SOON, "delivered on the second try", || stats.delivered() == 1).await;
        assert_eq!((stats.retries(), stats.failed()), (1, 0), "{}", stats.name);
    }
}

#[tokio::test]
async fn shutdown_sends_what_is_queued_and_gives_up_on_a_dead_receiver() {
    let addr = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let server = Server::start(|_| 200).await;
    let router = AlertRouter::new(&config(vec![
        webhook("dead", &format!("http://{addr}"), 8, None),
        webhook("up", &server.url(), 8, None),
    ]))
    .unwrap();
    let stats = router.stats();
    let (events, rx) = tokio::sync::mpsc::channel(16);
    for _ in 0..3 {
        events.send(verdict("killed")).await.unwrap();
    }
    // Stopped before it read a thing: what the hub queued still goes out.
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let grace = Duration::from_millis(300);
    let began = Instant::now();
    finishes(SOON, "shutdown", router.run_with_grace(rx, shutdown, grace)).await;
    assert!(began.elapsed() < grace + Duration::from_millis(500), "{:?}", began.elapsed());
    let (dead, up) = (&stats[0], &stats[1]);
    assert_eq!((up.delivered(), up.failed()), (3, 0));
    assert_eq!((dead.delivered(), dead.failed()), (0, 3));
    assert!(dead.retries() > 0);
}
