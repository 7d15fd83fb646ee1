//! Signed ticket payloads: what the QR code carries, verifiable offline with the event's public key.
//!
//! Format: `ST1.<body>.<signature>`, both base64url without padding. The body is the ticket id and the
//! event id (16 bytes each) followed by the ticket's nonce; the Ed25519 signature covers `ST1.<body>`.
//! Each event has its own key pair, derived from the server's ticket secret and the event id, so every
//! instance signs alike, nothing secret is stored, and a scanner needs only that event's public key.
//! Reissuing a ticket changes its nonce, which voids its old payload.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::config::Secret;

const VERSION: &str = "ST1";
/// Ticket nonces are short; a longer one means a malformed payload.
const MAX_NONCE_BYTES: usize = 64;

/// What a ticket payload asserts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketClaims {
    pub ticket_id: Uuid,
    pub event_id: Uuid,
    pub nonce: String,
}

/// Why a payload is not a genuine ticket.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Forgery {
    #[error("not a Seat Storm ticket")]
    Malformed,
    #[error("the signature does not match")]
    BadSignature,
}

/// Signs ticket payloads with per-event keys derived from one secret.
#[derive(Clone)]
pub struct TicketSigner {
    master: [u8; 32],
}

impl TicketSigner {
    pub fn new(secret: &Secret) -> Self {
        let master = Sha256::new()
            .chain_update(b"seatstorm ticket keys\0")
            .chain_update(secret.expose().as_bytes())
            .finalize()
            .into();
        Self { master }
    }

    fn signing_key(&self, event_id: Uuid) -> SigningKey {
        let seed: [u8; 32] = Sha256::new()
            .chain_update(self.master)
            .chain_update(event_id.as_bytes())
            .finalize()
            .into();
        SigningKey::from_bytes(&seed)
    }

    /// The key a scanner verifies this event's tickets with.
    pub fn verifying_key(&self, event_id: Uuid) -> VerifyingKey {
        self.signing_key(event_id).verifying_key()
    }

    /// The QR payload of a ticket.
    pub fn sign(&self, claims: &TicketClaims) -> String {
        let mut body = Vec::with_capacity(32 + claims.nonce.len());
        body.extend_from_slice(claims.ticket_id.as_bytes());
        body.extend_from_slice(claims.event_id.as_bytes());
        body.extend_from_slice(claims.nonce.as_bytes());
        let signed = format!("{VERSION}.{}", URL_SAFE_NO_PAD.encode(body));
        let signature = self.signing_key(claims.event_id).sign(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
    }
}

/// The claims of a payload, before checking the signature: which event's key to check it with.
pub fn read_claims(payload: &str) -> Result<TicketClaims, Forgery> {
    let (signed, _) = split(payload)?;
    let body = signed
        .strip_prefix(VERSION)
        .and_then(|rest| rest.strip_prefix('.'))
        .ok_or(Forgery::Malformed)?;
    let body = URL_SAFE_NO_PAD
        .decode(body)
        .map_err(|_| Forgery::Malformed)?;
    if body.len() <= 32 || body.len() > 32 + MAX_NONCE_BYTES {
        return Err(Forgery::Malformed);
    }
    let id = |bytes: &[u8]| Uuid::from_slice(bytes).map_err(|_| Forgery::Malformed);
    Ok(TicketClaims {
        ticket_id: id(&body[..16])?,
        event_id: id(&body[16..32])?,
        nonce: String::from_utf8(body[32..].to_vec()).map_err(|_| Forgery::Malformed)?,
    })
}

/// Checks a payload against an event's public key, with nothing but the key: what an offline scanner
/// does.
pub fn verify(key: &VerifyingKey, payload: &str) -> Result<TicketClaims, Forgery> {
    let claims = read_claims(payload)?;
    let (signed, signature) = split(payload)?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| Forgery::Malformed)?;
    let signature = Signature::from_slice(&signature).map_err(|_| Forgery::Malformed)?;
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| Forgery::BadSignature)?;
    Ok(claims)
}

/// `(signed part, signature)` of a payload.
fn split(payload: &str) -> Result<(&str, &str), Forgery> {
    payload.trim().rsplit_once('.').ok_or(Forgery::Malformed)
}

/// A public key as handed to scanners.
pub fn encode_key(key: &VerifyingKey) -> String {
    URL_SAFE_NO_PAD.encode(key.to_bytes())
}

/// A public key as received from the API.
pub fn decode_key(encoded: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = URL_SAFE_NO_PAD.decode(encoded).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> TicketClaims {
        TicketClaims {
            ticket_id: Uuid::new_v4(),
            event_id: Uuid::new_v4(),
            nonce: "6f1c2a9e0b7d4e3f5a8c1d2e".into(),
        }
    }

    #[test]
    fn a_scanner_with_only_the_public_key_verifies_a_ticket() {
        let signer = TicketSigner::new(&Secret::new("server-side secret"));
        let claims = claims();
        let payload = signer.sign(&claims);
        // The scanner got the key once, as text, and has no secret and no database.
        let key = decode_key(&encode_key(&signer.verifying_key(claims.event_id))).expect("a key");
        assert_eq!(verify(&key, &payload), Ok(claims));
    }

    #[test]
    fn tampered_payloads_and_other_keys_fail() {
        let signer = TicketSigner::new(&Secret::new("server-side secret"));
        let claims = claims();
        let payload = signer.sign(&claims);
        let key = signer.verifying_key(claims.event_id);

        // Another ticket id in the body, with the original signature.
        let mut forged = claims.clone();
        forged.ticket_id = Uuid::new_v4();
        let forged_body = signer.sign(&forged);
        let (forged_signed, _) = forged_body.rsplit_once('.').expect("dot");
        let (_, signature) = payload.rsplit_once('.').expect("dot");
        let spliced = format!("{forged_signed}.{signature}");
        assert_eq!(verify(&key, &spliced), Err(Forgery::BadSignature));

        // One flipped character of the signature.
        let mut flipped = payload.clone();
        let last = flipped.pop().expect("a character");
        flipped.push(if last == 'A' { 'B' } else { 'A' });
        assert!(verify(&key, &flipped).is_err());

        // The same ticket signed by another server, or checked with another event's key.
        let stranger = TicketSigner::new(&Secret::new("another secret")).sign(&claims);
        assert_eq!(verify(&key, &stranger), Err(Forgery::BadSignature));
        let other_event = signer.verifying_key(Uuid::new_v4());
        assert_eq!(verify(&other_event, &payload), Err(Forgery::BadSignature));

        for garbage in ["", "ST1", "ST1.abc", "hello.world.again", "ST1.!!!.???"] {
            assert!(verify(&key, garbage).is_err(), "{garbage}");
        }
    }
}
