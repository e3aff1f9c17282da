//! Zoom and pan of the image canvas, and the mapping between screen points and image pixels.

use egui::{Pos2, Rect, Vec2};

/// The visible part of the image: zoom ≥ 1 around a centre in normalised image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ImageView {
    /// 1 = the whole image.
    pub zoom: f32,
    /// Centre of the view, `[0, 1]²` of the image.
    pub center: [f32; 2],
}

impl Default for ImageView {
    fn default() -> Self {
        Self {
            zoom: 1.0,
            center: [0.5, 0.5],
        }
    }
}

impl ImageView {
    /// Largest zoom (a 16× close-up).
    pub const MAX_ZOOM: f32 = 16.0;

    /// The visible window of the image in texture coordinates.
    pub fn uv(&self) -> Rect {
        let half = 0.5 / self.zoom;
        let c = |v: f32| v.clamp(half, 1.0 - half);
        let (cx, cy) = (c(self.center[0]), c(self.center[1]));
        Rect::from_min_max(
            Pos2::new(cx - half, cy - half),
            Pos2::new(cx + half, cy + half),
        )
    }

    /// Zooms by `factor`, keeping the texture point `anchor` under the pointer.
    pub fn zoom_at(&mut self, factor: f32, anchor: Pos2) {
        let uv = self.uv();
        let new_zoom = (self.zoom * factor).clamp(1.0, Self::MAX_ZOOM);
        let k = self.zoom / new_zoom;
        let c = uv.center();
        self.center = [
            anchor.x + (c.x - anchor.x) * k,
            anchor.y + (c.y - anchor.y) * k,
        ];
        self.zoom = new_zoom;
        self.clamp();
    }

    /// Pans by `delta` of the canvas `size` (a drag's screen movement).
    pub fn pan(&mut self, delta: Vec2, size: Vec2) {
        let d = delta / size / self.zoom;
        self.center = [self.center[0] - d.x, self.center[1] - d.y];
        self.clamp();
    }

    /// Keeps the centre where the visible window stays inside the image.
    fn clamp(&mut self) {
        let c = self.uv().center();
        self.center = [c.x, c.y];
    }
}

/// Where the image is drawn this frame: the canvas rectangle, the visible window and the
/// image's size in pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Canvas {
    /// The canvas on screen.
    pub rect: Rect,
    /// The visible part of the image in texture coordinates.
    pub uv: Rect,
    /// The image's width and height in pixels.
    pub image_size: Vec2,
}

impl Canvas {
    /// The image pixel under the screen point `pos`, if it is on the image.
    pub fn image_from_screen(&self, pos: Pos2) -> Option<[f32; 2]> {
        let rel = (pos - self.rect.min) / self.rect.size();
        let (u, v) = (
            self.uv.min.x + rel.x * self.uv.width(),
            self.uv.min.y + rel.y * self.uv.height(),
        );
        let (x, y) = (u * self.image_size.x, v * self.image_size.y);
        (self.rect.contains(pos)
            && x >= 0.0
            && y >= 0.0
            && x <= self.image_size.x
            && y <= self.image_size.y)
            .then_some([x, y])
    }

    /// The screen point of image pixel `p`.
    pub fn screen_from_image(&self, p: [f32; 2]) -> Pos2 {
        let (u, v) = (p[0] / self.image_size.x, p[1] / self.image_size.y);
        self.rect.min
            + Vec2::new(
                (u - self.uv.min.x) / self.uv.width() * self.rect.width(),
                (v - self.uv.min.y) / self.uv.height() * self.rect.height(),
            )
    }

    /// The texture point under the screen point `pos` (for zooming around the pointer).
    pub fn uv_from_screen(&self, pos: Pos2) -> Pos2 {
        let rel = (pos - self.rect.min) / self.rect.size();
        Pos2::new(
            self.uv.min.x + rel.x * self.uv.width(),
            self.uv.min.y + rel.y * self.uv.height(),
        )
    }

    /// Screen pixels per image pixel.
    pub fn scale(&self) -> Vec2 {
        self.rect.size() / self.image_size / self.uv.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_and_image_coordinates_round_trip_at_any_zoom() {
        let mut view = ImageView::default();
        view.zoom_at(3.0, Pos2::new(0.25, 0.75));
        let canvas = Canvas {
            rect: Rect::from_min_size(Pos2::new(10.0, 20.0), Vec2::new(451.0, 300.0)),
            uv: view.uv(),
            image_size: Vec2::new(451.0, 300.0),
        };
        let p = [120.0, 210.0];
        let screen = canvas.screen_from_image(p);
        let back = canvas.image_from_screen(screen).expect("on the image");
        assert!((back[0] - p[0]).abs() < 1e-3 && (back[1] - p[1]).abs() < 1e-3);
        // The anchor stays under the pointer: texture point (0.25, 0.75) is still drawn where it
        // was at zoom 1, a quarter across and three quarters down the canvas.
        let under =
            canvas.uv_from_screen(canvas.rect.min + canvas.rect.size() * Vec2::new(0.25, 0.75));
        assert!(
            (under.x - 0.25).abs() < 1e-5 && (under.y - 0.75).abs() < 1e-5,
            "{under:?}"
        );
        assert!(canvas.image_from_screen(Pos2::new(0.0, 0.0)).is_none());
        assert!((canvas.scale().x - 3.0).abs() < 1e-4);
    }
}
