//! Where a contact is recorded in the customer's state: an offer made ([`Operator::record_made`])
//! and a control-group member held out of one ([`Operator::record_held`]). One place for the
//! stream's own decisions (`decide`) and for the contacts of inbound decisions
//! ([`Operator::take_contact`]): `nbo-stream api` publishes each as an `InboundContact` on
//! `bank.inbound-contacts.v1`, the stream takes it into the contact history from there, and the
//! API merges the ones the stream has not stored yet from its pending list (`api::contacts`).
//! So the frequency cap, an offer's cooldown, the decline suppression, learning and uplift see
//! one history, whichever side made the contact.

use super::Operator;
use crate::customer::{control_key, Counted, CustomerState, OfferRecord};
use crate::event::{InboundContact, InboundContactKind, ProductCategory};
use crate::learning::uplift::{Group, Tally};

impl Operator {
    /// Records offer `offer_id` of rule `rule_id` (of `product`, at its `configured`
    /// propensity) made at `at` in the contact history. Answers the customer's uplift exposure
    /// to the rule when it is one: the first offer of the rule in the uplift window, with no
    /// control-group exposure in it either (one group per customer and window), which the
    /// record then carries.
    pub(super) fn record_made(
        &self,
        state: &mut CustomerState,
        rule_id: &str,
        product: ProductCategory,
        offer_id: &str,
        at: i64,
        configured: f64,
    ) -> Option<Tally> {
        let window = self.policy.uplift_window_ms;
        let exposed = !state.history.exposed_within(rule_id, at, window)
            && !state
                .shadow
                .exposed_within(&control_key(rule_id), at, window);
        let made = OfferRecord {
            configured,
            counted: if exposed { Counted::EXPOSED } else { 0 },
            ..OfferRecord::new(rule_id.to_string(), product, offer_id.to_string(), at)
        };
        state.history.record_offer(made, &self.retention);
        exposed.then(|| Tally {
            exposure_id: offer_id.to_string(),
            exposed_at: at,
            counted_at: at,
            rule_id: rule_id.to_string(),
            group: Group::Treated,
            converted: false,
        })
    }

    /// A control-group member held out of rule `rule_id`'s offer (of `product`) at `at`: counted
    /// as the rule's control exposure `id` when it is the first in the uplift window, and then
    /// kept in the challengers' history under the rule's [`control_key`], where a product
    /// opened finds it. One group per customer and window: a rotating control group can take
    /// in a customer treated lately, who stays counted as treated.
    pub(super) fn record_held(
        &self,
        state: &mut CustomerState,
        rule_id: &str,
        product: ProductCategory,
        id: &str,
        at: i64,
    ) -> Option<Tally> {
        let key = control_key(rule_id);
        let window = self.policy.uplift_window_ms;
        if state.shadow.exposed_within(&key, at, window)
            || state.history.exposed_within(rule_id, at, window)
        {
            return None;
        }
        let held = OfferRecord {
            counted: Counted::EXPOSED,
            ..OfferRecord::new(key, product, id.to_string(), at)
        };
        state.shadow.record_offer(held, &self.retention);
        Some(Tally {
            exposure_id: id.to_string(),
            exposed_at: at,
            counted_at: at,
            rule_id: rule_id.to_string(),
            group: Group::Control,
            converted: false,
        })
    }

    /// Takes a contact an inbound decision made into the customer's state, as the stream
    /// records its own, and answers the uplift exposure it counts; `None` when it is nothing
    /// new: a contact already held (the API's outbox delivers at least once, and the API merges
    /// contacts the stream may have stored already), or one made before the customer's erasure.
    pub fn take_contact(
        &self,
        state: &mut CustomerState,
        c: &InboundContact,
    ) -> Option<Option<Tally>> {
        if state.erased_before.is_some_and(|t| c.event_time <= t) {
            return None;
        }
        let held = |h: &crate::customer::ContactHistory| {
            h.offers().iter().any(|o| o.offer_id == c.event_id)
        };
        Some(match c.outcome {
            InboundContactKind::Offered if !held(&state.history) => self.record_made(
                state,
                &c.rule_id,
                c.product_category,
                &c.event_id,
                c.event_time,
                c.propensity,
            ),
            InboundContactKind::ControlGroup if !held(&state.shadow) => self.record_held(
                state,
                &c.rule_id,
                c.product_category,
                &c.event_id,
                c.event_time,
            ),
            _ => return None,
        })
    }
}
