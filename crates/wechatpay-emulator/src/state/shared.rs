//! State shared by the server, its tasks and the [`Emulator`](crate::Emulator) handle: the
//! HTTP room's [`Base`] (reached through `Deref`, so `shared.settings` reads as before) and the
//! platform's records.

use std::ops::Deref;
use std::sync::Mutex;

use crate::http::base::Base;
use crate::http::client::Notifier;
use crate::http::faults::Faults;
use crate::state::records::{Delivery, Files};
use crate::state::State;

/// Everything the running platform holds.
pub(crate) struct Shared {
    pub base: Base,
    pub state: Mutex<State>,
    pub deliveries: Mutex<Vec<Delivery>>,
    /// Bill files waiting for `v3/billdownload/file`, by token.
    pub files: Mutex<Files>,
    pub notifier: Notifier,
    /// The fault plan ([`Fault`](crate::Fault)).
    pub faults: Faults,
    /// The sandbox's clock and what waits for its time.
    pub clock: crate::state::clock::Clock,
    /// The state file, when there is one (`serve --state`).
    pub store: Option<crate::state::store::Store>,
}

impl Deref for Shared {
    type Target = Base;

    fn deref(&self) -> &Base {
        &self.base
    }
}
