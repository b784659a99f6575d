//! Pause points: named places in the code where a race can be forced deterministically.
//!
//! Outside the crate's own tests [`point`] does nothing and compiles to nothing. In tests a
//! thread arms a point for itself ([`arm`]); when that thread reaches the point it runs the
//! armed action (typically: tell the test it is there, then wait to be let go), so a test can
//! stop one operation exactly between two of its steps and run another one meanwhile. Arming is
//! per thread: tests running in parallel never pause each other.
//!
//! The points:
//! - [`DESTRUCTION_PLANNED`]: a destruction has planned what it destroys and not committed it;
//! - [`KEY_LOADED`]: a data key or a subject's identity has been read and unwrapped from the
//!   store, and is about to enter the key cache;
//! - [`EPOCH_CREATED`], [`EPOCH_SWITCHED`]: the steps of an epoch change (a new epoch key made;
//!   the vault file sealed under it, the old key not yet destroyed).

/// A destruction between its plan and its commit.
pub(crate) const DESTRUCTION_PLANNED: &str = "destruction planned";
/// A key or identity loaded from the store, not yet cached.
pub(crate) const KEY_LOADED: &str = "key loaded";
/// A new epoch key made durable in its source; the vault file not yet sealed under it.
pub(crate) const EPOCH_CREATED: &str = "epoch created";
/// The vault file sealed under the new epoch; the old epoch key not yet destroyed.
pub(crate) const EPOCH_SWITCHED: &str = "epoch switched";

/// Runs the action the current thread armed for `name`, if any (tests only).
#[inline(always)]
pub(crate) fn point(name: &'static str) {
    #[cfg(test)]
    armed::hit(name);
    #[cfg(not(test))]
    let _ = name;
}

#[cfg(test)]
pub(crate) use armed::arm;

#[cfg(test)]
mod armed {
    use std::cell::RefCell;

    type Action = Box<dyn FnMut()>;

    thread_local! {
        static ARMED: RefCell<Vec<(&'static str, Action)>> = const { RefCell::new(Vec::new()) };
    }

    /// Arms `name` for the current thread: the next time this thread reaches it, `action` runs
    /// (once; the point is disarmed first).
    pub(crate) fn arm(name: &'static str, action: impl FnMut() + 'static) {
        ARMED.with(|a| a.borrow_mut().push((name, Box::new(action))));
    }

    pub(super) fn hit(name: &'static str) {
        let action = ARMED.with(|a| {
            let mut a = a.borrow_mut();
            let i = a.iter().position(|(n, _)| *n == name)?;
            Some(a.remove(i).1)
        });
        if let Some(mut action) = action {
            action();
        }
    }
}
