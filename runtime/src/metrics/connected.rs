//! 8-connected component labelling of binary masks (two-pass union-find), the
//! regions over which AUPRO averages its per-region overlap. anomalib labels
//! with OpenCV's `connectedComponents`, whose default connectivity is 8:
//! pixels touching only at a corner are one region.

/// Labels regions, reusing its scratch memory from one mask to the next.
#[derive(Debug, Default, Clone)]
pub struct RegionLabeller {
    /// Union-find forest over provisional labels.
    parent: Vec<u32>,
    /// Final label of each provisional root, or `u32::MAX` before it is met.
    compact: Vec<u32>,
    /// Pixel count of region `k + 1`, from the last call to `label`.
    sizes: Vec<u32>,
}

fn find(parent: &mut [u32], mut a: u32) -> u32 {
    while parent[a as usize] != a {
        // Path halving keeps the trees shallow without recursion.
        let grand = parent[parent[a as usize] as usize];
        parent[a as usize] = grand;
        a = grand;
    }
    a
}

fn union(parent: &mut [u32], a: u32, b: u32) {
    let (ra, rb) = (find(parent, a), find(parent, b));
    if ra != rb {
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        parent[hi as usize] = lo;
    }
}

impl RegionLabeller {
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes into `out` (row-major, `width * height`, like `mask`) 0 for
    /// background and 1..=n for the n 8-connected regions, numbered in raster
    /// order of their first pixel; returns n. The caller checks the lengths.
    pub fn label(&mut self, mask: &[bool], width: usize, height: usize, out: &mut [u32]) -> usize {
        debug_assert_eq!(mask.len(), width * height);
        debug_assert_eq!(out.len(), width * height);
        self.parent.clear();
        // Pass 1: provisional label + 1 into `out` (0 stays background), each
        // pixel joined with its already visited neighbours W, NW, N, NE.
        for y in 0..height {
            for x in 0..width {
                let i = y * width + x;
                if !mask[i] {
                    out[i] = 0;
                    continue;
                }
                let mut neighbours = [0u32; 4];
                let mut n = 0;
                if x > 0 && out[i - 1] != 0 {
                    neighbours[n] = out[i - 1];
                    n += 1;
                }
                if y > 0 {
                    let up = i - width;
                    if x > 0 && out[up - 1] != 0 {
                        neighbours[n] = out[up - 1];
                        n += 1;
                    }
                    if out[up] != 0 {
                        neighbours[n] = out[up];
                        n += 1;
                    }
                    if x + 1 < width && out[up + 1] != 0 {
                        neighbours[n] = out[up + 1];
                        n += 1;
                    }
                }
                if n == 0 {
                    let id = self.parent.len() as u32;
                    self.parent.push(id);
                    out[i] = id + 1;
                } else {
                    out[i] = neighbours[0];
                    for &other in &neighbours[1..n] {
                        union(&mut self.parent, neighbours[0] - 1, other - 1);
                    }
                }
            }
        }
        // Pass 2: replace provisional labels by their root's compact label.
        self.compact.clear();
        self.compact.resize(self.parent.len(), u32::MAX);
        self.sizes.clear();
        for v in out.iter_mut() {
            if *v == 0 {
                continue;
            }
            let root = find(&mut self.parent, *v - 1) as usize;
            if self.compact[root] == u32::MAX {
                self.sizes.push(0);
                self.compact[root] = self.sizes.len() as u32;
            }
            let label = self.compact[root];
            self.sizes[label as usize - 1] += 1;
            *v = label;
        }
        self.sizes.len()
    }

    /// Pixel counts of regions 1..=n from the last [`RegionLabeller::label`],
    /// region k at index k - 1.
    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let mask = rows.iter().flat_map(|r| r.chars().map(|c| c == '#')).collect();
        (mask, rows[0].len(), rows.len())
    }

    fn run(rows: &[&str]) -> (Vec<u32>, usize, Vec<u32>) {
        let (mask, w, h) = parse(rows);
        let mut out = vec![99; w * h];
        let mut l = RegionLabeller::new();
        let n = l.label(&mask, w, h, &mut out);
        (out, n, l.sizes().to_vec())
    }

    #[test]
    fn diagonal_touch_is_one_region() {
        let (_, n, sizes) = run(&["#..", ".#.", "..#"]);
        assert_eq!(n, 1);
        assert_eq!(sizes, vec![3]);
        let (_, n, _) = run(&["..#", ".#.", "#.."]);
        assert_eq!(n, 1);
    }

    #[test]
    fn separate_regions_in_raster_order() {
        let (out, n, sizes) = run(&["#.#", "...", "##."]);
        assert_eq!(n, 3);
        assert_eq!(out, vec![1, 0, 2, 0, 0, 0, 3, 3, 0]);
        assert_eq!(sizes, vec![1, 1, 2]);
    }

    #[test]
    fn u_shape_merges_late() {
        // Two arms get different provisional labels and meet at the bottom.
        let (out, n, sizes) = run(&["#...#", "#...#", "#####"]);
        assert_eq!(n, 1);
        assert_eq!(sizes, vec![9]);
        assert!(out.iter().all(|&v| v <= 1));
        // A W shape whose arms only join through a NE neighbour.
        let (_, n, _) = run(&["#.#.#", ".#.#.", "....."]);
        assert_eq!(n, 1);
    }

    #[test]
    fn empty_and_full() {
        let (out, n, _) = run(&["...", "..."]);
        assert_eq!((n, out), (0, vec![0; 6]));
        let (_, n, sizes) = run(&["###", "###"]);
        assert_eq!((n, sizes), (1, vec![6]));
    }

    #[test]
    fn scratch_is_reset_between_masks() {
        let mut l = RegionLabeller::new();
        let mut out = vec![0; 4];
        assert_eq!(l.label(&[true, false, false, true], 4, 1, &mut out), 2);
        assert_eq!(l.label(&[true, true, true, true], 4, 1, &mut out), 1);
        assert_eq!(l.sizes(), &[4]);
    }
}
