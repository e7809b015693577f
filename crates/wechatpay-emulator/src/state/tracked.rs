//! A map that remembers which keys were touched since they were last taken, so that the state
//! file writes only the records a request may have changed ([`store::flush`]) instead of
//! serializing every record after every writing call (quadratic over a long run).
//!
//! Reading goes through `Deref` to the `HashMap`; every way to change the map is a method here
//! that marks the key it is given (`get_mut`, `insert`, `remove`, `entry`), whether or not the
//! record ends up changed: a needless mark costs one record's serialization. There is no
//! `DerefMut` and no `iter_mut`: a way to change the map that is not here does not compile (a
//! flow that needs one adds it here, marking the map whole). A new map counts as touched whole.
//!
//! [`store::flush`]: crate::state::store::flush

use std::borrow::Borrow;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::ops::Deref;

/// A `HashMap` whose changes are marked.
pub(crate) struct Tracked<K, V> {
    map: HashMap<K, V>,
    touched: HashSet<K>,
    /// Every key counts as touched.
    all: bool,
}

/// What changed since the marks were last taken.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Touched<K> {
    /// Anything may have: the map is to be written whole.
    All,
    /// At most these keys (present: changed or added; absent: removed).
    Keys(Vec<K>),
}

impl<K, V> Default for Tracked<K, V> {
    fn default() -> Self {
        Tracked {
            map: HashMap::new(),
            touched: HashSet::new(),
            all: true,
        }
    }
}

impl<K, V> Deref for Tracked<K, V> {
    type Target = HashMap<K, V>;

    fn deref(&self) -> &HashMap<K, V> {
        &self.map
    }
}

impl<'a, K, V> IntoIterator for &'a Tracked<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = std::collections::hash_map::Iter<'a, K, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl<K: Hash + Eq + Clone, V> Tracked<K, V> {
    fn mark<Q>(&mut self, k: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if !self.all && !self.touched.contains(k) {
            self.touched.insert(k.to_owned());
        }
    }

    pub(crate) fn get_mut<Q>(&mut self, k: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.mark(k);
        self.map.get_mut(k)
    }

    pub(crate) fn insert(&mut self, k: K, v: V) -> Option<V> {
        self.mark(&k);
        self.map.insert(k, v)
    }

    pub(crate) fn remove<Q>(&mut self, k: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.mark(k);
        self.map.remove(k)
    }

    pub(crate) fn entry(&mut self, k: K) -> Entry<'_, K, V> {
        self.mark(&k);
        self.map.entry(k)
    }

    /// What was touched since the last call; the marks start again from nothing.
    pub(crate) fn take(&mut self) -> Touched<K> {
        let touched = std::mem::take(&mut self.touched);
        if std::mem::replace(&mut self.all, false) {
            return Touched::All;
        }
        Touched::Keys(touched.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::{Touched, Tracked};

    fn keys(t: Touched<String>) -> Vec<String> {
        match t {
            Touched::All => panic!("all, not keys"),
            Touched::Keys(mut k) => {
                k.sort();
                k
            }
        }
    }

    #[test]
    fn marks_what_each_change_may_touch_and_nothing_a_read_does() {
        let mut m: Tracked<String, i32> = Tracked::default();
        m.insert("a".into(), 1);
        assert_eq!(m.take(), Touched::All, "a new map is written whole once");
        assert_eq!(keys(m.take()), Vec::<String>::new());

        m.insert("b".into(), 2);
        *m.get_mut("a").unwrap() += 1;
        let _ = m.get("a").copied().unwrap() + m.len() as i32 + m.values().sum::<i32>();
        assert!(m.contains_key("b") && m.iter().count() == 2);
        assert_eq!(keys(m.take()), ["a", "b"]);

        m.remove("a");
        assert!(m.get_mut("nobody").is_none());
        *m.entry("c".into()).or_insert(0) += 3;
        assert_eq!(keys(m.take()), ["a", "c", "nobody"]);
        assert_eq!((m.get("a"), m.get("c")), (None, Some(&3)));

        assert_eq!(m.len(), 2);
        assert_eq!(m.take(), Touched::Keys(Vec::new()));
    }
}
