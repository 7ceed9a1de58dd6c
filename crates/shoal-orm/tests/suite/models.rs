//! The models every case of the suite uses: a small shop.
//!
//! ```text
//!   users 1──* orders 1──* items          users 1──1 profiles
//!               orders *──* tags (through order_tags)
//!   memberships: composite primary key (org, user_id)
//! ```

use shoal_orm::prelude::*;

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "users", shard_key = "id")]
pub struct User {
    #[model(primary_key, auto_increment)]
    pub id: i64,
    #[model(index)]
    pub name: String,
    pub age: i32,
    #[model(column = "email_address", unique)]
    pub email: Option<String>,
    #[model(default = "TRUE")]
    pub active: bool,
    #[model(has_many(foreign_key = user_id))]
    pub orders: HasMany<Order>,
    #[model(has_one(foreign_key = user_id))]
    pub profile: HasOne<Profile>,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "orders", check(name = "orders_total_nonneg", sql = "total >= 0"))]
pub struct Order {
    #[model(primary_key, auto_increment)]
    pub id: i64,
    #[model(index)]
    pub user_id: i64,
    pub total: i64,
    pub note: Option<String>,
    #[model(belongs_to(foreign_key = user_id, on_delete = "cascade"))]
    pub user: BelongsTo<User>,
    #[model(has_many(foreign_key = order_id))]
    pub items: HasMany<Item>,
    #[model(many_to_many(through = OrderTag, source = order_id, target = tag_id))]
    pub tags: ManyToMany<Tag>,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "items")]
pub struct Item {
    #[model(primary_key, auto_increment)]
    pub id: i64,
    #[model(index)]
    pub order_id: i64,
    #[model(max_length = 100)]
    pub sku: String,
    pub qty: i32,
    pub price: f64,
    #[model(belongs_to(foreign_key = order_id, on_delete = "cascade"))]
    pub order: BelongsTo<Order>,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "tags", reference)]
pub struct Tag {
    #[model(primary_key)]
    pub id: i64,
    #[model(unique, max_length = 50)]
    pub label: String,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "order_tags")]
pub struct OrderTag {
    #[model(primary_key)]
    pub order_id: i64,
    #[model(primary_key)]
    pub tag_id: i64,
    #[model(belongs_to(foreign_key = order_id, on_delete = "cascade"))]
    pub order: BelongsTo<Order>,
    #[model(belongs_to(foreign_key = tag_id))]
    pub tag: BelongsTo<Tag>,
}

#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "profiles")]
pub struct Profile {
    #[model(primary_key, auto_increment)]
    pub id: i64,
    #[model(unique)]
    pub user_id: i64,
    pub bio: Option<String>,
    pub avatar: Option<Vec<u8>>,
}

/// A composite primary key and a NULL-able small integer.
#[derive(Model, Clone, Debug, PartialEq, Default)]
#[model(table = "memberships", index(role, rank))]
pub struct Membership {
    #[model(primary_key, max_length = 100)]
    pub org: String,
    #[model(primary_key)]
    pub user_id: i64,
    #[model(max_length = 100)]
    pub role: String,
    pub rank: Option<i16>,
    pub score: f32,
}

/// Every table of the suite, in an order with references first.
pub fn all_tables() -> Vec<&'static shoal_orm::TableDef> {
    vec![&User::TABLE, &Order::TABLE, &Item::TABLE, &Tag::TABLE, &OrderTag::TABLE, &Profile::TABLE, &Membership::TABLE]
}

pub fn user(name: &str, age: i32) -> User {
    User { name: name.into(), age, active: true, ..Default::default() }
}

pub fn order(user_id: i64, total: i64) -> Order {
    Order { user_id, total, ..Default::default() }
}
