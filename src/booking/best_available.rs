//! Choosing the best free seats: pure logic over a window of candidate seats, unit-tested here.

use uuid::Uuid;

/// A free seat the chooser may pick.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub seat_id: Uuid,
    /// Drawing order of the seat's section (lower is nearer the stage).
    pub section_rank: i32,
    pub section_id: Uuid,
    pub row_index: i32,
    pub number: i32,
}

/// The order the chooser reads seats in: nearest section first, then row, then seat number.
pub fn seat_order(seat: &Candidate) -> (i32, Uuid, i32, i32) {
    (
        seat.section_rank,
        seat.section_id,
        seat.row_index,
        seat.number,
    )
}

/// Picks `quantity` seats from `candidates` (any order).
///
/// With `adjacent`, the seats are consecutive numbers in one row: the frontmost row wins, and within a
/// run of free seats the block is placed so it leaves no single orphan seat beside it where avoidable,
/// then as close to the middle of the run as possible. Without `adjacent`, a block is still preferred;
/// failing that, the frontmost seats are taken one by one. `None` when the window has no fit.
///
/// `spread` > 1 picks at random among that many best blocks: concurrent buyers then aim at different
/// seats instead of all colliding on the single best block.
pub fn choose(
    candidates: &[Candidate],
    quantity: usize,
    adjacent: bool,
    spread: usize,
    rng: &mut impl rand::Rng,
) -> Option<Vec<Uuid>> {
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|seat| seat_order(seat));
    if spread <= 1 {
        choose_first(&sorted, quantity, adjacent, |_| true)
    } else {
        choose_among_best(&sorted, quantity, adjacent, spread, rng)
    }
}

/// What [`choose`] picks with a spread of 1, among the seats of `sorted` (in [`seat_order`]) that
/// `is_free`. Reads no further than the row of the best block, so a lane placing a whole batch of
/// buyers over one pool of thousands of seats does not sort or score the whole pool per buyer.
pub fn choose_first<C: std::borrow::Borrow<Candidate>>(
    sorted: &[C],
    quantity: usize,
    adjacent: bool,
    is_free: impl Fn(&Candidate) -> bool,
) -> Option<Vec<Uuid>> {
    if quantity == 0 {
        return None;
    }
    let mut best: Option<(BlockScore, Vec<Uuid>)> = None;
    let mut run: Vec<&Candidate> = Vec::new();
    let consider = |run: &[&Candidate], best: &mut Option<(BlockScore, Vec<Uuid>)>| {
        let Some((offset, score)) = best_block(run, quantity) else {
            return;
        };
        if best.as_ref().is_none_or(|(best, _)| score < *best) {
            let seats = run[offset..offset + quantity]
                .iter()
                .map(|seat| seat.seat_id);
            *best = Some((score, seats.collect()));
        }
    };
    let mut at = 0;
    while let Some(seat) = sorted.get(at).map(std::borrow::Borrow::borrow) {
        if let Some((found, _)) = &best {
            // Nothing in a further section rank, or further back in this section, can win.
            if seat.section_rank > found.section_rank {
                break;
            }
            if seat.row_index > found.row_index {
                let section = (seat.section_rank, seat.section_id);
                at += sorted[at..].partition_point(|other| {
                    let other = other.borrow();
                    (other.section_rank, other.section_id) == section
                });
                continue;
            }
        }
        at += 1;
        if !is_free(seat) {
            continue;
        }
        if !run.last().is_some_and(|prev| next_to(prev, seat)) {
            consider(&run, &mut best);
            run.clear();
        }
        run.push(seat);
    }
    consider(&run, &mut best);
    if let Some((_, seats)) = best {
        return Some(seats);
    }
    if adjacent {
        return None;
    }
    let front: Vec<Uuid> = sorted
        .iter()
        .map(std::borrow::Borrow::borrow)
        .filter(|seat| is_free(seat))
        .take(quantity)
        .map(|seat| seat.seat_id)
        .collect();
    (front.len() == quantity).then_some(front)
}

/// The best place for a block of `quantity` in `run` (consecutive seats of one row): its offset and
/// score, the first of equals.
fn best_block(run: &[&Candidate], quantity: usize) -> Option<(usize, BlockScore)> {
    let slack = run.len().checked_sub(quantity)?;
    let first = run.first()?;
    (0..=slack)
        .map(|offset| (offset, block_score(first, offset, slack)))
        .min_by_key(|(_, score)| *score)
}

fn block_score(first: &Candidate, left: usize, slack: usize) -> BlockScore {
    let right = slack - left;
    BlockScore {
        section_rank: first.section_rank,
        row_index: first.row_index,
        orphans: usize::from(left == 1) + usize::from(right == 1),
        off_centre: left.abs_diff(right),
    }
}

/// [`choose`] with a spread: every block of every run scored, one of the `spread` best taken.
fn choose_among_best(
    sorted: &[&Candidate],
    quantity: usize,
    adjacent: bool,
    spread: usize,
    rng: &mut impl rand::Rng,
) -> Option<Vec<Uuid>> {
    if quantity == 0 || sorted.len() < quantity {
        return None;
    }
    let mut blocks: Vec<(BlockScore, &[&Candidate])> = Vec::new();
    for run in runs(sorted) {
        let Some(slack) = run.len().checked_sub(quantity) else {
            continue;
        };
        for offset in 0..=slack {
            let score = block_score(run[0], offset, slack);
            blocks.push((score, &run[offset..offset + quantity]));
        }
    }
    if blocks.is_empty() {
        if adjacent {
            return None;
        }
        let pool = (quantity * spread.max(1)).min(sorted.len());
        let mut picked: Vec<&Candidate> = sorted[..pool].to_vec();
        if pool > quantity {
            picked = rand::seq::IndexedRandom::choose_multiple(picked.as_slice(), rng, quantity)
                .copied()
                .collect();
        }
        return Some(picked.iter().map(|c| c.seat_id).collect());
    }
    blocks.sort_by_key(|(score, _)| *score);
    let index = rng.random_range(0..spread.clamp(1, blocks.len()));
    Some(blocks[index].1.iter().map(|c| c.seat_id).collect())
}

/// How good a block is; smaller is better, compared field by field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct BlockScore {
    section_rank: i32,
    row_index: i32,
    orphans: usize,
    off_centre: usize,
}

/// Whether `seat` is the one right after `prev` in the same row of the same section.
fn next_to(prev: &Candidate, seat: &Candidate) -> bool {
    prev.section_id == seat.section_id
        && prev.row_index == seat.row_index
        && prev.number + 1 == seat.number
}

/// Maximal runs of consecutive seat numbers within one row of one section, as slices of `sorted`.
fn runs<'s, 'a>(sorted: &'s [&'a Candidate]) -> Vec<&'s [&'a Candidate]> {
    let mut runs = Vec::new();
    let mut start = 0;
    for at in 1..=sorted.len() {
        if sorted
            .get(at)
            .is_none_or(|seat| !next_to(sorted[at - 1], seat))
        {
            runs.push(&sorted[start..at]);
            start = at;
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(section_rank: i32, row_index: i32, numbers: &[i32]) -> Vec<Candidate> {
        let section_id = Uuid::from_u128(section_rank as u128 + 1);
        numbers
            .iter()
            .map(|&number| Candidate {
                seat_id: Uuid::from_u128(
                    ((section_rank as u128) << 32) | ((row_index as u128) << 16) | number as u128,
                ),
                section_rank,
                section_id,
                row_index,
                number,
            })
            .collect()
    }

    fn numbers(candidates: &[Candidate], chosen: &[Uuid]) -> Vec<(i32, i32)> {
        let mut picked: Vec<(i32, i32)> = candidates
            .iter()
            .filter(|c| chosen.contains(&c.seat_id))
            .map(|c| (c.row_index, c.number))
            .collect();
        picked.sort();
        picked
    }

    #[test]
    fn the_front_row_wins_when_it_fits() {
        let mut seats = row(0, 0, &[1, 2, 3, 4, 5]);
        seats.extend(row(0, 1, &[1, 2, 3, 4, 5, 6, 7, 8]));
        let chosen = choose(&seats, 3, true, 1, &mut rand::rng()).expect("a block fits");
        assert!(numbers(&seats, &chosen).iter().all(|(row, _)| *row == 0));
    }

    #[test]
    fn blocks_are_adjacent_and_leave_no_single_orphan() {
        // Free: 1 2 3 4 5 (taken beyond). Two seats at 1-2 or 4-5 leave no orphan; 2-3 would orphan 1.
        let seats = row(0, 0, &[1, 2, 3, 4, 5]);
        let chosen = choose(&seats, 2, true, 1, &mut rand::rng()).expect("fits");
        let picked = numbers(&seats, &chosen);
        assert_eq!(picked.len(), 2);
        assert_eq!(picked[1].1 - picked[0].1, 1, "adjacent");
        assert!(
            picked == [(0, 1), (0, 2)] || picked == [(0, 4), (0, 5)],
            "{picked:?}"
        );
        // Three of five: 2-3-4 leaves two orphans, 1-2-3 leaves a pair; the pair is better.
        let chosen = choose(&seats, 3, true, 1, &mut rand::rng()).expect("fits");
        let picked = numbers(&seats, &chosen);
        assert!(
            picked == [(0, 1), (0, 2), (0, 3)] || picked == [(0, 3), (0, 4), (0, 5)],
            "{picked:?}"
        );
    }

    #[test]
    fn gaps_break_adjacency() {
        let seats = row(0, 0, &[1, 2, 4, 5, 7]);
        assert_eq!(choose(&seats, 3, true, 1, &mut rand::rng()), None);
        let scattered =
            choose(&seats, 3, false, 1, &mut rand::rng()).expect("non-adjacent seats are fine");
        assert_eq!(scattered.len(), 3);
    }

    #[test]
    fn a_nearer_section_beats_a_nearer_row() {
        let mut seats = row(1, 0, &[1, 2, 3]);
        seats.extend(row(0, 9, &[1, 2, 3]));
        let chosen = choose(&seats, 2, true, 1, &mut rand::rng()).expect("fits");
        assert!(
            seats
                .iter()
                .filter(|c| chosen.contains(&c.seat_id))
                .all(|c| c.section_rank == 0)
        );
    }

    #[test]
    fn a_spread_picks_among_the_best_blocks_only() {
        let mut seats = row(0, 0, &[1, 2, 3, 4, 5, 6]);
        seats.extend(row(0, 5, &[1, 2]));
        for _ in 0..50 {
            let chosen = choose(&seats, 2, true, 3, &mut rand::rng()).expect("fits");
            assert!(
                numbers(&seats, &chosen).iter().all(|(row, _)| *row == 0),
                "never the back row"
            );
        }
    }

    #[test]
    fn the_first_pick_is_the_best_block_of_the_full_scoring() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for _ in 0..400 {
            // Two or three sections, some sharing a rank, rows with random gaps.
            let mut seats = Vec::new();
            for section in 0..rng.random_range(2..4) {
                let rank = rng.random_range(0..2);
                for row_index in 0..rng.random_range(1..6) {
                    let numbers: Vec<i32> = (1..=12).filter(|_| rng.random_bool(0.6)).collect();
                    let mut seats_of_row = row(rank, row_index, &numbers);
                    for seat in &mut seats_of_row {
                        seat.section_id = Uuid::from_u128(100 + section as u128);
                        seat.seat_id =
                            Uuid::from_u128((section as u128) << 40 | seat.seat_id.as_u128());
                    }
                    seats.extend(seats_of_row);
                }
            }
            let given: std::collections::HashSet<Uuid> = seats
                .iter()
                .filter(|_| rng.random_bool(0.2))
                .map(|seat| seat.seat_id)
                .collect();
            let free: Vec<Candidate> = seats
                .iter()
                .filter(|seat| !given.contains(&seat.seat_id))
                .cloned()
                .collect();
            let mut sorted: Vec<&Candidate> = seats.iter().collect();
            sorted.sort_by_key(|seat| seat_order(seat));
            let mut free_sorted: Vec<&Candidate> = free.iter().collect();
            free_sorted.sort_by_key(|seat| seat_order(seat));
            let quantity = rng.random_range(1..5);
            let adjacent = rng.random_bool(0.5);
            assert_eq!(
                choose_first(&sorted, quantity, adjacent, |seat| !given
                    .contains(&seat.seat_id)),
                choose_among_best(&free_sorted, quantity, adjacent, 1, &mut rng),
                "{quantity} seats, adjacent: {adjacent}"
            );
        }
    }

    #[test]
    fn too_few_candidates_choose_nothing() {
        assert_eq!(
            choose(&row(0, 0, &[1]), 2, false, 1, &mut rand::rng()),
            None
        );
        assert_eq!(choose(&[], 1, false, 1, &mut rand::rng()), None);
    }
}
