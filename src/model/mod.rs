//! Domain types that parse at the boundary.
//!
//! Everything that comes from outside (an email address typed on the command line, an arXiv id
//! in a JSON payload, a time zone in the config) becomes one of these types at the edge, so the
//! rest of the code never handles a string that might be wrong. This module does no I/O.

mod email;
mod paper;
mod profile;
mod subscriber;
mod text;

pub use email::{EmailAddress, EmailError};
pub use paper::{ArxivMeta, Paper, PaperId, PaperIdError, PaperLinks, normalize_whitespace};
pub use profile::{CategoryMode, MAX_PROFILE_ENTRIES, Profile, ProfileError, split_list};
pub use subscriber::{
    DigestDate, Frequency, Interests, InterestsError, MaxPapers, MaxPapersError, SendTime,
    Subscriber, SubscriberId, SubscriberStatus, TimeZoneName,
};
