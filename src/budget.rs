//! The budget ledger of a tree of runs (pure: no I/O): usage and cost per model, and the
//! limits on calls, tokens and spend, checked *before* every LLM call. A call is reserved
//! while it is in flight, so concurrent sub-calls cannot all pass the call limit at once.

use std::sync::{Mutex, MutexGuard};

use crate::config::Limits;
use crate::error::{Error, Result};
use crate::llm::PriceTable;
use crate::result::Usage;

/// Usage and limits shared by every run of one tree.
#[derive(Debug)]
pub(crate) struct Ledger {
    limits: Limits,
    prices: PriceTable,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    usage: Usage,
    /// Calls started but not yet recorded.
    reserved: u64,
}

/// One reserved LLM call; released when dropped (recorded or not).
#[derive(Debug)]
pub(crate) struct Reservation<'a> {
    ledger: &'a Ledger,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut s = self.ledger.lock();
        s.reserved = s.reserved.saturating_sub(1);
    }
}

impl Ledger {
    pub(crate) fn new(limits: Limits, prices: PriceTable) -> Self {
        Ledger {
            limits,
            prices,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Checks every limit without reserving anything (before starting a child run).
    pub(crate) fn check(&self) -> Result<()> {
        self.reserve().map(drop)
    }

    /// Checks every limit and reserves one call, or says which limit stops the call.
    pub(crate) fn reserve(&self) -> Result<Reservation<'_>> {
        let l = &self.limits;
        let mut s = self.lock();
        let u = &s.usage;
        if let Some(max) = l.max_llm_calls
            && u.calls + s.reserved >= u64::from(max)
        {
            return Err(Error::BudgetExceeded {
                message: format!(
                    "{} LLM calls made or in flight, limit {max} (RLM_MAX_LLM_CALLS)",
                    u.calls + s.reserved
                ),
            });
        }
        if let Some(max) = l.max_tokens
            && u.total_tokens() >= max
        {
            return Err(Error::BudgetExceeded {
                message: format!(
                    "{} tokens used, limit {max} (RLM_MAX_TOKENS)",
                    u.total_tokens()
                ),
            });
        }
        if l.max_cost_usd.is_some() && u.calls > 0 && u.cost_usd.is_none() {
            let unknown: Vec<&str> = u
                .per_model
                .iter()
                .filter(|(_, m)| m.cost_usd.is_none())
                .map(|(k, _)| k.as_str())
                .collect();
            return Err(Error::BudgetExceeded {
                message: format!(
                    "a cost limit is set (RLM_COST_LIMIT_USD) but the price of {} is unknown, so spending cannot be \
                     checked; add the model with PriceTable::set or remove the limit",
                    unknown.join(", ")
                ),
            });
        }
        if let (Some(max), Some(spent)) = (l.max_cost_usd, u.cost_usd)
            && spent >= max
        {
            return Err(Error::BudgetExceeded {
                message: format!("${spent:.4} spent, limit ${max:.4} (RLM_COST_LIMIT_USD)"),
            });
        }
        s.reserved += 1;
        drop(s);
        Ok(Reservation { ledger: self })
    }

    /// Records a finished call (the reservation is released) and returns its cost, when the
    /// model's price is known.
    pub(crate) fn record(
        &self,
        reservation: Reservation<'_>,
        model: &str,
        t: crate::llm::TokenUsage,
    ) -> Option<f64> {
        let cost = self.prices.lookup(model).map(|p| {
            p.cost_cached(
                t.prompt_tokens,
                t.cached_prompt_tokens,
                t.cache_write_tokens,
                t.completion_tokens,
            )
        });
        self.lock().usage.record(model, t, cost);
        drop(reservation);
        cost
    }

    /// Usage so far.
    pub(crate) fn usage(&self) -> Usage {
        self.lock().usage.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(f: impl FnOnce(&mut Limits)) -> Ledger {
        let mut l = Limits::defaults();
        f(&mut l);
        Ledger::new(l, PriceTable::default())
    }

    #[test]
    fn call_limit_counts_calls_in_flight() {
        let l = ledger(|l| l.max_llm_calls = Some(2));
        let a = l.reserve().unwrap();
        let b = l.reserve().unwrap();
        assert!(l.reserve().is_err(), "two in flight fill the limit");
        drop(b);
        let c = l.reserve().unwrap();
        l.record(a, "gpt-4o-mini", crate::llm::TokenUsage::new(10, 5));
        drop(c);
        let d = l.reserve().unwrap();
        l.record(d, "gpt-4o-mini", crate::llm::TokenUsage::new(10, 5));
        let e = l.reserve().unwrap_err();
        assert!(e.to_string().contains("limit 2"), "{e}");
    }

    #[test]
    fn tokens_and_cost_stop_before_the_next_call() {
        let l = ledger(|l| l.max_tokens = Some(100));
        let r = l.reserve().unwrap();
        l.record(r, "m", crate::llm::TokenUsage::new(90, 20));
        assert!(l.reserve().unwrap_err().to_string().contains("110 tokens"));
        let l = ledger(|l| l.max_cost_usd = Some(0.0001));
        let r = l.reserve().unwrap();
        let cost = l.record(r, "gpt-4o-mini", crate::llm::TokenUsage::new(1000, 1000));
        assert!(cost.is_some_and(|c| c > 0.0));
        assert!(l.reserve().unwrap_err().to_string().contains("spent"));
        let l = ledger(|l| l.max_cost_usd = Some(10.0));
        let r = l.reserve().unwrap();
        assert_eq!(
            l.record(r, "my-local-model", crate::llm::TokenUsage::new(1, 1)),
            None
        );
        let e = l.reserve().unwrap_err().to_string();
        assert!(e.contains("my-local-model") && e.contains("unknown"), "{e}");
        assert_eq!(l.usage().calls, 1);
    }
}
