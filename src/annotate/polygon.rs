//! Masks as polygons: every 8-connected part's outer border and the borders of its holes
//! (imageproc's Suzuki–Abe border following), simplified with Douglas–Peucker.
//!
//! Vertices are pixel centres (`x`, `y` of the border pixels), the convention of OpenCV's
//! `findContours` that the official SAM code, COCO's tooling and the labelling tools use: a
//! polygon drawn back by `pycocotools` covers the mask but for part of its border pixels.

use imageproc::contours::{find_contours, BorderType};
use imageproc::geometry::approximate_polygon_dp;
use imageproc::point::Point;

use crate::types::Mask;

/// A closed ring of vertices `[x, y]` in image pixels (the last joins the first).
pub type Ring = Vec<[f32; 2]>;

/// One connected part of a mask: its outer border and the borders of its holes.
#[derive(Debug, Clone, PartialEq)]
pub struct Polygon {
    /// The outer border.
    pub outer: Ring,
    /// The borders of the holes inside it.
    pub holes: Vec<Ring>,
}

/// The polygons of a mask.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polygons {
    /// One per connected part (parts inside a hole of another come as their own polygon).
    pub parts: Vec<Polygon>,
}

impl Polygons {
    /// Vertices in all rings.
    pub fn vertex_count(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.outer.len() + p.holes.iter().map(Vec::len).sum::<usize>())
            .sum()
    }

    /// True when some part has a hole (COCO and YOLO polygons cannot carry them).
    pub fn has_holes(&self) -> bool {
        self.parts.iter().any(|p| !p.holes.is_empty())
    }

    /// Holes over all parts.
    pub fn hole_count(&self) -> usize {
        self.parts.iter().map(|p| p.holes.len()).sum()
    }

    /// The outer rings with at least 3 vertices (what a polygon format can hold).
    pub fn outer_rings(&self) -> impl Iterator<Item = &Ring> {
        self.parts.iter().map(|p| &p.outer).filter(|r| r.len() >= 3)
    }

    /// Parts too thin for a polygon (1 or 2 vertices: specks and short lines).
    pub fn degenerate_parts(&self) -> usize {
        self.parts.iter().filter(|p| p.outer.len() < 3).count()
    }
}

/// The polygons of `mask`, each ring simplified so that no border pixel lies farther than
/// `tolerance` pixels from it (`0`: only vertices on straight runs are dropped, which loses
/// nothing).
pub fn mask_polygons(mask: &Mask, tolerance: f32) -> Polygons {
    if mask.width == 0 || mask.height == 0 {
        return Polygons::default();
    }
    // One pixel of background around the mask: border following needs it, else parts that
    // touch the image's edge are missed.
    let (w, h) = (mask.width + 2, mask.height + 2);
    let mut padded = vec![0u8; w * h];
    for (y, row) in mask.data.chunks_exact(mask.width).enumerate() {
        padded[(y + 1) * w + 1..][..mask.width].copy_from_slice(row);
    }
    let Some(gray) = image::GrayImage::from_raw(w as u32, h as u32, padded) else {
        return Polygons::default();
    };
    let mut contours = find_contours::<i32>(&gray);
    for c in &mut contours {
        for p in &mut c.points {
            p.x -= 1;
            p.y -= 1;
        }
    }
    let mut parts: Vec<Polygon> = Vec::new();
    // Index of each outer contour's part.
    let mut part_of = vec![None; contours.len()];
    for (i, c) in contours.iter().enumerate() {
        if c.border_type == BorderType::Outer {
            part_of[i] = Some(parts.len());
            parts.push(Polygon {
                outer: simplify_ring(&c.points, tolerance),
                holes: Vec::new(),
            });
        }
    }
    for c in contours
        .iter()
        .filter(|c| c.border_type == BorderType::Hole)
    {
        if let Some(part) = c.parent.and_then(|p| part_of[p]) {
            parts[part].holes.push(simplify_ring(&c.points, tolerance));
        }
    }
    Polygons { parts }
}

/// Simplifies a closed ring: split at vertex 0 and the vertex farthest from it, each half
/// simplified with Douglas–Peucker (imageproc's), joined. Collinear vertices go either way.
pub fn simplify_ring(points: &[Point<i32>], tolerance: f32) -> Ring {
    let ring = dedup_closed(points);
    if ring.len() < 4 {
        return to_ring(&ring);
    }
    if tolerance <= 0.0 {
        return to_ring(&drop_collinear(&ring));
    }
    let far = (1..ring.len())
        .max_by_key(|&i| {
            let (dx, dy) = (ring[i].x - ring[0].x, ring[i].y - ring[0].y);
            i64::from(dx) * i64::from(dx) + i64::from(dy) * i64::from(dy)
        })
        .unwrap_or(1);
    let eps = f64::from(tolerance);
    let mut first = approximate_polygon_dp(&ring[..=far], eps, false);
    let mut second_half: Vec<Point<i32>> = ring[far..].to_vec();
    second_half.push(ring[0]);
    let second = approximate_polygon_dp(&second_half, eps, false);
    first.pop(); // `far`, which starts the second half
    first.extend_from_slice(&second[..second.len() - 1]); // its last is vertex 0 again
    to_ring(&drop_collinear(&first))
}

/// Drops repeated consecutive vertices (including the last equal to the first).
fn dedup_closed(points: &[Point<i32>]) -> Vec<Point<i32>> {
    let mut out: Vec<Point<i32>> = Vec::with_capacity(points.len());
    for &p in points {
        if out.last() != Some(&p) {
            out.push(p);
        }
    }
    while out.len() > 1 && out.first() == out.last() {
        out.pop();
    }
    out
}

/// Drops the vertices that lie on the straight line between their neighbours and go on in the
/// same direction (a spike that turns back is kept: it is part of the shape).
fn drop_collinear(ring: &[Point<i32>]) -> Vec<Point<i32>> {
    let n = ring.len();
    if n < 4 {
        return ring.to_vec();
    }
    let keep = |i: usize| {
        let (a, b, c) = (ring[(i + n - 1) % n], ring[i], ring[(i + 1) % n]);
        let (ux, uy) = (i64::from(b.x - a.x), i64::from(b.y - a.y));
        let (vx, vy) = (i64::from(c.x - b.x), i64::from(c.y - b.y));
        ux * vy - uy * vx != 0 || ux * vx + uy * vy < 0
    };
    let out: Vec<Point<i32>> = (0..n).filter(|&i| keep(i)).map(|i| ring[i]).collect();
    if out.len() < 3 {
        ring.to_vec()
    } else {
        out
    }
}

fn to_ring(points: &[Point<i32>]) -> Ring {
    points.iter().map(|p| [p.x as f32, p.y as f32]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Signed area of a ring (shoelace; positive when counter-clockwise in image coordinates).
    fn ring_area(ring: &[[f32; 2]]) -> f64 {
        let n = ring.len();
        let mut twice = 0.0f64;
        for i in 0..n {
            let (a, b) = (ring[i], ring[(i + 1) % n]);
            twice += f64::from(a[0]) * f64::from(b[1]) - f64::from(b[0]) * f64::from(a[1]);
        }
        twice / 2.0
    }

    /// Distance from `p` to the segment `a`–`b`.
    fn point_segment_distance(p: [f32; 2], a: [f32; 2], b: [f32; 2]) -> f32 {
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = dx * dx + dy * dy;
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
        };
        let (qx, qy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
        (qx * qx + qy * qy).sqrt()
    }

    /// Distance from `p` to the nearest edge of a closed ring.
    fn ring_distance(p: [f32; 2], ring: &[[f32; 2]]) -> f32 {
        let n = ring.len();
        (0..n)
            .map(|i| point_segment_distance(p, ring[i], ring[(i + 1) % n]))
            .fold(f32::INFINITY, f32::min)
    }

    fn mask(width: usize, height: usize, on: impl Fn(usize, usize) -> bool) -> Mask {
        let mut data = vec![0; width * height];
        for y in 0..height {
            for x in 0..width {
                data[y * width + x] = u8::from(on(x, y));
            }
        }
        Mask {
            width,
            height,
            data,
        }
    }

    #[test]
    fn a_square_is_four_corners_at_pixel_centres() {
        let m = mask(10, 10, |x, y| (2..6).contains(&x) && (3..8).contains(&y));
        let p = mask_polygons(&m, 0.0);
        assert_eq!(p.parts.len(), 1);
        let mut outer = p.parts[0].outer.clone();
        outer.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        assert_eq!(outer, vec![[2., 3.], [2., 7.], [5., 3.], [5., 7.]]);
        assert!(!p.has_holes());
        assert_eq!(p.vertex_count(), 4);
    }

    #[test]
    fn a_ring_has_a_hole_and_two_blobs_are_two_parts() {
        let ring = mask(12, 12, |x, y| {
            (1..11).contains(&x)
                && (1..11).contains(&y)
                && !((4..8).contains(&x) && (4..8).contains(&y))
        });
        let p = mask_polygons(&ring, 0.0);
        assert_eq!(p.parts.len(), 1);
        assert_eq!(p.hole_count(), 1);
        // The hole's border runs through the foreground pixels around it.
        let hole = &p.parts[0].holes[0];
        assert!(hole
            .iter()
            .all(|v| (3.0..=8.0).contains(&v[0]) && (3.0..=8.0).contains(&v[1])));
        let blobs = mask(12, 6, |x, y| {
            (1..4).contains(&x) && (1..4).contains(&y)
                || (7..11).contains(&x) && (2..5).contains(&y)
        });
        let p = mask_polygons(&blobs, 0.0);
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.hole_count(), 0);
        // An island inside the hole is its own part.
        let island = mask(12, 12, |x, y| {
            ring.data[y * 12 + x] != 0 || (x == 5 && y == 5)
        });
        let p = mask_polygons(&island, 0.0);
        assert_eq!(p.parts.len(), 2);
        assert_eq!(p.degenerate_parts(), 1);
        assert_eq!(p.outer_rings().count(), 1);
    }

    #[test]
    fn simplification_stays_within_the_tolerance_and_cuts_vertices() {
        // A disc of radius 40: hundreds of border pixels.
        let m = mask(100, 100, |x, y| {
            let (dx, dy) = (x as f32 - 50.0, y as f32 - 50.0);
            dx * dx + dy * dy <= 40.0 * 40.0
        });
        let full = mask_polygons(&m, 0.0);
        let gray = image::GrayImage::from_raw(100, 100, m.data.clone()).expect("size");
        let border = &find_contours::<i32>(&gray)[0].points;
        for tol in [0.5f32, 1.0, 2.0, 4.0] {
            let p = mask_polygons(&m, tol);
            let ring = &p.parts[0].outer;
            assert!(ring.len() < full.vertex_count(), "{tol}: {}", ring.len());
            for b in border {
                let d = ring_distance([b.x as f32, b.y as f32], ring);
                assert!(
                    d <= tol + 1e-4,
                    "tolerance {tol}: border pixel {b:?} is {d} away"
                );
            }
            // Area close to the disc's (pixel-centre polygon of radius ~39.5).
            let area = ring_area(ring).abs();
            assert!((area - 4800.0).abs() < 250.0, "{tol}: area {area}");
        }
        assert!(mask_polygons(&m, 4.0).vertex_count() < 40);
        // Tolerance 0 drops only collinear vertices: every border pixel is on the ring.
        for b in border {
            assert!(ring_distance([b.x as f32, b.y as f32], &full.parts[0].outer) < 1e-4);
        }
    }

    #[test]
    fn empty_and_tiny_masks_give_no_or_degenerate_polygons() {
        assert_eq!(mask_polygons(&mask(5, 5, |_, _| false), 1.0).parts.len(), 0);
        let dot = mask_polygons(&mask(5, 5, |x, y| x == 2 && y == 2), 1.0);
        assert_eq!(dot.parts.len(), 1);
        assert_eq!(dot.degenerate_parts(), 1);
        let full = mask_polygons(&mask(4, 3, |_, _| true), 0.0);
        assert_eq!(full.parts[0].outer.len(), 4);
        assert_eq!(
            mask_polygons(
                &Mask {
                    width: 0,
                    height: 0,
                    data: vec![]
                },
                1.0
            ),
            Polygons::default()
        );
    }
}
