//! A growing segment as a rope of `Bytes`: the parts appended so far, shared by reference.
//!
//! Readers clone an `Arc` (no payload, no `Vec` copy) and slice byte ranges into lists of
//! `Bytes::slice`s that point into the stored parts; the stream task appends in place when no
//! reader holds the rope, and otherwise copies the list of handles (never the payload).

use std::sync::Arc;

use bytes::Bytes;

/// Parts of a segment in order, cheap to clone and to slice.
#[derive(Debug, Clone, Default)]
pub struct Rope(Arc<Chunks>);

#[derive(Debug, Clone, Default)]
struct Chunks {
    parts: Vec<Bytes>,
    /// `ends[i]`: the offset just past `parts[i]` (so `ends` is non-decreasing).
    ends: Vec<u64>,
}

impl Rope {
    /// Bytes available so far.
    pub fn len(&self) -> u64 {
        self.0.ends.last().copied().unwrap_or(0)
    }

    /// True when no byte is available.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The parts appended so far, in order.
    pub fn parts(&self) -> &[Bytes] {
        &self.0.parts
    }

    /// Appends a part. Copies the list of handles only when a reader holds this rope.
    pub fn push(&mut self, part: Bytes) {
        if part.is_empty() {
            return;
        }
        let end = self.len() + part.len() as u64;
        let chunks = Arc::make_mut(&mut self.0);
        chunks.parts.push(part);
        chunks.ends.push(end);
    }

    /// Bytes `[start, end)` of what is available (clamped to it), as slices of the stored
    /// parts in order: no payload is copied. Empty when the range is empty or starts at or
    /// beyond the end.
    pub fn slice(&self, start: u64, end: u64) -> Vec<Bytes> {
        let end = end.min(self.len());
        if start >= end {
            return Vec::new();
        }
        let Chunks { parts, ends } = &*self.0;
        // The first part that ends after `start`.
        let first = ends.partition_point(|&e| e <= start);
        let mut out = Vec::new();
        for (part, &part_end) in parts.iter().zip(ends).skip(first) {
            let part_start = part_end - part.len() as u64;
            if part_start >= end {
                break;
            }
            let (s, e) = (start.max(part_start), end.min(part_end));
            // Both offsets lie within this part: `part_start <= s < e <= part_end`.
            out.push(part.slice((s - part_start) as usize..(e - part_start) as usize));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rope(parts: &[&'static [u8]]) -> Rope {
        let mut r = Rope::default();
        for p in parts {
            r.push(Bytes::from_static(p));
        }
        r
    }

    fn flat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn slices_within_and_across_parts() {
        let r = rope(&[b"abc", b"defg", b"hi"]);
        assert_eq!(r.len(), 9);
        assert_eq!(flat(&r.slice(0, 9)), b"abcdefghi");
        assert_eq!(r.slice(0, 9).len(), 3, "one slice per part");
        assert_eq!(flat(&r.slice(1, 2)), b"b");
        assert_eq!(
            r.slice(3, 7),
            vec![Bytes::from_static(b"defg")],
            "exactly one part"
        );
        assert_eq!(flat(&r.slice(2, 8)), b"cdefgh");
        assert_eq!(r.slice(2, 8).len(), 3);
        assert_eq!(flat(&r.slice(7, 9)), b"hi");
    }

    #[test]
    fn empty_end_and_beyond() {
        let r = rope(&[b"abc", b"defg"]);
        assert!(r.slice(2, 2).is_empty(), "empty range");
        assert!(r.slice(5, 1).is_empty(), "reversed range");
        assert!(r.slice(7, 9).is_empty(), "starts at the end");
        assert!(r.slice(100, 200).is_empty(), "beyond the end");
        assert_eq!(flat(&r.slice(5, u64::MAX)), b"fg", "clamped to what exists");
        let empty = Rope::default();
        assert!(empty.is_empty());
        assert!(empty.slice(0, 10).is_empty());
    }

    #[test]
    fn slices_point_into_the_parts() {
        let part = Bytes::from(vec![7u8; 1000]);
        let mut r = Rope::default();
        r.push(Bytes::from_static(b"head"));
        r.push(part.clone());
        let s = r.slice(10, 500);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].as_ptr(), part[6..].as_ptr(), "a reference, not a copy");
    }

    #[test]
    fn a_held_rope_does_not_see_later_parts() {
        let mut r = rope(&[b"abc"]);
        let held = r.clone();
        r.push(Bytes::from_static(b"de"));
        r.push(Bytes::new());
        assert_eq!((held.len(), r.len()), (3, 5));
        assert_eq!(held.parts().len(), 1);
        assert_eq!(flat(&r.slice(0, 5)), b"abcde");
    }
}
