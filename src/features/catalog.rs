//! The built-in feature set: what the first rules stand on. Amounts are in major units
//! (`amount_minor / 100`); counts are event counts.

use super::{Aggregation, FeatureDef};
use crate::event::{
    AppAction, ClickAction, Event, EventKind, FeedbackKind, PaymentMethod, ProductCategory, TxnType,
};
use std::time::Duration;

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

fn any(_: &Event) -> bool {
    true
}
fn one(_: &Event) -> f64 {
    1.0
}
fn major_amount(e: &Event) -> f64 {
    match e {
        Event::Transaction(t) => t.amount_minor as f64 / 100.0,
        Event::Partner(p) => p.amount_minor as f64 / 100.0,
        _ => 0.0,
    }
}
fn is_outflow(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if matches!(t.txn_type, TxnType::CardPayment | TxnType::TransferOut | TxnType::Withdrawal))
}
fn is_card_payment(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if t.txn_type == TxnType::CardPayment)
}
fn is_debit_card_payment(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if t.txn_type == TxnType::CardPayment && t.payment_method == PaymentMethod::DebitCard)
}
fn is_credit_card_use(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if t.payment_method == PaymentMethod::CreditCard)
}
fn is_inflow(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if matches!(t.txn_type, TxnType::Deposit | TxnType::Salary | TxnType::TransferIn))
}
fn has_balance(e: &Event) -> bool {
    matches!(e, Event::Transaction(t) if t.balance_after_minor.is_some())
}
fn balance(e: &Event) -> f64 {
    match e {
        Event::Transaction(t) => t.balance_after_minor.unwrap_or(0) as f64 / 100.0,
        _ => 0.0,
    }
}
/// A country code as a number (two ASCII letters), so distinct counts need no hashing.
fn country_code(e: &Event) -> f64 {
    match e {
        Event::Transaction(t) => t
            .country
            .bytes()
            .fold(0u32, |acc, b| acc * 256 + u32::from(b)) as f64,
        _ => 0.0,
    }
}
fn is_loan_view(e: &Event) -> bool {
    match e {
        Event::Clickstream(c) => {
            c.product_category == Some(ProductCategory::Loan) && c.action == ClickAction::PageView
        }
        Event::App(a) => {
            a.product_category == Some(ProductCategory::Loan)
                && matches!(
                    a.action,
                    AppAction::ProductView | AppAction::ScreenView | AppAction::ApplyStart
                )
        }
        _ => false,
    }
}
fn is_complaint(e: &Event) -> bool {
    matches!(e, Event::Feedback(f) if f.kind == FeedbackKind::Complaint)
}
fn is_failed_login(e: &Event) -> bool {
    matches!(e, Event::App(a) if a.action == AppAction::LoginFailed)
}
fn is_negative_social(e: &Event) -> bool {
    matches!(e, Event::Social(s) if s.sentiment <= -0.3)
}

macro_rules! feature {
    ($name:literal, [$($source:ident),+], $filter:expr, $value:expr, $agg:ident, $window:expr) => {
        FeatureDef {
            name: $name,
            sources: &[$(EventKind::$source),+],
            filter: $filter,
            value: $value,
            aggregation: Aggregation::$agg,
            window_ms: $window,
        }
    };
}

/// The built-in features, in the order the operator keeps them.
pub fn builtin() -> Vec<FeatureDef> {
    vec![
        feature!("txn_count_24h", [Transaction], any, one, Count, DAY),
        feature!(
            "spend_24h",
            [Transaction],
            is_outflow,
            major_amount,
            Sum,
            DAY
        ),
        feature!(
            "card_spend_30d",
            [Transaction],
            is_card_payment,
            major_amount,
            Sum,
            30 * DAY
        ),
        feature!(
            "debit_card_spend_30d",
            [Transaction],
            is_debit_card_payment,
            major_amount,
            Sum,
            30 * DAY
        ),
        feature!(
            "credit_card_txn_count_30d",
            [Transaction],
            is_credit_card_use,
            one,
            Count,
            30 * DAY
        ),
        feature!(
            "deposits_30d",
            [Transaction],
            is_inflow,
            major_amount,
            Sum,
            30 * DAY
        ),
        feature!(
            "max_balance_30d",
            [Transaction],
            has_balance,
            balance,
            Max,
            30 * DAY
        ),
        feature!(
            "max_txn_amount_30d",
            [Transaction],
            is_outflow,
            major_amount,
            Max,
            30 * DAY
        ),
        feature!(
            "card_txn_count_1h",
            [Transaction],
            is_card_payment,
            one,
            Count,
            HOUR
        ),
        feature!(
            "countries_24h",
            [Transaction],
            is_card_payment,
            country_code,
            DistinctCount,
            DAY
        ),
        feature!(
            "loan_views_7d",
            [Clickstream, App],
            is_loan_view,
            one,
            Count,
            7 * DAY
        ),
        feature!(
            "complaints_30d",
            [Feedback],
            is_complaint,
            one,
            Count,
            30 * DAY
        ),
        feature!("failed_logins_1h", [App], is_failed_login, one, Count, HOUR),
        feature!(
            "negative_social_7d",
            [Social],
            is_negative_social,
            one,
            Count,
            7 * DAY
        ),
        feature!(
            "partner_spend_30d",
            [Partner],
            any,
            major_amount,
            Sum,
            30 * DAY
        ),
    ]
}

/// The longest window of the built-in features (bounds state TTL and lateness).
pub fn longest_window() -> Duration {
    let ms = builtin().iter().map(|f| f.window_ms).max().unwrap_or(DAY);
    Duration::from_millis(ms as u64)
}
