//! Model prices (pure): an embedded, dated table that users can override or extend.

use std::collections::BTreeMap;

/// USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Prompt (input) tokens.
    pub input_per_million: f64,
    /// Completion (output) tokens.
    pub output_per_million: f64,
}

impl Price {
    /// Cost of a call.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        prompt_tokens as f64 / 1e6 * self.input_per_million
            + completion_tokens as f64 / 1e6 * self.output_per_million
    }
}

/// When the embedded prices were taken from the providers' public price pages.
pub const PRICES_TAKEN: &str = "2026-11-01";

const DEFAULT_PRICES: &[(&str, f64, f64)] = &[
    ("gpt-4o", 2.50, 10.00),
    ("gpt-4o-mini", 0.15, 0.60),
    ("gpt-4.1", 2.00, 8.00),
    ("gpt-4.1-mini", 0.40, 1.60),
    ("gpt-4.1-nano", 0.10, 0.40),
    ("gpt-4-turbo", 10.00, 30.00),
    ("o3", 2.00, 8.00),
    ("o4-mini", 1.10, 4.40),
    ("claude-3-5-sonnet", 3.00, 15.00),
    ("claude-3-5-haiku", 0.80, 4.00),
    ("claude-3-opus", 15.00, 75.00),
    ("claude-sonnet-4", 3.00, 15.00),
    ("claude-opus-4", 15.00, 75.00),
    ("gemini-1.5-pro", 1.25, 5.00),
    ("gemini-1.5-flash", 0.075, 0.30),
    ("gemini-2.0-flash", 0.10, 0.40),
    ("gemini-2.5-pro", 1.25, 10.00),
    ("gemini-2.5-flash", 0.30, 2.50),
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
                .map(|&(m, i, o)| {
                    (
                        m.to_string(),
                        Price {
                            input_per_million: i,
                            output_per_million: o,
                        },
                    )
                })
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
        t.set(
            "qwen2.5-coder",
            Price {
                input_per_million: 0.0,
                output_per_million: 0.0,
            },
        );
        assert_eq!(
            t.lookup("qwen2.5-coder-1.5b").unwrap().cost(1000, 1000),
            0.0
        );
        let p = Price {
            input_per_million: 1.0,
            output_per_million: 2.0,
        };
        assert!((p.cost(1_000_000, 500_000) - 2.0).abs() < 1e-9);
    }
}
