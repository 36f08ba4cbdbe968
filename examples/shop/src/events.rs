//! The shop's events: facts, named in the past tense.

use herald_events::Event;
use serde::{Deserialize, Serialize};

pub const ORDERS: &str = "shop.orders";
pub const PAYMENTS: &str = "shop.payments";
pub const INVENTORY: &str = "shop.inventory";
pub const SHIPPING: &str = "shop.shipping";
pub const ALL_TOPICS: [&str; 4] = [ORDERS, PAYMENTS, INVENTORY, SHIPPING];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
    pub price_cents: u64,
}

macro_rules! event {
    ($name:ident, $topic:expr, { $($field:ident : $ty:ty),* $(,)? }) => {
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        pub struct $name { pub order_id: String, $(pub $field: $ty),* }
        impl Event for $name {
            const EVENT_TYPE: &'static str = stringify!($name);
            const TOPIC: &'static str = $topic;
            fn key(&self) -> String { self.order_id.clone() }
        }
    };
}

event!(OrderPlaced, ORDERS, { customer: String, items: Vec<Item>, total_cents: u64 });
event!(OrderCancelled, ORDERS, { reason: String });
event!(PaymentReceived, PAYMENTS, { amount_cents: u64, items: Vec<Item> });
event!(PaymentFailed, PAYMENTS, { reason: String });
event!(StockReserved, INVENTORY, { items: Vec<Item> });
event!(OutOfStock, INVENTORY, { sku: String });
event!(ItemShipped, SHIPPING, { carrier: String, tracking: String });
