//! The compiled form of a condition and its evaluation: a tree of typed nodes whose reads are
//! resolved (accessor, feature slot, profile field), evaluated with values borrowed from the event,
//! the profile and the tree — no lookups, hashing or allocation per event.
//!
//! Errors follow the `cel` crate's interpreter (0.15), the reference: an error is a value that
//! `&&`/`||` absorb when the other side decides (`false && error` is false, `error || true` is
//! true), and that anything else propagates.

use super::roots::{EventRead, ProfileField};
use crate::catalog::field::Val;
use crate::customer::ProfileState;
use crate::event::Event;
use std::cmp::Ordering;

/// A CEL evaluation error (missing value, overflow, division by zero, ...): which one does not
/// matter, since any error makes the condition false.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fail;

/// A value during evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum V<'a> {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    Null,
}

/// A literal of the source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Box<str>),
    Null,
}

impl Lit {
    fn val(&self) -> V<'_> {
        match self {
            Lit::Bool(b) => V::Bool(*b),
            Lit::Int(i) => V::Int(*i),
            Lit::UInt(u) => V::UInt(*u),
            Lit::Double(d) => V::Double(*d),
            Lit::Str(s) => V::Str(s),
            Lit::Null => V::Null,
        }
    }
}

/// An ordering comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rel {
    Lt,
    Le,
    Gt,
    Ge,
}

/// A comparison of a feature with a number literal, the commonest term of a condition, in one
/// node (see [`Node::FeatureCmp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Rel(Rel),
}

/// An arithmetic operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arith {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

/// A string predicate method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrTest {
    StartsWith,
    EndsWith,
    Contains,
}

/// A compiled expression. Types were checked when it was built, so e.g. the operands of `And`
/// always produce booleans or errors.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Lit(Lit),
    Event(EventRead),
    /// Feature value by slot (a double).
    Feature(usize),
    Profile(ProfileField),
    HasEvent(EventRead),
    HasFeature(usize),
    /// `features.x` of a text feature (`last` of a string or enum field).
    FeatureText(usize),
    HasFeatureText(usize),
    HasProfile(ProfileField),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    Rel(Rel, Box<Node>, Box<Node>),
    /// `features.x <cmp> literal`, with the literal as a double: what `Eq`/`Ne`/`Rel` of a
    /// feature and an int, uint or double literal compute (the reference converts the literal to
    /// double too), without the tree walk.
    FeatureCmp(usize, Cmp, f64),
    Arith(Arith, Box<Node>, Box<Node>),
    Neg(Box<Node>),
    InList(Box<Node>, Box<[Lit]>),
    InChannels(Box<Node>),
    Size(Box<Node>),
    StrTest(StrTest, Box<Node>, Box<Node>),
    ToDouble(Box<Node>),
    ToInt(Box<Node>),
}

/// What one evaluation reads.
pub(crate) struct Env<'a, 'f> {
    pub event: &'a Event,
    pub profile: Option<&'a ProfileState>,
    pub feature: &'f mut dyn FnMut(usize) -> Option<f64>,
    pub text: &'f mut dyn FnMut(usize) -> Option<&'a str>,
}

impl Node {
    /// Evaluates a boolean node.
    pub(crate) fn eval_bool<'a>(&'a self, env: &mut Env<'a, '_>) -> Result<bool, Fail> {
        match self.eval(env)? {
            V::Bool(b) => Ok(b),
            _ => Err(Fail),
        }
    }

    /// Evaluates the node.
    pub(crate) fn eval<'a>(&'a self, env: &mut Env<'a, '_>) -> Result<V<'a>, Fail> {
        Ok(match self {
            Node::Lit(l) => l.val(),
            Node::Event(read) => read_event(*read, env.event)?,
            Node::Feature(slot) => V::Double((env.feature)(*slot).ok_or(Fail)?),
            Node::Profile(field) => read_profile(*field, env.profile)?,
            Node::HasEvent(read) => V::Bool(read_event(*read, env.event).is_ok()),
            Node::HasFeature(slot) => V::Bool((env.feature)(*slot).is_some()),
            Node::FeatureText(slot) => V::Str((env.text)(*slot).ok_or(Fail)?),
            Node::HasFeatureText(slot) => V::Bool((env.text)(*slot).is_some()),
            Node::HasProfile(field) => V::Bool(env.profile.is_some_and(|p| field.present(p))),
            Node::Not(a) => V::Bool(!a.eval_bool(env)?),
            // As the reference: the left side decides alone when it can; otherwise the right side
            // is evaluated and its error wins, and a left error is absorbed only by a deciding
            // right side.
            Node::And(a, b) => {
                let left = a.eval_bool(env);
                if left == Ok(false) {
                    return Ok(V::Bool(false));
                }
                match (left, b.eval_bool(env)?) {
                    (Ok(true), right) => V::Bool(right),
                    (_, false) => V::Bool(false),
                    _ => return Err(Fail),
                }
            }
            Node::Or(a, b) => {
                let left = a.eval_bool(env);
                if left == Ok(true) {
                    return Ok(V::Bool(true));
                }
                match (left, b.eval_bool(env)?) {
                    (Ok(false), right) => V::Bool(right),
                    (_, true) => V::Bool(true),
                    _ => return Err(Fail),
                }
            }
            Node::Cond(c, a, b) => {
                if c.eval_bool(env)? {
                    a.eval(env)?
                } else {
                    b.eval(env)?
                }
            }
            Node::Eq(a, b) => V::Bool(equal(a.eval(env)?, b.eval(env)?)),
            Node::Ne(a, b) => V::Bool(!equal(a.eval(env)?, b.eval(env)?)),
            Node::Rel(rel, a, b) => {
                let ord = compare(a.eval(env)?, b.eval(env)?)?;
                V::Bool(match rel {
                    Rel::Lt => ord == Ordering::Less,
                    Rel::Le => ord != Ordering::Greater,
                    Rel::Gt => ord == Ordering::Greater,
                    Rel::Ge => ord != Ordering::Less,
                })
            }
            Node::FeatureCmp(slot, cmp, lit) => {
                let x = (env.feature)(*slot).ok_or(Fail)?;
                V::Bool(match cmp {
                    Cmp::Eq => x == *lit,
                    Cmp::Ne => x != *lit,
                    Cmp::Rel(rel) => {
                        let ord = x.partial_cmp(lit).ok_or(Fail)?;
                        match rel {
                            Rel::Lt => ord == Ordering::Less,
                            Rel::Le => ord != Ordering::Greater,
                            Rel::Gt => ord == Ordering::Greater,
                            Rel::Ge => ord != Ordering::Less,
                        }
                    }
                })
            }
            Node::Arith(op, a, b) => arith(*op, a.eval(env)?, b.eval(env)?)?,
            Node::Neg(a) => match a.eval(env)? {
                V::Int(i) => V::Int(i.checked_neg().ok_or(Fail)?),
                V::Double(d) => V::Double(-d),
                _ => return Err(Fail),
            },
            Node::InList(a, list) => {
                let x = a.eval(env)?;
                V::Bool(list.iter().any(|l| equal(l.val(), x)))
            }
            Node::InChannels(a) => {
                let x = a.eval(env)?;
                let profile = env.profile.ok_or(Fail)?;
                V::Bool(
                    profile
                        .contact_channels
                        .iter()
                        .any(|c| equal(V::Str(c.as_str()), x)),
                )
            }
            Node::Size(a) => match a.eval(env)? {
                V::Str(s) => V::Int(i64::try_from(s.chars().count()).map_err(|_| Fail)?),
                _ => return Err(Fail),
            },
            Node::StrTest(test, a, b) => match (a.eval(env)?, b.eval(env)?) {
                (V::Str(s), V::Str(t)) => V::Bool(match test {
                    StrTest::StartsWith => s.starts_with(t),
                    StrTest::EndsWith => s.ends_with(t),
                    StrTest::Contains => s.contains(t),
                }),
                _ => return Err(Fail),
            },
            Node::ToDouble(a) => match a.eval(env)? {
                V::Int(i) => V::Double(i as f64),
                V::UInt(u) => V::Double(u as f64),
                V::Double(d) => V::Double(d),
                _ => return Err(Fail),
            },
            Node::ToInt(a) => match a.eval(env)? {
                V::Int(i) => V::Int(i),
                V::UInt(u) => V::Int(i64::try_from(u).map_err(|_| Fail)?),
                // (i64::MIN, i64::MAX) exclusive, as the reference; NaN and infinities fail.
                V::Double(d) if d > i64::MIN as f64 && d < i64::MAX as f64 => V::Int(d as i64),
                _ => return Err(Fail),
            },
        })
    }
}

/// `features.x <cmp> number literal` (either way round) as one [`Node::FeatureCmp`].
pub(crate) fn feature_cmp(a: &Node, b: &Node, cmp: Cmp) -> Option<Node> {
    let number = |n: &Node| match n {
        Node::Lit(Lit::Int(i)) => Some(*i as f64),
        Node::Lit(Lit::UInt(u)) => Some(*u as f64),
        Node::Lit(Lit::Double(d)) => Some(*d),
        _ => None,
    };
    match (a, b) {
        (Node::Feature(slot), lit) => Some(Node::FeatureCmp(*slot, cmp, number(lit)?)),
        (lit, Node::Feature(slot)) => {
            let flipped = match cmp {
                Cmp::Rel(Rel::Lt) => Cmp::Rel(Rel::Gt),
                Cmp::Rel(Rel::Le) => Cmp::Rel(Rel::Ge),
                Cmp::Rel(Rel::Gt) => Cmp::Rel(Rel::Lt),
                Cmp::Rel(Rel::Ge) => Cmp::Rel(Rel::Le),
                same => same,
            };
            Some(Node::FeatureCmp(*slot, flipped, number(lit)?))
        }
        _ => None,
    }
}

/// Reads an event field; a null field is an error (the reference sees an absent key).
fn read_event(read: EventRead, event: &Event) -> Result<V<'_>, Fail> {
    match read {
        EventRead::Int(get) => get(event).map(V::Int).ok_or(Fail),
        EventRead::SlotInt(get) => get.int(event).map(V::Int).ok_or(Fail),
        EventRead::Field(get) => match get.read(event) {
            Val::Null => Err(Fail),
            Val::Bool(b) => Ok(V::Bool(b)),
            Val::Num(n) => Ok(V::Double(n)),
            Val::Str(s) => Ok(V::Str(s)),
            Val::Sym(s) => Ok(V::Str(s)),
        },
    }
}

/// Reads a profile field; no profile, or no credit score, is an error.
fn read_profile(field: ProfileField, profile: Option<&ProfileState>) -> Result<V<'_>, Fail> {
    let p = profile.ok_or(Fail)?;
    Ok(match field {
        ProfileField::LifecycleStage => V::Str(p.lifecycle_stage.as_str()),
        ProfileField::Segment => V::Str(&p.segment),
        ProfileField::CreditScore => V::Int(i64::from(p.credit_score.ok_or(Fail)?)),
        ProfileField::ConsentMarketing => V::Bool(p.consent_marketing),
        ProfileField::ConsentProfiling => V::Bool(p.consent_profiling),
        // Compilation admits the channel list only on the right of `in`.
        ProfileField::ContactChannels => return Err(Fail),
    })
}

/// CEL ordering, with numbers compared across int, uint and double as the reference does
/// (an int or uint against a double is converted to double; NaN is not comparable).
pub(crate) fn compare(a: V<'_>, b: V<'_>) -> Result<Ordering, Fail> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => Ok(x.cmp(&y)),
        (V::UInt(x), V::UInt(y)) => Ok(x.cmp(&y)),
        (V::Int(x), V::UInt(y)) => Ok(u64::try_from(x).map_or(Ordering::Less, |x| x.cmp(&y))),
        (V::UInt(x), V::Int(y)) => Ok(i64::try_from(x).map_or(Ordering::Greater, |x| x.cmp(&y))),
        (V::Double(x), V::Double(y)) => x.partial_cmp(&y).ok_or(Fail),
        (V::Double(x), V::Int(y)) => x.partial_cmp(&(y as f64)).ok_or(Fail),
        (V::Double(x), V::UInt(y)) => x.partial_cmp(&(y as f64)).ok_or(Fail),
        (V::Int(x), V::Double(y)) => (x as f64).partial_cmp(&y).ok_or(Fail),
        (V::UInt(x), V::Double(y)) => (x as f64).partial_cmp(&y).ok_or(Fail),
        (V::Str(x), V::Str(y)) => Ok(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Ok(x.cmp(&y)),
        _ => Err(Fail),
    }
}

/// CEL equality: numbers equal across types when they compare equal; values of different kinds
/// are unequal (not an error); `null` equals only `null`.
pub(crate) fn equal(a: V<'_>, b: V<'_>) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Null, _) | (_, V::Null) => false,
        _ => compare(a, b) == Ok(Ordering::Equal),
    }
}

/// Arithmetic on two numbers of the same type (checked for int and uint, IEEE for double).
fn arith<'a>(op: Arith, a: V<'a>, b: V<'a>) -> Result<V<'a>, Fail> {
    match (a, b) {
        (V::Int(x), V::Int(y)) => match op {
            Arith::Add => x.checked_add(y),
            Arith::Sub => x.checked_sub(y),
            Arith::Mul => x.checked_mul(y),
            Arith::Div => x.checked_div(y),
            Arith::Rem => x.checked_rem(y),
        }
        .map(V::Int)
        .ok_or(Fail),
        (V::UInt(x), V::UInt(y)) => match op {
            Arith::Add => x.checked_add(y),
            Arith::Sub => x.checked_sub(y),
            Arith::Mul => x.checked_mul(y),
            Arith::Div => x.checked_div(y),
            Arith::Rem => x.checked_rem(y),
        }
        .map(V::UInt)
        .ok_or(Fail),
        (V::Double(x), V::Double(y)) => match op {
            Arith::Add => Ok(V::Double(x + y)),
            Arith::Sub => Ok(V::Double(x - y)),
            Arith::Mul => Ok(V::Double(x * y)),
            Arith::Div => Ok(V::Double(x / y)),
            Arith::Rem => Err(Fail),
        },
        _ => Err(Fail),
    }
}
