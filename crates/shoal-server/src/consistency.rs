//! Read consistency: what a session's read must have seen before it runs.
//!
//! A session picks one of three levels (`SET shoal.read_consistency`):
//!
//! | level          | a read on any node sees …                                             | costs                          |
//! |----------------|-----------------------------------------------------------------------|--------------------------------|
//! | `linearizable` | every write acknowledged before the read began                        | a quorum round via the leader  |
//! | `bounded`      | every write acknowledged more than `shoal.max_staleness` before it     | that round at most once per bound, per node |
//! | `follower`     | whatever the local replica has applied                                | nothing                        |
//!
//! On top of any level, a **causal token** sets a floor. After each write
//! the session's token (`SHOW shoal.causal_token`, also sent as a
//! ParameterStatus) names the log index that carried it, as `g<group>:<index>`;
//! a session given that token with `SET shoal.read_after = '…'` waits until
//! its replica has applied the index before reading, so it reads the other
//! session's writes on a follower without a trip to the leader. A session
//! also reads its own writes this way at every level.
//!
//! Bounded staleness rests on one fact per group and node, kept by the group
//! ([`shoal_raft::Group::fresh_index`]): "a read index asked for at time *t*
//! was *i*". Everything acknowledged before *t* is at or below *i*, so once
//! the replica has applied *i* it serves reads that may miss at most what
//! was acknowledged after *t*; such reads are allowed while *t* is within
//! `max_staleness` of now. A replica cut off from its leader therefore stops
//! serving bounded reads once the bound passes, instead of serving stale
//! data forever.

use std::time::Duration;

use shoal_common::{Error, Result, SqlState};
use shoal_raft::GroupId;

/// `shoal.read_consistency`, with the bound for `bounded`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadMode {
    Linearizable,
    Bounded(Duration),
    Follower,
}

/// What one read waits for: its level and a floor (an applied index the
/// local replica must reach; 0 for none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadPoint {
    pub mode: ReadMode,
    pub after: u64,
}

/// The default `shoal.max_staleness`.
pub const DEFAULT_MAX_STALENESS: &str = "5s";

/// Parses a duration setting the way PostgreSQL parses time settings: a
/// number with an optional unit (`us`, `ms`, `s`, `min`, `h`, `d`);
/// milliseconds when there is none.
pub fn parse_duration(name: &str, text: &str) -> Result<Duration> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = (&t[..split], t[split..].trim());
    let invalid = || {
        Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("invalid value for parameter \"{name}\": \"{text}\""))
            .with_hint("use a duration such as '500ms', '5s' or '1min'")
    };
    let value: f64 = number.parse().map_err(|_| invalid())?;
    let scale = match unit.to_ascii_lowercase().as_str() {
        "us" => 1e-6,
        "" | "ms" => 1e-3,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "min" | "minute" | "minutes" => 60.0,
        "h" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86400.0,
        _ => return Err(invalid()),
    };
    let seconds = value * scale;
    if !seconds.is_finite() || seconds > 86400.0 * 365.0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Formats a causal token: `g<group>:<index>`, comma-separated per group.
pub fn format_token(points: &[(GroupId, u64)]) -> String {
    points.iter().map(|(g, i)| format!("g{g}:{i}")).collect::<Vec<_>>().join(",")
}

/// Parses a causal token (empty: no floor).
pub fn parse_token(text: &str) -> Result<Vec<(GroupId, u64)>> {
    let invalid = || {
        Error::new(SqlState::INVALID_PARAMETER_VALUE, format!("invalid causal token \"{text}\""))
            .with_hint("pass the value of SHOW shoal.causal_token from the writing session, e.g. 'g1:1234'")
    };
    let mut points = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (group, index) = part.strip_prefix('g').and_then(|p| p.split_once(':')).ok_or_else(invalid)?;
        let group: GroupId = group.parse().map_err(|_| invalid())?;
        let index: u64 = index.parse().map_err(|_| invalid())?;
        points.push((group, index));
    }
    Ok(points)
}

/// The floor a token sets for `group` (0 when it names no such group).
pub fn token_floor(points: &[(GroupId, u64)], group: GroupId) -> u64 {
    points.iter().filter(|(g, _)| *g == group).map(|(_, i)| *i).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_follow_postgres_units() {
        assert_eq!(parse_duration("x", "250").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("x", "5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("x", " 1.5 min ").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("x", "0").unwrap(), Duration::ZERO);
        for bad in ["", "fast", "5 parsecs", "-1s", "1e400s", "99999999d"] {
            let err = parse_duration("shoal.max_staleness", bad).unwrap_err();
            assert_eq!(err.code, SqlState::INVALID_PARAMETER_VALUE, "{bad}");
        }
    }

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let points = vec![(1, 1234), (7, 5)];
        let text = format_token(&points);
        assert_eq!(text, "g1:1234,g7:5");
        assert_eq!(parse_token(&text).unwrap(), points);
        assert_eq!(parse_token("").unwrap(), vec![]);
        assert_eq!(token_floor(&points, 1), 1234);
        assert_eq!(token_floor(&points, 2), 0);
        for bad in ["1234", "g1", "g1:", "gx:1", "g1:-4", "g1:1;DROP TABLE t"] {
            assert_eq!(parse_token(bad).unwrap_err().code, SqlState::INVALID_PARAMETER_VALUE, "{bad}");
        }
    }
}
