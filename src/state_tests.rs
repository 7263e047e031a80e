//! Tests of the state database and of laying its records over the config snapshot.

use super::*;
use crate::policy::model::Policy;

fn key_record(tenant: &str, status: KeyStatus) -> KeyRecord {
    let pair = crate::keys::keygen::generate_es256("k").unwrap();
    KeyRecord {
        tenant: tenant.into(),
        alg: "ES256".into(),
        public_key_pem: Some(pair.public_pem.clone()),
        jwk: None,
        status,
    }
}

fn public_record(tenant: &str) -> PolicyRecord {
    PolicyRecord {
        tenant: tenant.into(),
        kind: "public".into(),
        ..PolicyRecord::default()
    }
}

#[tokio::test]
async fn writes_survive_reopening_with_private_permissions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    {
        let db = StateDb::open(&dir).await.unwrap();
        db.write(Write::PutKey(
            "k1".into(),
            key_record("t1", KeyStatus::Active),
        ))
        .await
        .unwrap();
        db.write(Write::PutPolicy("abc".into(), public_record("t1")))
            .await
            .unwrap();
        db.write(Write::PutPolicy("gone".into(), public_record("t1")))
            .await
            .unwrap();
        db.write(Write::DeletePolicy("gone".into())).await.unwrap();
    }
    let db = StateDb::open(&dir).await.unwrap();
    let records = db.load_all().await.unwrap();
    assert_eq!(records.keys.len(), 1);
    assert_eq!(records.keys[0].0, "k1");
    assert_eq!(
        records
            .policies
            .iter()
            .map(|p| p.0.as_str())
            .collect::<Vec<_>>(),
        ["abc"]
    );
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join(FILE_NAME)), 0o600);
}

#[test]
fn records_are_laid_over_the_snapshot() {
    let mut snapshot = Snapshot::new(Policy::Deny);
    let records = Records {
        keys: vec![
            ("k1".into(), key_record("t1", KeyStatus::Active)),
            ("k2".into(), key_record("t1", KeyStatus::Revoked)),
        ],
        policies: vec![("abc".into(), public_record("t1"))],
    };
    assert!(apply(records, &mut snapshot).is_empty());
    assert!(snapshot.keys("t1").get("k1").is_some());
    assert!(snapshot.keys("t1").get("k2").is_none());
    assert!(snapshot.tenant("t1").unwrap().revoked.contains_key("k2"));
    assert_eq!(snapshot.resolve("live+abc").policy, Policy::Public);
}

#[test]
fn config_wins_a_conflict_and_the_record_is_reported() {
    let mut snapshot = Snapshot::new(Policy::Deny);
    snapshot.set_policy(PolicyEntry {
        object: "abc".into(),
        tenant: "t0".into(),
        policy: Policy::Deny,
        source: Source::Config,
    });
    let records = Records {
        keys: vec![],
        policies: vec![("abc".into(), public_record("t1"))],
    };
    let problems = apply(records, &mut snapshot);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(problems[0].contains("config file"));
    assert_eq!(snapshot.resolve("abc").policy, Policy::Deny);
}

#[test]
fn an_eleventh_active_key_is_skipped() {
    let mut snapshot = Snapshot::new(Policy::Deny);
    let keys = (0..=MAX_ACTIVE_KEYS_PER_TENANT)
        .map(|i| (format!("k{i}"), key_record("t1", KeyStatus::Active)))
        .collect();
    let problems = apply(
        Records {
            keys,
            policies: vec![],
        },
        &mut snapshot,
    );
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(snapshot.keys("t1").len(), MAX_ACTIVE_KEYS_PER_TENANT);
}
