//! [`MemoryCache`]: recent sprites and frames by cache key, within a byte budget.

use std::collections::HashMap;

use crate::cache::CacheKey;
use image::RgbaImage;

/// Recently made sprites and sheet frames by cache key, up to a byte budget; the least
/// recently used go first when it is full.
pub(crate) struct MemoryCache {
    entries: HashMap<CacheKey, Entry>,
    bytes: usize,
    limit: usize,
    clock: u64,
}

struct Entry {
    image: RgbaImage,
    used: u64,
}

impl MemoryCache {
    /// A cache holding at most `limit` bytes of RGBA pixels (0: off).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            entries: HashMap::new(),
            bytes: 0,
            limit,
            clock: 0,
        }
    }

    /// The sprite made under `key`, if still kept.
    pub(crate) fn get(&mut self, key: &CacheKey) -> Option<RgbaImage> {
        self.clock += 1;
        let entry = self.entries.get_mut(key)?;
        entry.used = self.clock;
        Some(entry.image.clone())
    }

    /// Keeps `image` under `key`, dropping the least recently used entries to stay within
    /// the budget (an image larger than the whole budget is not kept).
    pub(crate) fn put(&mut self, key: CacheKey, image: &RgbaImage) {
        let size = image.as_raw().len();
        if size > self.limit {
            return;
        }
        self.clock += 1;
        if let Some(old) = self.entries.remove(&key) {
            self.bytes -= old.image.as_raw().len();
        }
        while self.bytes + size > self.limit {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(gone) = self.entries.remove(&oldest) {
                self.bytes -= gone.image.as_raw().len();
            }
        }
        self.bytes += size;
        self.entries.insert(
            key,
            Entry {
                image: image.clone(),
                used: self.clock,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> CacheKey {
        CacheKey([n; 32])
    }

    fn img(v: u8) -> RgbaImage {
        RgbaImage::from_pixel(2, 2, image::Rgba([v; 4])) // 16 bytes
    }

    #[test]
    fn keeps_within_its_budget_dropping_the_least_recently_used() {
        let mut m = MemoryCache::new(48); // three 2x2 images
        m.put(key(1), &img(1));
        m.put(key(2), &img(2));
        m.put(key(3), &img(3));
        assert_eq!(m.get(&key(1)), Some(img(1))); // 1 is now the most recent
        m.put(key(4), &img(4)); // evicts 2, the least recently used
        assert_eq!(m.get(&key(2)), None);
        assert_eq!(m.get(&key(1)), Some(img(1)));
        assert_eq!(m.get(&key(3)), Some(img(3)));
        assert_eq!(m.get(&key(4)), Some(img(4)));
        assert_eq!(m.bytes, 48);
        // Replacing an entry does not count it twice.
        m.put(key(4), &img(5));
        assert_eq!((m.bytes, m.get(&key(4))), (48, Some(img(5))));
        // Too large for the budget: not kept, nothing evicted.
        m.put(key(9), &RgbaImage::new(4, 4));
        assert_eq!((m.get(&key(9)), m.entries.len()), (None, 3));
    }

    #[test]
    fn a_zero_budget_keeps_nothing() {
        let mut m = MemoryCache::new(0);
        m.put(key(1), &img(1));
        assert_eq!(m.get(&key(1)), None);
    }
}
