//! The complete segments of a rendition's window, shared between snapshots.
//!
//! A snapshot is taken on every playlist change (each part: five a second per stream), and a
//! DVR window holds thousands of segments. Copying every entry per snapshot made a change cost
//! grow with the window (1.4 ms at 4 hours). Here the older segments, which never change
//! again, sit in chunks of [`CHUNK`] entries behind `Arc`s, themselves behind one `Arc`: a copy
//! of the list shares them and copies only the newest entries (those still changing), so a
//! snapshot costs the same with a window of one minute or of hours.
//!
//! Which entries are settled is the owner's call ([`Segments::freeze_before`]); a change to a
//! shared entry is still correct (the chunk holding it is copied first, copy-on-write), only
//! slower.

use std::collections::VecDeque;
use std::iter::FusedIterator;
use std::sync::Arc;

use super::SegmentEntry;

/// Entries per shared chunk.
const CHUNK: usize = 32;

/// The complete segments of a window, oldest first: a list that copies in constant time
/// (see the module docs). Read it as a slice: [`Segments::len`], [`Segments::iter`],
/// indexing, [`Segments::first`], [`Segments::last`].
#[derive(Clone, Default)]
pub struct Segments {
    /// The oldest entries, in chunks of exactly [`CHUNK`]; shared between copies.
    chunks: Arc<VecDeque<Arc<Vec<SegmentEntry>>>>,
    /// Entries at the start of the first chunk that have left the list.
    skip: usize,
    /// The newest entries, after the chunks: each copy has its own.
    tail: VecDeque<SegmentEntry>,
}

impl Segments {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Entries in the chunks.
    fn shared_len(&self) -> usize {
        self.chunks.len() * CHUNK - self.skip
    }

    /// Number of segments.
    pub fn len(&self) -> usize {
        self.shared_len() + self.tail.len()
    }

    /// True when there is no segment.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`th segment (0 is the oldest).
    pub fn get(&self, i: usize) -> Option<&SegmentEntry> {
        let shared = self.shared_len();
        if i < shared {
            let g = self.skip + i;
            Some(&self.chunks[g / CHUNK][g % CHUNK])
        } else {
            self.tail.get(i - shared)
        }
    }

    /// The `i`th segment, to change (a shared chunk holding it is copied first).
    pub fn get_mut(&mut self, i: usize) -> Option<&mut SegmentEntry> {
        let shared = self.shared_len();
        if i < shared {
            let g = self.skip + i;
            let chunk = &mut Arc::make_mut(&mut self.chunks)[g / CHUNK];
            Some(&mut Arc::make_mut(chunk)[g % CHUNK])
        } else {
            self.tail.get_mut(i - shared)
        }
    }

    /// The oldest segment.
    pub fn first(&self) -> Option<&SegmentEntry> {
        self.get(0)
    }

    /// The newest segment.
    pub fn last(&self) -> Option<&SegmentEntry> {
        self.len().checked_sub(1).and_then(|i| self.get(i))
    }

    /// The segment whose MSN is `msn`. MSNs are consecutive within a window, so it is found
    /// by its offset from the first (a scan only if they were not).
    pub fn by_msn(&self, msn: u64) -> Option<&SegmentEntry> {
        let offset = msn.checked_sub(self.first()?.msn)?;
        match usize::try_from(offset).ok().and_then(|i| self.get(i)) {
            Some(s) if s.msn == msn => Some(s),
            _ => self.iter().find(|s| s.msn == msn),
        }
    }

    /// The segments, oldest first.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            list: self,
            front: 0,
            back: self.len(),
        }
    }

    /// The segments, oldest first, to change (every shared chunk is copied as it is reached:
    /// a pass over all of them costs what copying the list did before it was shared).
    pub fn iter_mut(&mut self) -> IterMut<'_> {
        let skip = self.skip;
        let chunks = Arc::make_mut(&mut self.chunks);
        let shared = chunks.iter_mut().enumerate().flat_map(move |(k, c)| {
            let from = if k == 0 { skip } else { 0 };
            Arc::make_mut(c)[from..].iter_mut()
        });
        IterMut(Box::new(shared.chain(self.tail.iter_mut())))
    }

    /// Appends the newest segment.
    pub fn push(&mut self, s: SegmentEntry) {
        self.tail.push_back(s);
    }

    /// Removes the oldest segment.
    pub fn pop_front(&mut self) -> Option<SegmentEntry> {
        if self.chunks.is_empty() {
            return self.tail.pop_front();
        }
        let oldest = self.chunks[0][self.skip].clone();
        self.skip += 1;
        if self.skip == CHUNK {
            // Once every CHUNK segments: copies the chunk pointers if a snapshot shares them.
            Arc::make_mut(&mut self.chunks).pop_front();
            self.skip = 0;
        }
        Some(oldest)
    }

    /// The segments older than `msn` will not change again: they may be shared with copies
    /// from now on (moved into chunks when a whole chunk of them is there).
    pub fn freeze_before(&mut self, msn: u64) {
        while self.tail.len() >= CHUNK && self.tail[CHUNK - 1].msn < msn {
            let chunk: Vec<SegmentEntry> = self.tail.drain(..CHUNK).collect();
            Arc::make_mut(&mut self.chunks).push_back(Arc::new(chunk));
        }
    }

    /// How many of these segments sit in storage shared with `other` (a copy of this list, or
    /// of an earlier state of it): the ones copying did not duplicate.
    pub fn shared_with(&self, other: &Segments) -> usize {
        let theirs: std::collections::HashSet<*const Vec<SegmentEntry>> =
            other.chunks.iter().map(Arc::as_ptr).collect();
        self.chunks
            .iter()
            .enumerate()
            .filter(|(_, c)| theirs.contains(&Arc::as_ptr(c)))
            .map(|(k, _)| if k == 0 { CHUNK - self.skip } else { CHUNK })
            .sum()
    }

    /// The segments as a vector (a copy).
    pub fn to_vec(&self) -> Vec<SegmentEntry> {
        self.iter().cloned().collect()
    }
}

impl std::fmt::Debug for Segments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for Segments {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::ops::Index<usize> for Segments {
    type Output = SegmentEntry;

    fn index(&self, i: usize) -> &SegmentEntry {
        match self.get(i) {
            Some(s) => s,
            None => panic!("segment {i} of {}", self.len()),
        }
    }
}

impl From<Vec<SegmentEntry>> for Segments {
    fn from(v: Vec<SegmentEntry>) -> Self {
        Segments {
            tail: v.into(),
            ..Default::default()
        }
    }
}

impl FromIterator<SegmentEntry> for Segments {
    fn from_iter<I: IntoIterator<Item = SegmentEntry>>(iter: I) -> Self {
        Segments {
            tail: iter.into_iter().collect(),
            ..Default::default()
        }
    }
}

impl<'a> IntoIterator for &'a Segments {
    type Item = &'a SegmentEntry;
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl<'a> IntoIterator for &'a mut Segments {
    type Item = &'a mut SegmentEntry;
    type IntoIter = IterMut<'a>;

    fn into_iter(self) -> IterMut<'a> {
        self.iter_mut()
    }
}

/// The segments of a [`Segments`], oldest first (skips and steps back in constant time).
#[derive(Debug, Clone)]
pub struct Iter<'a> {
    list: &'a Segments,
    front: usize,
    back: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a SegmentEntry;

    fn next(&mut self) -> Option<&'a SegmentEntry> {
        if self.front >= self.back {
            return None;
        }
        self.front += 1;
        self.list.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }

    fn nth(&mut self, n: usize) -> Option<&'a SegmentEntry> {
        self.front = self.front.saturating_add(n).min(self.back);
        self.next()
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a SegmentEntry> {
        if self.front >= self.back {
            return None;
        }
        self.back -= 1;
        self.list.get(self.back)
    }

    fn nth_back(&mut self, n: usize) -> Option<&'a SegmentEntry> {
        self.back = self.back.saturating_sub(n).max(self.front);
        self.next_back()
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl FusedIterator for Iter<'_> {}

/// The segments of a [`Segments`], oldest first, to change.
pub struct IterMut<'a>(Box<dyn DoubleEndedIterator<Item = &'a mut SegmentEntry> + 'a>);

impl std::fmt::Debug for IterMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IterMut")
    }
}

impl<'a> Iterator for IterMut<'a> {
    type Item = &'a mut SegmentEntry;

    fn next(&mut self) -> Option<&'a mut SegmentEntry> {
        self.0.next()
    }
}

impl<'a> DoubleEndedIterator for IterMut<'a> {
    fn next_back(&mut self) -> Option<&'a mut SegmentEntry> {
        self.0.next_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::WallClock;

    fn entry(msn: u64) -> SegmentEntry {
        SegmentEntry {
            msn,
            duration: 1.0,
            uri: format!("video/{msn}.m4s"),
            program_date_time: WallClock(msn as i64 * 1000),
            discontinuity: false,
            map_uri: "video/init-0.mp4".into(),
            gap: false,
            parts: Vec::new(),
            parts_listed: false,
            bytes: msn,
            independent: true,
        }
    }

    /// Pushes, freezes and pops as a window does, checking every copy against a plain vector.
    #[test]
    fn copies_share_the_frozen_chunks_and_read_as_a_vector() {
        let mut list = Segments::new();
        let mut model: VecDeque<SegmentEntry> = VecDeque::new();
        let mut copies = Vec::new();
        for msn in 0..500u64 {
            list.push(entry(msn));
            model.push_back(entry(msn));
            // The newest 12 still change; a window of about 200.
            list.freeze_before(msn.saturating_sub(12));
            if model.len() > 200 {
                assert_eq!(list.pop_front(), model.pop_front());
            }
            if msn % 7 == 0 {
                copies.push((list.clone(), model.iter().cloned().collect::<Vec<_>>()));
            }
        }
        assert!(list.chunks.len() >= 5, "{} chunks", list.chunks.len());
        let copy = list.clone();
        assert!(
            Arc::ptr_eq(&copy.chunks, &list.chunks),
            "a copy shares the chunks"
        );
        for (copy, model) in &copies {
            assert_eq!(copy.len(), model.len());
            assert_eq!(&copy.to_vec(), model);
            let back: Vec<&SegmentEntry> = copy.iter().rev().collect();
            assert!(back.iter().rev().copied().eq(model.iter()));
            for (i, s) in model.iter().enumerate() {
                assert_eq!(copy.get(i), Some(s));
                assert_eq!(copy.by_msn(s.msn), Some(s));
                assert_eq!(copy.iter().nth(i), Some(s));
                assert_eq!(copy.iter().skip(i).len(), model.len() - i);
            }
            assert_eq!(copy.get(model.len()), None);
            assert_eq!(copy.first(), model.first());
            assert_eq!(copy.last(), model.last());
        }
    }

    #[test]
    fn a_change_to_a_shared_entry_copies_it_for_that_list_only() {
        let mut list: Segments = (0..100).map(entry).collect();
        list.freeze_before(90);
        let before = list.clone();
        list.get_mut(3).unwrap().gap = true;
        for s in &mut list {
            s.uri.insert_str(0, "x/");
        }
        assert!(!before[3].gap && list[3].gap);
        assert_eq!(before[50].uri, "video/50.m4s");
        assert_eq!(list[50].uri, "x/video/50.m4s");
        assert_eq!(list[99].uri, "x/video/99.m4s");
        assert_eq!(list.len(), before.len());
        assert_ne!(list, before);
    }
}
