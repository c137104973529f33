//! The operator contract.

use std::borrow::Cow;

use crate::{Frame, Record};

/// What travels along a pipeline edge.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Frame(Frame),
    Record(Record),
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Frame(_) => ItemKind::Frame,
            Item::Record(_) => ItemKind::Record,
        }
    }

    pub fn stream_id(&self) -> &str {
        match self {
            Item::Frame(f) => &f.stream_id,
            Item::Record(r) => &r.stream_id,
        }
    }

    pub fn sequence(&self) -> u64 {
        match self {
            Item::Frame(f) => f.sequence,
            Item::Record(r) => r.sequence,
        }
    }
}

/// The type of an edge, checked when the pipeline graph is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemKind {
    Frame,
    Record,
}

impl std::fmt::Display for ItemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ItemKind::Frame => "frames",
            ItemKind::Record => "records",
        })
    }
}

/// An item the operator refuses, handed back with the reason so the engine
/// can dead-letter it. The reason must not contain PHI: it names the check
/// that failed, never metadata values.
#[derive(Debug)]
pub struct Rejected {
    pub item: Item,
    pub reason: Cow<'static, str>,
}

impl Rejected {
    /// Boxed, because rejection is the rare path and keeps `process`'s
    /// result small.
    pub fn boxed(item: Item, reason: impl Into<Cow<'static, str>>) -> Box<Rejected> {
        Box::new(Rejected {
            item,
            reason: reason.into(),
        })
    }
}

/// Where an operator puts what it produces. The engine drains it after each
/// call and keeps its capacity, so steady-state processing does not allocate.
#[derive(Debug, Default)]
pub struct Output {
    items: Vec<Item>,
}

impl Output {
    pub fn push(&mut self, item: Item) {
        self.items.push(item);
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn drain(&mut self) -> std::vec::Drain<'_, Item> {
        self.items.drain(..)
    }

    /// The items from index `start` on (those pushed since `len()` was
    /// `start`), e.g. for an operator to reorder what it pushed.
    pub fn drain_from(&mut self, start: usize) -> std::vec::Drain<'_, Item> {
        self.items.drain(start..)
    }

    /// The items from index `start` on, to change in place.
    pub fn pushed_since(&mut self, start: usize) -> &mut [Item] {
        &mut self.items[start..]
    }
}

/// A synchronous transform. One instance serves one pipeline node and sees
/// that node's items in arrival order (per stream order is preserved).
///
/// The engine acknowledges an input once everything the operator pushed for
/// it has been acknowledged; an input that produced nothing counts as
/// intentionally dropped.
pub trait Operator: Send {
    /// Handles one item.
    fn process(&mut self, item: Item, out: &mut Output) -> Result<(), Box<Rejected>>;

    /// Called once when all inputs have ended, to emit what is still held.
    fn finish(&mut self, _out: &mut Output) {}
}
