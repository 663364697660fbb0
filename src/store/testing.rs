//! For the store's own tests: a fresh migrated SQLite database in a temporary directory, with
//! one active subscriber to hang deliveries, bounces and versions on.

use super::{NewSubscriber, Store};
use crate::model::{
    EmailAddress, Frequency, Interests, MaxPapers, SendTime, SubscriberId, SubscriberStatus,
    TimeZoneName,
};
use chrono::{DateTime, Utc};

/// A store in `dir/file` with ada@example.org (interests "memory", daily at 07:00 UTC) added
/// at `at`.
pub async fn store_with_subscriber(
    dir: &tempfile::TempDir,
    file: &str,
    at: DateTime<Utc>,
) -> (Store, SubscriberId) {
    let url = format!("sqlite://{}", dir.path().join(file).display());
    let store = Store::open_and_migrate(&url, 2).await.unwrap();
    let id = store
        .add_subscriber(
            &NewSubscriber {
                email: EmailAddress::parse("ada@example.org").unwrap(),
                status: SubscriberStatus::Active,
                interests: Interests::parse("memory").unwrap(),
                frequency: Frequency::Daily,
                send_time: "07:00".parse::<SendTime>().unwrap(),
                timezone: "UTC".parse::<TimeZoneName>().unwrap(),
                max_papers: MaxPapers::new(10).unwrap(),
            },
            at,
        )
        .await
        .unwrap();
    (store, id)
}
