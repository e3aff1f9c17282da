//! Editing an object's mask: add or subtract another mask, fill holes, remove small parts,
//! keep the largest part. Pure functions on [`Mask`]; the view keeps each step for undo.

use crate::analysis::amg::{label_components, remove_small_regions, RegionMode};
use crate::types::Mask;

/// One editing step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditOp {
    /// Pixels in either mask.
    Union,
    /// Pixels of the object not in the other mask.
    Difference,
    /// Background enclosed by the object becomes object (4-connected background, the
    /// complement of 8-connected parts).
    FillHoles,
    /// Parts (8-connected) smaller than this many pixels go; if every part is smaller, the
    /// largest stays (the official `remove_small_regions`).
    RemoveSmall(usize),
    /// Only the largest part stays.
    KeepLargest,
}

impl EditOp {
    /// The button's words.
    pub fn label(self) -> String {
        match self {
            Self::Union => "Add the chosen mask".into(),
            Self::Difference => "Subtract the chosen mask".into(),
            Self::FillHoles => "Fill holes".into(),
            Self::RemoveSmall(n) => format!("Remove parts under {n} px"),
            Self::KeepLargest => "Keep the largest part".into(),
        }
    }
}

/// Why a step cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// Union and difference need the chosen mask.
    #[error("choose a mask first (click on the image)")]
    NoOther,
    /// The other mask has another size.
    #[error("the masks differ in size ({0}×{1} and {2}×{3})")]
    Size(usize, usize, usize, usize),
    /// The step would leave nothing.
    #[error("that would leave the object empty")]
    Empty,
}

/// `mask` after `op` (with `other` for union and difference). A step that changes nothing
/// returns the same pixels; one that would empty the object is refused.
pub fn apply(mask: &Mask, op: EditOp, other: Option<&Mask>) -> Result<Mask, EditError> {
    let (w, h) = (mask.width, mask.height);
    let data = match op {
        EditOp::Union | EditOp::Difference => {
            let o = other.ok_or(EditError::NoOther)?;
            if (o.width, o.height) != (w, h) {
                return Err(EditError::Size(w, h, o.width, o.height));
            }
            let keep_other = op == EditOp::Union;
            mask.data
                .iter()
                .zip(&o.data)
                .map(|(&a, &b)| {
                    let (a, b) = (a != 0, b != 0);
                    u8::from(if keep_other { a || b } else { a && !b })
                })
                .collect()
        }
        EditOp::FillHoles => fill_holes(mask),
        EditOp::RemoveSmall(min) => {
            remove_small_regions(&mask.data, (h, w), min, RegionMode::Islands).0
        }
        EditOp::KeepLargest => {
            let on: Vec<bool> = mask.data.iter().map(|&v| v != 0).collect();
            let (labels, sizes) = label_components(&on, (h, w));
            // The first of the largest, as np.argmax.
            let best = (0..sizes.len()).fold(0, |b, i| if sizes[i] > sizes[b] { i } else { b });
            labels.iter().map(|&l| u8::from(l == best + 1)).collect()
        }
    };
    let out = Mask {
        width: w,
        height: h,
        data,
    };
    if out.area() == 0 {
        return Err(EditError::Empty);
    }
    Ok(out)
}

/// The mask with every background region that does not reach the image's edge filled.
fn fill_holes(mask: &Mask) -> Vec<u8> {
    let (w, h) = (mask.width, mask.height);
    // Background reached from the edge, 4-connected.
    let mut outside = vec![false; w * h];
    let mut stack: Vec<usize> = Vec::new();
    let seed = |i: usize, outside: &mut Vec<bool>, stack: &mut Vec<usize>| {
        if mask.data[i] == 0 && !outside[i] {
            outside[i] = true;
            stack.push(i);
        }
    };
    for x in 0..w {
        seed(x, &mut outside, &mut stack);
        seed((h - 1) * w + x, &mut outside, &mut stack);
    }
    for y in 0..h {
        seed(y * w, &mut outside, &mut stack);
        seed(y * w + w - 1, &mut outside, &mut stack);
    }
    while let Some(i) = stack.pop() {
        let (x, y) = (i % w, i / w);
        if x > 0 {
            seed(i - 1, &mut outside, &mut stack);
        }
        if x + 1 < w {
            seed(i + 1, &mut outside, &mut stack);
        }
        if y > 0 {
            seed(i - w, &mut outside, &mut stack);
        }
        if y + 1 < h {
            seed(i + w, &mut outside, &mut stack);
        }
    }
    outside.iter().map(|&o| u8::from(!o)).collect()
}

/// An object's mask with its editing history: undo and redo one step at a time.
#[derive(Debug, Clone)]
pub struct EditHistory<M> {
    undo: Vec<M>,
    redo: Vec<M>,
}

impl<M> Default for EditHistory<M> {
    fn default() -> Self {
        Self {
            undo: Vec::new(),
            redo: Vec::new(),
        }
    }
}

impl<M> EditHistory<M> {
    /// Records that `before` was replaced by a new mask (the redo steps are dropped).
    pub fn record(&mut self, before: M) {
        self.undo.push(before);
        self.redo.clear();
    }

    /// The mask to go back to, given the current one (kept for redo).
    pub fn undo(&mut self, current: M) -> Result<M, M> {
        match self.undo.pop() {
            Some(m) => {
                self.redo.push(current);
                Ok(m)
            }
            None => Err(current),
        }
    }

    /// The mask undone last, given the current one (kept for undo).
    pub fn redo(&mut self, current: M) -> Result<M, M> {
        match self.redo.pop() {
            Some(m) => {
                self.undo.push(current);
                Ok(m)
            }
            None => Err(current),
        }
    }

    /// True when a step can be undone.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// True when a step can be redone.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_rows(rows: &[&str]) -> Mask {
        let width = rows[0].len();
        Mask {
            width,
            height: rows.len(),
            data: rows
                .iter()
                .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
                .collect(),
        }
    }

    #[test]
    fn union_and_difference() {
        let a = from_rows(&["##..", "##.."]);
        let b = from_rows(&[".##.", ".##."]);
        assert_eq!(
            apply(&a, EditOp::Union, Some(&b)),
            Ok(from_rows(&["###.", "###."]))
        );
        assert_eq!(
            apply(&a, EditOp::Difference, Some(&b)),
            Ok(from_rows(&["#...", "#..."]))
        );
        assert_eq!(apply(&a, EditOp::Union, None), Err(EditError::NoOther));
        assert_eq!(
            apply(&a, EditOp::Difference, Some(&a)),
            Err(EditError::Empty)
        );
        let small = from_rows(&["#"]);
        assert!(matches!(
            apply(&a, EditOp::Union, Some(&small)),
            Err(EditError::Size(..))
        ));
    }

    #[test]
    fn holes_fill_but_bays_open_to_the_edge_do_not() {
        let m = from_rows(&[
            "#####..", //
            "#..##..", "#####.#", "......#",
        ]);
        let filled = apply(&m, EditOp::FillHoles, None).expect("filled");
        assert_eq!(
            filled,
            from_rows(&["#####..", "#####..", "#####.#", "......#"])
        );
        // A diagonal gap does not let the background out (4-connected background).
        let d = from_rows(&[".#.", "#.#", ".#."]);
        assert_eq!(
            apply(&d, EditOp::FillHoles, None),
            Ok(from_rows(&[".#.", "###", ".#."]))
        );
    }

    #[test]
    fn small_parts_go_and_the_largest_stays() {
        let m = from_rows(&["##...#", "##....", "....##"]);
        assert_eq!(
            apply(&m, EditOp::KeepLargest, None),
            Ok(from_rows(&["##....", "##....", "......"]))
        );
        assert_eq!(
            apply(&m, EditOp::RemoveSmall(2), None),
            Ok(from_rows(&["##....", "##....", "....##"]))
        );
        // Every part small: the largest is kept, never an empty object.
        assert_eq!(
            apply(&m, EditOp::RemoveSmall(100), None),
            Ok(from_rows(&["##....", "##....", "......"]))
        );
    }

    #[test]
    fn history_undoes_and_redoes_in_order() {
        let mut h = EditHistory::default();
        h.record(1);
        h.record(2);
        assert_eq!(h.undo(3), Ok(2));
        assert_eq!(h.undo(2), Ok(1));
        assert_eq!(h.undo(1), Err(1));
        assert_eq!(h.redo(1), Ok(2));
        h.record(2); // a new step drops the redo
        assert!(!h.can_redo());
        assert!(h.can_undo());
    }
}
