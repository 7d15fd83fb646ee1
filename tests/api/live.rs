//! The event bus across instances: with Redis, a message published on one instance reaches the
//! subscribers of every instance; in-process, it reaches the instance's own subscribers.

use seatstorm::live::LiveMessage;
use uuid::Uuid;

use crate::helpers::TestApp;

async fn receive(receiver: &mut tokio::sync::broadcast::Receiver<LiveMessage>) -> LiveMessage {
    tokio::time::timeout(std::time::Duration::from_secs(10), receiver.recv())
        .await
        .expect("a message within ten seconds")
        .expect("the channel is open")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_reaches_subscribers_of_every_instance() {
    let a = TestApp::spawn().await;
    let event_id = Uuid::now_v7();
    let message = LiveMessage::InventoryChanged { event_id };

    let mut on_a = a.state.bus.subscribe();
    if a.uses_redis() {
        let b = a.spawn_sibling().await;
        let mut on_b = b.state.bus.subscribe();
        a.state.bus.publish(message.clone()).await;
        assert_eq!(
            receive(&mut on_b).await,
            message,
            "instance B hears what A published"
        );
        assert_eq!(
            receive(&mut on_a).await,
            message,
            "A hears its own message once, through Redis"
        );
        assert!(
            on_a.try_recv().is_err(),
            "no duplicate delivery on the publishing instance"
        );
    } else {
        a.state.bus.publish(message.clone()).await;
        assert_eq!(receive(&mut on_a).await, message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_the_bus() {
    let app = TestApp::spawn().await;
    let body: serde_json::Value = reqwest::get(app.url("/ready"))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(body["bus"], "ok");
}
