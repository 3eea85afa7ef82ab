//! Model prices (pure): an embedded, dated table that users can override or extend.

use std::collections::BTreeMap;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Price {
    /// Prompt (input) tokens.
    pub input_per_million: f64,
    /// Completion (output) tokens.
    pub output_per_million: f64,
    /// Prompt tokens read from the provider's prompt cache (`None`: the input price).
    pub cached_input_per_million: Option<f64>,
    /// Prompt tokens written to the prompt cache (Anthropic's cache writes; `None`: the
    /// input price).
    pub cache_write_per_million: Option<f64>,
}

impl Price {
    /// Input and output prices, cached tokens at the input price.
    pub fn new(input_per_million: f64, output_per_million: f64) -> Price {
        Price {
            input_per_million,
            output_per_million,
            cached_input_per_million: None,
            cache_write_per_million: None,
        }
    }

    /// The same with prices for cache reads and cache writes.
    pub fn with_cache(mut self, read_per_million: f64, write_per_million: f64) -> Price {
        self.cached_input_per_million = Some(read_per_million);
        self.cache_write_per_million = Some(write_per_million);
        self
    }

    /// Cost of a call without prompt caching.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        self.cost_cached(prompt_tokens, 0, 0, completion_tokens)
    }

    /// Cost of a call: `prompt_tokens` counts every prompt token, of which `cached` were
    /// read from the cache and `written` written to it (each priced at its own rate).
    pub fn cost_cached(
        &self,
        prompt_tokens: u64,
        cached: u64,
        written: u64,
        completion_tokens: u64,
    ) -> f64 {
        let plain = prompt_tokens.saturating_sub(cached + written);
        let m = |n: u64, p: f64| n as f64 / 1e6 * p;
        m(plain, self.input_per_million)
            + m(
                cached,
                self.cached_input_per_million
                    .unwrap_or(self.input_per_million),
            )
            + m(
                written,
                self.cache_write_per_million
                    .unwrap_or(self.input_per_million),
            )
            + m(completion_tokens, self.output_per_million)
    }
}

/// When the embedded prices were taken from the providers' public price pages.
pub const PRICES_TAKEN: &str = "2026-11-01";

/// (model, input, output, cache read, cache write), USD per million tokens. OpenAI and
/// Gemini cache implicitly (no write surcharge); Anthropic reads at 10% and writes at 125%
/// of the input price (5-minute cache).
const DEFAULT_PRICES: &[(&str, f64, f64, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00, 1.25, 2.50),
    ("gpt-4o-mini", 0.15, 0.60, 0.075, 0.15),
    ("gpt-4.1", 2.00, 8.00, 0.50, 2.00),
    ("gpt-4.1-mini", 0.40, 1.60, 0.10, 0.40),
    ("gpt-4.1-nano", 0.10, 0.40, 0.025, 0.10),
    ("gpt-4-turbo", 10.00, 30.00, 10.00, 10.00),
    ("o3", 2.00, 8.00, 0.50, 2.00),
    ("o4-mini", 1.10, 4.40, 0.275, 1.10),
    ("claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75),
    ("claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00),
    ("claude-3-opus", 15.00, 75.00, 1.50, 18.75),
    ("claude-sonnet-4", 3.00, 15.00, 0.30, 3.75),
    ("claude-opus-4", 15.00, 75.00, 1.50, 18.75),
    ("gemini-1.5-pro", 1.25, 5.00, 0.3125, 1.25),
    ("gemini-1.5-flash", 0.075, 0.30, 0.01875, 0.075),
    ("gemini-2.0-flash", 0.10, 0.40, 0.025, 0.10),
    ("gemini-2.5-pro", 1.25, 10.00, 0.31, 1.25),
    ("gemini-2.5-flash", 0.30, 2.50, 0.075, 0.30),
];

/// Prices by model family. A dated or suffixed name (`gpt-4o-mini-2024-07-18`) is priced as
/// the longest known family it extends at a `-` boundary (`gpt-4o-mini`, never `gpt-4o`); an
/// unknown model has no price (its cost is reported as unknown, never as 0).
#[derive(Debug, Clone, PartialEq)]
pub struct PriceTable {
    prices: BTreeMap<String, Price>,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable {
            prices: DEFAULT_PRICES
                .iter()
                .map(|&(m, i, o, r, w)| (m.to_string(), Price::new(i, o).with_cache(r, w)))
                .collect(),
        }
    }
}

impl PriceTable {
    /// An empty table (every cost unknown).
    pub fn empty() -> Self {
        PriceTable {
            prices: BTreeMap::new(),
        }
    }

    /// Adds or replaces a model family's price.
    pub fn set(&mut self, model: impl Into<String>, price: Price) -> &mut Self {
        self.prices.insert(model.into(), price);
        self
    }

    /// The price for `model`, if known.
    pub fn lookup(&self, model: &str) -> Option<Price> {
        let model = model.rsplit('/').next().unwrap_or(model); // "openai/gpt-4o" style names
        if let Some(p) = self.prices.get(model) {
            return Some(*p);
        }
        self.prices
            .iter()
            .filter(|(k, _)| {
                model.len() > k.len()
                    && model.starts_with(k.as_str())
                    && model.as_bytes()[k.len()] == b'-'
            })
            .max_by_key(|(k, _)| k.len())
            .map(|(_, p)| *p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dated_names_map_to_their_own_family() {
        let t = PriceTable::default();
        assert_eq!(t.lookup("gpt-4o-mini-2024-07-18"), t.lookup("gpt-4o-mini"));
        assert_ne!(t.lookup("gpt-4o-mini-2024-07-18"), t.lookup("gpt-4o"));
        assert_eq!(t.lookup("gpt-4o-2024-08-06"), t.lookup("gpt-4o"));
        assert_eq!(
            t.lookup("claude-3-5-sonnet-20241022")
                .unwrap()
                .input_per_million,
            3.0
        );
        assert_eq!(t.lookup("openai/gpt-4o-mini"), t.lookup("gpt-4o-mini"));
        assert_eq!(t.lookup(""), None);
        assert_eq!(t.lookup("qwen2.5-coder-1.5b"), None);
        assert_eq!(
            t.lookup("gpt-4omega"),
            None,
            "prefix must end at a '-' boundary"
        );
        let mut t = t;
        t.set("qwen2.5-coder", Price::new(0.0, 0.0));
        assert_eq!(
            t.lookup("qwen2.5-coder-1.5b").unwrap().cost(1000, 1000),
            0.0
        );
        let p = Price::new(1.0, 2.0);
        assert!((p.cost(1_000_000, 500_000) - 2.0).abs() < 1e-9);
        // 1M prompt tokens: 600k plain, 300k read from the cache, 100k written to it.
        let p = p.with_cache(0.1, 1.25);
        let c = p.cost_cached(1_000_000, 300_000, 100_000, 0);
        assert!((c - (0.6 + 0.03 + 0.125)).abs() < 1e-9, "{c}");
    }
}
