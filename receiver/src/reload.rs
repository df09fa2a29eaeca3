//! Files the daemon re-reads on SIGHUP (the TLS policy with its revocation list and CRLs; the
//! SSH authorized keys): each is a [`Reloadable`] value, replaced whole when its files load again
//! and kept as it was when they do not, so a typo never empties a deny-list.

use std::sync::{Arc, RwLock};

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Why a reload failed (the loader's own error, boxed so that every [`Reload`] shares one type).
pub type ReloadError = Box<dyn std::error::Error + Send + Sync>;

/// Something re-read from disk on SIGHUP.
pub trait Reload: Send + Sync {
    /// What it is, for the log: `"TLS policy"`, `"authorized keys"`.
    fn what(&self) -> &str;
    /// Re-reads the files. On error the value in force stays in force.
    fn reload(&self) -> Result<(), ReloadError>;
}

type Loader<T, E> = Box<dyn Fn() -> Result<T, E> + Send + Sync>;

/// A value built from files, swapped atomically on [`reload`](Reload::reload). Readers take an
/// `Arc` snapshot with [`get`](Reloadable::get) and keep using it; a reload never changes a
/// snapshot already taken.
pub struct Reloadable<T, E> {
    what: String,
    current: RwLock<Arc<T>>,
    load: Loader<T, E>,
}

impl<T, E> Reloadable<T, E>
where
    T: Send + Sync,
    E: std::error::Error + Send + Sync + 'static,
{
    /// Loads the value a first time (an error here is a start-up error) and keeps `load` for
    /// reloads.
    pub fn new(
        what: impl Into<String>,
        load: impl Fn() -> Result<T, E> + Send + Sync + 'static,
    ) -> Result<Arc<Self>, E> {
        let first = load()?;
        Ok(Arc::new(Reloadable {
            what: what.into(),
            current: RwLock::new(Arc::new(first)),
            load: Box::new(load),
        }))
    }

    /// The value in force now.
    pub fn get(&self) -> Arc<T> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            // A writer panicked between two whole values: what is there is still whole.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Re-reads the files, returning the loader's error (the old value stays) if they do not load.
    pub fn try_reload(&self) -> Result<(), E> {
        let next = Arc::new((self.load)()?);
        match self.current.write() {
            Ok(mut guard) => *guard = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
        Ok(())
    }
}

impl<T, E> Reload for Reloadable<T, E>
where
    T: Send + Sync,
    E: std::error::Error + Send + Sync + 'static,
{
    fn what(&self) -> &str {
        &self.what
    }

    fn reload(&self) -> Result<(), ReloadError> {
        self.try_reload().map_err(|e| Box::new(e) as ReloadError)
    }
}

/// Reloads every item in `items` on each SIGHUP, until `shutdown`. Logs `reloaded WHAT` or
/// `kept the previous WHAT` with the reason. File reads run on a blocking thread.
pub async fn reload_on_sighup(items: Vec<Arc<dyn Reload>>, shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "cannot listen for SIGHUP: files will only be read at start-up");
            return;
        }
    };
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            got = hangup.recv() => if got.is_none() { return },
        }
        let batch = items.clone();
        let done = tokio::task::spawn_blocking(move || reload_all(&batch)).await;
        if let Err(e) = done {
            warn!(error = %e, "reload task failed");
        }
    }
}

/// Reloads each item once, logging the outcome; returns how many failed.
pub fn reload_all(items: &[Arc<dyn Reload>]) -> usize {
    let mut failed = 0;
    for item in items {
        match item.reload() {
            Ok(()) => info!(what = item.what(), "reloaded {} on SIGHUP", item.what()),
            Err(e) => {
                failed += 1;
                warn!(what = item.what(), error = %e, "SIGHUP: kept the previous {} because the new one does not load", item.what());
            }
        }
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[derive(Debug, thiserror::Error)]
    #[error("bad version {0}")]
    struct Bad(u32);

    #[test]
    fn a_failed_reload_keeps_the_value_in_force_and_a_good_one_replaces_it() {
        let version = Arc::new(AtomicU32::new(1));
        let source = version.clone();
        let value = Reloadable::new("test value", move || {
            let v = source.load(Ordering::SeqCst);
            if v == 2 {
                Err(Bad(v))
            } else {
                Ok(v)
            }
        })
        .expect("first load");
        let snapshot = value.get();
        assert_eq!(*snapshot, 1);

        version.store(2, Ordering::SeqCst);
        let items: Vec<Arc<dyn Reload>> = vec![value.clone()];
        assert_eq!(reload_all(&items), 1, "the bad version fails");
        assert_eq!(*value.get(), 1, "the old value stays in force");

        version.store(3, Ordering::SeqCst);
        assert_eq!(reload_all(&items), 0);
        assert_eq!(*value.get(), 3, "the new value is in force");
        assert_eq!(*snapshot, 1, "a snapshot taken before never changes");
    }

    #[test]
    fn a_first_load_error_is_returned() {
        let err = Reloadable::<u32, Bad>::new("x", || Err(Bad(7)))
            .err()
            .expect("error");
        assert_eq!(err.to_string(), "bad version 7");
    }
}
