//! Hit ratio of the memory tier (moka, TinyLFU) against plain LRU on a Zipf(0.9) trace of 100,000 keys
//! with a cache that holds 5% of them.
//!
//! ```text
//! cargo run --release -p yatagarasu-examples --example hit_ratio
//! ```

use std::collections::{BTreeMap, HashMap};

use yatagarasu_cache::{CacheEntry, CacheTier, MemoryTier};

const KEYS: usize = 100_000;
const CAPACITY: usize = KEYS / 20; // 5%
const REQUESTS: usize = 1_000_000;
const SKEW: f64 = 0.9;
const VALUE: usize = 100;

/// Zipf sampler over ranks 0..n by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for k in 1..=n {
            acc += 1.0 / (k as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Self { cdf }
    }

    fn sample(&self, rng: &mut fastrand::Rng) -> usize {
        let u = rng.f64();
        self.cdf.partition_point(|c| *c < u).min(self.cdf.len() - 1)
    }
}

/// Plain LRU over key ids, for comparison.
struct Lru {
    capacity: usize,
    tick: u64,
    last_use: HashMap<usize, u64>,
    order: BTreeMap<u64, usize>,
}

impl Lru {
    fn get_or_insert(&mut self, key: usize) -> bool {
        self.tick += 1;
        let hit = if let Some(t) = self.last_use.insert(key, self.tick) {
            self.order.remove(&t);
            true
        } else {
            false
        };
        self.order.insert(self.tick, key);
        if self.last_use.len() > self.capacity
            && let Some((_, old)) = self.order.pop_first()
        {
            self.last_use.remove(&old);
        }
        hit
    }
}

#[tokio::main]
async fn main() {
    let zipf = Zipf::new(KEYS, SKEW);
    let mut rng = fastrand::Rng::with_seed(42);
    // Hash the ranks so popular keys are not also neighbours.
    let trace: Vec<usize> = (0..REQUESTS)
        .map(|_| zipf.sample(&mut rng).wrapping_mul(2_654_435_761) % KEYS)
        .collect();

    let key_len = format!("object-{:06}", 0).len();
    let memory = MemoryTier::builder((CAPACITY * (VALUE + key_len)) as u64)
        .max_item_bytes(1 << 20)
        .build();
    let mut hits = 0usize;
    for (i, k) in trace.iter().enumerate() {
        let key = format!("object-{k:06}");
        if memory.get(key.as_bytes()).await.ok().flatten().is_some() {
            hits += 1;
        } else {
            let _ = memory
                .put(key.as_bytes(), CacheEntry::new("", vec![0u8; VALUE], None))
                .await;
        }
        if i % 1024 == 0 {
            memory.run_pending_tasks().await;
        }
    }
    let tinylfu = hits as f64 / REQUESTS as f64;

    let mut lru = Lru {
        capacity: CAPACITY,
        tick: 0,
        last_use: HashMap::new(),
        order: BTreeMap::new(),
    };
    let lru_hits = trace.iter().filter(|k| lru.get_or_insert(**k)).count();
    let lru_ratio = lru_hits as f64 / REQUESTS as f64;

    println!("| cache | hit ratio |");
    println!("|---|---|");
    println!("| memory tier (moka, TinyLFU) | {:.1}% |", tinylfu * 100.0);
    println!("| plain LRU | {:.1}% |", lru_ratio * 100.0);
    println!();
    println!(
        "Zipf({SKEW}) over {KEYS} keys, {REQUESTS} requests, capacity {CAPACITY} entries (5%)."
    );
}
