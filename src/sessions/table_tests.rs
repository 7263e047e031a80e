use std::time::Duration;

use super::*;

fn facts<'a>(stream: &'a str, viewer: Option<&'a str>) -> Facts<'a> {
    Facts {
        stream,
        tenant: "t1",
        kid: Some("k1"),
        viewer,
        exp: 2_000_000_000,
        iat: Some(1_000),
    }
}

fn id(n: u32) -> String {
    format!("{n:064x}")
}

#[test]
fn a_session_already_tracked_is_not_counted_twice() {
    let mut t = Table::new(10);
    let at = Instant::now();
    assert!(t.insert(&id(1), &facts("s", Some("v")), at, false));
    assert!(!t.insert(&id(1), &facts("s", Some("v")), at, false));
    assert_eq!(t.viewer_sessions("t1", "v"), 1);
    assert_eq!(t.len(), 1);
}

#[test]
fn the_table_refuses_sessions_beyond_its_bound() {
    let mut t = Table::new(2);
    let at = Instant::now();
    assert!(t.insert(&id(1), &facts("s", None), at, false));
    assert!(t.insert(&id(2), &facts("s", None), at, false));
    assert!(!t.insert(&id(3), &facts("s", None), at, false));
    assert!(t.remove(&id(1)));
    assert!(t.insert(&id(3), &facts("s", None), at, false));
}

#[test]
fn the_oldest_sessions_of_a_viewer_are_taken_in_admission_order() {
    let mut t = Table::new(10);
    let at = Instant::now();
    for n in 1..=3 {
        t.insert(&id(n), &facts("s", Some("v")), at, false);
    }
    t.insert(&id(9), &facts("s", Some("w")), at, false);
    assert_eq!(t.take_oldest("t1", "v", 1), vec![id(1)]);
    assert_eq!(t.viewer_sessions("t1", "v"), 2);
    assert_eq!(t.viewer_ids("t1", "v", 1_001), vec![id(2), id(3)]);
    assert!(
        t.viewer_ids("t1", "v", 1_000).is_empty(),
        "issued at `before`: not covered"
    );
    assert_eq!(t.take_viewer("t1", "v", 2_000), vec![id(2), id(3)]);
    assert_eq!(t.viewer_sessions("t1", "w"), 1);
    assert_eq!(t.counts(), vec![("t1".into(), "s".into(), 1)]);
}

#[test]
fn deadlines_come_due_earliest_first_and_only_cuts_are_ended() {
    let mut t = Table::new(10);
    let now = Instant::now();
    t.insert(
        &id(1),
        &facts("s", None),
        now + Duration::from_secs(5),
        true,
    );
    t.insert(
        &id(2),
        &facts("s", None),
        now + Duration::from_secs(1),
        false,
    );
    t.insert(
        &id(3),
        &facts("s", None),
        now + Duration::from_secs(9),
        true,
    );
    assert_eq!(t.next_due(), Some(now + Duration::from_secs(1)));
    let due = t.take_due(now + Duration::from_secs(5), 100);
    assert_eq!(due.cut, vec![id(1)]);
    assert_eq!(due.forgotten, 1);
    assert_eq!(t.next_due(), Some(now + Duration::from_secs(9)));
    assert_eq!(t.len(), 1);
}

#[test]
fn ids_that_are_not_hex_are_kept_as_given() {
    let mut t = Table::new(10);
    t.insert("Custom-ID", &facts("s", None), Instant::now(), true);
    assert!(t.contains("Custom-ID"));
    assert_eq!(
        t.take_due(Instant::now(), 10).cut,
        vec!["Custom-ID".to_string()]
    );
}

#[test]
fn strings_no_session_holds_are_dropped_from_the_shared_set() {
    let mut t = Table::new(10);
    let at = Instant::now();
    for n in 0..5_000u32 {
        let stream = format!("s{n}");
        t.insert(&id(n), &facts(&stream, None), at, false);
        t.remove(&id(n));
    }
    assert!(t.is_empty());
    assert!(t.strings.len() < 3_000, "{}", t.strings.len());
}
