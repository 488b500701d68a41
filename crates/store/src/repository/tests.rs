//! Tests of the repository, its secrets, revisions and events.

use crate::fixture::{Fixture, file_contains};
use crate::*;

fn revision(id: &str, summary: &str) -> RevisionRecord {
    RevisionRecord {
        id: id.into(),
        author: "Ada Ops <ada@example.com>".into(),
        summary: summary.into(),
        committed_at: 1_700_000_000_000,
        seen_at: 0,
    }
}

#[tokio::test]
async fn repository_settings_secrets_fetches_and_events() {
    let f = Fixture::new().await;
    assert_eq!(f.store.get_repository().await.unwrap(), None);
    // A fetch before the repository exists is refused.
    assert!(matches!(
        f.store.record_fetch(&revision("a1", "x")).await,
        Err(StoreError::NotFound { .. })
    ));

    let settings = RepositorySettings {
        url: "https://git.example/ops/desired.git".into(),
        branch: "main".into(),
        path: "".into(),
        poll_interval_secs: 60,
    };
    let token = f
        .key
        .seal(b"{\"kind\":\"token\"}", REPOSITORY_CREDENTIALS_CONTEXT)
        .unwrap();
    let webhook = f.key.seal(b"hook-secret", WEBHOOK_SECRET_CONTEXT).unwrap();
    let repo = f
        .store
        .put_repository(
            &settings,
            SecretChange::Set((CredentialsKind::Token, token.clone())),
            SecretChange::Set(webhook.clone()),
        )
        .await
        .unwrap();
    assert_eq!(repo.settings, settings);
    assert_eq!(repo.credentials_kind, CredentialsKind::Token);
    assert!(repo.has_webhook_secret);
    assert_eq!(
        f.store.repository_credentials().await.unwrap(),
        Some((CredentialsKind::Token, token))
    );
    assert_eq!(f.store.webhook_secret().await.unwrap(), Some(webhook));
    // Secrets never reach the file in clear.
    assert!(!file_contains(&f.db_path(), b"hook-secret"));

    // A new head is recorded once; the same head again is no change.
    assert!(
        f.store
            .record_fetch(&revision("a1", "first"))
            .await
            .unwrap()
    );
    assert!(
        !f.store
            .record_fetch(&revision("a1", "first"))
            .await
            .unwrap()
    );
    f.store
        .record_fetch_failure("remote unreachable")
        .await
        .unwrap();
    let repo = f.store.get_repository().await.unwrap().unwrap();
    assert_eq!(repo.head_revision.as_deref(), Some("a1"));
    assert_eq!(repo.last_fetch_error.as_deref(), Some("remote unreachable"));
    assert_eq!(repo.consecutive_fetch_failures, 1);
    assert!(
        f.store
            .record_fetch(&revision("b2", "second"))
            .await
            .unwrap()
    );
    let repo = f.store.get_repository().await.unwrap().unwrap();
    assert_eq!(repo.last_fetch_error, None);
    assert_eq!(repo.consecutive_fetch_failures, 0);
    let kinds: Vec<_> = f
        .store
        .list_repository_events(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.kind, e.revision))
        .collect();
    assert_eq!(
        kinds,
        [
            (RepositoryEventKind::Fetched, Some("b2".into())),
            (RepositoryEventKind::FetchFailed, None),
            (RepositoryEventKind::Fetched, Some("a1".into())),
        ]
    );
    assert_eq!(
        f.store.get_revision("a1").await.unwrap().unwrap().summary,
        "first"
    );

    // Keeping secrets keeps them; changing the branch forgets the head;
    // clearing removes them.
    let other = RepositorySettings {
        branch: "release".into(),
        ..settings
    };
    let repo = f
        .store
        .put_repository(&other, SecretChange::Keep, SecretChange::Clear)
        .await
        .unwrap();
    assert_eq!(repo.credentials_kind, CredentialsKind::Token);
    assert!(!repo.has_webhook_secret);
    assert_eq!(repo.head_revision, None);
    let repo = f
        .store
        .put_repository(&other, SecretChange::Clear, SecretChange::Keep)
        .await
        .unwrap();
    assert_eq!(repo.credentials_kind, CredentialsKind::None);
    assert_eq!(f.store.repository_credentials().await.unwrap(), None);
    f.store.close().await;
}
