//! `sqlx::migrate!` embeds `../migrations` at compile time, but cargo does not know the macro read that
//! directory: without this, a new migration file leaves every binary with the old set embedded until
//! something else in this crate changes.

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
}
