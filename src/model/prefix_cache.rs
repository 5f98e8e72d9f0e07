//! KV caches of recent token prefixes, bounded in bytes. Prompts put the schema first and the
//! question last, so the questions of one database start with the same system message and
//! schema; a batch whose common prefix (or its start) is cached prefills only the rest.
//!
//! Entries are one-row caches keyed by their exact token prefix; a lookup returns the longest
//! match (a cached prefix may also serve a longer or a diverging prompt, truncated to what they
//! share). The least recently used entries go first when the byte bound is passed.

use candle_core::Tensor;

use super::decoder::{KvCache, Model};

/// Shorter shared prefixes are not worth an entry (a few tokens prefill in no time).
pub const MIN_PREFIX_TOKENS: usize = 16;

struct Entry {
    tokens: Vec<u32>,
    cache: KvCache,
    bytes: usize,
    last_used: u64,
}

/// Recently prefilled prefixes and their one-row KV caches.
pub struct PrefixCache {
    entries: Vec<Entry>,
    max_bytes: usize,
    clock: u64,
    hits: u64,
    reused_tokens: u64,
}

/// What a [`PrefixCache`] has served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PrefixStats {
    pub entries: usize,
    pub bytes: usize,
    pub hits: u64,
    /// Prompt tokens not prefilled because a cached prefix held them.
    pub reused_tokens: u64,
}

fn common_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl PrefixCache {
    /// A cache holding at most `max_bytes` of keys and values (0 keeps nothing).
    pub fn new(max_bytes: usize) -> Self {
        PrefixCache {
            entries: Vec::new(),
            max_bytes,
            clock: 0,
            hits: 0,
            reused_tokens: 0,
        }
    }

    pub fn stats(&self) -> PrefixStats {
        PrefixStats {
            entries: self.entries.len(),
            bytes: self.entries.iter().map(|e| e.bytes).sum(),
            hits: self.hits,
            reused_tokens: self.reused_tokens,
        }
    }

    /// The longest cached start of `tokens` (at least [`MIN_PREFIX_TOKENS`] long): its length
    /// and a one-row cache holding exactly those tokens.
    pub fn lookup(&mut self, tokens: &[u32]) -> candle_core::Result<Option<(usize, KvCache)>> {
        let best = self
            .entries
            .iter_mut()
            .map(|e| (common_len(&e.tokens, tokens), e))
            .filter(|(n, _)| *n >= MIN_PREFIX_TOKENS)
            .max_by_key(|(n, _)| *n);
        let Some((n, entry)) = best else {
            return Ok(None);
        };
        self.clock += 1;
        entry.last_used = self.clock;
        let mut cache = entry.cache.clone();
        cache.truncate(n)?;
        self.hits += 1;
        self.reused_tokens += n as u64;
        Ok(Some((n, cache)))
    }

    /// Keeps the one-row `cache` of `tokens` (replacing entries it extends), then drops the
    /// least recently used entries beyond the byte bound; an entry larger than the bound is
    /// not kept.
    pub fn insert(&mut self, tokens: Vec<u32>, cache: KvCache) {
        if tokens.len() < MIN_PREFIX_TOKENS || cache.len() != tokens.len() {
            return;
        }
        let bytes = cache.bytes();
        if bytes > self.max_bytes {
            return;
        }
        // An entry that is a prefix of the new one is served by the new one as well.
        self.entries
            .retain(|e| !(e.tokens.len() <= tokens.len() && tokens.starts_with(&e.tokens)));
        self.clock += 1;
        self.entries.push(Entry {
            tokens,
            cache,
            bytes,
            last_used: self.clock,
        });
        while self.entries.iter().map(|e| e.bytes).sum::<usize>() > self.max_bytes {
            let oldest = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(i, _)| i)
                .expect("over the bound means an entry");
            self.entries.swap_remove(oldest);
        }
    }
}

/// The number of leading tokens every prompt shares, leaving each at least one token of its
/// own (the last prompt token's logits start decoding).
pub fn shared_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let Some(first) = prompts.first() else {
        return 0;
    };
    let mut n = first.len();
    for p in &prompts[1..] {
        n = n.min(common_len(first, p));
    }
    let shortest = prompts.iter().map(|p| p.len()).min().unwrap_or(0);
    n.min(shortest.saturating_sub(1))
}

/// Prefills the tokens all `inputs` start with once (from `prefix_cache` where it holds their
/// start, adding them to it) and forks that one-row cache into a row per input; returns the
/// cache and what is left of each input (at least one token). The rest is then left-padded
/// after the shared part, so a row's mask reads prefix, padding, own tokens, and positions
/// (counted over real tokens) stay exact. With `share` off or a short common start, nothing is
/// prefilled and the inputs come back whole.
pub fn prefill_common_start(
    model: &Model,
    inputs: &[Vec<u32>],
    share: bool,
    mut prefix_cache: Option<&mut PrefixCache>,
) -> super::Result<(KvCache, Vec<Vec<u32>>)> {
    let shared = if share { shared_prefix_len(inputs) } else { 0 };
    if shared < MIN_PREFIX_TOKENS {
        return Ok((KvCache::new(), inputs.to_vec()));
    }
    let head = &inputs[0][..shared];
    let (have, mut one) = match prefix_cache.as_deref_mut() {
        Some(c) => c.lookup(head)?.unwrap_or_default(),
        None => (0, KvCache::new()),
    };
    if have < shared {
        let ids = Tensor::from_vec(head[have..].to_vec(), (1, shared - have), model.device())?;
        model.forward_hidden(&ids, &[vec![1u8; shared - have]], Some(&mut one))?;
        if let Some(c) = prefix_cache {
            c.insert(head.to_vec(), one.clone());
        }
    }
    one.select_rows(&vec![0; inputs.len()])?;
    Ok((one, inputs.iter().map(|p| p[shared..].to_vec()).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_prefix_leaves_every_prompt_a_token() {
        assert_eq!(shared_prefix_len(&[vec![1, 2, 3], vec![1, 2, 4, 5]]), 2);
        assert_eq!(shared_prefix_len(&[vec![1, 2, 3], vec![1, 2, 3, 4]]), 2);
        assert_eq!(shared_prefix_len(&[vec![1, 2, 3]]), 2);
        assert_eq!(shared_prefix_len(&[vec![7], vec![8]]), 0);
        assert_eq!(shared_prefix_len(&[]), 0);
    }
}
