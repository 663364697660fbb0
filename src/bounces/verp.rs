//! The envelope sender that names its delivery (VERP): `LOCAL+TAG@DOMAIN` for
//! `mail.bounce_address` `LOCAL@DOMAIN`, with the delivery's signed tag
//! (`links::Signer::bounce_tag`). Servers send a bounce to the envelope sender, so the tag
//! comes back in the bounce's `To` (and `Delivered-To`, `X-Original-To`), and only a tag we
//! signed is believed.
//! Not for: reading bounces (`dsn`), deciding what they do (`bounces`).

use crate::config::BounceAddress;
use crate::links::Signer;

/// The envelope sender for `delivery`.
pub fn envelope_sender(
    bounce: &BounceAddress,
    signer: &Signer,
    delivery: i64,
) -> Result<lettre::Address, String> {
    let tag = signer.bounce_tag(delivery);
    lettre::Address::new(format!("{}+{tag}", bounce.local), &bounce.domain)
        .map_err(|e| format!("the envelope sender for delivery {delivery}: {e}"))
}

/// What the addresses a bounce was delivered to say about its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// None of them is a VERP form of `mail.bounce_address`: not a bounce of ours.
    Untagged,
    /// One is, with a tag we did not sign (forged, damaged, or signed with a retired key).
    Forged(String),
    /// A tag we signed, naming this delivery.
    Delivery(i64),
}

/// Looks for `LOCAL+TAG@DOMAIN` in `addressed_to` (header values, in any letter case).
pub fn delivery_in(bounce: &BounceAddress, signer: &Signer, addressed_to: &[String]) -> Tagged {
    let prefix = format!("{}+", bounce.local.to_ascii_lowercase());
    let suffix = format!("@{}", bounce.domain.to_ascii_lowercase());
    let mut forged = None;
    for value in addressed_to {
        let value = value.to_ascii_lowercase();
        let mut rest = value.as_str();
        while let Some(at) = rest.find(&prefix) {
            let after = &rest[at + prefix.len()..];
            // A local part starts after a delimiter, so "xbounces+…" is not ours.
            let starts_word = rest[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.' && c != '-' && c != '_');
            let tag_end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .unwrap_or(after.len());
            let (tag, tail) = after.split_at(tag_end);
            if starts_word && tail.starts_with(&suffix) {
                match signer.verify_bounce_tag(tag) {
                    Some(delivery) => return Tagged::Delivery(delivery),
                    None => forged = Some(tag.to_string()),
                }
            }
            rest = after;
        }
    }
    forged.map_or(Tagged::Untagged, Tagged::Forged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce() -> BounceAddress {
        BounceAddress {
            local: "bounces".into(),
            domain: "paperboy.example.org".into(),
        }
    }

    #[test]
    fn a_delivery_is_read_back_from_the_address_it_was_sent_from() {
        let signer = Signer::new("a-key-0123456789abcdef0123456789abcdef", None);
        let sender = envelope_sender(&bounce(), &signer, 31).unwrap();
        let text = sender.to_string();
        assert!(text.starts_with("bounces+31-") && text.ends_with("@paperboy.example.org"));
        assert!(sender.user().len() <= 64, "a local part fits SMTP's limit");
        for header in [
            format!("<{text}>"),
            format!("Paperboy Bounces <{}>", text.to_uppercase()),
            format!("other@example.net, {text}"),
        ] {
            assert_eq!(
                delivery_in(&bounce(), &signer, std::slice::from_ref(&header)),
                Tagged::Delivery(31),
                "{header}"
            );
        }
        assert_eq!(
            delivery_in(&bounce(), &signer, &["digest@paperboy.example.org".into()]),
            Tagged::Untagged
        );
        // Another domain, or a longer local part that merely ends the same way: not ours.
        let elsewhere = text.replace("paperboy.example.org", "example.net");
        let longer = format!("x{text}");
        assert_eq!(
            delivery_in(&bounce(), &signer, &[elsewhere]),
            Tagged::Untagged
        );
        assert_eq!(delivery_in(&bounce(), &signer, &[longer]), Tagged::Untagged);
        let forged = "bounces+31-00000000000000000000@paperboy.example.org".to_string();
        assert!(matches!(
            delivery_in(&bounce(), &signer, &[forged]),
            Tagged::Forged(_)
        ));
    }
}
