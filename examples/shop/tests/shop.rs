//! The shop end to end on an embedded Herald: every order ends shipped,
//! cancelled or dead-lettered; retries happen; replay rebuilds analytics.

use shop::{ShopOptions, replay_analytics, run_shop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shop_settles_every_order_and_replay_reproduces_analytics() {
    let broker = herald_events::EmbeddedBroker::start().expect("broker");
    let brokers = broker.bootstrap_servers();
    let report = run_shop(ShopOptions {
        brokers: brokers.clone(),
        orders: 400,
        show: 0,
        partitions: 3,
        quiet: true,
    })
    .await
    .expect("shop ran");
    assert_eq!(
        report.shipped + report.cancelled + report.dead_lettered,
        400,
        "{report:?}"
    );
    // Orders 99 and 349 always break the payment gateway: 3 attempts, then the DLQ.
    assert_eq!(report.dead_lettered, 2);
    // Orders 3, 23, ..., 383 time out twice (40 retries); 99 and 349 twice before the DLQ.
    assert_eq!(report.payment_retries, 44);
    // Orders 7, 57, ..., 357 are declined; orders beyond the 20 scarce items run out.
    let a = &report.analytics;
    assert_eq!(a.events_by_type.get("PaymentFailed"), Some(&8));
    assert_eq!(a.events_by_type.get("OrderPlaced"), Some(&400));
    assert_eq!(
        a.orders_cancelled,
        a.events_by_type["PaymentFailed"] + a.events_by_type["OutOfStock"],
        "compensation"
    );
    assert!(
        a.events_by_type.get("OutOfStock").copied().unwrap_or(0) > 0,
        "{a:?}"
    );
    assert!(a.revenue_cents > 0);

    let replayed = replay_analytics(&brokers).await.expect("replay");
    assert_eq!(
        &replayed, a,
        "replaying from offset 0 rebuilds the same analytics"
    );
}
