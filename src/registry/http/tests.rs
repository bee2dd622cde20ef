use super::*;

fn watch(secs: u64, limit: u64) -> Watch {
    Watch::new(
        Timeouts {
            timeout: Duration::from_secs(secs),
            low_speed_limit: limit,
        },
        Arc::default(),
    )
}

#[test]
fn a_stall_fails_one_window_after_the_last_progress() {
    let mut w = watch(10, 0);
    let t0 = w.samples[0].0;
    let at = |s: u64| t0 + Duration::from_secs(s);
    // Fast for 25 s, then nothing.
    for s in 1..=25 {
        assert!(w.check_at(at(s), s * 1000).is_ok(), "second {s}");
    }
    for s in 26..35 {
        assert!(
            w.check_at(at(s), 25_000).is_ok(),
            "second {s}: stalled < 10 s"
        );
    }
    assert_eq!(w.check_at(at(35), 25_000), Err(0), "10 s without a byte");
    assert!(
        w.samples.len() <= 12,
        "samples stay few: {}",
        w.samples.len()
    );
}

#[test]
fn a_drip_below_the_limit_fails_after_one_window() {
    let mut w = watch(10, 1024);
    let t0 = w.samples[0].0;
    let mut failed_at = None;
    for s in 1..=30u64 {
        if w.check_at(t0 + Duration::from_secs(s), s).is_err() {
            failed_at = Some(s);
            break;
        }
    }
    assert_eq!(failed_at, Some(10), "1 B/s against 1 KiB/s over 10 s");
    // Exactly at the limit passes.
    let mut w = watch(10, 1024);
    let t0 = w.samples[0].0;
    for s in 1..=30u64 {
        assert!(w.check_at(t0 + Duration::from_secs(s), s * 1024).is_ok());
    }
}

#[test]
fn timeouts_parse_whole_seconds_within_a_day() {
    assert_eq!(Timeouts::parse_timeout("2"), Ok(Duration::from_secs(2)));
    for bad in ["0", "-1", "1.5", "86401", "x", ""] {
        assert!(Timeouts::parse_timeout(bad).is_err(), "{bad}");
    }
    assert_eq!(Timeouts::parse_low_speed_limit("0"), Ok(0));
    assert!(Timeouts::parse_low_speed_limit("-5").is_err());
    let t = Timeouts::default();
    assert_eq!(t.min_bytes(), 30 * 1024);
    assert_eq!(
        Timeouts {
            low_speed_limit: 0,
            ..t
        }
        .min_bytes(),
        1,
        "limit 0 still needs one byte per window"
    );
}
