//! [`BootstrapToken`]: parsed, generated, and never shown whole.

use std::collections::BTreeSet;

use rand::SeedableRng;

use crate::pki::token::{BadToken, BootstrapToken};

#[test]
fn bootstrap_tokens_have_the_kubernetes_format() {
    let t: BootstrapToken = "abcdef.0123456789abcdef\n".parse().unwrap();
    assert_eq!(t.id(), "abcdef");
    assert_eq!(t.secret(), "0123456789abcdef");
    assert_eq!(t.token(), "abcdef.0123456789abcdef");
    assert_eq!(format!("{t:?}"), "BootstrapToken(abcdef.[elided])");
    assert!("abcdef.0123456789abcdef".parse::<BootstrapToken>().is_ok());
    for bad in [
        "",
        "abcdef",
        "abcdef.0123456789abcde",
        "abcdef.0123456789abcdefg",
        "abcdef.0123456789abcdef0",
        "ABCDEF.0123456789abcdef",
        "Abcdef.0123456789abcdef",
        "abcde.0123456789abcdef0",
        "abcde.0123456789abcdeff",
        "abcdef:0123456789abcdef",
        "abcdef.0123456789abcde_",
        "abcdef.0123456789abcdef.x",
        "abcdef.0123456789abcdef\nsecond line",
    ] {
        assert_eq!(bad.parse::<BootstrapToken>(), Err(BadToken), "{bad:?}");
    }
    // The error never shows what was given.
    assert!(!BadToken.to_string().contains("0123"));
}

#[test]
fn generated_tokens_have_the_kubernetes_format_and_differ() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let a = BootstrapToken::generate(&mut rng);
    let b = BootstrapToken::generate(&mut rng);
    assert_eq!(a.token().parse(), Ok(a.clone()), "{a:?}");
    assert_eq!(b.token().parse(), Ok(b.clone()), "{b:?}");
    assert_ne!(a, b);
    // Over many tokens every character of the alphabet shows up: no bias to a subset.
    let mut seen = BTreeSet::new();
    for _ in 0..200 {
        let token = BootstrapToken::generate(&mut rng).token();
        seen.extend(token.bytes().filter(|&c| c != b'.'));
    }
    assert_eq!(seen.len(), 36);
}
