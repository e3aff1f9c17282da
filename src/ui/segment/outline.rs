//! The chosen mask's polygon outline, simplified as the exports will write it: traced on a job
//! whenever the mask or the tolerance changes (a 12-megapixel mask takes tens of
//! milliseconds), drawn on the canvas with its vertices, and counted in the side panel.

use std::sync::Arc;

use egui::{Color32, Pos2, Shape, Stroke};

use super::view::Canvas;
use crate::annotate::polygon::{mask_polygons, Polygons};
use crate::jobs::{Jobs, Slot};
use crate::types::Mask;

/// What an outline was traced from: the mask (held, so its address stays its own) and the
/// tolerance.
#[derive(Clone)]
struct Key {
    mask: Arc<Mask>,
    tolerance: f32,
}

impl Key {
    fn is(&self, mask: &Arc<Mask>, tolerance: f32) -> bool {
        Arc::ptr_eq(&self.mask, mask) && self.tolerance == tolerance
    }
}

/// The outline of the chosen mask.
pub struct Outline {
    slot: Slot<(f32, Arc<Mask>, Arc<Polygons>)>,
    asked: Option<Key>,
    shown: Option<(Key, Arc<Polygons>)>,
}

impl Outline {
    /// No outline yet; tracing runs on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            slot: Slot::new(jobs),
            asked: None,
            shown: None,
        }
    }

    /// Asks for the outline of `mask` at `tolerance` pixels (once per change; nothing when
    /// `mask` is `None`).
    pub fn update(&mut self, mask: Option<&Arc<Mask>>, tolerance: f32) {
        let Some(mask) = mask else {
            self.asked = None;
            self.shown = None;
            self.slot.cancel();
            return;
        };
        if self.asked.as_ref().is_some_and(|k| k.is(mask, tolerance)) {
            return;
        }
        self.asked = Some(Key {
            mask: mask.clone(),
            tolerance,
        });
        let m = mask.clone();
        self.slot.submit(move |_| {
            let polys = Arc::new(mask_polygons(&m, tolerance));
            (tolerance, m, polys)
        });
    }

    /// Takes a finished tracing.
    pub fn poll(&mut self) {
        if let Some((tolerance, mask, polys)) = self.slot.poll() {
            self.shown = Some((Key { mask, tolerance }, polys));
        }
    }

    /// The outline of `mask` (perhaps at the previous tolerance while the new one is traced).
    pub fn of(&self, mask: &Arc<Mask>) -> Option<&Polygons> {
        self.shown
            .as_ref()
            .filter(|(k, _)| Arc::ptr_eq(&k.mask, mask))
            .map(|(_, p)| p.as_ref())
    }

    /// True while a tracing runs.
    pub fn is_pending(&self) -> bool {
        self.slot.is_pending()
    }

    /// Draws `polys` on the canvas: outer borders solid, holes in another colour, vertices as
    /// dots when they are few enough to tell apart.
    pub fn draw(painter: &egui::Painter, canvas: &Canvas, polys: &Polygons) {
        let painter = painter.with_clip_rect(canvas.rect);
        // Vertices are pixel centres.
        let to_screen = |v: &[f32; 2]| canvas.screen_from_image([v[0] + 0.5, v[1] + 0.5]);
        let outer = Stroke::new(1.5, Color32::from_rgb(255, 230, 0));
        let hole = Stroke::new(1.5, Color32::from_rgb(0, 220, 255));
        let dots = polys.vertex_count() <= 600;
        for part in &polys.parts {
            for (ring, stroke) in
                std::iter::once((&part.outer, outer)).chain(part.holes.iter().map(|h| (h, hole)))
            {
                let points: Vec<Pos2> = ring.iter().map(to_screen).collect();
                if dots {
                    for &p in &points {
                        painter.circle_filled(p, 2.0, stroke.color);
                    }
                }
                painter.add(Shape::closed_line(points, stroke));
            }
        }
    }
}
