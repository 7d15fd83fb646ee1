//! Entity names for glob import: `use entity::prelude::*`.

pub use crate::buyer_ticket_count::Entity as BuyerTicketCount;
pub use crate::event::Entity as Event;
pub use crate::event_queue::Entity as EventQueue;
pub use crate::event_seat::Entity as EventSeat;
pub use crate::event_section::Entity as EventSection;
pub use crate::event_sequence::Entity as EventSequence;
pub use crate::hold::Entity as Hold;
pub use crate::idempotency_key::Entity as IdempotencyKey;
pub use crate::notification::Entity as Notification;
pub use crate::order::Entity as Order;
pub use crate::order_line::Entity as OrderLine;
pub use crate::payment::Entity as Payment;
pub use crate::queue_entry::Entity as QueueEntry;
pub use crate::refresh_token::Entity as RefreshToken;
pub use crate::seat::Entity as Seat;
pub use crate::seat_change::Entity as SeatChange;
pub use crate::section::Entity as Section;
pub use crate::ticket::Entity as Ticket;
pub use crate::ticket_tier::Entity as TicketTier;
pub use crate::user::Entity as User;
pub use crate::venue::Entity as Venue;
pub use crate::waitlist_entry::Entity as WaitlistEntry;
