//! In-process signals between domain modules that must not leave the box (they carry
//! personal data, so they are not outbox events).

/// A signal from one module to others.
#[derive(Debug, Clone)]
pub enum Signal {
    /// An ID card was read on a lobby reader (swipe-to-ticket, customer recognition).
    CardSwiped {
        /// The reader's device id.
        reader: String,
        /// Citizen ID number from the chip.
        id_number: String,
        /// Name from the chip.
        name: String,
        /// Whether the ID number passed GB 11643.
        valid: bool,
    },
}
