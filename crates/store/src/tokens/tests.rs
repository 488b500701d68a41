//! Tests of API tokens.

use crate::fixture::{Fixture, db_files, file_contains};
use crate::*;

#[tokio::test]
async fn tokens_authenticate_by_secret_until_revoked() {
    let f = Fixture::new().await;
    assert_eq!(f.store.count_tokens().await.unwrap(), 0);
    let (reader, read_secret) = f.store.create_token("grafana", Scope::Read).await.unwrap();
    let (writer, write_secret) = f.store.create_token("ci", Scope::Write).await.unwrap();
    assert!(read_secret.starts_with(TOKEN_PREFIX));
    assert_eq!(read_secret.len(), TOKEN_PREFIX.len() + 43);
    assert_ne!(read_secret, write_secret);
    assert_eq!(reader.name, "grafana");
    assert_eq!(reader.scope, Scope::Read);
    assert_eq!(reader.last_used_at, None);
    assert_eq!(f.store.count_tokens().await.unwrap(), 2);
    assert_eq!(
        f.store.list_tokens().await.unwrap(),
        [reader.clone(), writer.clone()]
    );

    let authenticated = f.store.authenticate(&read_secret).await.unwrap().unwrap();
    assert_eq!(authenticated.id, reader.id);
    assert_eq!(authenticated.scope, Scope::Read);
    let used = authenticated
        .last_used_at
        .expect("the first use is recorded");
    // Within the minute the use is not written again.
    let again = f.store.authenticate(&read_secret).await.unwrap().unwrap();
    assert_eq!(again.last_used_at, Some(used));
    let listed = f.store.list_tokens().await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(used));

    let authenticated = f.store.authenticate(&write_secret).await.unwrap().unwrap();
    assert_eq!(authenticated.scope, Scope::Write);

    assert_eq!(f.store.authenticate("ph_wrong").await.unwrap(), None);
    assert_eq!(f.store.authenticate("").await.unwrap(), None);
    let mut almost = read_secret.clone();
    almost.pop();
    assert_eq!(f.store.authenticate(&almost).await.unwrap(), None);

    assert!(f.store.revoke_token(reader.id).await.unwrap());
    assert!(!f.store.revoke_token(reader.id).await.unwrap());
    assert!(!f.store.revoke_token(9_999).await.unwrap());
    assert_eq!(f.store.authenticate(&read_secret).await.unwrap(), None);
    assert!(f.store.authenticate(&write_secret).await.unwrap().is_some());
    assert_eq!(f.store.count_tokens().await.unwrap(), 1);
    assert_eq!(
        f.store
            .list_tokens()
            .await
            .unwrap()
            .into_iter()
            .map(|t| t.id)
            .collect::<Vec<_>>(),
        [writer.id]
    );

    // Ids are not reused after revocation.
    let (third, _) = f.store.create_token("third", Scope::Read).await.unwrap();
    assert!(third.id > writer.id);

    // Only hashes reach the disk.
    for file in db_files(&f.db_path()) {
        for secret in [&read_secret, &write_secret] {
            assert!(
                !file_contains(&file, secret.as_bytes()),
                "{}",
                file.display()
            );
        }
    }
    f.store.close().await;
    for secret in [&read_secret, &write_secret] {
        assert!(!file_contains(&f.db_path(), secret.as_bytes()));
    }
}

#[test]
fn scopes_parse_display_and_imply() {
    assert_eq!("read".parse::<Scope>(), Ok(Scope::Read));
    assert_eq!("write".parse::<Scope>(), Ok(Scope::Write));
    assert_eq!("admin".parse::<Scope>(), Err(UnknownScope("admin".into())));
    assert_eq!(Scope::Write.to_string(), "write");
    assert_eq!(serde_json::to_string(&Scope::Read).unwrap(), "\"read\"");
    assert!(Scope::Write.allows(Scope::Read));
    assert!(Scope::Write.allows(Scope::Write));
    assert!(Scope::Read.allows(Scope::Read));
    assert!(!Scope::Read.allows(Scope::Write));
}
