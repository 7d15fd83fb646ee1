//! Seat-layout generation: rows × seats-per-row grids placed and rotated on the venue drawing.

/// A block of seats in straight rows. Rows recede from the stage in the direction `facing_degrees`
/// (0 = +x, 90 = +y, the drawing's y axis pointing down); seat 1 of each row is on the row's left as
/// seen from the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct GridLayout {
    pub rows: u32,
    pub seats_per_row: u32,
    /// Centre of the front row on the drawing.
    pub origin: (f64, f64),
    pub facing_degrees: f64,
    pub seat_spacing: f64,
    pub row_spacing: f64,
}

/// One generated seat.
#[derive(Debug, Clone, PartialEq)]
pub struct SeatSpec {
    pub row_label: String,
    pub row_index: i32,
    pub number: i32,
    pub x: f64,
    pub y: f64,
    pub accessible: bool,
}

/// Most rows and seats per row one grid may have.
pub const MAX_ROWS: u32 = 200;
pub const MAX_SEATS_PER_ROW: u32 = 200;

impl GridLayout {
    pub fn seats(&self) -> Vec<SeatSpec> {
        let facing = self.facing_degrees.to_radians();
        let (depth_x, depth_y) = (facing.cos(), facing.sin());
        // Along the row, perpendicular to the facing direction.
        let (along_x, along_y) = (-depth_y, depth_x);
        let centre = (f64::from(self.seats_per_row) - 1.0) / 2.0;
        let mut seats = Vec::with_capacity((self.rows * self.seats_per_row) as usize);
        for row in 0..self.rows {
            let depth = f64::from(row) * self.row_spacing;
            for seat in 0..self.seats_per_row {
                let offset = (f64::from(seat) - centre) * self.seat_spacing;
                seats.push(SeatSpec {
                    row_label: row_label(row),
                    row_index: row as i32,
                    number: seat as i32 + 1,
                    x: round2(self.origin.0 + along_x * offset + depth_x * depth),
                    y: round2(self.origin.1 + along_y * offset + depth_y * depth),
                    accessible: false,
                });
            }
        }
        seats
    }
}

/// Spreadsheet-style row labels: A..Z, AA..AZ, BA..
pub fn row_label(index: u32) -> String {
    let mut label = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        let rem = (n - 1) % 26;
        label.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    label.reverse();
    String::from_utf8(label).unwrap_or_default()
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_labels_continue_past_z() {
        let labels: Vec<String> = [0, 1, 25, 26, 27, 51, 52]
            .into_iter()
            .map(row_label)
            .collect();
        assert_eq!(labels, ["A", "B", "Z", "AA", "AB", "AZ", "BA"]);
    }

    #[test]
    fn a_grid_has_every_seat_once_with_the_front_row_at_the_origin() {
        let grid = GridLayout {
            rows: 3,
            seats_per_row: 4,
            origin: (100.0, 50.0),
            facing_degrees: 90.0,
            seat_spacing: 10.0,
            row_spacing: 12.0,
        };
        let seats = grid.seats();
        assert_eq!(seats.len(), 12);
        let front: Vec<&SeatSpec> = seats.iter().filter(|s| s.row_index == 0).collect();
        assert!(
            front
                .iter()
                .all(|s| (s.y - 50.0).abs() < 1e-9 && s.row_label == "A")
        );
        let mean_x: f64 = front.iter().map(|s| s.x).sum::<f64>() / front.len() as f64;
        assert!((mean_x - 100.0).abs() < 1e-9);
        let back = seats
            .iter()
            .find(|s| s.row_index == 2)
            .expect("third row exists");
        assert!(
            (back.y - 74.0).abs() < 1e-9,
            "rows recede along +y when facing 90 degrees"
        );
    }
}
