//! Synthetic bank customers in personas, and the events each persona produces. Deterministic: the
//! same seed and start time give the same customers and the same event stream.

use crate::event::*;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;

/// How a synthetic customer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    /// Spends a lot by debit card, has no credit card: credit-card offer material.
    CardHeavySpender,
    /// Large deposits and balance: wealth products.
    HighSaver,
    /// Keeps reading loan pages and screens: personal loan.
    LoanShopper,
    /// Complains and posts negative social posts.
    Unhappy,
    /// Card compromised: bursts of foreign card payments and failed logins.
    FraudVictim,
    /// Rarely does anything.
    Dormant,
    /// A bit of everything.
    Ordinary,
}

impl Persona {
    /// Every persona.
    pub const ALL: [Persona; 7] = [
        Persona::CardHeavySpender,
        Persona::HighSaver,
        Persona::LoanShopper,
        Persona::Unhappy,
        Persona::FraudVictim,
        Persona::Dormant,
        Persona::Ordinary,
    ];

    fn pick(rng: &mut ChaCha8Rng) -> Self {
        match rng.random_range(0..100) {
            0..20 => Persona::CardHeavySpender,
            20..35 => Persona::HighSaver,
            35..50 => Persona::LoanShopper,
            50..60 => Persona::Unhappy,
            60..65 => Persona::FraudVictim,
            65..75 => Persona::Dormant,
            _ => Persona::Ordinary,
        }
    }

    /// Relative chance of being picked for the next session (dormant customers rarely act).
    fn activity(self) -> u32 {
        match self {
            Persona::Dormant => 1,
            Persona::FraudVictim => 4,
            _ => 10,
        }
    }
}

/// One synthetic customer.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Customer id (`C0000042`).
    pub id: Text,
    /// Behaviour.
    pub persona: Persona,
    /// Home country.
    pub home: &'static str,
    /// Credit score.
    pub credit_score: i32,
    /// Marketing consent.
    pub consent_marketing: bool,
    /// Running balance, minor units.
    balance: i64,
    seq: u64,
}

const COUNTRIES: &[&str] = &[
    "GB", "DE", "FR", "ES", "IT", "NL", "US", "BR", "TH", "NG", "AE", "PL",
];
const CATEGORIES: &[&str] = &[
    "GROCERY",
    "FUEL",
    "RESTAURANT",
    "TRAVEL",
    "ELECTRONICS",
    "FASHION",
    "PHARMACY",
];

/// Produces the event stream: profiles first, then sessions of events per customer.
pub struct EventFactory {
    rng: ChaCha8Rng,
    customers: Vec<Customer>,
    /// Running sum of activity weights: customer i owns tickets [cumulative[i-1], cumulative[i]).
    cumulative: Vec<u32>,
    total_weight: u32,
    clock_ms: i64,
    queue: VecDeque<Event>,
    profiles_left: usize,
    session_step_ms: i64,
    clock_cap_ms: Option<i64>,
    declared: Vec<std::sync::Arc<crate::catalog::Declared>>,
    own_conversions: Option<super::conversions::OwnConversions>,
}

/// Simulated time between two sessions: each customer acts about every six hours on average.
pub fn session_step_ms(customers: u32) -> i64 {
    (6 * 3_600_000 / i64::from(customers.max(1))).max(1)
}

/// Simulated time a stream of `events` records spans (about 2.5 events per session).
pub fn span_ms(customers: u32, events: u64) -> i64 {
    (events as i64 / 2 + 1) * session_step_ms(customers)
}

impl EventFactory {
    /// A factory for `n` customers, seeded, with simulated time starting at `start_ms`.
    pub fn new(n: u32, seed: u64, start_ms: i64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let customers: Vec<Customer> = (0..n.max(1))
            .map(|i| {
                let persona = Persona::pick(&mut rng);
                Customer {
                    id: compact_str::format_compact!("C{i:07}"),
                    persona,
                    home: ["GB", "DE", "FR", "ES", "NL"][rng.random_range(0..5)],
                    credit_score: rng.random_range(480..850),
                    consent_marketing: rng.random_bool(0.8),
                    balance: match persona {
                        Persona::HighSaver => rng.random_range(2_000_000..8_000_000),
                        _ => rng.random_range(10_000..800_000),
                    },
                    seq: 0,
                }
            })
            .collect();
        let cumulative: Vec<u32> = customers
            .iter()
            .scan(0u32, |sum, c| {
                *sum += c.persona.activity();
                Some(*sum)
            })
            .collect();
        let total_weight = cumulative.last().copied().unwrap_or(1);
        let profiles_left = customers.len();
        Self {
            rng,
            customers,
            cumulative,
            total_weight,
            clock_ms: start_ms,
            queue: VecDeque::new(),
            profiles_left,
            session_step_ms: session_step_ms(n),
            clock_cap_ms: None,
            declared: Vec::new(),
            own_conversions: None,
        }
    }

    /// Adds the customers' own conversions to the stream: products opened without an offer, at
    /// `truth`'s base rates (see [`super::conversions`]). The other records stay as they were.
    pub fn with_own_conversions(mut self, truth: &super::responder::Truth, seed: u64) -> Self {
        self.own_conversions = Some(super::conversions::OwnConversions::new(
            truth,
            self.customers.len(),
            seed,
            self.clock_ms,
        ));
        self
    }

    /// Never emit an event time past `cap_ms` (the wall clock: the pipeline dead-letters events
    /// from the future). A capped stream is deterministic only up to the cap.
    pub fn cap_clock(&mut self, cap_ms: i64) {
        self.clock_cap_ms = Some(cap_ms);
    }

    /// Adds records of declared sources to the stream: after each session, each source gives
    /// the session's customer one record (drawn from its schema, see [`super::declared`]) with
    /// probability 0.3. With none declared the stream is exactly as before.
    pub fn with_declared(mut self, sources: Vec<std::sync::Arc<crate::catalog::Declared>>) -> Self {
        self.declared = sources;
        self
    }

    /// The customers, for summaries and tests.
    pub fn customers(&self) -> &[Customer] {
        &self.customers
    }

    /// The next event of the stream.
    pub fn next_event(&mut self) -> Event {
        if self.profiles_left > 0 {
            let i = self.customers.len() - self.profiles_left;
            self.profiles_left -= 1;
            return self.profile(i);
        }
        loop {
            if let Some(e) = self.queue.pop_front() {
                return e;
            }
            self.session();
        }
    }

    fn pick_customer(&mut self) -> usize {
        let ticket = self.rng.random_range(0..self.total_weight);
        self.cumulative.partition_point(|&c| c <= ticket)
    }

    fn profile(&mut self, i: usize) -> Event {
        let c = &self.customers[i];
        let stage = match c.persona {
            Persona::Dormant => LifecycleStage::Dormant,
            Persona::Unhappy => LifecycleStage::AtRisk,
            Persona::HighSaver => LifecycleStage::Mature,
            _ => [
                LifecycleStage::New,
                LifecycleStage::Growing,
                LifecycleStage::Mature,
            ][i % 3],
        };
        let mut channels = vec![ContactChannel::Email, ContactChannel::Push];
        if i.is_multiple_of(3) {
            channels.push(ContactChannel::Sms);
        }
        if c.persona == Persona::HighSaver {
            channels.push(ContactChannel::Call);
        }
        Event::Profile(CustomerProfile {
            customer_id: c.id.clone(),
            updated_at: self.clock_ms - 86_400_000,
            lifecycle_stage: stage,
            segment: if c.persona == Persona::HighSaver {
                "AFFLUENT".into()
            } else {
                "MASS".into()
            },
            credit_score: Some(c.credit_score),
            consent_marketing: c.consent_marketing,
            consent_profiling: true,
            contact_channels: channels,
        })
    }

    fn next_id(&mut self, i: usize) -> Text {
        let c = &mut self.customers[i];
        c.seq += 1;
        compact_str::format_compact!("{}-{:06}", c.id, c.seq)
    }

    /// Appends one session of events for one customer, advancing simulated time.
    fn session(&mut self) {
        let i = self.pick_customer();
        let step = self.session_step_ms;
        self.clock_ms += self.rng.random_range(step / 2..=step + step / 2);
        let t0 = match self.clock_cap_ms {
            // Leave room for the session's own spread (up to ~15 minutes).
            Some(cap) => self.clock_ms.min(cap - 1_000_000),
            None => self.clock_ms,
        };
        if let Some(clock) = &mut self.own_conversions {
            clock.take_due(t0, &self.customers, &mut self.queue);
        }
        let persona = self.customers[i].persona;
        let home = self.customers[i].home;
        match persona {
            Persona::CardHeavySpender => {
                let n = self.rng.random_range(1..4);
                for k in 0..n {
                    let amount = self.rng.random_range(4_000..40_000);
                    self.txn(
                        i,
                        t0 + k * 60_000,
                        TxnType::CardPayment,
                        PaymentMethod::DebitCard,
                        amount,
                        home,
                    );
                }
            }
            Persona::HighSaver => {
                let amount = self.rng.random_range(300_000..1_500_000);
                self.txn(
                    i,
                    t0,
                    TxnType::Deposit,
                    PaymentMethod::Account,
                    amount,
                    home,
                );
                if self.rng.random_bool(0.3) {
                    self.click(i, t0 + 20_000, ProductCategory::Wealth);
                }
            }
            Persona::LoanShopper => {
                let n = self.rng.random_range(1..4);
                for k in 0..n {
                    if self.rng.random_bool(0.5) {
                        self.click(i, t0 + k * 30_000, ProductCategory::Loan);
                    } else {
                        self.app(
                            i,
                            t0 + k * 30_000,
                            AppAction::ProductView,
                            Some(ProductCategory::Loan),
                        );
                    }
                }
                let amount = self.rng.random_range(1_000..8_000);
                self.txn(
                    i,
                    t0 + 200_000,
                    TxnType::CardPayment,
                    PaymentMethod::DebitCard,
                    amount,
                    home,
                );
            }
            Persona::Unhappy => {
                if self.rng.random_bool(0.6) {
                    self.feedback(i, t0, FeedbackKind::Complaint);
                }
                let sentiment = -0.9 + self.rng.random_range(0.0..0.5);
                self.social(i, t0 + 10_000, sentiment);
            }
            Persona::FraudVictim => {
                if self.rng.random_bool(0.5) {
                    for k in 0..3 {
                        self.app(i, t0 + k * 5_000, AppAction::LoginFailed, None);
                    }
                }
                for k in 0..10 {
                    let country = *COUNTRIES.choose(&mut self.rng).unwrap_or(&"US");
                    let amount = self.rng.random_range(5_000..90_000);
                    self.txn(
                        i,
                        t0 + 20_000 + k * 90_000,
                        TxnType::CardPayment,
                        PaymentMethod::DebitCard,
                        amount,
                        country,
                    );
                }
            }
            Persona::Dormant => {
                self.app(i, t0, AppAction::Login, None);
            }
            Persona::Ordinary => match self.rng.random_range(0..6) {
                0 | 1 => {
                    let amount = self.rng.random_range(500..9_000);
                    let method = if self.rng.random_bool(0.5) {
                        PaymentMethod::CreditCard
                    } else {
                        PaymentMethod::DebitCard
                    };
                    self.txn(i, t0, TxnType::CardPayment, method, amount, home);
                }
                2 => self.txn(
                    i,
                    t0,
                    TxnType::Salary,
                    PaymentMethod::Account,
                    300_000,
                    home,
                ),
                3 => self.app(i, t0, AppAction::ScreenView, None),
                4 => self.partner(i, t0),
                _ => self.feedback(i, t0, FeedbackKind::Praise),
            },
        }
        for k in 0..self.declared.len() {
            if self.rng.random_bool(0.3) {
                let source = self.declared[k].clone();
                let event_id = self.next_id(i);
                let t = t0 + self.rng.random_range(0..300_000);
                let customer = self.customers[i].id.clone();
                let e = super::declared::record(&mut self.rng, &source, &customer, event_id, t);
                self.queue.push_back(Event::Declared(Box::new(e)));
            }
        }
    }

    fn txn(
        &mut self,
        i: usize,
        t: i64,
        txn_type: TxnType,
        payment_method: PaymentMethod,
        amount: i64,
        country: &str,
    ) {
        let event_id = self.next_id(i);
        let c = &mut self.customers[i];
        let inflow = matches!(
            txn_type,
            TxnType::Deposit | TxnType::Salary | TxnType::TransferIn
        );
        c.balance += if inflow { amount } else { -amount };
        let merchant = (txn_type == TxnType::CardPayment)
            .then(|| Text::from(CATEGORIES[(c.seq as usize) % CATEGORIES.len()]));
        let e = TransactionEvent {
            event_id,
            customer_id: c.id.clone(),
            event_time: t,
            account_id: compact_str::format_compact!("A{}", &c.id[1..]),
            txn_type,
            amount_minor: amount,
            currency: "EUR".into(),
            payment_method,
            merchant_category: merchant,
            channel: if txn_type == TxnType::CardPayment {
                TxnChannel::Pos
            } else {
                TxnChannel::Online
            },
            country: country.into(),
            balance_after_minor: Some(c.balance),
        };
        self.queue.push_back(Event::Transaction(e));
    }

    fn click(&mut self, i: usize, t: i64, category: ProductCategory) {
        let event_id = self.next_id(i);
        let c = &self.customers[i];
        let dwell = self.rng.random_range(2_000..90_000);
        self.queue.push_back(Event::Clickstream(ClickstreamEvent {
            event_id,
            customer_id: c.id.clone(),
            event_time: t,
            session_id: compact_str::format_compact!("S{}-{}", &c.id[1..], t / 3_600_000),
            page_url: compact_str::format_compact!(
                "/products/{}",
                category.as_str().to_ascii_lowercase()
            ),
            action: ClickAction::PageView,
            product_category: Some(category),
            dwell_ms: Some(dwell),
        }));
    }

    fn app(&mut self, i: usize, t: i64, action: AppAction, category: Option<ProductCategory>) {
        let event_id = self.next_id(i);
        let c = &self.customers[i];
        self.queue.push_back(Event::App(AppEvent {
            event_id,
            customer_id: c.id.clone(),
            event_time: t,
            device_id: compact_str::format_compact!("D{}", &c.id[1..]),
            platform: if i.is_multiple_of(2) {
                AppPlatform::Ios
            } else {
                AppPlatform::Android
            },
            app_version: "7.4.1".into(),
            screen: category
                .map(|c| c.as_str().to_ascii_lowercase())
                .unwrap_or_else(|| "home".into())
                .into(),
            action,
            product_category: category,
            latitude: None,
            longitude: None,
        }));
    }

    fn feedback(&mut self, i: usize, t: i64, kind: FeedbackKind) {
        let event_id = self.next_id(i);
        let satisfaction = if kind == FeedbackKind::Complaint {
            1
        } else {
            5
        };
        self.queue.push_back(Event::Feedback(FeedbackEvent {
            event_id,
            customer_id: self.customers[i].id.clone(),
            event_time: t,
            channel: FeedbackChannel::Chat,
            kind,
            product_category: None,
            satisfaction: Some(satisfaction),
        }));
    }

    fn social(&mut self, i: usize, t: i64, sentiment: f64) {
        let event_id = self.next_id(i);
        self.queue.push_back(Event::Social(SocialEvent {
            event_id,
            customer_id: self.customers[i].id.clone(),
            event_time: t,
            platform: "x".into(),
            interaction: SocialInteraction::Post,
            sentiment: sentiment.clamp(-1.0, 1.0),
            topic: Some("service".into()),
            mentions_bank: true,
        }));
    }

    fn partner(&mut self, i: usize, t: i64) {
        let event_id = self.next_id(i);
        let amount = self.rng.random_range(2_000..60_000);
        let category = ["TRAVEL", "CAR", "ELECTRONICS"][self.rng.random_range(0..3)];
        self.queue.push_back(Event::Partner(PartnerEvent {
            event_id,
            customer_id: self.customers[i].id.clone(),
            event_time: t,
            partner: "shop-partner".into(),
            category: category.into(),
            amount_minor: amount,
            currency: "EUR".into(),
        }));
    }

    /// A malformed record for dead-letter exercises: bad magic byte, unknown schema id, truncated
    /// body or random bytes.
    pub fn malformed(&mut self, valid: &[u8]) -> Vec<u8> {
        match self.rng.random_range(0..4) {
            0 => {
                let mut v = valid.to_vec();
                v[0] = 7;
                v
            }
            1 => {
                let mut v = valid.to_vec();
                if v.len() >= 5 {
                    v[1..5].copy_from_slice(&9999u32.to_be_bytes());
                }
                v
            }
            2 => valid[..valid.len().min(5 + valid.len() / 3)].to_vec(),
            _ => (0..self.rng.random_range(1..64))
                .map(|_| self.rng.random())
                .collect(),
        }
    }

    /// A fraction test against the generator's random stream (keeps malformed picks deterministic).
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random_bool(p.min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(seed: u64, n: usize) -> Vec<Event> {
        let mut f = EventFactory::new(200, seed, 1_790_000_000_000);
        (0..n).map(|_| f.next_event()).collect()
    }

    #[test]
    fn same_seed_same_stream_other_seed_other_stream() {
        assert_eq!(stream(5, 3_000), stream(5, 3_000));
        assert_ne!(stream(5, 3_000), stream(6, 3_000));
    }

    #[test]
    fn profiles_come_first_then_every_persona_acts() {
        let events = stream(1, 5_000);
        assert!(events[..200].iter().all(|e| e.kind() == EventKind::Profile));
        // Every activity record type (ALL lists them first, before profile, response, erasure).
        for kind in &EventKind::ALL[..6] {
            assert!(events.iter().any(|e| e.kind() == *kind), "no {kind:?}");
        }
        let f = EventFactory::new(1_000, 1, 0);
        for persona in Persona::ALL {
            assert!(
                f.customers().iter().any(|c| c.persona == persona),
                "no {persona:?}"
            );
        }
    }

    #[test]
    fn event_ids_are_unique() {
        let events = stream(3, 5_000);
        let ids: std::collections::HashSet<_> =
            events.iter().map(|e| e.event_id().into_owned()).collect();
        assert_eq!(ids.len(), events.len());
    }
}
