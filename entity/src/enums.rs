//! Enumerations stored as text; the migrations' CHECK constraints list the same values.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize)]
        #[sea_orm(rs_type = "String", db_type = "Text")]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* #[sea_orm(string_value = $value)] $variant),+
        }

        impl $name {
            /// The value as stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $value),+ }
            }
        }
    };
}

text_enum!(
    /// What an account may do.
    Role { Customer = "customer", Organizer = "organizer", Staff = "staff", Admin = "admin" }
);
text_enum!(
    /// Whether a section has numbered seats or standing capacity.
    SectionKind { Reserved = "reserved", GeneralAdmission = "general_admission" }
);
text_enum!(
    /// The kind of show.
    EventCategory {
        Concert = "concert",
        Sports = "sports",
        Theatre = "theatre",
        Comedy = "comedy",
        Festival = "festival",
        Family = "family",
        Conference = "conference",
    }
);
text_enum!(
    /// Lifecycle of an event.
    EventStatus { Draft = "draft", OnSale = "on_sale", Cancelled = "cancelled" }
);
text_enum!(
    /// How a tier's tickets are sold: by count, or as specific seats.
    TierKind { GeneralAdmission = "general_admission", Reserved = "reserved" }
);
text_enum!(
    /// Status of one seat in one event's inventory.
    SeatStatus { Available = "available", Held = "held", Sold = "sold" }
);
text_enum!(
    /// Lifecycle of a hold.
    HoldStatus { Active = "active", Converted = "converted", Released = "released", Expired = "expired" }
);
text_enum!(
    /// Why a hold exists: the buyer asked for it, or a waitlist offer made it.
    HoldSource { Direct = "direct", Waitlist = "waitlist" }
);
text_enum!(
    /// Lifecycle of an order.
    OrderStatus { Paid = "paid", Cancelled = "cancelled" }
);
text_enum!(
    /// Whether a ticket still admits.
    TicketStatus { Valid = "valid", Cancelled = "cancelled" }
);
text_enum!(
    /// Direction of a payment.
    PaymentKind { Charge = "charge", Refund = "refund" }
);
text_enum!(
    /// Outcome of a payment attempt.
    PaymentStatus { Succeeded = "succeeded", Declined = "declined", Failed = "failed" }
);
text_enum!(
    /// Whether the request behind an idempotency key has finished.
    IdempotencyStatus { InFlight = "in_flight", Completed = "completed" }
);
text_enum!(
    /// Lifecycle of a waitlist entry.
    WaitlistStatus {
        Waiting = "waiting",
        Offered = "offered",
        Claimed = "claimed",
        Expired = "expired",
        Left = "left",
        Cancelled = "cancelled",
    }
);
text_enum!(
    /// Lifecycle of a waiting-room entry.
    QueueStatus { Waiting = "waiting", Admitted = "admitted", Left = "left", Expired = "expired" }
);
