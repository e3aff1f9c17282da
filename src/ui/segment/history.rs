//! The prompts of the object being segmented, with undo and redo.

use crate::types::Prompts;

/// The current prompts and the states before (undo) and after (redo) them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptHistory {
    current: Prompts,
    undo: Vec<Prompts>,
    redo: Vec<Prompts>,
}

impl PromptHistory {
    /// The current prompts.
    pub fn current(&self) -> &Prompts {
        &self.current
    }

    /// Changes the prompts, recording the previous ones for undo (and forgetting redo).
    pub fn edit(&mut self, change: impl FnOnce(&mut Prompts)) {
        self.undo.push(self.current.clone());
        self.redo.clear();
        change(&mut self.current);
    }

    /// Goes back one change; false when there is none.
    pub fn undo(&mut self) -> bool {
        let Some(prev) = self.undo.pop() else {
            return false;
        };
        self.redo.push(std::mem::replace(&mut self.current, prev));
        true
    }

    /// Goes forward one undone change; false when there is none.
    pub fn redo(&mut self) -> bool {
        let Some(next) = self.redo.pop() else {
            return false;
        };
        self.undo.push(std::mem::replace(&mut self.current, next));
        true
    }

    /// True when there is something to undo.
    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    /// True when there is something to redo.
    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Starts afresh: no prompts, no history (a new image or object).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{PointLabel, PointPrompt};

    fn point(x: f32) -> PointPrompt {
        PointPrompt {
            pos_in_image: [x, 0.0],
            label: PointLabel::Foreground,
        }
    }

    #[test]
    fn undo_redo_walk_the_edits() {
        let mut h = PromptHistory::default();
        assert!(!h.undo() && !h.can_redo());
        h.edit(|p| p.points.push(point(1.0)));
        h.edit(|p| p.points.push(point(2.0)));
        assert!(h.undo());
        assert_eq!(h.current().points, [point(1.0)]);
        assert!(h.redo());
        assert_eq!(h.current().points.len(), 2);
        assert!(h.undo() && h.undo());
        assert!(h.current().is_empty());
        // A new edit after undoing forgets the redo branch.
        h.edit(|p| p.points.push(point(3.0)));
        assert!(!h.can_redo());
        assert_eq!(h.current().points, [point(3.0)]);
    }
}
