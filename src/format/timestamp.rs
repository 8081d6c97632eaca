//! Timestamps written as text, read and written with Java's `DateTimeFormatter` patterns
//! (ksqlDB's `TIMESTAMP_FORMAT`, `STRINGTOTIMESTAMP`, `TIMESTAMPTOSTRING`), in UTC or a
//! named time zone (`America/Los_Angeles`) or offset (`+02:00`).
//!
//! A pattern such as `yyyy-MM-dd'T'HH:mm:ss.SSSX` is translated once into chrono's format
//! language; text without a zone is read as UTC. Only the pattern letters ksqlDB users
//! write are understood (years, months, days, hours, minutes, seconds, fractions, AM/PM,
//! day and month names, zones); anything else is an error, never a guess.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone};
use chrono_tz::Tz;

/// A Java date-time pattern translated for chrono.
#[derive(Debug, Clone, PartialEq)]
pub struct JavaPattern {
    chrono: String,
    /// Which zone letter the pattern ends with, if any (`X` accepts `Z` for UTC).
    zone: Option<char>,
    has_time: bool,
}

impl JavaPattern {
    /// Translates `pattern`, or says which part is not understood.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let (mut out, mut zone, mut has_time) = (String::new(), None, false);
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\'' {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&d| d == '\'')
                    .map_or(chars.len(), |p| i + 1 + p);
                if end == i + 1 {
                    out.push('\'');
                }
                for &d in &chars[i + 1..end.min(chars.len())] {
                    push_literal(&mut out, d);
                }
                i = end + 1;
                continue;
            }
            let run = chars[i..].iter().take_while(|&&d| d == c).count();
            i += run;
            if !c.is_ascii_alphabetic() {
                (0..run).for_each(|_| push_literal(&mut out, c));
                continue;
            }
            has_time |= "HhmsSak".contains(c);
            out.push_str(letters(c, run)?);
            if "XxZ".contains(c) {
                zone = Some(c);
            }
        }
        Ok(Self {
            chrono: out,
            zone,
            has_time,
        })
    }

    /// Epoch milliseconds of `text`, or why it does not match.
    pub fn parse(&self, text: &str) -> Result<i64, String> {
        let bad = |e: chrono::ParseError| format!("'{text}' does not match the pattern: {e}");
        match self.zone {
            Some(letter) => {
                let mut text = text.to_string();
                if letter == 'X' && (text.ends_with('Z') || text.ends_with('z')) {
                    text.pop();
                    text.push_str(if self.chrono.ends_with("%:z") {
                        "+00:00"
                    } else {
                        "+0000"
                    });
                }
                DateTime::parse_from_str(&text, &self.chrono)
                    .map(|t| t.timestamp_millis())
                    .map_err(bad)
            }
            None if self.has_time => NaiveDateTime::parse_from_str(text, &self.chrono)
                .map(|t| t.and_utc().timestamp_millis())
                .map_err(bad),
            None => NaiveDate::parse_from_str(text, &self.chrono)
                .map(|d| {
                    d.and_time(chrono::NaiveTime::MIN)
                        .and_utc()
                        .timestamp_millis()
                })
                .map_err(bad),
        }
    }
}

/// chrono's directive for `run` repetitions of the pattern letter `c`.
fn letters(c: char, run: usize) -> Result<&'static str, String> {
    Ok(match (c, run) {
        ('y' | 'u', 2) => "%y",
        ('y' | 'u', _) => "%Y",
        ('M', 1) => "%-m",
        ('M', 2) => "%m",
        ('M', 3) => "%b",
        ('M', _) => "%B",
        ('d', 1) => "%-d",
        ('d', _) => "%d",
        ('D', _) => "%j",
        ('H', 1) => "%-H",
        ('H', _) => "%H",
        ('h', 1) => "%-I",
        ('h', _) => "%I",
        ('m', 1) => "%-M",
        ('m', _) => "%M",
        ('s', 1) => "%-S",
        ('s', _) => "%S",
        ('S', 3) => "%3f",
        ('S', 6) => "%6f",
        ('S', 9) => "%9f",
        ('S', _) => "%f",
        ('a', _) => "%p",
        ('E', 4..) => "%A",
        ('E', _) => "%a",
        ('z', 1..=3) => "%Z",
        ('X' | 'x', 3..) => "%:z",
        ('X' | 'x' | 'Z', _) => "%z",
        (other, n) => {
            return Err(format!(
                "pattern letter '{}' is not supported",
                other.to_string().repeat(n)
            ));
        }
    })
}

impl JavaPattern {
    /// `ms` as text in `zone` (UTC when `None`).
    pub fn format(&self, ms: i64, zone: Option<&str>) -> Result<String, String> {
        let zone = time_zone(zone)?;
        let instant = zone
            .timestamp_millis_opt(ms)
            .single()
            .ok_or_else(|| format!("{ms} is not a valid instant"))?;
        let mut text = instant.format(&self.chrono).to_string();
        if self.zone == Some('X') && instant.offset().to_string() == "UTC" {
            // Java's X writes UTC as `Z`.
            for suffix in ["+00:00", "+0000"] {
                if let Some(stripped) = text.strip_suffix(suffix) {
                    text = format!("{stripped}Z");
                    break;
                }
            }
        }
        Ok(text)
    }

    /// Epoch milliseconds of `text`; text without a zone is read in `zone` (UTC when `None`).
    pub fn parse_in(&self, text: &str, zone: Option<&str>) -> Result<i64, String> {
        match (zone, self.zone, self.has_time) {
            (Some(name), None, true) => {
                let naive = NaiveDateTime::parse_from_str(text, &self.chrono)
                    .map_err(|e| format!("'{text}' does not match the pattern: {e}"))?;
                time_zone(Some(name))?
                    .from_local_datetime(&naive)
                    .earliest()
                    .map(|t| t.timestamp_millis())
                    .ok_or_else(|| format!("'{text}' does not exist in {name}"))
            }
            _ => self.parse(text),
        }
    }
}

/// `CONVERT_TZ`: the wall-clock time `ms` (as if UTC) in zone `from`, as wall-clock time in
/// zone `to`.
pub fn convert_tz(ms: i64, from: &str, to: &str) -> Result<i64, String> {
    let wall = DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| format!("{ms} is not a valid instant"))?
        .naive_utc();
    let instant = time_zone(Some(from))?
        .from_local_datetime(&wall)
        .earliest()
        .ok_or_else(|| format!("{wall} does not exist in {from}"))?;
    Ok(instant
        .with_timezone(&time_zone(Some(to))?)
        .naive_local()
        .and_utc()
        .timestamp_millis())
}

/// A time zone by name (`UTC`, `Europe/London`) or offset (`+02:00`, `-0800`).
fn time_zone(name: Option<&str>) -> Result<Tz, String> {
    let Some(name) = name else {
        return Ok(Tz::UTC);
    };
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let offset: String = name
        .trim_start_matches("GMT")
        .trim_start_matches("UTC")
        .to_string();
    let fixed = match offset.as_str() {
        "" | "Z" => Some(0),
        _ => DateTime::parse_from_str(&format!("2000-01-01 00:00 {offset}"), "%Y-%m-%d %H:%M %#z")
            .ok()
            .map(|t| t.offset().local_minus_utc()),
    };
    // chrono-tz names fixed offsets `Etc/GMT-2` for +02:00 (signs inverted, whole hours).
    match fixed {
        Some(0) => Ok(Tz::UTC),
        Some(secs) if secs % 3600 == 0 => format!("Etc/GMT{:+}", -secs / 3600)
            .parse::<Tz>()
            .map_err(|_| format!("Unknown time zone: {name}")),
        _ => Err(format!("Unknown time zone: {name}")),
    }
}

fn push_literal(out: &mut String, c: char) {
    if c == '%' {
        out.push_str("%%");
    } else {
        out.push(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ksqldb_patterns() {
        let p = JavaPattern::new("yy-MM-dd HH:mm:ssX").unwrap();
        assert_eq!(p.parse("10-04-19 12:00:17Z"), Ok(1_271_678_417_000));
        let p = JavaPattern::new("yyyy-MM-dd'T'HH:mm:ss.SSS").unwrap();
        assert_eq!(p.parse("2010-04-19T12:00:17.736"), Ok(1_271_678_417_736));
        let p = JavaPattern::new("yyyy-MM-dd").unwrap();
        assert_eq!(p.parse("1970-01-02"), Ok(86_400_000));
        assert!(p.parse("!!!").is_err());
        assert!(JavaPattern::new("yyyy-MM-dd qq").is_err());
    }

    #[test]
    fn writes_in_time_zones() {
        let p = JavaPattern::new("yyyy-MM-dd HH:mm:ss zzz").unwrap();
        let ms = 1_526_075_913_000;
        assert_eq!(
            p.format(ms, Some("America/Los_Angeles")).unwrap(),
            "2018-05-11 14:58:33 PDT"
        );
        assert_eq!(
            p.format(ms, Some("Europe/London")).unwrap(),
            "2018-05-11 22:58:33 BST"
        );
        let z = JavaPattern::new("yyyy-MM-dd HH:mm:ss Z").unwrap();
        assert_eq!(
            z.format(ms, Some("UTC")).unwrap(),
            "2018-05-11 21:58:33 +0000"
        );
        assert_eq!(
            z.format(ms, Some("+02:00")).unwrap(),
            "2018-05-11 23:58:33 +0200"
        );
    }
}
