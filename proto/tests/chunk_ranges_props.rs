//! `ChunkRanges` (protocol v2's durable set) against a `BTreeSet` model: any insertion order
//! gives the same set, membership is exact, and the ranges stay canonical.

use std::collections::BTreeSet;

use crashdrop_proto::ChunkRanges;
use proptest::prelude::*;

proptest! {
    #[test]
    fn ranges_match_a_set_model_in_any_insertion_order(
        inserts in prop::collection::vec((0u64..300, 1u64..20), 0..60)
    ) {
        let mut set = ChunkRanges::new();
        let mut model = BTreeSet::new();
        for &(first, count) in &inserts {
            set.insert_range(first, count);
            model.extend(first..first + count);
        }
        prop_assert_eq!(set.len(), model.len() as u64);
        for c in 0..330 {
            prop_assert_eq!(set.contains(c), model.contains(&c), "chunk {}", c);
        }
        // Canonical: ascending, non-empty, with a gap between neighbours.
        for pair in set.ranges().windows(2) {
            prop_assert!(pair[0].0 + pair[0].1 < pair[1].0, "{:?}", set.ranges());
        }
        prop_assert!(set.ranges().iter().all(|&(_, n)| n > 0));
        let first_missing = (0..).find(|c| !model.contains(c)).expect("finite");
        prop_assert_eq!(set.first_missing(1000), Some(first_missing));

        let mut reversed = ChunkRanges::new();
        for &(first, count) in inserts.iter().rev() {
            reversed.insert_range(first, count);
        }
        prop_assert_eq!(reversed, set);
    }
}
