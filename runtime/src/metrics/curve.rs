//! One sort, then a walk over the distinct thresholds from the highest score
//! down: the shared skeleton of every ranking metric here.
//!
//! A sample is packed into a `u64` key: the score's bits, mapped so that
//! unsigned order is numeric order, in the high half and a 32-bit tag (a
//! label, or a region id with 0 for normal) in the low half. Sorting the keys
//! groups equal scores together, and scikit-learn and anomalib both place one
//! threshold at each distinct score, so a group is one point of the curve.

use super::MetricsError;

/// Packs a finite score and a tag into a key ordered by score.
pub(crate) fn pack(score: f32, tag: u32) -> u64 {
    // numpy compares -0.0 == 0.0, so they must be one threshold, not two keys.
    let score = if score == 0.0 { 0.0f32 } else { score };
    let bits = score.to_bits();
    // Negative floats order backwards as integers: flip them all; positive
    // ones only need the sign bit set to sort above every negative.
    let ordered = if bits & 0x8000_0000 != 0 { !bits } else { bits | 0x8000_0000 };
    (u64::from(ordered) << 32) | u64::from(tag)
}

/// The tag packed with [`pack`].
pub(crate) fn tag(key: u64) -> u32 {
    key as u32
}

fn score_part(key: u64) -> u32 {
    (key >> 32) as u32
}

/// Fails on the first NaN or infinite score: a ranking of NaNs means nothing,
/// and scikit-learn rejects non-finite input as well.
/// `what` names the input in the error; it is only built on failure.
pub(crate) fn check_finite(what: impl FnOnce() -> String, scores: &[f32]) -> Result<(), MetricsError> {
    match scores.iter().position(|s| !s.is_finite()) {
        None => Ok(()),
        Some(index) => Err(MetricsError::NonFiniteScore { what: what(), index, value: scores[index] }),
    }
}

/// Sorts keys so that [`walk_descending`] can group them.
pub(crate) fn sort_keys(keys: &mut [u64]) {
    keys.sort_unstable();
}

/// Calls `on_threshold` with the keys of each distinct score, highest score
/// first, on keys sorted by [`sort_keys`]; stops early when it returns false.
pub(crate) fn walk_descending(keys: &[u64], mut on_threshold: impl FnMut(&[u64]) -> bool) {
    let mut end = keys.len();
    while end > 0 {
        let score = score_part(keys[end - 1]);
        let mut start = end - 1;
        while start > 0 && score_part(keys[start - 1]) == score {
            start -= 1;
        }
        if !on_threshold(&keys[start..end]) {
            return;
        }
        end = start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_score_order() {
        let scores = [f32::MIN, -3.5, -1e-30, -0.0, 0.0, 1e-30, 0.25, 7.0, f32::MAX];
        for w in scores.windows(2) {
            let (a, b) = (pack(w[0], 0), pack(w[1], 0));
            if w[0] == w[1] {
                assert_eq!(a, b, "{} and {} must be one threshold", w[0], w[1]);
            } else {
                assert!(a < b, "{} must sort below {}", w[0], w[1]);
            }
        }
        assert!(pack(1.0, 5) > pack(1.0, 4));
        assert_eq!(tag(pack(-2.0, 12345)), 12345);
    }

    #[test]
    fn walk_groups_ties_from_the_top() {
        let mut keys: Vec<u64> =
            [(0.5, 1), (0.1, 0), (0.5, 0), (0.9, 1), (0.1, 1)].iter().map(|&(s, t)| pack(s, t)).collect();
        sort_keys(&mut keys);
        let mut groups = Vec::new();
        walk_descending(&keys, |g| {
            groups.push(g.iter().map(|&k| tag(k)).collect::<Vec<_>>());
            true
        });
        assert_eq!(groups, vec![vec![1], vec![0, 1], vec![0, 1]]);
    }

    #[test]
    fn non_finite_scores_are_named() {
        let err = check_finite(|| "image scores".into(), &[0.1, f32::NAN]).unwrap_err();
        assert!(matches!(err, MetricsError::NonFiniteScore { index: 1, .. }));
        assert!(err.to_string().contains("image scores"));
        assert!(check_finite(|| "x".into(), &[f32::INFINITY]).is_err());
        assert!(check_finite(|| "x".into(), &[0.0, -1.0]).is_ok());
    }
}
