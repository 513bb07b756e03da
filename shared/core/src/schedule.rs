//! When integrations sync: a list of local times of day in the account's
//! time zone (default 08:00, 13:00 and 23:00). Pure: the caller says what
//! time it is.
//!
//! Daylight saving: a time that falls in a skipped hour runs once, at the
//! transition; a time in a repeated hour runs once, at its first
//! occurrence. Each slot has an id built from its nominal local date and
//! time, so it can be claimed exactly once.

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::clock::UnixMillis;

/// The schedule of the admin guide: 8 am, 1 pm and 11 pm.
pub const DEFAULT_TIMES: &str = "08:00,13:00,23:00";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub tz: Tz,
    /// Sorted, without duplicates.
    pub times: Vec<NaiveTime>,
}

/// One scheduled sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slot {
    /// When it is due, UTC.
    pub due: UnixMillis,
    /// The nominal local date and time, e.g. `2026-03-08T02:30`: the same
    /// for every replica, whatever instant DST resolves it to.
    pub id: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScheduleError {
    #[error("{0:?} is not an IANA time zone name (e.g. Europe/London, America/New_York, UTC)")]
    TimeZone(String),
    #[error(
        "{0:?} is not a time of day; list times as HH:MM separated by commas, e.g. 08:00,13:00,23:00"
    )]
    Time(String),
    #[error("the schedule has no times; give at least one, e.g. 08:00")]
    Empty,
}

impl Schedule {
    pub fn parse(tz: &str, times: &str) -> Result<Self, ScheduleError> {
        let tz: Tz = tz
            .trim()
            .parse()
            .map_err(|_| ScheduleError::TimeZone(tz.to_owned()))?;
        let mut parsed = Vec::new();
        for t in times.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let time = NaiveTime::parse_from_str(t, "%H:%M")
                .map_err(|_| ScheduleError::Time(t.to_owned()))?;
            parsed.push(time);
        }
        if parsed.is_empty() {
            return Err(ScheduleError::Empty);
        }
        parsed.sort();
        parsed.dedup();
        Ok(Self { tz, times: parsed })
    }

    /// The times as written in settings: `08:00,13:00,23:00`.
    pub fn times_text(&self) -> String {
        self.times
            .iter()
            .map(|t| t.format("%H:%M").to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn slot_on(&self, date: NaiveDate, time: NaiveTime) -> Slot {
        let local = NaiveDateTime::new(date, time);
        let due = resolve(self.tz, local);
        Slot {
            due: due.timestamp_millis(),
            id: local.format("%Y-%m-%dT%H:%M").to_string(),
        }
    }

    /// Every slot due in `(after, until]`, oldest first.
    pub fn slots_between(&self, after: UnixMillis, until: UnixMillis) -> Vec<Slot> {
        let (Some(start), Some(end)) = (
            DateTime::<Utc>::from_timestamp_millis(after),
            DateTime::<Utc>::from_timestamp_millis(until),
        ) else {
            return Vec::new();
        };
        // Local dates that can hold a slot in range (one day of margin for
        // offsets and transitions).
        let first = start.with_timezone(&self.tz).date_naive() - Days::new(1);
        let last = end.with_timezone(&self.tz).date_naive() + Days::new(1);
        let mut out = Vec::new();
        let mut date = first;
        while date <= last {
            for t in &self.times {
                let slot = self.slot_on(date, *t);
                if slot.due > after && slot.due <= until {
                    out.push(slot);
                }
            }
            date = date + Days::new(1);
        }
        out.sort_by_key(|s| s.due);
        out
    }

    /// The latest slot due at or before `now`, no older than `horizon_ms`.
    pub fn latest_due(&self, now: UnixMillis, horizon_ms: i64) -> Option<Slot> {
        self.slots_between(now - horizon_ms, now).pop()
    }

    /// The first slot due after `now`.
    pub fn next_after(&self, now: UnixMillis) -> Option<Slot> {
        // Every time of day recurs within two days, DST or not.
        self.slots_between(now, now + 2 * 86_400_000 + 3_600_000)
            .into_iter()
            .next()
    }
}

/// The instant of a local time: the first occurrence of a repeated time,
/// the end of the gap for a skipped one.
fn resolve(tz: Tz, local: NaiveDateTime) -> DateTime<Tz> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t,
        LocalResult::Ambiguous(first, _) => first,
        LocalResult::None => {
            // In a gap: the first minute after it.
            let mut probe = local;
            for _ in 0..(24 * 60) {
                probe += chrono::Duration::minutes(1);
                match tz.from_local_datetime(&probe) {
                    LocalResult::Single(t) => return t,
                    LocalResult::Ambiguous(first, _) => return first,
                    LocalResult::None => {}
                }
            }
            // No zone has a day-long gap; fall back to reading it as UTC.
            tz.from_utc_datetime(&local)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> UnixMillis {
        DateTime::parse_from_rfc3339(rfc3339)
            .expect("time")
            .timestamp_millis()
    }

    fn day(tz: &str, from: &str, to: &str) -> Vec<(String, String)> {
        let s = Schedule::parse(tz, DEFAULT_TIMES).expect("schedule");
        s.slots_between(ms(from), ms(to))
            .into_iter()
            .map(|slot| {
                let at = DateTime::<Utc>::from_timestamp_millis(slot.due)
                    .expect("due")
                    .format("%Y-%m-%dT%H:%MZ")
                    .to_string();
                (slot.id, at)
            })
            .collect()
    }

    #[test]
    fn three_slots_a_day_at_the_right_instants() {
        assert_eq!(
            day(
                "Europe/London",
                "2026-07-01T00:00:00+01:00",
                "2026-07-02T00:00:00+01:00"
            ),
            [
                ("2026-07-01T08:00".into(), "2026-07-01T07:00Z".into()),
                ("2026-07-01T13:00".into(), "2026-07-01T12:00Z".into()),
                ("2026-07-01T23:00".into(), "2026-07-01T22:00Z".into()),
            ]
        );
        assert_eq!(
            day(
                "Asia/Kolkata",
                "2026-07-01T00:00:00+05:30",
                "2026-07-02T00:00:00+05:30"
            ),
            [
                ("2026-07-01T08:00".into(), "2026-07-01T02:30Z".into()),
                ("2026-07-01T13:00".into(), "2026-07-01T07:30Z".into()),
                ("2026-07-01T23:00".into(), "2026-07-01T17:30Z".into()),
            ]
        );
        assert_eq!(
            day(
                "America/New_York",
                "2026-07-01T00:00:00-04:00",
                "2026-07-02T00:00:00-04:00"
            )
            .len(),
            3
        );
    }

    #[test]
    fn dst_days_still_have_three_slots() {
        // 2026-03-08 spring forward (a 23-hour day), 2026-11-01 fall back (25).
        let spring = day(
            "America/New_York",
            "2026-03-08T00:00:00-05:00",
            "2026-03-09T00:00:00-04:00",
        );
        assert_eq!(spring.len(), 3, "{spring:?}");
        let fall = day(
            "America/New_York",
            "2026-11-01T00:00:00-04:00",
            "2026-11-02T00:00:00-05:00",
        );
        assert_eq!(fall.len(), 3, "{fall:?}");
        assert_eq!(fall[0].1, "2026-11-01T13:00Z", "08:00 EST after the change");
    }

    #[test]
    fn skipped_and_repeated_times_run_once() {
        let s = Schedule::parse("America/New_York", "02:30,01:30").expect("schedule");
        // Spring forward: 02:30 does not exist; it runs at 03:00 EDT.
        let spring = s.slots_between(
            ms("2026-03-08T00:00:00-05:00"),
            ms("2026-03-09T00:00:00-04:00"),
        );
        let ids: Vec<&str> = spring.iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, ["2026-03-08T01:30", "2026-03-08T02:30"]);
        assert_eq!(spring[1].due, ms("2026-03-08T03:00:00-04:00"));
        // Fall back: 01:30 happens twice; it runs at the first.
        let fall = s.slots_between(
            ms("2026-11-01T00:00:00-04:00"),
            ms("2026-11-02T00:00:00-05:00"),
        );
        assert_eq!(fall.len(), 2);
        assert_eq!(fall[0].due, ms("2026-11-01T01:30:00-04:00"));
    }

    #[test]
    fn latest_due_and_next() {
        let s = Schedule::parse("UTC", DEFAULT_TIMES).expect("schedule");
        let now = ms("2026-07-01T14:00:00Z");
        let latest = s.latest_due(now, 12 * 3_600_000).expect("due");
        assert_eq!(latest.id, "2026-07-01T13:00");
        // Downtime across 08:00 and 13:00: only the latest is due.
        assert_eq!(s.latest_due(now, 1_000), None);
        assert_eq!(s.next_after(now).expect("next").id, "2026-07-01T23:00");
    }

    #[test]
    fn bad_settings_are_named() {
        assert!(matches!(
            Schedule::parse("Mars/Olympus", "08:00"),
            Err(ScheduleError::TimeZone(_))
        ));
        assert!(matches!(
            Schedule::parse("UTC", "8am"),
            Err(ScheduleError::Time(_))
        ));
        assert_eq!(Schedule::parse("UTC", " "), Err(ScheduleError::Empty));
        assert_eq!(
            Schedule::parse("UTC", "23:00,08:00,08:00")
                .expect("ok")
                .times_text(),
            "08:00,23:00"
        );
    }
}
