//! Customers who open products on their own, without an offer: the base rate of conversion
//! that uplift is measured against.
//!
//! Each customer opens a product of family `P` at the constant rate the truth's base rates give
//! ([`Truth::base_per_ms`]): a Poisson process in event time, the same for every customer and
//! independent of what the customer does or is offered. So the share of any group of customers
//! who open `P` on their own within a window `W` is `b_W` ([`Truth::base_within`]), whoever they
//! are: the control group's expected conversion rate.
//!
//! The clock draws from a generator of its own (seeded by the run's seed), so turning it on adds
//! records to a stream without changing the others.

use super::personas::Customer;
use super::responder::Truth;
use crate::event::{Event, ProductCategory, ProductOpened};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

/// The next own conversion of every customer.
pub struct OwnConversions {
    rng: ChaCha8Rng,
    /// Per product family, conversions per customer and millisecond.
    rates: [f64; 7],
    /// Their sum: a customer's next conversion of any family comes after an exponential wait
    /// at this rate, its family drawn in proportion to the rates.
    total: f64,
    /// (event time, customer index) of each customer's next conversion.
    due: BinaryHeap<Reverse<(i64, u32)>>,
    made: u64,
}

impl OwnConversions {
    /// The clock of `customers` customers from `start_ms`, at `truth`'s base rates.
    pub fn new(truth: &Truth, customers: usize, seed: u64, start_ms: i64) -> Self {
        let mut rates = [0.0; 7];
        for p in ProductCategory::ALL {
            rates[*p as usize] = truth.base_per_ms(*p);
        }
        let total: f64 = rates.iter().sum();
        let mut clock = Self {
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x6f77_6e5f_636f_6e76),
            rates,
            total,
            due: BinaryHeap::new(),
            made: 0,
        };
        if total > 0.0 {
            for i in 0..customers {
                let next = start_ms + clock.wait();
                clock.due.push(Reverse((next, i as u32)));
            }
        }
        clock
    }

    /// An exponential wait at the total rate, in whole milliseconds.
    fn wait(&mut self) -> i64 {
        let u: f64 = self.rng.random_range(f64::MIN_POSITIVE..1.0);
        (-u.ln() / self.total).ceil().min(i64::MAX as f64 / 4.0) as i64
    }

    /// Appends to `queue` every conversion due at or before `until`, oldest first, and draws
    /// each customer's next.
    pub fn take_due(&mut self, until: i64, customers: &[Customer], queue: &mut VecDeque<Event>) {
        while let Some(&Reverse((at, i))) = self.due.peek() {
            if at > until {
                break;
            }
            self.due.pop();
            let mut pick = self.rng.random_range(0.0..self.total);
            let product = ProductCategory::ALL
                .iter()
                .copied()
                .find(|p| {
                    pick -= self.rates[*p as usize];
                    pick < 0.0
                })
                .unwrap_or(ProductCategory::Other);
            self.made += 1;
            let customer = &customers[i as usize];
            queue.push_back(Event::ProductOpened(ProductOpened {
                event_id: compact_str::format_compact!("{}-open-{}", customer.id, self.made),
                customer_id: customer.id.clone(),
                event_time: at,
                product_category: product,
                account_id: compact_str::format_compact!("A{}", self.made),
                channel: "BRANCH".into(),
                offer_id: None,
            }));
            let next = at + self.wait();
            self.due.push(Reverse((next, i)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::personas::EventFactory;
    use crate::generator::responder::BASE_PERIOD_MS;

    #[test]
    fn customers_open_products_at_the_base_rates() {
        let truth = Truth::default();
        let factory = EventFactory::new(20_000, 5, 0);
        let mut clock = OwnConversions::new(&truth, 20_000, 5, 0);
        let mut queue = VecDeque::new();
        clock.take_due(BASE_PERIOD_MS, factory.customers(), &mut queue);
        let mut first: std::collections::HashMap<(String, ProductCategory), ()> =
            Default::default();
        let mut last = 0;
        for e in &queue {
            let Event::ProductOpened(o) = e else {
                panic!("{e:?}")
            };
            assert!(o.event_time >= last, "oldest first");
            last = o.event_time;
            first.insert((o.customer_id.to_string(), o.product_category), ());
        }
        for p in [ProductCategory::Savings, ProductCategory::CreditCard] {
            let share = first.keys().filter(|(_, q)| *q == p).count() as f64 / 20_000.0;
            let b = truth.base_rate(p);
            // Binomial standard error at 20,000 customers: under 0.0015 for these rates.
            assert!((share - b).abs() < 0.005, "{p:?}: {share} against {b}");
        }
    }
}
