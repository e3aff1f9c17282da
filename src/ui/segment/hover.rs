//! Hover preview: with an encoded image and no drag going on, the mask of a foreground point
//! under the pointer (with the prompts already placed) appears while the pointer rests. One
//! request at a time: when its answer comes, the newest pointer position is asked next, so
//! nothing queues up; none is sent while a click waits for its answer (the worker runs only
//! the newest prompt, and a click must never be the one dropped). A click at the previewed
//! position takes the preview as its answer at once; one that comes before the preview's
//! answer adopts the preview's request instead of queueing a second decode. The pointer must rest [`REST`] first, so
//! sweeping across the image sends nothing.

/// How long the pointer rests before its preview is asked for.
pub const REST: Duration = Duration::from_millis(40);

use std::time::{Duration, Instant};

use super::objects::{best, Candidates, Overlays};
use super::{EncodeState, SegmentState};
use crate::jobs::{Jobs, Slot};
use crate::types::{PointLabel, PointPrompt, Prediction, Prompts};
use crate::worker::sam::{SamRequest, SamWorker};

/// A previewed answer and the prompts it answers.
pub struct Preview {
    /// The prompts (the placed ones and the hovered point).
    pub prompts: Prompts,
    /// SAM's answer, overlays included once made.
    pub candidates: Candidates,
}

/// The hover preview's state.
pub struct HoverState {
    /// The image pixel under the pointer, if it is over the image.
    pub pointer: Option<[f32; 2]>,
    /// No pointer button is down (no request is sent meanwhile).
    pub free: bool,
    /// Where the pointer came to rest, and since when.
    resting: Option<([f32; 2], Instant)>,
    /// The preview request awaited: its id and prompts.
    in_flight: Option<(u64, Prompts)>,
    /// Every preview request not answered yet (a click makes the awaited one moot, but its
    /// answer may still come and must not pass for the click's).
    sent: Vec<u64>,
    /// The preview on screen.
    pub preview: Option<Preview>,
    /// An answer whose overlays are being made.
    incoming: Option<Preview>,
    overlays: Slot<Overlays>,
}

impl HoverState {
    /// No preview; overlays are made on `jobs`.
    pub fn new(jobs: &Jobs) -> Self {
        Self {
            pointer: None,
            free: true,
            resting: None,
            in_flight: None,
            sent: Vec::new(),
            preview: None,
            incoming: None,
            overlays: Slot::new(jobs),
        }
    }

    /// Drops the preview and forgets any request (a new image, a click, everything mode).
    pub fn clear(&mut self) {
        self.pointer = None;
        self.in_flight = None;
        self.preview = None;
        self.incoming = None;
        self.overlays.cancel();
    }

    /// Stops waiting for the preview request in flight (a click supersedes it).
    pub fn forget_in_flight(&mut self) {
        self.in_flight = None;
    }

    /// Whether `request_id` is a preview request (and no longer unanswered), and whether it
    /// is the one awaited.
    pub fn answered(&mut self, request_id: u64) -> Option<bool> {
        let at = self.sent.iter().position(|&id| id == request_id)?;
        self.sent.remove(at);
        Some(
            self.in_flight
                .as_ref()
                .is_some_and(|(id, _)| *id == request_id),
        )
    }
}

impl SegmentState {
    /// The prompts a foreground point at `pos` would make.
    fn prompts_with_point(&self, pos: [f32; 2]) -> Prompts {
        let mut p = self.history.current().clone();
        p.points.push(PointPrompt {
            pos_in_image: pos,
            label: PointLabel::Foreground,
        });
        // Exactly what a click there would send, refinement included.
        p.mask_input = self.refinement_input();
        p
    }

    /// Sends a preview request for the newest pointer position when nothing is awaited.
    pub(super) fn update_hover(&mut self, ctx: &egui::Context, sam: &SamWorker) {
        let now = Instant::now();
        self.hover.resting = match (self.hover.pointer, self.hover.resting) {
            (Some(p), Some((q, t))) if p == q => Some((q, t)),
            (Some(p), _) => Some((p, now)),
            (None, _) => None,
        };
        let enabled = self.hover_enabled
            && matches!(self.encode, EncodeState::Ready { .. })
            && self.everything.running.is_none()
            && self.awaiting.is_none()
            && self.hover.free
            && self.drag_from.is_none();
        let (Some(pos), true) = (self.hover.pointer, enabled) else {
            if !self.hover_enabled || self.hover.pointer.is_none() {
                self.hover.preview = None;
            }
            return;
        };
        if self.hover.in_flight.is_some() {
            return;
        }
        let rested = self.hover.resting.map_or(Duration::ZERO, |(_, t)| now - t);
        if rested < REST {
            ctx.request_repaint_after(REST - rested);
            return;
        }
        let prompts = self.prompts_with_point(pos);
        let shown = self.hover.preview.as_ref().map(|p| &p.prompts);
        let coming = self.hover.incoming.as_ref().map(|p| &p.prompts);
        if shown == Some(&prompts) || coming == Some(&prompts) {
            return;
        }
        let Some(img) = &self.image else { return };
        let request_id = self.next_request_id;
        self.next_request_id += 1;
        let req = SamRequest::Predict {
            image_id: img.id,
            request_id,
            prompts: prompts.clone(),
            multimask: self.multimask,
        };
        if sam.send(req).is_ok() {
            self.hover.in_flight = Some((request_id, prompts));
            self.hover.sent.push(request_id);
            // Coalesced away by a click's request, an id never answers: keep the list short.
            if self.hover.sent.len() > 64 {
                self.hover.sent.remove(0);
            }
        }
    }

    /// Takes the answer to the preview request `request_id` and starts its overlays.
    pub(super) fn take_hover_prediction(
        &mut self,
        ctx: &egui::Context,
        request_id: u64,
        p: Prediction,
    ) {
        let Some((_, prompts)) = self.hover.in_flight.take() else {
            return;
        };
        let Some(img) = &self.image else { return };
        let size = img.display_size;
        let candidates = Candidates::start(
            &mut self.hover.overlays,
            ctx,
            request_id,
            p,
            size,
            "preview",
        );
        self.hover.incoming = Some(Preview {
            prompts,
            candidates,
        });
    }

    /// Applies finished preview overlays (call once per frame).
    pub(super) fn poll_hover(&mut self) {
        if let Some((request_id, textures)) = self.hover.overlays.poll() {
            if let Some(mut p) = self
                .hover
                .incoming
                .take_if(|p| p.candidates.request_id == request_id)
            {
                p.candidates.overlays = Some(textures);
                // Still wanted only if the pointer has not left or the prompts changed.
                if self.hover.pointer.is_some() {
                    self.hover.preview = Some(p);
                }
            }
        }
    }

    /// If the preview request in flight asks exactly the current prompts (a click where the
    /// pointer rests before its preview came), it becomes the click's request: its id, so
    /// that its answer is taken as the click's and no second decode runs. Returns it.
    pub(super) fn adopt_in_flight(&mut self) -> Option<u64> {
        let current = self.history.current();
        let (id, _) = self.hover.in_flight.take_if(|(_, p)| p == current)?;
        self.hover.sent.retain(|&s| s != id);
        Some(id)
    }

    /// If the preview answers exactly `prompts` (a click where the pointer rested), it becomes
    /// the candidates at once. Returns whether it did.
    pub(super) fn commit_preview(&mut self) -> bool {
        let current = self.history.current();
        let Some(p) = self
            .hover
            .preview
            .take_if(|p| p.prompts == *current && p.candidates.overlays.is_some())
        else {
            return false;
        };
        self.selected = best(&p.candidates.iou);
        self.candidates = Some(p.candidates);
        self.incoming = None;
        self.overlays.cancel();
        true
    }

    /// The preview's best mask overlay, to draw while no click is pending.
    pub(super) fn preview_overlay(&self) -> Option<&egui::TextureHandle> {
        let p = self.hover.preview.as_ref()?;
        if !self.hover_enabled || self.hover.pointer.is_none() || self.drag_from.is_some() {
            return None;
        }
        let i = best(&p.candidates.iou);
        p.candidates.overlays.as_ref()?.get(i)
    }
}
