//! The geometry and bookkeeping of SAM's automatic mask generator, as the official
//! `segment_anything/utils/amg.py` (1.0) computes it: point grids, crop boxes, mask boxes,
//! box NMS (torchvision's), stability scores, COCO run-length encoding and the removal of
//! small holes and islands. No tensors: masks are `u8` planes, row-major.

use crate::types::everything::Rle;

/// The official `build_point_grid(n)`: `n × n` points in `[0, 1]²` at the centres of an
/// `n × n` tiling, rows (y) outer, columns (x) inner, as `[x, y]`.
pub fn point_grid(n: usize) -> Vec<[f64; 2]> {
    let offset = 1.0 / (2 * n) as f64;
    let side = linspace(offset, 1.0 - offset, n);
    side.iter()
        .flat_map(|&y| side.iter().map(move |&x| [x, y]))
        .collect()
}

/// `numpy.linspace(start, stop, n)` (the last value exactly `stop`).
fn linspace(start: f64, stop: f64, n: usize) -> Vec<f64> {
    match n {
        0 => Vec::new(),
        1 => vec![start],
        _ => {
            let step = (stop - start) / (n - 1) as f64;
            (0..n)
                .map(|i| {
                    if i == n - 1 {
                        stop
                    } else {
                        start + i as f64 * step
                    }
                })
                .collect()
        }
    }
}

/// The official `build_all_layer_point_grids`: the points per side of crop layer `i` are
/// `int(n / factor^i)`.
pub fn layer_point_grids(n: usize, n_layers: usize, factor: usize) -> Vec<Vec<[f64; 2]>> {
    (0..=n_layers)
        .map(|i| point_grid((n as f64 / (factor as f64).powi(i as i32)) as usize))
        .collect()
}

/// A crop box `[x0, y0, x1, y1]` in image pixels and its layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    /// `[x0, y0, x1, y1]`, exclusive ends.
    pub xyxy: [usize; 4],
    /// 0 for the whole image.
    pub layer: usize,
}

/// The official `generate_crop_boxes`: the whole image, then for each layer `i` a
/// `2^(i+1) × 2^(i+1)` grid of overlapping crops (x outer, y inner).
pub fn crop_boxes((h, w): (usize, usize), n_layers: usize, overlap_ratio: f32) -> Vec<CropBox> {
    let mut boxes = vec![CropBox {
        xyxy: [0, 0, w, h],
        layer: 0,
    }];
    let short = h.min(w) as f64;
    let crop_len = |orig: usize, n: usize, overlap: usize| -> usize {
        ((overlap * (n - 1) + orig) as f64 / n as f64).ceil() as usize
    };
    for layer in 0..n_layers {
        let n = 1usize << (layer + 1);
        let overlap = (f64::from(overlap_ratio) * short * (2.0 / n as f64)) as usize;
        let (cw, ch) = (crop_len(w, n, overlap), crop_len(h, n, overlap));
        let x0s: Vec<usize> = (0..n).map(|i| (cw - overlap) * i).collect();
        let y0s: Vec<usize> = (0..n).map(|i| (ch - overlap) * i).collect();
        for &x0 in &x0s {
            for &y0 in &y0s {
                boxes.push(CropBox {
                    xyxy: [x0, y0, (x0 + cw).min(w), (y0 + ch).min(h)],
                    layer: layer + 1,
                });
            }
        }
    }
    boxes
}

/// The official `batched_mask_to_box` for one `h × w` mask: `[x0, y0, x1, y1]` with inclusive
/// ends, `[0, 0, 0, 0]` for an empty mask.
pub fn mask_to_box(mask: &[u8], (h, w): (usize, usize)) -> [u32; 4] {
    let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
    for (y, row) in mask.chunks_exact(w.max(1)).take(h).enumerate() {
        let Some(first) = row.iter().position(|&v| v != 0) else {
            continue;
        };
        let last = row.iter().rposition(|&v| v != 0).unwrap_or(first);
        y0 = y0.min(y);
        y1 = y;
        x0 = x0.min(first);
        x1 = x1.max(last);
    }
    if y0 == usize::MAX {
        return [0; 4];
    }
    [x0 as u32, y0 as u32, x1 as u32, y1 as u32]
}

/// The official `calculate_stability_score` from the three pixel counts of one mask's logits:
/// above `threshold + offset` (`high`) over above `threshold − offset` (`low`). `NaN` when
/// `low` is 0, as in PyTorch.
pub fn stability_score(high: u64, low: u64) -> f32 {
    high as f32 / low as f32
}

/// torchvision's `box_iou` of two `[x0, y0, x1, y1]` boxes, in f32 as torchvision's CPU NMS
/// computes it.
pub fn box_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    inter / (area(a) + area(b) - inter)
}

/// torchvision's `nms` (what `batched_nms` does with one class): visits boxes by score,
/// highest first (ties keep their order), and drops each box whose IoU with a kept box is
/// above `thresh`. Returns the kept indices, highest score first.
pub fn nms(boxes: &[[f32; 4]], scores: &[f32], thresh: f32) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let mut suppressed = vec![false; boxes.len()];
    let mut keep = Vec::new();
    for (pos, &i) in order.iter().enumerate() {
        if suppressed[i] {
            continue;
        }
        keep.push(i);
        for &j in &order[pos + 1..] {
            if !suppressed[j] && box_iou(&boxes[i], &boxes[j]) > thresh {
                suppressed[j] = true;
            }
        }
    }
    keep
}

/// The official `is_box_near_crop_edge` (atol 20): a box (in crop pixels) that touches an edge
/// of its crop that is not an edge of the image.
pub fn is_box_near_crop_edge(bbox: &[u32; 4], crop: &[usize; 4], image_hw: (usize, usize)) -> bool {
    let orig = [0.0, 0.0, image_hw.1 as f32, image_hw.0 as f32];
    let shift = [crop[0], crop[1], crop[0], crop[1]];
    (0..4).any(|i| {
        let v = (bbox[i] as usize + shift[i]) as f32;
        let near_crop = (v - crop[i] as f32).abs() <= 20.0;
        let near_image = (v - orig[i]).abs() <= 20.0;
        near_crop && !near_image
    })
}

/// The run-length encoding of a row-major `h × w` mask, as COCO orders it (column-major).
pub fn mask_to_rle(mask: &[u8], (h, w): (usize, usize)) -> Rle {
    crop_mask_to_rle(mask, &[0, 0, w, h], (h, w))
}

/// The row-major `h × w` mask of a run-length encoding.
pub fn rle_to_mask(rle: &Rle) -> Vec<u8> {
    let [h, w] = rle.size;
    let mut mask = vec![0u8; h * w];
    let mut pos = 0usize;
    for (i, &run) in rle.counts.iter().enumerate() {
        if i % 2 == 1 {
            for p in pos..(pos + run as usize).min(h * w) {
                mask[(p % h) * w + p / h] = 1;
            }
        }
        pos += run as usize;
    }
    mask
}

/// Pixels inside (the sum of the runs of 1s: the official `area_from_rle`).
pub fn rle_area(rle: &Rle) -> u64 {
    rle.counts
        .iter()
        .skip(1)
        .step_by(2)
        .map(|&c| u64::from(c))
        .sum()
}

/// The COCO compressed string of a run-length encoding (pycocotools' `rleToString`: each run
/// as the difference to the run two before from the third run on, in 5-bit groups offset
/// by 48).
pub fn rle_to_coco_string(rle: &Rle) -> String {
    let mut s = String::new();
    for (i, &c) in rle.counts.iter().enumerate() {
        let mut x = i64::from(c);
        if i > 2 {
            x -= i64::from(rle.counts[i - 2]);
        }
        loop {
            let mut c = (x & 0x1f) as u8;
            x >>= 5;
            let more = if c & 0x10 != 0 { x != -1 } else { x != 0 };
            if more {
                c |= 0x20;
            }
            s.push(char::from(c + 48));
            if !more {
                break;
            }
        }
    }
    s
}

/// Parses a COCO compressed string (pycocotools' `rleFrString`) of an `h × w` mask.
pub fn rle_from_coco_string(s: &str, size: [usize; 2]) -> Result<Rle, String> {
    let bytes = s.as_bytes();
    let mut counts: Vec<u32> = Vec::new();
    let mut p = 0usize;
    while p < bytes.len() {
        let (mut x, mut k) = (0i64, 0u32);
        loop {
            let c = i64::from(bytes[p]) - 48;
            if !(0..64).contains(&c) || k > 50 {
                return Err(format!("invalid COCO RLE byte at {p}"));
            }
            x |= (c & 0x1f) << (5 * k);
            let more = c & 0x20 != 0;
            p += 1;
            k += 1;
            if !more && c & 0x10 != 0 {
                x |= -1i64 << (5 * k);
            }
            if !more {
                break;
            }
            if p >= bytes.len() {
                return Err("truncated COCO RLE string".into());
            }
        }
        let m = counts.len();
        if m > 2 {
            x += i64::from(counts[m - 2]);
        }
        counts.push(u32::try_from(x).map_err(|_| format!("negative run in COCO RLE at {p}"))?);
    }
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total != (size[0] * size[1]) as u64 {
        return Err(format!(
            "COCO RLE covers {total} pixels, the mask has {}",
            size[0] * size[1]
        ));
    }
    Ok(Rle { size, counts })
}

/// Which small regions [`remove_small_regions`] removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionMode {
    /// Holes (background components) smaller than the area are filled.
    Holes,
    /// Islands (foreground components) smaller than the area are removed; if every island is
    /// small, the largest is kept.
    Islands,
}

/// The official `remove_small_regions` (OpenCV's 8-connected components): returns the new
/// mask and whether anything changed.
pub fn remove_small_regions(
    mask: &[u8],
    (h, w): (usize, usize),
    min_area: usize,
    mode: RegionMode,
) -> (Vec<u8>, bool) {
    let holes = mode == RegionMode::Holes;
    // The components of the working mask (background for holes), labels 1.. in raster order
    // of their first pixel, as OpenCV numbers them.
    let working: Vec<bool> = mask.iter().map(|&v| (v != 0) != holes).collect();
    let (labels, sizes) = label_components(&working, (h, w));
    let small: Vec<bool> = sizes.iter().map(|&s| s < min_area).collect();
    if !small.contains(&true) {
        return (mask.to_vec(), false);
    }
    // Labels whose pixels end up inside the mask (label 0: outside the working mask).
    let mut fill = vec![false; sizes.len() + 1];
    if holes {
        fill[0] = true;
        for (i, &s) in small.iter().enumerate() {
            fill[i + 1] = s;
        }
    } else {
        for (i, &s) in small.iter().enumerate() {
            fill[i + 1] = !s;
        }
        if !fill.contains(&true) {
            // np.argmax: the first of the largest.
            let mut best = 0;
            for (i, &s) in sizes.iter().enumerate() {
                if s > sizes[best] {
                    best = i;
                }
            }
            fill[best + 1] = true;
        }
    }
    (labels.iter().map(|&l| u8::from(fill[l])).collect(), true)
}

/// 8-connected components of `on`: a label per pixel (0 off, 1.. in raster order of each
/// component's first pixel) and each component's size.
pub fn label_components(on: &[bool], (h, w): (usize, usize)) -> (Vec<usize>, Vec<usize>) {
    let mut labels = vec![0usize; h * w];
    let mut sizes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..h * w {
        if !on[start] || labels[start] != 0 {
            continue;
        }
        sizes.push(0);
        let label = sizes.len();
        labels[start] = label;
        stack.push(start);
        while let Some(p) = stack.pop() {
            sizes[label - 1] += 1;
            let (y, x) = (p / w, p % w);
            for dy in -1i64..=1 {
                for dx in -1i64..=1 {
                    let (ny, nx) = (y as i64 + dy, x as i64 + dx);
                    if ny < 0 || nx < 0 || ny >= h as i64 || nx >= w as i64 {
                        continue;
                    }
                    let q = ny as usize * w + nx as usize;
                    if on[q] && labels[q] == 0 {
                        labels[q] = label;
                        stack.push(q);
                    }
                }
            }
        }
    }
    (labels, sizes)
}

/// SAM 2's low-res clean-up (`SAM2Transforms.postprocess_masks` with `max_hole_area` and
/// `max_sprinkle_area` both `max_area`, as `SAM2AutomaticMaskGenerator` sets them from
/// `min_mask_region_area`), in place on one `hw` logit map: every 8-connected component of at
/// most `max_area` pixels at or below `threshold` (a hole) becomes `threshold + 10`, every one
/// above it (a sprinkle) `threshold − 10`. Both sets of components are those of the map as
/// given, so the two steps do not interact.
pub fn sam2_fill_holes_and_sprinkles(
    logits: &mut [f32],
    hw: (usize, usize),
    threshold: f32,
    max_area: usize,
) {
    let above: Vec<bool> = logits.iter().map(|&v| v > threshold).collect();
    let below: Vec<bool> = above.iter().map(|&a| !a).collect();
    let (hole_labels, hole_sizes) = label_components(&below, hw);
    let (sprinkle_labels, sprinkle_sizes) = label_components(&above, hw);
    for (i, v) in logits.iter_mut().enumerate() {
        let (h, s) = (hole_labels[i], sprinkle_labels[i]);
        if h > 0 && hole_sizes[h - 1] <= max_area {
            *v = threshold + 10.0;
        } else if s > 0 && sprinkle_sizes[s - 1] <= max_area {
            *v = threshold - 10.0;
        }
    }
}

/// The run-length encoding over the whole `image_hw` image of a mask computed inside the crop
/// `crop` (`[x0, y0, x1, y1]`, row-major `crop_h × crop_w`): the official `uncrop_masks`
/// (zero padding) followed by `mask_to_rle_pytorch`.
pub fn crop_mask_to_rle(mask: &[u8], crop: &[usize; 4], image_hw: (usize, usize)) -> Rle {
    let (h, w) = image_hw;
    let [x0, y0, x1, y1] = *crop;
    let cw = x1 - x0;
    let mut counts = Vec::new();
    let (mut current, mut run) = (false, 0u32);
    let mut push = |v: bool, n: u32, counts: &mut Vec<u32>| {
        if n == 0 {
            return;
        }
        if v != current {
            counts.push(run);
            current = v;
            run = 0;
        }
        run += n;
    };
    for x in 0..w {
        if x < x0 || x >= x1 {
            push(false, h as u32, &mut counts);
            continue;
        }
        push(false, y0 as u32, &mut counts);
        for y in y0..y1 {
            push(mask[(y - y0) * cw + (x - x0)] != 0, 1, &mut counts);
        }
        push(false, (h - y1) as u32, &mut counts);
    }
    counts.push(run);
    Rle {
        size: [h, w],
        counts,
    }
}

/// A record as the official generator returns it with `output_mode="coco_rle"` (what its
/// users write with `json.dump`).
pub fn record_json(r: &crate::types::MaskRecord) -> serde_json::Value {
    serde_json::json!({
        "segmentation": {
            "size": r.segmentation.size,
            "counts": rle_to_coco_string(&r.segmentation),
        },
        "area": r.area,
        "bbox": r.bbox,
        "predicted_iou": r.predicted_iou,
        "point_coords": [r.point_coords],
        "stability_score": r.stability_score,
        "crop_box": r.crop_box,
    })
}

/// `[x0, y0, x1, y1]` → `[x, y, w, h]`.
pub fn xyxy_to_xywh(b: [u32; 4]) -> [u32; 4] {
    [b[0], b[1], b[2] - b[0], b[3] - b[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_matches_the_official_layout() {
        let g = point_grid(2);
        assert_eq!(
            g,
            vec![[0.25, 0.25], [0.75, 0.25], [0.25, 0.75], [0.75, 0.75]]
        );
        assert_eq!(point_grid(32).len(), 1024);
        let layers = layer_point_grids(32, 2, 2);
        assert_eq!(
            layers.iter().map(Vec::len).collect::<Vec<_>>(),
            [1024, 256, 64]
        );
    }

    /// The crop boxes of a 300 × 451 image with one layer, as the official code gives them.
    #[test]
    fn crop_boxes_match_the_official_ones() {
        let b = crop_boxes((300, 451), 1, 512.0 / 1500.0);
        let xyxy: Vec<[usize; 4]> = b.iter().map(|c| c.xyxy).collect();
        // overlap = int(0.3413 * 300 * 1) = 102; crop_w = ceil((102 + 451) / 2) = 277,
        // crop_h = ceil((102 + 300) / 2) = 201.
        assert_eq!(
            xyxy,
            vec![
                [0, 0, 451, 300],
                [0, 0, 277, 201],
                [0, 99, 277, 300],
                [175, 0, 451, 201],
                [175, 99, 451, 300],
            ]
        );
        assert_eq!(b[1].layer, 1);
    }

    #[test]
    fn boxes_are_inclusive_and_empty_is_zero() {
        let mut m = vec![0u8; 5 * 4];
        assert_eq!(mask_to_box(&m, (5, 4)), [0; 4]);
        m[4 + 1] = 1;
        assert_eq!(mask_to_box(&m, (5, 4)), [1, 1, 1, 1]);
        m[3 * 4 + 3] = 1;
        assert_eq!(mask_to_box(&m, (5, 4)), [1, 1, 3, 3]);
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 10.0, 10.0],
            [20.0, 20.0, 30.0, 30.0],
        ];
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.1], 0.7), vec![1, 2]);
        assert_eq!(nms(&boxes, &[0.5, 0.9, 0.1], 0.9), vec![1, 0, 2]);
        // Ties keep their order.
        assert_eq!(nms(&boxes, &[1.0, 1.0, 1.0], 0.7), vec![0, 2]);
    }

    #[test]
    fn rle_round_trips_through_the_coco_string() {
        let (h, w) = (7, 9);
        let mask: Vec<u8> = (0..h * w).map(|i| u8::from((i * 37) % 11 < 4)).collect();
        let rle = mask_to_rle(&mask, (h, w));
        assert_eq!(rle.counts.iter().sum::<u32>() as usize, h * w);
        assert_eq!(rle_to_mask(&rle), mask);
        assert_eq!(
            rle_area(&rle),
            mask.iter().filter(|&&v| v != 0).count() as u64
        );
        let s = rle_to_coco_string(&rle);
        assert_eq!(rle_from_coco_string(&s, [h, w]).expect("parse"), rle);
        // A mask that starts inside begins with a 0-length run.
        let full = vec![1u8; 6];
        assert_eq!(mask_to_rle(&full, (2, 3)).counts, vec![0, 6]);
        // pycocotools: a 2 × 3 mask with only pixel (row 1, col 0) set is "11;" (runs 1,1,4).
        let mut one = vec![0u8; 6];
        one[3] = 1;
        let rle = mask_to_rle(&one, (2, 3));
        assert_eq!(rle.counts, vec![1, 1, 4]);
        assert_eq!(rle_to_coco_string(&rle), "114");
        assert!(rle_from_coco_string("11", [2, 3]).is_err());
    }

    #[test]
    fn a_crop_mask_encodes_as_its_padded_mask() {
        let (h, w) = (6, 7);
        let crop = [2, 1, 6, 5];
        let cm: Vec<u8> = (0..16).map(|i| u8::from(i % 3 == 0)).collect();
        let mut full = vec![0u8; h * w];
        for y in 0..4 {
            for x in 0..4 {
                full[(y + 1) * w + x + 2] = cm[y * 4 + x];
            }
        }
        assert_eq!(
            crop_mask_to_rle(&cm, &crop, (h, w)),
            mask_to_rle(&full, (h, w))
        );
        let whole = [0, 0, w, h];
        assert_eq!(
            crop_mask_to_rle(&full, &whole, (h, w)),
            mask_to_rle(&full, (h, w))
        );
    }

    #[test]
    fn small_holes_are_filled_and_small_islands_removed() {
        // 7 × 7: a 3 × 3 square (rows and columns 1..4) with a one-pixel hole at its centre.
        let (h, w) = (7, 7);
        let mut m = vec![0u8; h * w];
        for y in 1..4 {
            for x in 1..4 {
                m[y * w + x] = 1;
            }
        }
        m[2 * w + 2] = 0;
        m[4 * w + 4] = 1; // touches the square diagonally: the same 8-connected island
        let (filled, changed) = remove_small_regions(&m, (h, w), 2, RegionMode::Holes);
        assert!(changed);
        assert_eq!(filled[2 * w + 2], 1);
        let (same, changed) = remove_small_regions(&filled, (h, w), 2, RegionMode::Islands);
        assert!(!changed);
        assert_eq!(same, filled);
        let mut m2 = filled.clone();
        m2[6 * w + 6] = 1; // a separate one-pixel island
        let (clean, changed) = remove_small_regions(&m2, (h, w), 2, RegionMode::Islands);
        assert!(changed);
        assert_eq!(clean[6 * w + 6], 0);
        assert_eq!(clean, filled);
        // Every island small: the largest stays.
        let (kept, _) = remove_small_regions(&m2, (h, w), 100, RegionMode::Islands);
        assert_eq!(kept, filled);
    }

    #[test]
    fn crop_edges_count_only_inside_the_image() {
        let crop = [0, 0, 277, 201];
        // Touches the crop's right edge (inside the image): near.
        assert!(is_box_near_crop_edge(
            &[10, 10, 270, 100],
            &crop,
            (300, 451)
        ));
        // Touches only the image's top-left edges: not near.
        assert!(!is_box_near_crop_edge(&[0, 0, 100, 100], &crop, (300, 451)));
        // The whole image as the crop: never near.
        assert!(!is_box_near_crop_edge(
            &[0, 0, 450, 299],
            &[0, 0, 451, 300],
            (300, 451)
        ));
    }
}
