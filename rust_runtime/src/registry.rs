//! The live-handle registry: one record per handle, cheap enough for the hot path.
//!
//! Creating a handle takes a free slot (or pushes one) and writes a small
//! record; ending it (drop, move, collection) copies the record into a bounded
//! history ring and frees the slot. Nothing here allocates per operation once
//! the slot table and ring have grown.
//!
//! Observers do not get a callback per operation: a `version` counter changes
//! on every event, and the Python side polls it with the running totals,
//! handing listeners coalesced batches (a loop creating 100 000 handles costs
//! them one batch, and the loop nothing more than the counter).
//!
//! The registry is not synchronised: the runtime touches it only with the
//! interpreter lock held.

use crate::dtype::Scalar;
use std::collections::VecDeque;

pub const KIND_BOX: u8 = 0;
pub const KIND_RC: u8 = 1;
pub const KIND_ARC: u8 = 2;
pub const KIND_VEC: u8 = 3;

pub const STATE_ALIVE: u8 = 0;
pub const STATE_DROPPED: u8 = 1;
pub const STATE_MOVED: u8 = 2;
pub const STATE_COLLECTED: u8 = 3;

/// A handle's `borrow` byte while a running cell call holds it exclusively (`&mut`, or
/// reserved for a move); 0 means free, anything else counts shared (`&`) borrows.
pub const BORROW_EXCLUSIVE: u8 = 255;

/// Whether Python may read (copy values out of) a handle whose `borrow` byte is `borrow`:
/// not while a call holds it exclusively, as Rust allows no other access next to a `&mut`.
#[inline(always)]
pub fn may_read(borrow: u8) -> bool {
    borrow != BORROW_EXCLUSIVE
}

/// Whether Python may change a handle whose `borrow` byte is `borrow` (drop, move, reallocate,
/// write, or export a buffer view): only while no running call borrows it at all.
#[inline(always)]
pub fn may_change(borrow: u8) -> bool {
    borrow == 0
}

/// How a lent handle is held, for messages.
pub fn lent_as(borrow: u8) -> &'static str {
    if borrow == BORROW_EXCLUSIVE {
        "mutably borrowed or about to be moved"
    } else {
        "borrowed"
    }
}

/// Kind names, indexed by `KIND_*`.
pub const KIND_NAMES: [&str; 4] = ["Box", "Rc", "Arc", "Vec"];
/// State names, indexed by `STATE_*`.
pub const STATE_NAMES: [&str; 4] = ["alive", "dropped", "moved", "collected"];

/// One handle's record.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Record {
    pub id: u64,
    pub kind: u8,
    pub dtype: u8,
    pub state: u8,
    /// The handle object while alive (not owned); 0 once ended.
    pub obj: usize,
    /// Opaque owned token saying where the handle was created (0: unknown).
    pub origin: usize,
    /// Where in `origin`'s code (see `handle::capture_origin`).
    pub pos: u32,
    /// For ended records: the last value (Box/Rc/Arc), length (Vec) and strong count left.
    pub last: Option<Scalar>,
    pub last_len: usize,
    pub strong_left: usize,
}

/// The registry (see the module docs).
pub struct Registry {
    slots: Vec<Record>,
    free: Vec<u32>,
    alive: usize,
    next_id: u64,
    version: u64,
    ended: VecDeque<Record>,
    history: usize,
    created_total: u64,
    ended_total: u64,
    /// Handles that ended in each state since the start, indexed by `STATE_*` (alive unused).
    ended_by_state: [u64; 4],
}

const EMPTY: Record = Record {
    id: 0,
    kind: 0,
    dtype: 0,
    state: STATE_DROPPED,
    obj: 0,
    origin: 0,
    pos: 0,
    last: None,
    last_len: 0,
    strong_left: 0,
};

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

impl Registry {
    /// An empty registry keeping the last 100 ended records.
    pub const fn new() -> Registry {
        Registry {
            slots: Vec::new(),
            free: Vec::new(),
            alive: 0,
            next_id: 1,
            version: 0,
            ended: VecDeque::new(),
            history: 100,
            created_total: 0,
            ended_total: 0,
            ended_by_state: [0; 4],
        }
    }

    #[inline(always)]
    fn event(&mut self) {
        self.version = self.version.wrapping_add(1);
    }

    /// Records a new alive handle; returns its slot and id.
    #[inline]
    pub fn register(&mut self, kind: u8, dtype: u8, obj: usize, origin: usize, pos: u32) -> (u32, u64) {
        let id = self.next_id;
        self.next_id += 1;
        let rec = Record { id, kind, dtype, state: STATE_ALIVE, obj, origin, pos, ..EMPTY };
        let slot = match self.free.pop() {
            Some(s) => {
                self.slots[s as usize] = rec;
                s
            }
            None => {
                self.slots.push(rec);
                (self.slots.len() - 1) as u32
            }
        };
        self.alive += 1;
        self.created_total += 1;
        self.event();
        (slot, id)
    }

    /// Ends the alive handle in `slot` with `state`; returns the origin token of a
    /// history record that fell out of the ring (the caller releases it).
    #[inline]
    pub fn end(&mut self, slot: u32, state: u8, last: Option<Scalar>, last_len: usize, strong_left: usize) -> usize {
        let rec = &mut self.slots[slot as usize];
        debug_assert_eq!(rec.state, STATE_ALIVE);
        rec.state = state;
        rec.obj = 0;
        rec.last = last;
        rec.last_len = last_len;
        rec.strong_left = strong_left;
        let rec = *rec;
        self.slots[slot as usize] = EMPTY;
        self.free.push(slot);
        self.alive -= 1;
        self.ended_total += 1;
        self.ended_by_state[state as usize & 3] += 1;
        self.event();
        if self.history == 0 {
            return rec.origin;
        }
        let mut evicted = 0;
        if self.ended.len() >= self.history {
            if let Some(old) = self.ended.pop_front() {
                evicted = old.origin;
            }
        }
        self.ended.push_back(rec);
        evicted
    }

    /// Alive records (slot order).
    pub fn alive(&self) -> impl Iterator<Item = &Record> {
        self.slots.iter().filter(|r| r.state == STATE_ALIVE)
    }

    /// Recently ended records, oldest first.
    pub fn ended(&self) -> impl Iterator<Item = &Record> {
        self.ended.iter()
    }

    /// How many handles are alive.
    pub fn alive_count(&self) -> usize {
        self.alive
    }

    /// (handles created, handles ended) since the start.
    pub fn totals(&self) -> (u64, u64) {
        (self.created_total, self.ended_total)
    }

    /// Handles that ended dropped, moved and collected since the start (history or not).
    pub fn ended_by_state(&self) -> (u64, u64, u64) {
        let e = &self.ended_by_state;
        (e[STATE_DROPPED as usize], e[STATE_MOVED as usize], e[STATE_COLLECTED as usize])
    }

    /// Changes on every event.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Keeps at most `n` ended records; returns origin tokens of records removed.
    pub fn set_history(&mut self, n: usize) -> Vec<usize> {
        self.history = n;
        let mut out = Vec::new();
        while self.ended.len() > n {
            if let Some(r) = self.ended.pop_front() {
                out.push(r.origin);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_ids_are_not() {
        let mut r = Registry::new();
        let (s1, id1) = r.register(KIND_BOX, 2, 0x10, 0, 0);
        let (s2, id2) = r.register(KIND_VEC, 9, 0x20, 0, 0);
        assert_ne!(s1, s2);
        assert_eq!(r.alive_count(), 2);
        r.end(s1, STATE_DROPPED, Some(Scalar::I(42)), 0, 0);
        assert_eq!(r.alive_count(), 1);
        let (s3, id3) = r.register(KIND_RC, 9, 0x30, 0, 0);
        assert_eq!(s3, s1, "freed slot is reused");
        assert!(id3 > id2 && id2 > id1);
        let alive: Vec<u64> = r.alive().map(|x| x.id).collect();
        assert_eq!(alive, vec![id3, id2]);
        let ended: Vec<(u64, u8, Option<Scalar>)> = r.ended().map(|x| (x.id, x.state, x.last)).collect();
        assert_eq!(ended, vec![(id1, STATE_DROPPED, Some(Scalar::I(42)))]);
        assert_eq!(r.totals(), (3, 1));
        assert_eq!(r.ended_by_state(), (1, 0, 0));
    }

    #[test]
    fn history_is_bounded_and_returns_evicted_origins() {
        let mut r = Registry::new();
        r.set_history(2);
        let mut evicted = Vec::new();
        for origin in 1..=5usize {
            let (s, _) = r.register(KIND_BOX, 0, 1, origin, 7);
            let e = r.end(s, STATE_COLLECTED, None, 0, 0);
            if e != 0 {
                evicted.push(e);
            }
        }
        assert_eq!(evicted, vec![1, 2, 3]);
        let kept: Vec<usize> = r.ended().map(|x| x.origin).collect();
        assert_eq!(kept, vec![4, 5]);
        assert_eq!(r.ended_by_state(), (0, 0, 5), "state counts are not bounded by the history");
        assert_eq!(r.set_history(0), vec![4, 5]);
        let (s, _) = r.register(KIND_BOX, 0, 1, 6, 7);
        assert_eq!(r.end(s, STATE_MOVED, None, 0, 0), 6, "no history: origin comes straight back");
        assert_eq!(r.alive_count(), 0);
    }

    #[test]
    fn version_moves_on_every_creation_and_end() {
        let mut r = Registry::new();
        let v0 = r.version();
        let (s, _) = r.register(KIND_ARC, 3, 1, 0, 0);
        let v1 = r.version();
        r.end(s, STATE_DROPPED, None, 0, 1);
        assert!(v0 != v1 && v1 != r.version() && v0 != r.version());
    }

    #[test]
    fn borrow_byte_rules() {
        assert!(may_read(0) && may_change(0));
        assert!(may_read(1) && may_read(254) && !may_change(1) && !may_change(254));
        assert!(!may_read(BORROW_EXCLUSIVE) && !may_change(BORROW_EXCLUSIVE));
        assert_eq!(lent_as(3), "borrowed");
        assert!(lent_as(BORROW_EXCLUSIVE).starts_with("mutably"));
    }
}
