//! Validity periods: "valid for N days from now", backdated a little for clocks that run behind.

use time::{Duration, OffsetDateTime};

use crate::CertError;

/// How far before "now" a new certificate becomes valid, so that a host whose clock is slightly
/// behind the machine that issued its certificate can still use it at once.
const BACKDATE: Duration = Duration::hours(1);

/// `(not_before, not_after)` for a certificate valid for `days` days from now.
pub(crate) fn days_from_now(days: u32) -> Result<(OffsetDateTime, OffsetDateTime), CertError> {
    if days == 0 {
        return Err(CertError::InvalidValidity(
            "a certificate must be valid for at least one day".to_owned(),
        ));
    }
    let now = OffsetDateTime::now_utc();
    let not_after = now
        .checked_add(Duration::days(i64::from(days)))
        .ok_or_else(|| CertError::InvalidValidity(format!("{days} days from now is too far")))?;
    Ok((now - BACKDATE, not_after))
}

/// Checks that `not_before` comes before `not_after`.
pub(crate) fn check(
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> Result<(), CertError> {
    if not_before < not_after {
        Ok(())
    } else {
        Err(CertError::InvalidValidity(format!(
            "not_before ({not_before}) is not before not_after ({not_after})"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_days_is_refused() {
        assert!(matches!(
            days_from_now(0),
            Err(CertError::InvalidValidity(_))
        ));
    }

    #[test]
    fn period_spans_now() {
        let (not_before, not_after) = days_from_now(1).expect("one day");
        let now = OffsetDateTime::now_utc();
        assert!(not_before < now && now < not_after);
        assert!(not_after - now <= Duration::days(1));
    }

    #[test]
    fn empty_period_is_refused() {
        let now = OffsetDateTime::now_utc();
        assert!(check(now, now).is_err());
        assert!(check(now, now - Duration::days(1)).is_err());
        assert!(check(now - Duration::days(1), now).is_ok());
    }
}
