//! Compiled rule conditions agree with the `cel` crate's interpreter, the reference.
//!
//! Random conditions from the supported grammar (event fields of several kinds, features — some
//! without a value —, a profile or none, literals near the data, `&& || ! ?:`, `in`, `has`,
//! arithmetic, conversions, string methods) over random events, feature values and profiles. The
//! reference sees `event`, `features` and `profile` as maps: a null field, a feature without a
//! value or a missing credit score is an absent key, and no profile is an empty map. A reference
//! error or non-boolean result counts as false.
//!
//! A case is drawn from one proptest seed (a ChaCha stream); a failure prints the condition and
//! the data, and the seed to replay it.

use cel::{Context, Program, Value};
use nbo_stream::event::*;
use nbo_stream::features::fields::{self, FieldType, Val};
use nbo_stream::features::{spec, FeatureSet};
use nbo_stream::rules::condition::Condition;
use nbo_stream::state::ProfileState;
use proptest::prelude::*;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::sync::OnceLock;

const KINDS: [EventKind; 6] = [
    EventKind::Transaction,
    EventKind::Clickstream,
    EventKind::App,
    EventKind::Social,
    EventKind::Feedback,
    EventKind::Partner,
];
const DOUBLE_FIELDS: &[&str] = &["sentiment", "latitude", "longitude"];
const STRINGS: &[&str] = &[
    "", "a", "DE", "GB", "EUR", "grocery", "travel", "mass", "Ünï",
];
const INT_DATA: &[i64] = &[0, 1, -1, 2, 99, 100, 101, 1500, 150_000, 1 << 40];
const INT_LITS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "3",
    "99",
    "100",
    "101",
    "1500",
    "150000",
    "9223372036854775807",
    "-9223372036854775807",
];
const DOUBLE_DATA: &[f64] = &[
    0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, 1499.99, 1500.0, 1500.01,
];
const DOUBLE_LITS: &[&str] = &[
    "0.0", "0.5", "-0.5", "1.0", "3.0", "1499.99", "1500.0", "1e300", "-1e300",
];
const UINT_LITS: &[&str] = &["0u", "1u", "3u", "100u", "18446744073709551615u"];
const SEGMENTS: &[&str] = &["mass", "mass_affluent", "premium", ""];

fn features() -> &'static FeatureSet {
    static FS: OnceLock<FeatureSet> = OnceLock::new();
    FS.get_or_init(|| spec::load(None).unwrap_or_else(|e| panic!("starter features: {e}")))
}

/// The static type the generator tracks (as the compiler does).
#[derive(Clone, Copy, PartialEq)]
enum T {
    Int,
    UInt,
    Double,
}

struct Gen {
    rng: ChaCha8Rng,
    kind: EventKind,
}

type Symbols = Option<&'static [&'static str]>;

impl Gen {
    fn pick<'a, X>(&mut self, xs: &'a [X]) -> &'a X {
        xs.choose(&mut self.rng)
            .unwrap_or_else(|| unreachable!("non-empty pool"))
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn fields_where(&self, f: impl Fn(&fields::Field) -> bool) -> Vec<&'static fields::Field> {
        fields::of(self.kind).iter().filter(|x| f(x)).collect()
    }

    fn feature(&mut self) -> String {
        let defs = features().defs();
        let i = self.rng.random_range(0..defs.len());
        format!("features.{}", defs[i].name)
    }

    fn boolean(&mut self, d: u32) -> String {
        let n = if d == 0 { 3 } else { 14 };
        match self.rng.random_range(0..n) {
            0 => {
                let mut leaves = vec!["true".to_string(), "false".to_string()];
                leaves.push("profile.consent_marketing".into());
                leaves.push("profile.consent_profiling".into());
                for f in self.fields_where(|f| matches!(f.ty, FieldType::Bool)) {
                    leaves.push(format!("event.{}", f.name));
                }
                self.pick(&leaves).clone()
            }
            1 => {
                let all: Vec<&str> = fields::of(self.kind).iter().map(|f| f.name).collect();
                match self.rng.random_range(0..3) {
                    0 => format!("has(event.{})", self.pick(&all)),
                    1 => format!("has({})", self.feature()),
                    _ => {
                        let p = [
                            "lifecycle_stage",
                            "segment",
                            "credit_score",
                            "contact_channels",
                        ];
                        format!("has(profile.{})", self.pick(&p))
                    }
                }
            }
            2 => {
                let (a, _) = self.num(d.saturating_sub(1));
                let (b, _) = self.num(d.saturating_sub(1));
                let op = *self.pick(&["==", "!=", "<", "<=", ">", ">="]);
                format!("({a} {op} {b})")
            }
            3 | 4 => {
                let (a, sa) = self.string(d.saturating_sub(1));
                let (b, sb) = self.string(d.saturating_sub(1));
                let (a, b) = (self.fix_symbol(a, sb), self.fix_symbol(b, sa));
                let op = *self.pick(&["==", "!=", "==", "<", ">="]);
                format!("({a} {op} {b})")
            }
            5 | 6 => format!("({} && {})", self.boolean(d - 1), self.boolean(d - 1)),
            7 | 8 => format!("({} || {})", self.boolean(d - 1), self.boolean(d - 1)),
            9 => format!("!{}", self.boolean(d - 1)),
            10 => format!(
                "({} ? {} : {})",
                self.boolean(d - 1),
                self.boolean(d - 1),
                self.boolean(d - 1)
            ),
            11 => self.membership(d - 1),
            12 => {
                let (a, _) = self.string(d - 1);
                let (b, _) = self.string_literal(None);
                let m = *self.pick(&["startsWith", "endsWith", "contains"]);
                format!("{a}.{m}({b})")
            }
            _ => {
                // Equality with null, and of booleans.
                let nullable: Vec<&str> = self
                    .fields_where(|f| f.nullable)
                    .iter()
                    .map(|f| f.name)
                    .collect();
                if !nullable.is_empty() && self.chance(0.5) {
                    let op = *self.pick(&["==", "!="]);
                    format!("(event.{} {op} null)", self.pick(&nullable))
                } else {
                    format!("({} == {})", self.boolean(d - 1), self.boolean(d - 1))
                }
            }
        }
    }

    /// A string literal compared with an enum must be one of its symbols.
    fn fix_symbol(&mut self, text: String, other: Symbols) -> String {
        match other {
            Some(symbols) if text.starts_with('\'') => format!("'{}'", self.pick(symbols)),
            _ => text,
        }
    }

    fn membership(&mut self, d: u32) -> String {
        match self.rng.random_range(0..3) {
            0 => {
                let (x, _) = self.num(d);
                let n = self.rng.random_range(0..4);
                let items: Vec<String> = (0..n)
                    .map(|_| match self.rng.random_range(0..3) {
                        0 => self.pick(INT_LITS).to_string(),
                        1 => self.pick(DOUBLE_LITS).to_string(),
                        _ => self.pick(UINT_LITS).to_string(),
                    })
                    .collect();
                format!("({x} in [{}])", items.join(", "))
            }
            1 => {
                let (x, sx) = self.string(d);
                let n = self.rng.random_range(0..4);
                let items: Vec<String> = (0..n).map(|_| self.string_literal(sx).0).collect();
                format!("({x} in [{}])", items.join(", "))
            }
            _ => {
                let (x, _) = if self.chance(0.7) {
                    self.string_literal(Some(ContactChannel::symbols()))
                } else {
                    self.string(d)
                };
                let x = self.fix_symbol(x, Some(ContactChannel::symbols()));
                format!("({x} in profile.contact_channels)")
            }
        }
    }

    fn string_literal(&mut self, symbols: Symbols) -> (String, Symbols) {
        match symbols {
            Some(s) => (format!("'{}'", self.pick(s)), None),
            None if self.chance(0.3) => {
                (format!("'{}'", self.pick(LifecycleStage::symbols())), None)
            }
            None => (format!("'{}'", self.pick(STRINGS)), None),
        }
    }

    fn string(&mut self, d: u32) -> (String, Symbols) {
        let n = if d == 0 { 3 } else { 4 };
        match self.rng.random_range(0..n) {
            0 => self.string_literal(None),
            1 => {
                let fs = self.fields_where(|f| matches!(f.ty, FieldType::Str | FieldType::Enum(_)));
                let f = *self.pick(&fs);
                let sym = match f.ty {
                    FieldType::Enum(s) => Some(s.get()),
                    _ => None,
                };
                (format!("event.{}", f.name), sym)
            }
            2 => {
                if self.chance(0.5) {
                    ("profile.segment".into(), None)
                } else {
                    (
                        "profile.lifecycle_stage".into(),
                        Some(LifecycleStage::symbols()),
                    )
                }
            }
            _ => {
                let c = self.boolean(d - 1);
                let (a, sa) = self.string(d - 1);
                let (b, sb) = self.string(d - 1);
                let sym = if sa == sb { sa } else { None };
                (format!("({c} ? {a} : {b})"), sym)
            }
        }
    }

    fn num(&mut self, d: u32) -> (String, T) {
        match self.rng.random_range(0..10) {
            0..=3 => (self.int(d), T::Int),
            4..=8 => (self.double(d), T::Double),
            _ => (self.uint(d), T::UInt),
        }
    }

    fn int(&mut self, d: u32) -> String {
        let n = if d == 0 { 3 } else { 7 };
        match self.rng.random_range(0..n) {
            0 => self.pick(INT_LITS).to_string(),
            1 => {
                let fs = self.fields_where(|f| {
                    matches!(f.ty, FieldType::Num) && !DOUBLE_FIELDS.contains(&f.name)
                });
                format!("event.{}", self.pick(&fs).name)
            }
            2 => "profile.credit_score".into(),
            3 => {
                let op = *self.pick(&["+", "-", "*", "/", "%"]);
                format!("({} {op} {})", self.int(d - 1), self.int(d - 1))
            }
            4 => format!("-{}", self.int(d - 1)),
            5 => format!("size({})", self.string(d - 1).0),
            _ => format!("int({})", self.num(d - 1).0),
        }
    }

    fn double(&mut self, d: u32) -> String {
        let n = if d == 0 { 3 } else { 7 };
        match self.rng.random_range(0..n) {
            0 => self.pick(DOUBLE_LITS).to_string(),
            1 | 2 => {
                let fs = self.fields_where(|f| DOUBLE_FIELDS.contains(&f.name));
                if fs.is_empty() || self.chance(0.6) {
                    self.feature()
                } else {
                    format!("event.{}", self.pick(&fs).name)
                }
            }
            3 | 4 => {
                let op = *self.pick(&["+", "-", "*", "/"]);
                format!("({} {op} {})", self.double(d - 1), self.double(d - 1))
            }
            5 => format!("-{}", self.double(d - 1)),
            _ => format!("double({})", self.num(d - 1).0),
        }
    }

    fn uint(&mut self, d: u32) -> String {
        if d == 0 || self.chance(0.6) {
            self.pick(UINT_LITS).to_string()
        } else {
            let op = *self.pick(&["+", "-", "*", "/", "%"]);
            format!("({} {op} {})", self.uint(d - 1), self.uint(d - 1))
        }
    }

    // ---- data ----

    fn text(&mut self) -> Text {
        Text::from(*self.pick(STRINGS))
    }

    fn int_value(&mut self) -> i64 {
        if self.chance(0.8) {
            *self.pick(INT_DATA)
        } else {
            self.rng.random_range(-2000..200_000)
        }
    }

    fn double_value(&mut self) -> f64 {
        match self.rng.random_range(0..20) {
            0 => f64::NAN,
            1..=14 => *self.pick(DOUBLE_DATA),
            _ => self.rng.random_range(-2000.0..2000.0),
        }
    }

    fn opt<X>(&mut self, f: impl FnOnce(&mut Self) -> X) -> Option<X> {
        if self.chance(0.25) {
            None
        } else {
            Some(f(self))
        }
    }

    fn sym<E: Copy>(&mut self, all: &[E]) -> E {
        *self.pick(all)
    }

    fn event(&mut self, kind: EventKind) -> Event {
        let event_time = 1_790_000_000_000 + self.rng.random_range(0..1_000_000);
        let (event_id, customer_id) = (self.text(), self.text());
        match kind {
            EventKind::Transaction => Event::Transaction(TransactionEvent {
                event_id,
                customer_id,
                event_time,
                account_id: self.text(),
                txn_type: self.sym(TxnType::ALL),
                amount_minor: self.int_value(),
                currency: self.text(),
                payment_method: self.sym(PaymentMethod::ALL),
                merchant_category: self.opt(Self::text),
                channel: self.sym(TxnChannel::ALL),
                country: self.text(),
                balance_after_minor: self.opt(Self::int_value),
            }),
            EventKind::Clickstream => Event::Clickstream(ClickstreamEvent {
                event_id,
                customer_id,
                event_time,
                session_id: self.text(),
                page_url: self.text(),
                action: self.sym(ClickAction::ALL),
                product_category: self.opt(|g| g.sym(ProductCategory::ALL)),
                dwell_ms: self.opt(Self::int_value),
            }),
            EventKind::App => Event::App(AppEvent {
                event_id,
                customer_id,
                event_time,
                device_id: self.text(),
                platform: self.sym(AppPlatform::ALL),
                app_version: self.text(),
                screen: self.text(),
                action: self.sym(AppAction::ALL),
                product_category: self.opt(|g| g.sym(ProductCategory::ALL)),
                latitude: self.opt(Self::double_value),
                longitude: self.opt(Self::double_value),
            }),
            EventKind::Social => Event::Social(SocialEvent {
                event_id,
                customer_id,
                event_time,
                platform: self.text(),
                interaction: self.sym(SocialInteraction::ALL),
                sentiment: self.double_value(),
                topic: self.opt(Self::text),
                mentions_bank: self.chance(0.5),
            }),
            EventKind::Feedback => Event::Feedback(FeedbackEvent {
                event_id,
                customer_id,
                event_time,
                channel: self.sym(FeedbackChannel::ALL),
                kind: self.sym(FeedbackKind::ALL),
                product_category: self.opt(|g| g.sym(ProductCategory::ALL)),
                satisfaction: self.opt(|g| g.rng.random_range(0..7)),
            }),
            _ => Event::Partner(PartnerEvent {
                event_id,
                customer_id,
                event_time,
                partner: self.text(),
                category: self.text(),
                amount_minor: self.int_value(),
                currency: self.text(),
            }),
        }
    }

    fn profile(&mut self) -> Option<ProfileState> {
        if self.chance(0.3) {
            return None;
        }
        let channels = ContactChannel::ALL
            .iter()
            .copied()
            .filter(|_| self.chance(0.4))
            .collect();
        Some(ProfileState {
            updated_at: 0,
            lifecycle_stage: self.sym(LifecycleStage::ALL),
            segment: self.pick(SEGMENTS).to_string(),
            credit_score: self.opt(|g| *g.pick(&[300, 600, 601, 850])),
            consent_marketing: self.chance(0.5),
            consent_profiling: self.chance(0.5),
            contact_channels: channels,
        })
    }

    fn feature_values(&mut self) -> Vec<Option<f64>> {
        (0..features().defs().len())
            .map(|_| self.opt(Self::double_value))
            .collect()
    }
}

/// One generated case.
#[derive(Debug)]
struct Case {
    source: String,
    triggers: Vec<EventKind>,
    event: Event,
    profile: Option<ProfileState>,
    features: Vec<Option<f64>>,
}

fn case(seed: u64) -> Case {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let kind = KINDS[rng.random_range(0..KINDS.len())];
    let mut g = Gen { rng, kind };
    let depth = g.rng.random_range(1..5);
    let source = g.boolean(depth);
    // Every kind the condition also compiles for triggers it too.
    let mut triggers = vec![kind];
    for k in KINDS {
        if k != kind && Condition::compile(&source, &[k], features()).is_ok() {
            triggers.push(k);
        }
    }
    let event_kind = triggers[g.rng.random_range(0..triggers.len())];
    Case {
        event: g.event(event_kind),
        profile: g.profile(),
        features: g.feature_values(),
        source,
        triggers,
    }
}

fn event_map(event: &Event) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    for f in fields::of(event.kind()) {
        let v = match f.get.read(event) {
            Val::Null => continue,
            Val::Bool(b) => Value::Bool(b),
            Val::Str(s) | Val::Sym(s) => Value::String(s.to_string().into()),
            Val::Num(n) if DOUBLE_FIELDS.contains(&f.name) => Value::Float(n),
            Val::Num(n) => Value::Int(n as i64),
        };
        m.insert(f.name.to_string(), v);
    }
    m
}

fn profile_map(p: Option<&ProfileState>) -> HashMap<String, Value> {
    let mut m = HashMap::new();
    if let Some(p) = p {
        m.insert(
            "lifecycle_stage".into(),
            Value::String(p.lifecycle_stage.as_str().to_string().into()),
        );
        m.insert("segment".into(), Value::String(p.segment.clone().into()));
        if let Some(s) = p.credit_score {
            m.insert("credit_score".into(), Value::Int(i64::from(s)));
        }
        m.insert("consent_marketing".into(), Value::Bool(p.consent_marketing));
        m.insert("consent_profiling".into(), Value::Bool(p.consent_profiling));
        let channels: Vec<Value> = p
            .contact_channels
            .iter()
            .map(|c| Value::String(c.as_str().to_string().into()))
            .collect();
        m.insert("contact_channels".into(), Value::List(channels.into()));
    }
    m
}

/// The reference result: `None` for an error, else the value.
fn reference(c: &Case) -> Result<Value, String> {
    let program = Program::compile(&c.source).map_err(|e| format!("reference parse: {e}"))?;
    let mut ctx = Context::default();
    ctx.add_variable_from_value("event", event_map(&c.event));
    let feats: HashMap<String, Value> = features()
        .defs()
        .iter()
        .zip(&c.features)
        .filter_map(|(d, v)| v.map(|v| (d.name.to_string(), Value::Float(v))))
        .collect();
    ctx.add_variable_from_value("features", feats);
    ctx.add_variable_from_value("profile", profile_map(c.profile.as_ref()));
    program.execute(&ctx).map_err(|e| e.to_string())
}

fn compiled(c: &Case) -> bool {
    let cond = Condition::compile(&c.source, &c.triggers, features())
        .unwrap_or_else(|e| panic!("generated condition does not compile: {e}\n{}", c.source));
    cond.eval(&c.event, c.profile.as_ref(), &mut |slot| c.features[slot])
}

fn check(seed: u64) -> Result<Value, String> {
    let c = case(seed);
    let want = reference(&c);
    let got = compiled(&c);
    assert_eq!(
        got,
        want == Ok(Value::Bool(true)),
        "seed {seed}\ncondition: {}\nreference: {want:?}\ncase: {c:#?}",
        c.source
    );
    want
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn compiled_conditions_agree_with_the_cel_interpreter(seed in any::<u64>()) {
        let _ = check(seed);
    }
}

/// The generated cases are not trivial: each outcome (true, false, error) is common, and
/// conditions trigger on several kinds.
#[test]
fn generated_cases_cover_every_outcome() {
    let (mut t, mut f, mut e, mut multi) = (0, 0, 0, 0);
    for seed in 0..1000 {
        match check(seed) {
            Ok(Value::Bool(true)) => t += 1,
            Ok(Value::Bool(false)) => f += 1,
            _ => e += 1,
        }
        if case(seed).triggers.len() > 1 {
            multi += 1;
        }
    }
    eprintln!("true {t}, false {f}, error {e}, several triggers {multi}");
    assert!(
        t > 150 && f > 150 && e > 150 && multi > 100,
        "true {t}, false {f}, error {e}, several triggers {multi}"
    );
}

/// Prints a few generated cases: `cargo test --test condition_reference show_samples -- --ignored --nocapture`.
#[test]
#[ignore]
fn show_samples() {
    for seed in 0..12 {
        let c = case(seed);
        eprintln!(
            "{:?} {:?}\n  {}\n  => {:?}",
            c.triggers,
            c.event.kind(),
            c.source,
            reference(&c)
        );
    }
}
