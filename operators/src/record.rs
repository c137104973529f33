//! Records: named values computed from frames (statistics, features).

use std::sync::Arc;

/// Value names shared by every record of one shape, e.g. one channel's
/// feature names: a record takes one reference to the list instead of one
/// per name (each an atomic count shared across threads).
pub type Names = Arc<[Arc<str>]>;

/// A timestamped set of named values derived from one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub stream_id: Arc<str>,
    /// Sequence of the frame that completed this record.
    pub sequence: u64,
    /// What produced the record, e.g. "frame_stats".
    pub kind: Arc<str>,
    /// Time span the values describe, ns since the Unix epoch (UTC).
    pub start_ns: i64,
    pub end_ns: i64,
    /// Names and values, e.g. ("Fp1.rms", 12.5).
    pub values: Values,
    /// String labels, e.g. ("age_band", "60-69"): quasi-identifiers that
    /// travel with the values (attached by `attach_labels` from de-identified
    /// frame metadata, read by `k_anonymity` and `dp_aggregate`). Empty for
    /// most records. May be identifying in combination: see docs/privacy.md.
    pub labels: Vec<(Arc<str>, Arc<str>)>,
}

impl Record {
    /// The value of the first label called `name`.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| &**k == name).map(|(_, v)| &**v)
    }

    /// The first value called `name`.
    pub fn value(&self, name: &str) -> Option<f64> {
        self.values.iter().find(|&(k, _)| &**k == name).map(|(_, v)| v)
    }
}

/// A record's named values, in order: a shared name list and the numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct Values {
    /// Invariant: as long as `numbers`.
    names: Names,
    numbers: Vec<f64>,
}

impl Default for Values {
    fn default() -> Self {
        Values {
            names: Arc::from([]),
            numbers: Vec::new(),
        }
    }
}

impl Values {
    /// Value i is called `names[i]`. Panics unless there is one name per
    /// number (a bug in the caller, not bad input).
    pub fn new(names: Names, numbers: Vec<f64>) -> Self {
        assert_eq!(names.len(), numbers.len(), "one name per value");
        Values { names, numbers }
    }

    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty()
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    pub fn numbers(&self) -> &[f64] {
        &self.numbers
    }

    /// The numbers, to change in place (the names stay).
    pub fn numbers_mut(&mut self) -> &mut [f64] {
        &mut self.numbers
    }

    /// Name and value i.
    pub fn get(&self, i: usize) -> Option<(&Arc<str>, f64)> {
        Some((self.names.get(i)?, *self.numbers.get(i)?))
    }

    /// The name of value i. Panics if there is none.
    pub fn name(&self, i: usize) -> &str {
        &self.names[i]
    }

    /// Value i. Panics if there is none.
    pub fn number(&self, i: usize) -> f64 {
        self.numbers[i]
    }

    /// The last name and value.
    pub fn last(&self) -> Option<(&Arc<str>, f64)> {
        self.get(self.len().checked_sub(1)?)
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Arc<str>, f64)> + Clone + '_ {
        self.names.iter().zip(self.numbers.iter().copied())
    }

    /// Keeps the first `len` values.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.names = self.names[..len].into();
            self.numbers.truncate(len);
        }
    }

    /// Appends `other`'s values (a new name list: for merging, not for a
    /// hot loop).
    pub fn append(&mut self, other: Values) {
        if self.is_empty() {
            *self = other;
            return;
        }
        self.names = self.names.iter().chain(other.names.iter()).cloned().collect();
        self.numbers.extend(other.numbers);
    }
}

impl FromIterator<(Arc<str>, f64)> for Values {
    fn from_iter<I: IntoIterator<Item = (Arc<str>, f64)>>(pairs: I) -> Self {
        let (names, numbers): (Vec<Arc<str>>, Vec<f64>) = pairs.into_iter().unzip();
        Values {
            names: names.into(),
            numbers,
        }
    }
}

impl From<Vec<(Arc<str>, f64)>> for Values {
    fn from(pairs: Vec<(Arc<str>, f64)>) -> Self {
        pairs.into_iter().collect()
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = (&'a Arc<str>, f64);
    type IntoIter =
        std::iter::Zip<std::slice::Iter<'a, Arc<str>>, std::iter::Copied<std::slice::Iter<'a, f64>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.names.iter().zip(self.numbers.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(names: &[&str]) -> Values {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| (Arc::from(*n), i as f64))
            .collect()
    }

    #[test]
    fn values_keep_names_and_numbers_together() {
        let mut v = pairs(&["a", "b", "c"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.get(1).map(|(n, x)| (&**n, x)), Some(("b", 1.0)));
        assert_eq!(v.last().map(|(n, x)| (&**n, x)), Some(("c", 2.0)));
        v.append(pairs(&["d"]));
        assert_eq!(
            v.names().iter().map(|n| &**n).collect::<Vec<_>>(),
            ["a", "b", "c", "d"]
        );
        assert_eq!(v.numbers(), [0.0, 1.0, 2.0, 0.0]);
        v.truncate(2);
        assert_eq!(v, pairs(&["a", "b"]));
        v.numbers_mut()[0] = 7.0;
        assert_eq!(v.number(0), 7.0);
        assert_eq!(v.name(0), "a");
        assert!(Values::default().last().is_none());
    }

    #[test]
    #[should_panic(expected = "one name per value")]
    fn a_name_list_of_the_wrong_length_is_a_bug() {
        let _ = Values::new(Arc::from([Arc::from("a")]), vec![1.0, 2.0]);
    }
}
