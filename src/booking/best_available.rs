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
    if quantity == 0 || candidates.len() < quantity {
        return None;
    }
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| (c.section_rank, c.section_id, c.row_index, c.number));

    let mut blocks: Vec<(BlockScore, &[&Candidate])> = Vec::new();
    let runs = runs(&sorted);
    for run in &runs {
        if run.len() < quantity {
            continue;
        }
        let slack = run.len() - quantity;
        for offset in 0..=slack {
            let (left, right) = (offset, slack - offset);
            let score = BlockScore {
                section_rank: run[0].section_rank,
                row_index: run[0].row_index,
                orphans: usize::from(left == 1) + usize::from(right == 1),
                off_centre: left.abs_diff(right),
            };
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

/// Maximal runs of consecutive seat numbers within one row of one section.
fn runs<'a>(sorted: &[&'a Candidate]) -> Vec<Vec<&'a Candidate>> {
    let mut runs: Vec<Vec<&Candidate>> = Vec::new();
    for &seat in sorted {
        match runs.last_mut() {
            Some(run)
                if run.last().is_some_and(|prev| {
                    prev.section_id == seat.section_id
                        && prev.row_index == seat.row_index
                        && prev.number + 1 == seat.number
                }) =>
            {
                run.push(seat)
            }
            _ => runs.push(vec![seat]),
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
    fn too_few_candidates_choose_nothing() {
        assert_eq!(
            choose(&row(0, 0, &[1]), 2, false, 1, &mut rand::rng()),
            None
        );
        assert_eq!(choose(&[], 1, false, 1, &mut rand::rng()), None);
    }
}
