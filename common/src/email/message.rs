//! The MIME message of a delivery: `multipart/alternative` (text, then HTML), a Message-ID derived from
//! the delivery id (`<delivery id@MAIL_FROM's domain>`), so a message sent twice after a crash carries the
//! same Message-ID and receiving systems can drop the copy; for non-transactional e-mails the one-click
//! unsubscribe headers of RFC 2369 and RFC 8058.

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use uuid::Uuid;

use super::templates::Rendered;

/// The Message-ID of a delivery, with its angle brackets.
pub fn message_id(delivery_id: Uuid, domain: &str) -> String {
    format!("<{delivery_id}@{domain}>")
}

/// What goes into one message besides the rendered parts.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub delivery_id: Uuid,
    pub from: &'a Mailbox,
    pub from_domain: &'a str,
    pub to: &'a str,
    /// Present for non-transactional e-mails: the `List-Unsubscribe` target.
    pub unsubscribe_url: Option<&'a str>,
    /// `email_deliveries.template`, in `X-Mingus-Template` (for filtering and support).
    pub template: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid recipient address {address:?}: {source}")]
    Recipient {
        address: String,
        source: lettre::address::AddressError,
    },
    #[error("the message cannot be built: {0}")]
    Message(#[from] lettre::error::Error),
}

/// Builds the message.
pub fn build(envelope: &Envelope<'_>, rendered: &Rendered) -> Result<Message, BuildError> {
    let to: Address = envelope
        .to
        .parse()
        .map_err(|source| BuildError::Recipient {
            address: envelope.to.to_owned(),
            source,
        })?;
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .to(Mailbox::new(None, to))
        .subject(rendered.subject.clone())
        .message_id(Some(message_id(envelope.delivery_id, envelope.from_domain)))
        .date_now()
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Mingus-Template"),
            envelope.template.to_owned(),
        ));
    if let Some(url) = envelope.unsubscribe_url {
        builder = builder
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe"),
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Unsubscribe-Post"),
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    let body = MultiPart::alternative()
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(rendered.text.clone()),
        )
        .singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_HTML)
                .body(rendered.html.clone()),
        );
    Ok(builder.multipart(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_carry_the_derived_message_id_and_unsubscribe() {
        let from: Mailbox = "Mingus <no-reply@mingus.test>".parse().unwrap();
        let id = Uuid::new_v4();
        let rendered = Rendered {
            subject: "Time to review your goals — café".into(),
            text: "Hi Pat,\n".into(),
            html: "<p>Hi Pat,</p>".into(),
        };
        let envelope = Envelope {
            delivery_id: id,
            from: &from,
            from_domain: "mingus.test",
            to: "pat@example.com",
            unsubscribe_url: Some("https://api.mingus.test/unsubscribe?token=abc"),
            template: "reminder_goal_review",
        };
        let message = build(&envelope, &rendered).unwrap();
        let formatted = String::from_utf8(message.formatted()).unwrap();
        assert!(formatted.contains(&format!("Message-ID: <{id}@mingus.test>")));
        assert!(
            formatted.contains("List-Unsubscribe: <https://api.mingus.test/unsubscribe?token=abc>")
        );
        assert!(formatted.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(formatted.contains("multipart/alternative"));
        let transactional = Envelope {
            unsubscribe_url: None,
            ..envelope.clone()
        };
        let formatted =
            String::from_utf8(build(&transactional, &rendered).unwrap().formatted()).unwrap();
        assert!(!formatted.contains("List-Unsubscribe"));
        let bad = Envelope {
            to: "not an address",
            ..envelope
        };
        assert!(matches!(
            build(&bad, &rendered),
            Err(BuildError::Recipient { .. })
        ));
    }
}
