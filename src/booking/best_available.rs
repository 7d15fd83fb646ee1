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
pub fn choose(candidates: &[Candidate], quantity: usize, adjacent: bool) -> Option<Vec<Uuid>> {
    if quantity == 0 || candidates.len() < quantity {
        return None;
    }
    let mut sorted: Vec<&Candidate> = candidates.iter().collect();
    sorted.sort_by_key(|c| (c.section_rank, c.section_id, c.row_index, c.number));

    let mut best: Option<(BlockScore, Vec<Uuid>)> = None;
    for run in runs(&sorted) {
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
            if best.as_ref().is_none_or(|(current, _)| score < *current) {
                let seats = run[offset..offset + quantity].iter().map(|c| c.seat_id).collect();
                best = Some((score, seats));
            }
        }
    }
    match best {
        Some((_, seats)) => Some(seats),
        None if adjacent => None,
        None => Some(sorted.iter().take(quantity).map(|c| c.seat_id).collect()),
    }
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
                seat_id: Uuid::from_u128(((section_rank as u128) << 32) | ((row_index as u128) << 16) | number as u128),
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
        let chosen = choose(&seats, 3, true).expect("a block fits");
        assert!(numbers(&seats, &chosen).iter().all(|(row, _)| *row == 0));
    }

    #[test]
    fn blocks_are_adjacent_and_leave_no_single_orphan() {
        // Free: 1 2 3 4 5 (taken beyond). Two seats at 1-2 or 4-5 leave no orphan; 2-3 would orphan 1.
        let seats = row(0, 0, &[1, 2, 3, 4, 5]);
        let chosen = choose(&seats, 2, true).expect("fits");
        let picked = numbers(&seats, &chosen);
        assert_eq!(picked.len(), 2);
        assert_eq!(picked[1].1 - picked[0].1, 1, "adjacent");
        assert!(picked == [(0, 1), (0, 2)] || picked == [(0, 4), (0, 5)], "{picked:?}");
        // Three of five: 2-3-4 leaves two orphans, 1-2-3 leaves a pair; the pair is better.
        let chosen = choose(&seats, 3, true).expect("fits");
        let picked = numbers(&seats, &chosen);
        assert!(picked == [(0, 1), (0, 2), (0, 3)] || picked == [(0, 3), (0, 4), (0, 5)], "{picked:?}");
    }

    #[test]
    fn gaps_break_adjacency() {
        let seats = row(0, 0, &[1, 2, 4, 5, 7]);
        assert_eq!(choose(&seats, 3, true), None);
        let scattered = choose(&seats, 3, false).expect("non-adjacent seats are fine");
        assert_eq!(scattered.len(), 3);
    }

    #[test]
    fn a_nearer_section_beats_a_nearer_row() {
        let mut seats = row(1, 0, &[1, 2, 3]);
        seats.extend(row(0, 9, &[1, 2, 3]));
        let chosen = choose(&seats, 2, true).expect("fits");
        assert!(seats.iter().filter(|c| chosen.contains(&c.seat_id)).all(|c| c.section_rank == 0));
    }

    #[test]
    fn too_few_candidates_choose_nothing() {
        assert_eq!(choose(&row(0, 0, &[1]), 2, false), None);
        assert_eq!(choose(&[], 1, false), None);
    }
}
