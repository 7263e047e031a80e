use std::time::Duration;

use super::*;
use parts::{Clock, GRAIN};

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

/// The instant a deadline set for `at` acts at: `at` rounded up to the table's grain.
fn acts(t: &Table, at: Instant) -> Instant {
    t.clock.at(t.clock.deadline(at))
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
    assert_eq!(t.next_due(), Some(acts(&t, now + Duration::from_secs(1))));
    let due = t.take_due(acts(&t, now + Duration::from_secs(5)), 100);
    assert_eq!(due.cut, vec![id(1)]);
    assert_eq!(due.forgotten, 1);
    assert_eq!(t.next_due(), Some(acts(&t, now + Duration::from_secs(9))));
    assert_eq!(t.len(), 1);
}

#[test]
fn ids_that_are_not_hex_are_kept_as_given() {
    let mut t = Table::new(10);
    let at = Instant::now();
    t.insert("Custom-ID", &facts("s", None), at, true);
    assert!(t.contains("Custom-ID"));
    assert_eq!(
        t.take_due(acts(&t, at), 10).cut,
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

#[test]
fn a_freed_slot_is_reused_and_the_old_deadline_never_acts_on_its_new_session() {
    let mut t = Table::new(10);
    let now = Instant::now();
    let soon = now + Duration::from_secs(1);
    let later = now + Duration::from_secs(9);
    assert!(t.insert(&id(1), &facts("s", Some("v")), soon, true));
    assert!(t.remove(&id(1)));
    assert!(t.insert(&id(2), &facts("s", Some("w")), later, true));
    assert_eq!(t.entries.next_slot(), 1, "slot 0 was reused");
    assert_eq!(t.next_due(), Some(acts(&t, later)));
    assert_eq!(t.take_due(soon, 10), Due::default());
    assert!(t.contains(&id(2)));
    assert!(!t.contains(&id(1)));
    assert_eq!(t.take_due(acts(&t, later), 10).cut, vec![id(2)]);
    assert!(t.is_empty());
}

#[test]
fn a_stale_deadline_is_dropped_without_touching_the_session_in_its_slot() {
    let mut t = Table::new(10);
    let now = Instant::now();
    let later = now + Duration::from_secs(9);
    assert!(t.insert(&id(1), &facts("s", None), later, true));
    // A deadline left behind for an earlier session of slot 0 (admitted as seq 0).
    t.deadlines.insert((t.clock.key(now), 0), 0);
    assert_eq!(t.take_due(now, 10), Due::default());
    assert!(t.contains(&id(1)));
    assert_eq!(t.next_due(), Some(acts(&t, later)));
}

#[test]
fn a_viewers_sessions_keep_admission_order_across_reused_slots() {
    let mut t = Table::new(10);
    let at = Instant::now();
    for n in 1..=3 {
        t.insert(&id(n), &facts("s", Some("v")), at, false);
    }
    assert!(t.remove(&id(1))); // frees slot 0
    t.insert(&id(4), &facts("s", Some("v")), at, false); // takes slot 0, admitted last
    t.insert(&id(5), &facts("s", Some("v")), at, false);
    assert!(t.remove(&id(4)));
    assert_eq!(t.viewer_ids("t1", "v", 2_000), vec![id(2), id(3), id(5)]);
    assert!(t.remove(&id(3)));
    assert_eq!(t.take_oldest("t1", "v", 1), vec![id(2)]);
    assert_eq!(t.viewer_sessions("t1", "v"), 1);
    assert_eq!(t.take_oldest("t1", "v", 5), vec![id(5)]);
    assert_eq!(t.viewer_sessions("t1", "v"), 0);
    assert!(t.is_empty());
}

#[test]
fn viewer_ids_of_any_length_are_told_apart() {
    let mut t = Table::new(10);
    let at = Instant::now();
    let short = "v".repeat(22);
    let long = "v".repeat(23);
    let longer = "v".repeat(300);
    t.insert(&id(1), &facts("s", Some(&short)), at, false);
    t.insert(&id(2), &facts("s", Some(&long)), at, false);
    t.insert(&id(3), &facts("s", Some(&long)), at, false);
    t.insert(&id(4), &facts("s", Some(&longer)), at, false);
    assert_eq!(t.viewer_sessions("t1", &short), 1);
    assert_eq!(t.viewer_sessions("t1", &long), 2);
    assert_eq!(t.viewer_sessions("t1", &longer), 1);
    assert_eq!(t.viewer_sessions("t1", "v"), 0);
    assert_eq!(t.viewer_sessions("t2", &long), 0, "another tenant's viewer");
}

#[test]
fn the_same_viewer_id_in_two_tenants_is_two_viewers() {
    let mut t = Table::new(10);
    let at = Instant::now();
    let other = Facts {
        tenant: "t2",
        ..facts("s", Some("v"))
    };
    t.insert(&id(1), &facts("s", Some("v")), at, false);
    t.insert(&id(2), &other, at, false);
    t.insert(&id(3), &other, at, false);
    assert_eq!(t.viewer_sessions("t1", "v"), 1);
    assert_eq!(t.take_viewer("t2", "v", 2_000), vec![id(2), id(3)]);
    assert_eq!(t.viewer_sessions("t1", "v"), 1);
    assert_eq!(t.counts(), vec![("t1".into(), "s".into(), 1)]);
}

#[test]
fn upper_case_and_short_ids_are_not_packed_and_never_match_a_packed_one() {
    let mut t = Table::new(10);
    let at = Instant::now();
    let upper = "AB".repeat(32);
    let lower = "ab".repeat(32);
    assert!(t.insert(&upper, &facts("s", None), at, true));
    assert!(!t.contains(&lower));
    assert!(t.insert(&lower, &facts("s", None), at, true));
    assert!(!t.contains("ab") && t.contains(&upper) && t.contains(&lower));
    let mut cut = t.take_due(acts(&t, at), 10).cut;
    cut.sort();
    assert_eq!(cut, vec![upper, lower]);
}

#[test]
fn a_shared_string_freed_and_reused_keeps_every_count_right() {
    let mut t = Table::new(10);
    let at = Instant::now();
    let tenant = |tenant| Facts {
        tenant,
        ..facts("s", Some("v"))
    };
    t.insert(&id(1), &tenant("a"), at, false);
    assert!(t.remove(&id(1))); // "a" and "s" are freed; "a" was the remembered tenant
    t.insert(&id(2), &tenant("b"), at, false);
    t.insert(&id(3), &tenant("a"), at, false);
    t.insert(&id(4), &tenant("b"), at, false);
    assert_eq!(
        t.counts(),
        vec![("a".into(), "s".into(), 1), ("b".into(), "s".into(), 2)]
    );
    assert_eq!(t.viewer_sessions("a", "v"), 1);
    assert_eq!(t.viewer_sessions("b", "v"), 2);
    for n in 2..=4 {
        assert!(t.remove(&id(n)));
    }
    assert_eq!(t.strings.len(), 0, "no session holds a string");
    assert!(t.counts().is_empty());
}

#[test]
fn deadline_keys_keep_the_order_of_instants_and_give_them_back_exactly() {
    let clock = Clock::new();
    let now = Instant::now();
    let times = [
        now - Duration::from_millis(10),
        now - Duration::from_nanos(1),
        now,
        now + Duration::from_nanos(1),
        now + Duration::from_secs(1_000_000_000),
    ];
    for pair in times.windows(2) {
        assert!(clock.key(pair[0]) < clock.key(pair[1]));
    }
    for at in times {
        assert_eq!(clock.at(clock.key(at)), at);
    }
}

#[test]
fn a_deadline_acts_at_most_a_grain_late_and_never_early() {
    let clock = Clock::new();
    let now = Instant::now();
    let grain = Duration::from_nanos(GRAIN);
    for offset in [
        0,
        1,
        999,
        GRAIN - 1,
        GRAIN,
        GRAIN + 1,
        5 * GRAIN + 7,
        1_000_000_007,
    ] {
        for at in [
            now + Duration::from_nanos(offset),
            now - Duration::from_nanos(offset),
        ] {
            let acts = clock.at(clock.deadline(at));
            assert!(
                acts >= at && acts - at < grain,
                "{offset} ns: {:?}",
                acts - at
            );
        }
    }
}

#[test]
fn sessions_whose_deadlines_share_a_grain_are_cut_in_admission_order() {
    let mut t = Table::new(10);
    let grid = acts(&t, Instant::now() + Duration::from_secs(1));
    // The later session got the earlier instant, as when the first request spent longer
    // between its two clock readings: both fall in the grain that ends at `grid`.
    t.insert(
        &id(1),
        &facts("s", None),
        grid - Duration::from_micros(1),
        true,
    );
    t.insert(
        &id(2),
        &facts("s", None),
        grid - Duration::from_micros(3),
        true,
    );
    assert_eq!(t.next_due(), Some(grid));
    assert_eq!(
        t.take_due(grid - Duration::from_nanos(1), 10),
        Due::default()
    );
    assert_eq!(t.take_due(grid, 10).cut, vec![id(1), id(2)]);
}

#[test]
fn a_session_slot_stays_within_120_bytes() {
    // The memory per session in bench/RESULTS.md rests on it.
    assert!(std::mem::size_of::<Option<Entry>>() <= 120);
    assert!(std::mem::size_of::<parts::Slot>() <= 8);
}

#[test]
fn every_table_hashes_with_its_own_random_key() {
    let key = IdRef::parse("00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff00ff");
    let (a, b) = (parts::Hasher::new(), parts::Hasher::new());
    assert_ne!(a.id(&key), b.id(&key));
    assert_eq!(a.id(&key), a.id(&key));
    assert_ne!(a.viewer(0, b"v"), b.viewer(0, b"v"));
}

#[test]
fn only_64_lower_case_hex_digits_are_packed_and_they_pack_back_to_the_same_text() {
    let hex = "0123456789abcdef".repeat(4);
    let IdRef::Hex(bytes) = IdRef::parse(&hex) else {
        panic!("64 lower-case hex digits are packed");
    };
    assert_eq!(SessionId::Hex(bytes).to_text(), hex);
    // One byte that is not a lower-case hex digit, anywhere, keeps the id as text.
    for at in 0..64 {
        for bad in [b'A', b'F', b'g', b'/', b':', b'`', b' ', 0xc3] {
            let mut text = hex.clone().into_bytes();
            text[at] = bad;
            let Ok(text) = String::from_utf8(text) else {
                continue; // a lone 0xc3 is not UTF-8: no `&str` can hold it
            };
            assert!(matches!(IdRef::parse(&text), IdRef::Text(_)), "{text}");
        }
    }
    assert!(matches!(IdRef::parse(&hex[..62]), IdRef::Text(_)));
}
