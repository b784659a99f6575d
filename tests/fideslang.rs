//! The built-in categories' fideslang keys against fideslang 3.1.4's default taxonomy.
//!
//! Owns the check that every key `Category::fideslang_key` claims exists in the taxonomy, that
//! the keys once loose (`payment`, `profile`, `cookie`, `usage`) are the fitting ones, and that
//! the categories without a key are exactly those the taxonomy has nothing for. The taxonomy's
//! keys are read from `tests/data/fideslang-3.1.4-data-categories.txt`, made by hand with
//! `tests/data/fideslang-keys.py` (its header says how); no Python is needed here.

use std::collections::BTreeSet;

use pdvault::Category;

const LIST: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/fideslang-3.1.4-data-categories.txt"
);

/// The taxonomy's data-category keys, in file order.
fn taxonomy() -> Vec<String> {
    let text = std::fs::read_to_string(LIST).unwrap_or_else(|e| panic!("{LIST}: {e}"));
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

/// Every built-in category's name and the key it should claim. A change here is a change of the
/// export format's `fideslang` field: make it on purpose, with the taxonomy at hand.
const EXPECTED: &[(&str, Option<&str>)] = &[
    ("account", Some("user.account")),
    ("profile", Some("user.demographic.profile")),
    ("contact", Some("user.contact")),
    ("usage", Some("user.behavior")),
    ("technical", Some("user.device")),
    ("access-log", Some("user.device.ip_address")),
    ("communication", Some("user.content.private")),
    ("transaction", Some("user.behavior.purchase_history")),
    ("payment", Some("user.payment")),
    ("preference", Some("user.privacy_preferences")),
    // Contract and withdrawal records: the taxonomy describes kinds of data about a person
    // (contact, financial, behaviour, content…), not the legal records a business keeps about its
    // dealings with them; no key names a contract, an order's terms or a withdrawal.
    ("contract", None),
    // Complaint and dispute records: likewise no key names a complaint or a dispute.
    // `user.content.private` would fit the complainant's own words only, and is already
    // `communication`'s; claiming it would say a complaint file is correspondence.
    ("complaint", None),
    ("cookie", Some("user.device.cookie")),
    ("minor", Some("user.childrens")),
    // Passwords, PINs, recovery codes: `user.authorization.credentials`, the parent of
    // `user.authorization.password`, since the category holds every kind of secret.
    ("credential", Some("user.authorization.credentials")),
];

#[test]
fn the_list_is_sorted_unique_and_plausible() {
    let keys = taxonomy();
    assert!(keys.len() > 50, "only {} keys read from {LIST}", keys.len());
    assert!(
        keys.windows(2).all(|w| w[0] < w[1]),
        "the list is not sorted and unique"
    );
    for k in &keys {
        assert!(
            k == "user" || k == "system" || k.starts_with("user.") || k.starts_with("system."),
            "{k}: not a data-category key"
        );
        assert!(
            k.split('.')
                .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')),
            "{k}: not a dotted key"
        );
    }
}

#[test]
fn every_builtin_key_is_in_the_taxonomy() {
    let keys: BTreeSet<String> = taxonomy().into_iter().collect();
    let missing: Vec<String> = Category::BUILTIN
        .iter()
        .filter_map(|c| c.fideslang_key().map(|k| (c.name(), k)))
        .filter(|(_, k)| !keys.contains(*k))
        .map(|(n, k)| format!("{n} => {k}"))
        .collect();
    assert!(
        missing.is_empty(),
        "keys not in fideslang 3.1.4: {missing:?}"
    );
}

#[test]
fn the_once_loose_keys_are_the_fitting_ones() {
    // `user.financial` is financial data and history at large; fideslang has `user.payment`.
    assert_eq!(Category::Payment.fideslang_key(), Some("user.payment"));
    // `user.content.public` is content a person published; a profile is `user.demographic.profile`.
    assert_eq!(
        Category::Profile.fideslang_key(),
        Some("user.demographic.profile")
    );
    // `user.device.cookie_id` is the cookie's identifier only; `user.device.cookie` is the data.
    assert_eq!(Category::Cookie.fideslang_key(), Some("user.device.cookie"));
    // `user.behavior.browsing_history` leaves out searches and clicks; `user.behavior` has them.
    assert_eq!(Category::Usage.fideslang_key(), Some("user.behavior"));
}

#[test]
fn every_builtin_claims_the_expected_key() {
    let got: Vec<(&str, Option<&str>)> = Category::BUILTIN
        .iter()
        .map(|c| (c.name(), c.fideslang_key()))
        .collect();
    assert_eq!(got, EXPECTED);
}

#[test]
fn categories_without_a_key_have_none_to_claim() {
    let without: Vec<&str> = Category::BUILTIN
        .iter()
        .filter(|c| c.fideslang_key().is_none())
        .map(|c| c.name())
        .collect();
    assert_eq!(without, ["contract", "complaint"]);
    // Should a later taxonomy add such a key, this fails and the category can claim it.
    for k in taxonomy() {
        for word in [
            "contract",
            "agreement",
            "withdrawal",
            "complaint",
            "dispute",
            "claim",
        ] {
            assert!(
                !k.contains(word),
                "{k} may fit a category that claims no key"
            );
        }
    }
}

#[test]
fn no_two_builtins_share_a_key() {
    // An export's `fideslang` field then tells the category apart on its own.
    let mut seen = BTreeSet::new();
    for c in Category::BUILTIN {
        if let Some(k) = c.fideslang_key() {
            assert!(seen.insert(k), "{k} is claimed twice");
        }
    }
}
