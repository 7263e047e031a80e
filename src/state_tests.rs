//! Tests of the state database: records, pending invalidations, and never starting with less
//! than was stored.

use super::*;

fn key_spec(tenant: &str) -> KeySpec {
    let pair = crate::keys::keygen::generate_es256("k").unwrap();
    KeySpec {
        tenant: tenant.into(),
        alg: Some("ES256".into()),
        public_key_pem: Some(pair.public_pem.clone()),
        ..KeySpec::default()
    }
}

fn public_spec(tenant: &str) -> PolicySpec {
    PolicySpec {
        tenant: tenant.into(),
        kind: crate::spec::PolicyKind::Public,
        ..PolicySpec::default()
    }
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn writes_survive_reopening_with_private_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    {
        let db = StateDb::open(&dir).await.unwrap();
        let writes = vec![
            Write::PutKey("k1".into(), key_spec("t1")),
            Write::PutPolicy("abc".into(), public_spec("t1")),
            Write::PutPolicy("gone".into(), public_spec("t1")),
        ];
        db.commit(writes, vec![], 10).await.unwrap();
        db.commit(vec![Write::DeletePolicy("gone".into())], vec![], 10)
            .await
            .unwrap();
    }
    let db = StateDb::open(&dir).await.unwrap();
    let records = db.load_all().await.unwrap();
    assert_eq!(records.keys.len(), 1);
    assert_eq!(records.keys[0].0, "k1");
    let objects: Vec<&str> = records.policies.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(objects, ["abc"]);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
}

#[tokio::test]
async fn pending_names_are_committed_with_the_change_and_survive_reopening() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let db = StateDb::open(tmp.path()).await.unwrap();
        let writes = vec![Write::PutPolicy("vod".into(), public_spec("t1"))];
        let p = db
            .commit(writes, names(&["vod", "live+vod"]), 10)
            .await
            .unwrap();
        assert_eq!(p.refused, 0);
        assert_eq!(p.stored.len(), 2);
    }
    let db = StateDb::open(tmp.path()).await.unwrap();
    let mut pending = db.pending().await.unwrap();
    pending.sort();
    assert_eq!(pending, [("live+vod".into(), 1), ("vod".into(), 1)]);
    assert_eq!(db.load_all().await.unwrap().policies.len(), 1);
}

#[tokio::test]
async fn an_acknowledgement_forgets_only_what_no_later_change_stored_again() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path()).await.unwrap();
    let first = db.commit(vec![], names(&["a", "b"]), 10).await.unwrap();
    let second = db.commit(vec![], names(&["b"]), 10).await.unwrap();
    assert_eq!(second.stored, [("b".to_string(), 2)]);
    // MistServer acknowledges the first batch (a and b as of seq 1): b is owed again.
    db.acknowledge(first.stored).await.unwrap();
    assert_eq!(db.pending().await.unwrap(), [("b".to_string(), 2)]);
    db.acknowledge(second.stored).await.unwrap();
    assert!(db.pending().await.unwrap().is_empty());
}

#[tokio::test]
async fn pending_names_beyond_the_bound_are_refused_and_the_change_still_commits() {
    let tmp = tempfile::tempdir().unwrap();
    let db = StateDb::open(tmp.path()).await.unwrap();
    db.commit(vec![], names(&["a", "b"]), 3).await.unwrap();
    let writes = vec![Write::PutPolicy("abc".into(), public_spec("t1"))];
    let p = db
        .commit(writes, names(&["a", "c", "d", "e"]), 3)
        .await
        .unwrap();
    assert_eq!(p.refused, 2, "d and e do not fit; a is merged");
    assert_eq!(db.pending().await.unwrap().len(), 3);
    assert_eq!(db.load_all().await.unwrap().policies.len(), 1);
}

/// Regression (issue 11, 2): a state file truncated to 0 bytes was opened as a new, empty
/// database, and every API-set `deny` vanished.
#[tokio::test]
async fn regression_an_empty_state_file_stops_usher_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE_NAME);
    std::fs::write(&file, b"").unwrap();
    let err = StateDb::open(tmp.path()).await.err().expect("refused");
    assert!(matches!(err, StateError::Empty { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(text.contains("empty"), "{text}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left untouched");
}

/// Regression (issue 11, 2): an existing state file that cannot be read stops usher too.
#[tokio::test]
async fn regression_an_unreadable_state_file_stops_usher_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE_NAME);
    std::fs::create_dir(&file).unwrap();
    let err = StateDb::open(tmp.path()).await.err().expect("refused");
    assert!(matches!(err, StateError::Unreadable { .. }), "{err}");
    assert!(
        err.to_string().contains(&file.display().to_string()),
        "{err}"
    );
}

/// Regression (issue 11, 3): a corrupt state file made redb panic inside the blocking task and
/// the operator saw only "state database task failed". The cause and the file are reported.
#[tokio::test]
async fn regression_a_corrupt_state_file_reports_the_cause_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join(FILE_NAME);
    {
        let db = StateDb::open(tmp.path()).await.unwrap();
        let writes = (0..50)
            .map(|i| Write::PutPolicy(format!("object-{i}"), public_spec("t1")))
            .collect();
        db.commit(writes, names(&["vod"]), 10).await.unwrap();
    }
    let mut bytes = std::fs::read(&file).unwrap();
    for b in bytes.iter_mut().skip(512) {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).unwrap();
    let opened = StateDb::open(tmp.path()).await;
    let err = match opened {
        Err(e) => e,
        Ok(db) => match db.load_all().await {
            Err(e) => e,
            Ok(records) => panic!("corrupt file read as {} policies", records.policies.len()),
        },
    };
    let text = err.to_string();
    assert!(text.contains(&file.display().to_string()), "{text}");
    assert!(!text.contains("task failed"), "{text}");
}

#[tokio::test]
async fn a_panic_in_the_blocking_task_is_reported_with_its_message() {
    let path = Path::new("/var/lib/usher/usher.redb");
    let err = run_blocking(path, || -> u8 { panic!("page checksum mismatch") })
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("page checksum mismatch"), "{text}");
    assert!(text.contains("/var/lib/usher/usher.redb"), "{text}");
}
