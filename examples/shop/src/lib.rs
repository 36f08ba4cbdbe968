//! The classic e-commerce exercise as a running system on Herald's event SDK.
//!
//! ```text
//! order ──OrderPlaced──▶ payment ──PaymentReceived──▶ inventory ──StockReserved──▶ shipping ──ItemShipped
//!   ▲                      │ PaymentFailed               │ OutOfStock
//!   └──── OrderCancelled ◀─┴─────────────────────────────┘   (order service compensates)
//! notification and analytics listen to everything, each in its own group.
//! ```
//! Some orders fail on purpose: declined cards (PaymentFailed), a flaky
//! payment gateway (retried through retry topics), a gateway that always
//! breaks (dead-letter topic), and scarce stock (OutOfStock).

pub mod events;
pub mod services;

pub use services::{
    Analytics, ShopOptions, ShopReport, create_topics, make_order, payment_service_quiet,
    replay_analytics, run_shop,
};
