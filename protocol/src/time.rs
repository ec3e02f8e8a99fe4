//! IoTDA's two wire time formats and the `X-Sdk-Date` parser, without a date crate.
//!
//! IoTDA writes timestamps in two shapes (API reference, "time formats"):
//! - **T1** `yyyyMMdd'T'HHmmss'Z'` (`20151212T121212Z`) — also the `X-Sdk-Date` request header
//!   that AK/SK signatures are bound to (see [`crate::auth`]);
//! - **T2** `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` (`2015-12-12T12:12:12.000Z`).
//!
//! Both are always UTC, so all we need is the proleptic-Gregorian day count, which
//! `days_from_civil` and `civil_from_days` compute with Howard Hinnant's era algorithms
//! (exact, and overflow-free, across the whole `i64` millisecond range). Pulling in `chrono` or `time`
//! for three functions would be the larger risk.
//!
//! This module never reads the clock: callers pass `unix_ms` / receive unix seconds.
//!
//! ## Invariants
//! - `parse_sdk_date(&format_t1(ms)) == ms.div_euclid(1000)` for every year 0000..=9999.
//! - `parse_sdk_date` accepts exactly the strings Python's
//!   `datetime.strptime(s, "%Y%m%dT%H%M%SZ")` would produce back from `strftime`: 16 ASCII
//!   characters, real calendar dates, seconds `00..=59` (no leap seconds).

use thiserror::Error;

const SECONDS_PER_DAY: i64 = 86_400;
const MILLIS_PER_SECOND: i64 = 1_000;
const SDK_DATE_LEN_BYTES: usize = 16;

/// Why an `X-Sdk-Date` value was rejected. Messages name the field, never echo the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum TimeError {
    #[error("expected {SDK_DATE_LEN_BYTES} characters (yyyyMMddTHHmmssZ), got {len_bytes} bytes")]
    WrongLength { len_bytes: usize },
    #[error("unexpected character at byte {position} (expected yyyyMMddTHHmmssZ)")]
    UnexpectedCharacter { position: usize },
    #[error("{field} out of range")]
    OutOfRange { field: &'static str },
}

/// A UTC calendar time broken into fields; only this module builds one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CivilTime {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    millisecond: u32,
}

impl CivilTime {
    fn from_unix_ms(unix_ms: i64) -> Self {
        let unix_s = unix_ms.div_euclid(MILLIS_PER_SECOND);
        let millisecond = unix_ms.rem_euclid(MILLIS_PER_SECOND) as u32;
        let days = unix_s.div_euclid(SECONDS_PER_DAY);
        let second_of_day = unix_s.rem_euclid(SECONDS_PER_DAY) as u32;
        let (year, month, day) = civil_from_days(days);
        CivilTime {
            year,
            month,
            day,
            hour: second_of_day / 3600,
            minute: second_of_day / 60 % 60,
            second: second_of_day % 60,
            millisecond,
        }
    }
}

/// Formats `unix_ms` as T1, `yyyyMMdd'T'HHmmss'Z'` (UTC), e.g. `20151212T121212Z`.
/// Milliseconds are truncated towards the past, like `strftime` on a `datetime`.
pub fn format_t1(unix_ms: i64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    format!("{:04}{:02}{:02}T{:02}{:02}{:02}Z", t.year, t.month, t.day, t.hour, t.minute, t.second)
}

/// Formats `unix_ms` as T2, `yyyy-MM-dd'T'HH:mm:ss.SSS'Z'` (UTC), e.g. `2015-12-12T12:12:12.000Z`.
pub fn format_t2(unix_ms: i64) -> String {
    let t = CivilTime::from_unix_ms(unix_ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year, t.month, t.day, t.hour, t.minute, t.second, t.millisecond
    )
}

/// Parses an `X-Sdk-Date` header value (`20240101T000000Z`: exactly 16 characters, UTC) into
/// unix seconds. Ranges are checked against the real calendar (`20230229T...` is rejected).
pub fn parse_sdk_date(s: &str) -> Result<i64, TimeError> {
    let bytes = s.as_bytes();
    if bytes.len() != SDK_DATE_LEN_BYTES {
        return Err(TimeError::WrongLength { len_bytes: bytes.len() });
    }
    check_shape(bytes)?;
    let year = digits(bytes, 0, 4);
    let month = digits(bytes, 4, 2);
    let day = digits(bytes, 6, 2);
    let hour = digits(bytes, 9, 2);
    let minute = digits(bytes, 11, 2);
    let second = digits(bytes, 13, 2);
    if !(1..=12).contains(&month) {
        return Err(TimeError::OutOfRange { field: "month" });
    }
    if day < 1 || day > days_in_month(i64::from(year), month) {
        return Err(TimeError::OutOfRange { field: "day" });
    }
    if hour > 23 {
        return Err(TimeError::OutOfRange { field: "hour" });
    }
    if minute > 59 {
        return Err(TimeError::OutOfRange { field: "minute" });
    }
    if second > 59 {
        return Err(TimeError::OutOfRange { field: "second" });
    }
    let days = days_from_civil(i64::from(year), month, day);
    Ok(days * SECONDS_PER_DAY + i64::from(hour * 3600 + minute * 60 + second))
}

/// Reports the first byte that does not fit `yyyyMMdd'T'HHmmss'Z'`.
fn check_shape(bytes: &[u8]) -> Result<(), TimeError> {
    const SHAPE: &[u8; SDK_DATE_LEN_BYTES] = b"DDDDDDDDTDDDDDDZ";
    for (position, (&byte, &expected)) in bytes.iter().zip(SHAPE).enumerate() {
        let fits = if expected == b'D' { byte.is_ascii_digit() } else { byte == expected };
        if !fits {
            return Err(TimeError::UnexpectedCharacter { position });
        }
    }
    Ok(())
}

/// Reads `count` ASCII digits (already checked by [`check_shape`]) starting at `start`.
fn digits(bytes: &[u8], start: usize, count: usize) -> u32 {
    bytes[start..start + count].iter().fold(0, |value, &byte| value * 10 + u32::from(byte - b'0'))
}

fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap_year(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of the proleptic-Gregorian date `year-month-day` (month 1..=12).
/// Howard Hinnant, "chrono-Compatible Low-Level Date Algorithms": eras of 400 years are
/// 146 097 days long, and counting years from March puts the leap day at the end.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month 1..=12, day 1..=31)`.
fn civil_from_days(days_since_epoch: i64) -> (i64, u32, u32) {
    let days = days_since_epoch + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 { month_from_march + 3 } else { month_from_march - 9 } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_MS: i64 = SECONDS_PER_DAY * MILLIS_PER_SECOND;

    #[test]
    fn epoch_formats_as_1970() {
        assert_eq!(format_t1(0), "19700101T000000Z");
        assert_eq!(format_t2(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn known_instants_format_in_both_shapes() {
        assert_eq!(format_t1(1_704_067_200_000), "20240101T000000Z");
        assert_eq!(format_t1(1_449_922_332_000), "20151212T121212Z");
        assert_eq!(format_t2(1_449_922_332_000), "2015-12-12T12:12:12.000Z");
        assert_eq!(format_t2(1_449_922_332_789), "2015-12-12T12:12:12.789Z");
        assert_eq!(format_t1(1_449_922_332_999), "20151212T121212Z");
        assert_eq!(format_t2(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_t2(253_402_300_799_999), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn negative_timestamps_floor_towards_the_past() {
        assert_eq!(format_t2(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_t1(-1), "19691231T235959Z");
        assert_eq!(format_t2(-DAY_MS), "1969-12-31T00:00:00.000Z");
    }

    #[test]
    fn extreme_timestamps_format_without_overflow() {
        // Same instants as java.time's Instant.ofEpochMilli(Long.MAX_VALUE / MIN_VALUE).
        assert_eq!(format_t2(i64::MAX), "292278994-08-17T07:12:55.807Z");
        assert_eq!(format_t2(i64::MIN), "-292275055-05-16T16:47:04.192Z");
    }

    #[test]
    fn leap_days_follow_the_gregorian_rules() {
        assert_eq!(parse_sdk_date("20000229T000000Z"), Ok(951_782_400));
        assert_eq!(parse_sdk_date("20240229T235959Z"), Ok(1_709_251_199));
        assert_eq!(parse_sdk_date("19000229T000000Z"), Err(TimeError::OutOfRange { field: "day" }));
        assert_eq!(parse_sdk_date("20230229T000000Z"), Err(TimeError::OutOfRange { field: "day" }));
        assert_eq!(format_t1(951_782_400_000 + DAY_MS), "20000301T000000Z");
        assert_eq!(format_t1(1_709_164_800_000 - DAY_MS), "20240228T000000Z");
    }

    #[test]
    fn parse_sdk_date_reads_known_values() {
        assert_eq!(parse_sdk_date("19700101T000000Z"), Ok(0));
        assert_eq!(parse_sdk_date("20240101T000000Z"), Ok(1_704_067_200));
        assert_eq!(parse_sdk_date("20191115T033655Z"), Ok(1_573_789_015));
        assert_eq!(parse_sdk_date("00000101T000000Z"), Ok(-62_167_219_200));
        assert_eq!(parse_sdk_date("99991231T235959Z"), Ok(253_402_300_799));
    }

    #[test]
    fn parse_sdk_date_rejects_malformed_values() {
        assert_eq!(parse_sdk_date(""), Err(TimeError::WrongLength { len_bytes: 0 }));
        assert_eq!(parse_sdk_date("20240101T000000"), Err(TimeError::WrongLength { len_bytes: 15 }));
        assert_eq!(parse_sdk_date("20240101T000000Z "), Err(TimeError::WrongLength { len_bytes: 17 }));
        assert_eq!(parse_sdk_date("20240101 000000Z"), Err(TimeError::UnexpectedCharacter { position: 8 }));
        assert_eq!(parse_sdk_date("20240101T000000z"), Err(TimeError::UnexpectedCharacter { position: 15 }));
        assert_eq!(parse_sdk_date("2024-101T000000Z"), Err(TimeError::UnexpectedCharacter { position: 4 }));
        assert_eq!(parse_sdk_date("2024010AT000000Z"), Err(TimeError::UnexpectedCharacter { position: 7 }));
        assert_eq!(parse_sdk_date("20240101T+00000Z"), Err(TimeError::UnexpectedCharacter { position: 9 }));
        assert_eq!(parse_sdk_date("2024010١T00000Z"), Err(TimeError::UnexpectedCharacter { position: 7 }));
    }

    #[test]
    fn parse_sdk_date_checks_every_range() {
        let out_of_range = |field| Err(TimeError::OutOfRange { field });
        assert_eq!(parse_sdk_date("20241301T000000Z"), out_of_range("month"));
        assert_eq!(parse_sdk_date("20240001T000000Z"), out_of_range("month"));
        assert_eq!(parse_sdk_date("20240100T000000Z"), out_of_range("day"));
        assert_eq!(parse_sdk_date("20240431T000000Z"), out_of_range("day"));
        assert_eq!(parse_sdk_date("20240101T240000Z"), out_of_range("hour"));
        assert_eq!(parse_sdk_date("20240101T006000Z"), out_of_range("minute"));
        assert_eq!(parse_sdk_date("20240101T000060Z"), out_of_range("second"));
        assert_eq!(parse_sdk_date("20241231T235959Z"), Ok(1_735_689_599));
    }

    #[test]
    fn format_and_parse_round_trip_across_centuries() {
        // Steps by a prime number of seconds so every month, weekday and time of day is hit.
        let step_ms = 7_919_993 * MILLIS_PER_SECOND + 123;
        let mut unix_ms = -62_167_219_200_000; // 0000-01-01
        while unix_ms < 253_402_300_799_999 {
            let text = format_t1(unix_ms);
            assert_eq!(parse_sdk_date(&text), Ok(unix_ms.div_euclid(MILLIS_PER_SECOND)), "{text}");
            unix_ms += step_ms;
        }
    }

    #[test]
    fn day_count_round_trips_and_is_contiguous() {
        let mut expected = (1599, 12, 31);
        for days in -135_140..=120_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
            let (prev_year, prev_month, prev_day) = expected;
            let next = if prev_day < days_in_month(prev_year, prev_month) {
                (prev_year, prev_month, prev_day + 1)
            } else if prev_month < 12 {
                (prev_year, prev_month + 1, 1)
            } else {
                (prev_year + 1, 1, 1)
            };
            assert_eq!((year, month, day), next);
            expected = next;
        }
    }
}
