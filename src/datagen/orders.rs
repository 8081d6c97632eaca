//! Sample data of the orders system (`queries/orders/`), shaped as the Confluent
//! microservices demo writes it: the demo's customers (JSON, keyed by their id as an 8-byte
//! long), warehouse stock (product name → 4-byte int count, restocked now and then), and
//! orders with a payment each (JSON, keyed by order id and payment id).
//!
//! [`OrderGenerator`] is seeded and reproducible apart from the ids' run prefix. Orders mostly
//! pass every check; a few have a negative quantity (order details fails), some customers
//! spend enough within an hour to fail the fraud check, and stock runs out between restocks
//! (inventory fails). Timestamps are the caller's (now, for live data).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// The demo's products.
pub const PRODUCTS: [&str; 3] = ["JUMPERS", "UNDERPANTS", "STOCKINGS"];

/// One record to produce: topic, key bytes, value bytes.
pub type Produced = (&'static str, Vec<u8>, Vec<u8>);

/// The demo's customers table (`microservices-orders/db/customers.table`): id, first name,
/// last name, level.
const CUSTOMERS: [(i64, &str, &str, &str); 9] = [
    (1, "Jay", "Kreps", "platinum"),
    (2, "Neha", "Narkhede", "platinum"),
    (3, "Jun", "Rao", "platinum"),
    (4, "Trisha", "Smith", "bronze"),
    (5, "Monica", "Brown", "gold"),
    (6, "Gaurav", "Night", "silver"),
    (7, "Amanda", "Leeworth", "gold"),
    (8, "Lisa", "Champion", "silver"),
    (9, "Bob", "West", "bronze"),
];

/// Reproducible orders, payments, customers and stock.
#[derive(Debug)]
pub struct OrderGenerator {
    rng: SmallRng,
    prefix: String,
    next: u64,
    /// Stock per product: grows at each restock.
    stock: [i32; 3],
}

impl OrderGenerator {
    /// Orders whose ids start with `prefix` (so runs do not collide on a kept topic).
    pub fn new(seed: u64, prefix: &str) -> Self {
        Self {
            rng: SmallRng::seed_from_u64(seed),
            prefix: prefix.to_string(),
            next: 0,
            stock: [0; 3],
        }
    }

    /// The customers' records.
    pub fn customers(&self) -> Vec<Produced> {
        CUSTOMERS
            .iter()
            .map(|(id, first, last, level)| {
                let value = serde_json::json!({
                    "id": id, "firstName": first, "lastName": last,
                    "email": format!("{}@example.com", first.to_lowercase()),
                    "address": "1 Log Street", "level": level,
                });
                (
                    "customers",
                    id.to_be_bytes().to_vec(),
                    value.to_string().into_bytes(),
                )
            })
            .collect()
    }

    /// Adds stock (20 of each product, STOCKINGS fewer) and returns the new counts' records.
    pub fn restock(&mut self) -> Vec<Produced> {
        for (i, stock) in self.stock.iter_mut().enumerate() {
            *stock += if PRODUCTS[i] == "STOCKINGS" { 8 } else { 20 };
        }
        PRODUCTS
            .iter()
            .zip(self.stock)
            .map(|(p, n)| {
                (
                    "warehouse-inventory",
                    p.as_bytes().to_vec(),
                    n.to_be_bytes().to_vec(),
                )
            })
            .collect()
    }

    /// The next order and its payment.
    pub fn order(&mut self) -> [Produced; 2] {
        self.next += 1;
        let id = format!("{}-{:06}", self.prefix, self.next);
        let customer = CUSTOMERS[self.rng.random_range(0..CUSTOMERS.len())].0;
        let product = PRODUCTS[self.rng.random_range(0..PRODUCTS.len())];
        // One order in 30 is malformed; big spenders appear now and then.
        let quantity: i32 = if self.rng.random_ratio(1, 30) {
            -1
        } else {
            self.rng.random_range(1..=3)
        };
        let price = if self.rng.random_ratio(1, 8) {
            f64::from(self.rng.random_range(400..900u32))
        } else {
            f64::from(self.rng.random_range(500..5_000u32)) / 100.0
        };
        let order = serde_json::json!({
            "id": id, "customerId": customer, "state": "CREATED",
            "product": product, "quantity": quantity, "price": price,
        });
        let payment_id = format!("Payment:{id}");
        let payment = serde_json::json!({
            "id": payment_id, "orderId": id, "ccy": "EUR",
            "amount": f64::from(quantity.max(0)) * price,
        });
        [
            ("orders", id.into_bytes(), order.to_string().into_bytes()),
            (
                "payments",
                payment_id.into_bytes(),
                payment.to_string().into_bytes(),
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_orders() {
        let mut a = OrderGenerator::new(3, "r");
        let mut b = OrderGenerator::new(3, "r");
        for _ in 0..20 {
            assert_eq!(a.order(), b.order());
        }
    }

    #[test]
    fn stock_is_a_four_byte_count_that_grows() {
        let mut g = OrderGenerator::new(3, "r");
        let first = g.restock();
        let second = g.restock();
        assert_eq!(first[0].2, 20i32.to_be_bytes().to_vec());
        assert_eq!(second[0].2, 40i32.to_be_bytes().to_vec());
        assert_eq!(g.customers()[0].1, 1i64.to_be_bytes().to_vec());
    }
}
